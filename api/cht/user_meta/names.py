"""CHT's names for user meta databases: every character but ``a-z 0-9 _ $ ( ) + / -`` is written
``(<UTF-16 code unit>)``, so ``a.b`` is ``a(46)b`` and ``Jo`` is ``(74)o``."""

from __future__ import annotations

ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_$()+/-")
URL_PREFIX = "medic"  # devices always say /medic-user-...; the database is named after the configured medic db


def escape_username(name: str) -> str:
    units = name.encode("utf-16-be")
    out = []
    for i in range(0, len(units), 2):
        unit = int.from_bytes(units[i:i + 2], "big")
        char = chr(unit) if unit < 0xD800 or unit > 0xDFFF else ""
        out.append(char if char in ALLOWED else f"({unit})")
    return "".join(out)


def db_name(medic_db: str, escaped: str) -> str:
    """The database for an escaped name (as it appears in the URL)."""
    return f"{medic_db}-user-{escaped}-meta"


def user_db_name(medic_db: str, user: str) -> str:
    """The meta database of a user."""
    return db_name(medic_db, escape_username(user))


def is_meta_db(medic_db: str, name: str) -> bool:
    prefix, suffix = f"{medic_db}-user-", "-meta"
    return name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)
