"""Users as CHT keeps them: a ``_users`` doc and a ``user-settings`` doc, read together and kept consistent.

``_users/org.couchdb.user:<name>`` is what CouchDB authenticates (password,
``roles``, ``facility_id``, ``contact_id``, token login); ``medic/org.couchdb.user:<name>``
(``type: user-settings``) is what the user's device replicates (``fullname``,
``email``, ``phone``, ``known``, ``oidc_login`` and copies of the shared fields). Both are written as CHT
writes them: ``facility_id`` a list, ``mm-online`` among an online user's roles, ``oidc_username`` in
``_users`` only.

The ``_users`` doc is the commit point: a user exists when it exists. Writes
put the settings doc first and the ``_users`` doc second, and undo the first if
the second fails; a deletion removes the ``_users`` doc first (so the user
cannot log in at once) and then marks the settings doc ``inactive``. If a
process dies between two writes, what is left is found by ``find_problems``
(``scripts/repair_users.py``) and reads say so in ``inconsistencies``; the
repair copies the shared fields from ``_users`` into the settings doc, makes a
missing settings doc, and marks settings without a ``_users`` doc inactive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Mapping

from api.couch import Database
from api.errors import NotFound

from .token_login import public_state

USER_PREFIX = "org.couchdb.user:"
SETTINGS_TYPE = "user-settings"
# Fields both docs hold; the _users doc wins when they differ.
SHARED = ("name", "roles", "facility_id", "contact_id", "known")
PAGE = 500


@dataclass
class Dbs:
    users: Database
    medic: Database
    logs: Database
    sentinel: Database


def user_id(name: str) -> str:
    return USER_PREFIX + name


def facility_ids(value: Any) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def synced_settings(user_doc: Mapping[str, Any], settings_doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings doc as it should be next to this ``_users`` doc."""
    doc = dict(settings_doc or {"_id": user_doc["_id"], "type": SETTINGS_TYPE})
    for key in SHARED:
        if key in user_doc:
            doc[key] = user_doc[key]
        else:
            doc.pop(key, None)
    doc.pop("oidc_username", None)  # written there by Jamii before it followed CHT
    if "oidc_username" in user_doc:
        doc["oidc_login"] = bool(user_doc["oidc_username"])
    state = public_state(user_doc)
    if state is None:
        doc.pop("token_login", None)
    else:
        doc["token_login"] = state
    doc.pop("inactive", None)
    doc.pop("deletion_date", None)
    return doc


def inconsistencies(user_doc: Mapping[str, Any], settings_doc: Mapping[str, Any] | None) -> list[str]:
    """What differs between the two docs of one user (empty when they agree)."""
    name = user_doc.get("name")
    if settings_doc is None:
        return [f"the user-settings doc {user_id(str(name))} is missing"]
    found = []
    if settings_doc.get("inactive"):
        found.append("the user-settings doc is marked inactive (deleted user) but the _users doc exists")
    for key in SHARED:
        if user_doc.get(key) != settings_doc.get(key):
            found.append(f"{key} differs: _users has {user_doc.get(key)!r}, user-settings has "
                         f"{settings_doc.get(key)!r}")
    if "oidc_username" in user_doc and settings_doc.get("oidc_login") != bool(user_doc["oidc_username"]):
        found.append("oidc_login of user-settings does not match the _users doc's oidc_username")
    if public_state(user_doc) != settings_doc.get("token_login"):
        found.append("token_login differs between _users and user-settings")
    return found


# -- reading ---------------------------------------------------------------------


_ABSENT = object()


def _shape(user_doc: Mapping[str, Any], settings_doc: Mapping[str, Any] | None,
           contacts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A user as CHT answers it: ``place`` the list of the user's place docs as stored (``null`` when none),
    ``contact`` the person doc; keys the docs do not have are left out, ``null`` values kept."""
    settings = settings_doc or {}
    places = [contacts.get(f) for f in facility_ids(user_doc.get("facility_id"))]
    contact_id = user_doc.get("contact_id")
    out: dict[str, Any] = {
        "id": user_doc["_id"],
        "rev": user_doc["_rev"],
        "username": user_doc.get("name", _ABSENT),
        "fullname": settings.get("fullname", _ABSENT),
        "email": settings.get("email", _ABSENT),
        "phone": settings.get("phone", _ABSENT),
        "place": places or None,
        "roles": user_doc.get("roles", _ABSENT),
        "contact": contacts.get(contact_id, _ABSENT) if isinstance(contact_id, str) else _ABSENT,
        "external_id": settings.get("external_id", _ABSENT),
        "known": user_doc.get("known", _ABSENT),
        "oidc_username": user_doc.get("oidc_username", _ABSENT),
    }
    problems = inconsistencies(user_doc, settings_doc)
    if problems:
        out["inconsistencies"] = problems
    return {k: v for k, v in out.items() if v is not _ABSENT}


async def shape_page(dbs: Dbs, user_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API objects for a page of ``_users`` docs (settings, places and contacts in two requests)."""
    user_docs = [u for u in user_docs if u.get("_id", "").startswith(USER_PREFIX)]
    if not user_docs:
        return []
    settings = await dbs.medic.get_many(u["_id"] for u in user_docs)
    ids = [i for u in user_docs for i in facility_ids(u.get("facility_id"))]
    ids += [u["contact_id"] for u in user_docs if isinstance(u.get("contact_id"), str)]
    contacts = await dbs.medic.get_many(ids)
    return [_shape(u, settings.get(u["_id"]), contacts) for u in user_docs]


async def iter_user_docs(users: Database, prefix: str = "") -> AsyncIterator[list[dict[str, Any]]]:
    """Every ``_users`` user doc (name starting with ``prefix``), a page at a time."""
    start, end = USER_PREFIX + prefix, USER_PREFIX + prefix + "\ufff0"
    skip = 0
    while True:
        rows = (await users.all_docs(startkey=start, endkey=end, include_docs=True, limit=PAGE,
                                     skip=skip))["rows"]
        docs = [r["doc"] for r in rows if r.get("doc")]
        if docs:
            yield docs
        if len(rows) < PAGE:
            return
        start, skip = rows[-1]["id"], 1


async def by_field(users: Database, field: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """``_users`` docs whose ``facility_id``, ``contact_id`` or ``oidc_username`` is one of ``values``."""
    keys = [[field, v] for v in dict.fromkeys(values)]
    if not keys:
        return []
    rows = (await users.view("users", "users_by_field", keys=keys, include_docs=True))["rows"]
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("doc"):
            seen.setdefault(row["id"], row["doc"])
    return list(seen.values())


async def filtered(users: Database, facility_id: str | None, contact_id: str | None) -> list[dict[str, Any]]:
    """Users with this facility and/or contact (the v2 list's filters)."""
    if contact_id:
        docs = await by_field(users, "contact_id", [contact_id])
        if facility_id:
            docs = [d for d in docs if facility_id in facility_ids(d.get("facility_id"))]
    else:
        docs = await by_field(users, "facility_id", [facility_id or ""])
    return sorted(docs, key=lambda d: d["_id"])


async def get_one(dbs: Dbs, name: str) -> dict[str, Any]:
    """One user; 404 as CHT says it when either doc is missing."""
    doc = await dbs.users.get_or_none(user_id(name))
    if doc is None:
        raise not_found(name, "users")
    if await dbs.medic.get_or_none(user_id(name)) is None:
        raise not_found(name, "medic")
    return (await shape_page(dbs, [doc]))[0]


def not_found(name: str, db: str) -> NotFound:
    return NotFound(f"Failed to find user with name [{name}] in the [{db}] database.")


# -- consistency -----------------------------------------------------------------------


@dataclass
class Problem:
    """A user whose two docs disagree, and the settings doc that repairs it."""

    name: str
    problems: list[str]
    fixed_settings: dict[str, Any]


async def find_problems(dbs: Dbs, prefix: str = "") -> AsyncIterator[Problem]:
    """Every half-made or diverging user (names starting with ``prefix``), read page by page."""
    known: set[str] = set()
    async for page in iter_user_docs(dbs.users, prefix):
        settings = await dbs.medic.get_many(u["_id"] for u in page)
        for user_doc in page:
            known.add(user_doc["_id"])
            found = inconsistencies(user_doc, settings.get(user_doc["_id"]))
            if found:
                yield Problem(str(user_doc.get("name")), found, synced_settings(user_doc, settings.get(user_doc["_id"])))
    start = USER_PREFIX + prefix
    async for row in dbs.medic.iter_view("medic-client", "doc_by_type", key=[SETTINGS_TYPE], include_docs=True):
        doc = row.get("doc") or {}
        if not row["id"].startswith(start) or row["id"] in known or doc.get("inactive"):
            continue
        if (await dbs.users.get_or_none(row["id"])) is None:
            fixed = {**doc, "inactive": True, "deletion_date": int(time.time() * 1000)}
            fixed.pop("token_login", None)
            yield Problem(str(doc.get("name") or row["id"][len(USER_PREFIX):]),
                          ["the user-settings doc has no _users doc (a half-made or half-deleted user)"], fixed)


async def repair(dbs: Dbs, problem: Problem) -> None:
    await dbs.medic.put(dict(problem.fixed_settings))
