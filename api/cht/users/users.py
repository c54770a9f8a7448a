"""Users as CHT keeps them: a ``_users`` doc and a ``user-settings`` doc, read together and kept consistent.

``_users/org.couchdb.user:<name>`` is what CouchDB authenticates (password,
``roles``, ``facility_id``, ``contact_id``, token login); ``medic/org.couchdb.user:<name>``
(``type: user-settings``) is what the user's device replicates (``fullname``,
``email``, ``phone``, ``language``, ``known`` and copies of the shared fields).

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
SHARED = ("name", "roles", "facility_id", "contact_id", "known", "oidc_username")
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
    if public_state(user_doc) != settings_doc.get("token_login"):
        found.append("token_login differs between _users and user-settings")
    return found


# -- reading ---------------------------------------------------------------------


def _shape(user_doc: Mapping[str, Any], settings_doc: Mapping[str, Any] | None,
           contacts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    settings_doc = settings_doc or {}
    places = [contacts.get(f) or {"_id": f} for f in facility_ids(user_doc.get("facility_id"))]
    out: dict[str, Any] = {
        "id": user_doc["_id"],
        "rev": user_doc["_rev"],
        "username": user_doc.get("name"),
        "roles": list(user_doc.get("roles") or []),
        "fullname": settings_doc.get("fullname"),
        "email": settings_doc.get("email"),
        "phone": settings_doc.get("phone"),
        "language": settings_doc.get("language"),
        "external_id": settings_doc.get("external_id"),
        "known": user_doc.get("known"),
        "oidc_username": user_doc.get("oidc_username"),
        "token_login": public_state(user_doc),
        "place": (places[0] if len(places) == 1 else places) if places else None,
        "contact": (contacts.get(user_doc["contact_id"]) or {"_id": user_doc["contact_id"]})
        if isinstance(user_doc.get("contact_id"), str) else None,
    }
    problems = inconsistencies(user_doc, settings_doc or None)
    if problems:
        out["inconsistencies"] = problems
    return {k: v for k, v in out.items() if v is not None}


async def _hydrate(medic: Database, user_docs: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Places and contacts of these users; each place with its primary contact filled in."""
    ids = [i for u in user_docs for i in facility_ids(u.get("facility_id"))]
    ids += [u["contact_id"] for u in user_docs if isinstance(u.get("contact_id"), str)]
    found = await medic.get_many(ids)
    primary = [p["contact"]["_id"] for p in found.values()
               if isinstance(p.get("contact"), Mapping) and isinstance(p["contact"].get("_id"), str)]
    more = await medic.get_many(i for i in primary if i not in found)
    every = {**found, **more}
    result = {}
    for doc_id, doc in found.items():
        doc = dict(doc)
        contact_id = doc["contact"].get("_id") if isinstance(doc.get("contact"), Mapping) else None
        if contact_id in every:
            doc["contact"] = every[contact_id]
        result[doc_id] = doc
    return result


async def shape_page(dbs: Dbs, user_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API objects for a page of ``_users`` docs (settings, places and contacts in two requests)."""
    user_docs = [u for u in user_docs if u.get("_id", "").startswith(USER_PREFIX)]
    if not user_docs:
        return []
    settings = await dbs.medic.get_many(u["_id"] for u in user_docs)
    contacts = await _hydrate(dbs.medic, user_docs)
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
    doc = await dbs.users.get_or_none(user_id(name))
    if doc is None:
        raise NotFound(f"Failed to find user with name [{name}] in the [_users] database.")
    return (await shape_page(dbs, [doc]))[0]


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
