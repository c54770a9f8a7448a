"""Who the caller is to the datapoints API, and what they may see and change.

* One user base: a caller is a CouchDB user (Basic, cookie) or a JWT subject.
  The spec's integer user ids come from a *profile* per user name
  (``_id = "username:<name>"``, made on the first call or by a manager); the
  doc id makes two profiles for one name impossible, even when two first
  calls race.
* Regions: ``region_permission`` rows grant ``r`` or ``w`` on a region *and
  everything below it* (``w`` implies ``r``). ``depth_level`` limits how far
  below a permitted region results go. Admins see every region.
* Campaigns follow their office: a campaign is visible when its office is the
  office of some region the caller may read.
* Indicators a caller may write are those granted to one of their groups
  (``user_group`` + ``group_permission``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

from api.auth import USER_PREFIX, Principal
from api.couch import Database
from api.errors import Forbidden
from api.permissions import has_permission

from .model import INT, STRING, doc_id, now_iso, user_doc_id
from .query import Query, all_matching
from .records import allocate

DDOC = "datapoints"
READ, WRITE, MANAGE = "read:datapoints", "write:datapoints", "manage:datapoints"
LAST_LOGIN_EVERY_SECONDS = 3600


@dataclass(frozen=True)
class Caller:
    principal: Principal
    profile: dict[str, Any]
    can_write: bool
    can_manage: bool

    @property
    def user_id(self) -> int:
        return self.profile["id"]

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


async def ensure_profile(db: Database, users: Database, principal: Principal) -> dict[str, Any]:
    """The caller's profile, made on first use; keeps ``is_superuser`` and ``last_login`` current."""
    name = principal.name
    doc = await db.get_or_none(user_doc_id(name))
    if doc is None:
        account = await users.get_or_none(USER_PREFIX + name) if principal.method != "jwt" else None
        return await create_profile(db, name, account or {}, is_superuser=principal.is_admin)
    stale = doc.get("last_login") is None or _older_than(doc["last_login"], LAST_LOGIN_EVERY_SECONDS)
    if stale or bool(doc.get("is_superuser")) != principal.is_admin:
        doc = {**doc, "is_superuser": principal.is_admin, "last_login": now_iso()}
        if not await db.claim(doc):  # another request's stamp won (its losing leaf is not left as a conflict)
            doc = await db.get(user_doc_id(name))
    return doc


def _older_than(iso: str, seconds: int) -> bool:
    try:
        seen = dt.datetime.fromisoformat(iso).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return True
    return (dt.datetime.now(dt.timezone.utc) - seen).total_seconds() > seconds


def names_from_account(account: Mapping[str, Any]) -> dict[str, str]:
    """First and last name and email from a ``_users`` doc (``first_name``/``last_name`` or CHT's ``fullname``)."""
    first, last = account.get("first_name"), account.get("last_name")
    if not isinstance(first, str) and isinstance(account.get("fullname"), str):
        first, _, last = account["fullname"].strip().partition(" ")
    email = account.get("email")
    return {"first_name": (first or "")[:150] if isinstance(first, str) else "",
            "last_name": (last or "")[:150] if isinstance(last, str) else "",
            "email": email[:254] if isinstance(email, str) else ""}


async def create_profile(db: Database, name: str, account: Mapping[str, Any], *, is_superuser: bool,
                         fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Give a user name an integer id.

    The id is reserved first (``user:<n>``, unique by doc id), then the
    profile is written under ``username:<name>``. If another request made the
    profile in between, theirs is kept and our reserved id stays unused.
    """
    reservation = await allocate(db, "user", lambda n: {"_id": doc_id("user", n), "reserves": "user", "id": n,
                                                         "username": name})
    stamp = now_iso()
    doc = {"_id": user_doc_id(name), "kind": "user", "id": reservation["id"], "username": name,
           **names_from_account(account), "is_active": True, "is_staff": False, "is_superuser": is_superuser,
           "last_login": stamp, "date_joined": stamp, **(fields or {})}
    if not await db.claim(doc):  # on a cluster two creations can both be told 202: one profile wins
        return await db.get(user_doc_id(name))
    return doc


async def caller(db: Database, users: Database, principal: Principal, settings: Mapping[str, Any]) -> Caller:
    """The caller with their profile; a deactivated profile may not use the API."""
    if not has_permission(principal, READ, settings):
        raise Forbidden(f"Insufficient privileges: {READ} required")
    profile = await ensure_profile(db, users, principal)
    if not profile.get("is_active", True):
        raise Forbidden("This datapoints user is deactivated")
    return Caller(principal, profile, can_write=has_permission(principal, WRITE, settings),
                  can_manage=has_permission(principal, MANAGE, settings))


@dataclass(frozen=True)
class RegionScope:
    """The regions a caller was granted (id -> depth); they and everything below them are theirs."""

    roots: Mapping[int, int]

    def admits(self, region: Mapping[str, Any], depth_level: int = 0) -> bool:
        path = region.get("path") or []
        for root, depth in self.roots.items():
            if root in path and (depth_level <= 0 or region.get("depth", 0) <= depth + depth_level):
                return True
        return False

    def selector(self, depth_level: int = 0) -> dict[str, Any]:
        """A Mango ``$or`` for regions under a permitted one (and within ``depth_level`` of it)."""
        if depth_level <= 0:
            return {"$or": [{"path": {"$elemMatch": {"$in": sorted(self.roots)}}}]}
        return {"$or": [{"path": {"$elemMatch": {"$eq": root}}, "depth": {"$lte": depth + depth_level}}
                        for root, depth in sorted(self.roots.items())]}


async def region_scope(db: Database, who: Caller, read_write: str = "r") -> RegionScope | None:
    """The caller's granted regions for reading (``r``) or writing (``w``); None: every region (admin)."""
    if who.is_admin:
        return None
    query = Query("region_permission")
    query.restrict("user_id", INT, [who.user_id])
    if read_write == "w":
        query.restrict("read_write", STRING, ["w"])
    grants = await all_matching(db, query, fields=["region_id"])
    regions = await db.get_many(doc_id("region", g["region_id"]) for g in grants)
    return RegionScope({r["id"]: r.get("depth", 0) for r in regions.values() if r.get("kind") == "region"})


async def visible_offices(db: Database, scope: RegionScope | None) -> set[int] | None:
    """Offices of the regions in scope (None: all), read by skipping from one office to the next."""
    if scope is None:
        return None
    offices: set[int] = set()
    for root in scope.roots:
        start: list[Any] = [root]
        while True:
            rows = (await db.view(DDOC, "region_offices", startkey=start, endkey=[root, {}], limit=1))["rows"]
            if not rows:
                break
            office = rows[0]["key"][1]
            offices.add(office)
            start = [root, office + 1]
    return offices


async def group_ids(db: Database, user_id: int) -> set[int]:
    query = Query("user_group")
    query.restrict("user_id", INT, [user_id])
    return {g["group_id"] for g in await all_matching(db, query, fields=["group_id"])}


async def writable_indicators(db: Database, who: Caller) -> set[int] | None:
    """Indicators granted to one of the caller's groups (None: all, for admins)."""
    if who.is_admin:
        return None
    groups = await group_ids(db, who.user_id)
    if not groups:
        return set()
    query = Query("group_permission")
    query.restrict("group_id", INT, groups)
    return {g["indicator_id"] for g in await all_matching(db, query, fields=["indicator_id"])}


class Context:
    """One request's view of the datapoints database: the caller and their scopes, each read once."""

    def __init__(self, db: Database, users: Database, who: Caller):
        self.db = db
        self.users = users
        self.who = who
        self._scopes: dict[str, asyncio.Task[RegionScope | None]] = {}
        self._offices: asyncio.Task[set[int] | None] | None = None

    async def scope(self, read_write: str = "r") -> RegionScope | None:
        if read_write not in self._scopes:
            self._scopes[read_write] = asyncio.ensure_future(region_scope(self.db, self.who, read_write))
        return await asyncio.shield(self._scopes[read_write])

    async def offices(self) -> set[int] | None:
        if self._offices is None:
            self._offices = asyncio.ensure_future(self._read_offices())
        return await asyncio.shield(self._offices)

    async def _read_offices(self) -> set[int] | None:
        return await visible_offices(self.db, await self.scope("r"))

    @property
    def manager(self) -> bool:
        return self.who.is_admin or self.who.can_manage


OWN_ROWS = ("region_permission", "user_permission", "user_group")


async def restrict(ctx: Context, kind: str, query: Query, *, read_write: str = "r", depth_level: int = 0,
                   show_all: bool = False) -> None:
    """Narrow a query to what the caller may see, as the spec's permission functions do."""
    who = ctx.who
    if kind == "region":
        scope = await ctx.scope(read_write)
        if scope is not None:
            if not scope.roots:
                query.impossible = True
            else:
                query.extra.append(scope.selector(depth_level))
        elif depth_level > 0:
            query.extra.append({"depth": {"$lte": depth_level}})
    elif kind == "campaign":
        offices = await ctx.offices()
        if offices is not None:
            query.restrict("office_id", INT, offices)
    elif kind == "indicator" and read_write == "w":
        writable = await writable_indicators(ctx.db, who)
        if writable is not None:
            query.restrict("id", INT, writable)
    elif kind == "document" and not show_all:
        query.restrict("created_by_id", INT, [who.user_id])
    elif kind in OWN_ROWS and not ctx.manager:
        query.restrict("user_id", INT, [who.user_id])
    elif kind == "user" and not ctx.manager:
        query.restrict("id", INT, [who.user_id])
    if kind == "region_permission" and read_write == "w":
        query.restrict("read_write", STRING, ["w"])
