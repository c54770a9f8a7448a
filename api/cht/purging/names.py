"""The names CHT gives to purge records: role hashes, purge databases and ``purged:<id>`` docs.

A role set is hashed as CHT's purging utilities do: the roles de-duplicated and
sorted (JavaScript's default sort, by UTF-16 code unit), written as compact JSON
without escaping non-ASCII characters, and the md5 of its UTF-8 bytes in hex.
Keeping CHT's names means a purge database made by CHT's sentinel is read as is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable

PURGED_PREFIX = "purged:"
INFO_ID = "_local/info"  # {roles: [...]}: which role set a purge database is for
PURGE_DB_INFIX = "-purged-role-"


def _utf16_key(text: str) -> bytes:
    return text.encode("utf-16-be")


def sorted_unique_roles(roles: Iterable[str]) -> list[str]:
    """The roles once each, in the order JavaScript's ``Array.prototype.sort`` gives strings."""
    return sorted({r for r in roles if isinstance(r, str)}, key=_utf16_key)


def role_hash(roles: Iterable[str]) -> str:
    """The md5 CHT names a role set's purge database with."""
    text = json.dumps(sorted_unique_roles(roles), separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - a name, not a secret


def purge_db_name(medic_db: str, hash_: str) -> str:
    return f"{medic_db}{PURGE_DB_INFIX}{hash_}"


def purged_id(doc_id: str) -> str:
    return PURGED_PREFIX + doc_id


def extract_id(purge_doc_id: str) -> str | None:
    """The medic doc id a ``purged:<id>`` doc names; None for any other doc."""
    if not purge_doc_id.startswith(PURGED_PREFIX):
        return None
    return purge_doc_id[len(PURGED_PREFIX):]
