"""A purge run's changes, staged in a database of their own and applied only when the whole run succeeded.

CHT writes each batch's purges as it goes, so a function that throws half-way
leaves half a run behind. Here a run computes into ``<medic>-purge-staging``:
one doc ``<role hash>:<doc id>`` per change to make (``purge``, or ``unpurge`` with
the rev of the ``purged:`` doc to delete). Only the differences are staged, so an
unchanged function stages nothing; memory holds one batch at a time whatever
the size of the deployment. When every batch is done the state turns to
``apply``, the staged changes are written to the purge databases, the purge log
is written and the staging database dropped. A run that fails before that
drops it: nothing changed. A sentinel stopped while applying finishes the
apply on its next run (each write is idempotent: a conflict means it was done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Mapping

from api.cht.purging.names import purge_db_name, purged_id
from api.couch import Couch, Database

STATE = "state"  # _local/state: {phase: compute | apply, run_id, roles, purgelog}
PAGE = 1000
ADMIN_ONLY = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["_admin"]}}


def staging_db_name(medic_db: str) -> str:
    return f"{medic_db}-purge-staging"


async def create_admin_only(couch: Couch, name: str) -> Database:
    """A database only admins may read (as every Jamii database): created if missing."""
    await couch.create_db(name)
    db = couch.db(name)
    await couch.request("PUT", db.path + "/_security", json_body=ADMIN_ONLY)
    return db


@dataclass
class Applied:
    purged: int = 0
    unpurged: int = 0


class Staging:
    def __init__(self, couch: Couch, medic_db: str):
        self.couch = couch
        self.medic_db = medic_db
        self.db = couch.db(staging_db_name(medic_db))

    async def state(self) -> dict[str, Any] | None:
        """The state of a staged run left behind, or None."""
        if not await self.db.exists():
            return None
        return await self.db.get_local(STATE)

    async def start(self, state: Mapping[str, Any]) -> None:
        await self.drop()
        await create_admin_only(self.couch, self.db.name)
        await self.db.put_local(STATE, {**state, "phase": "compute"})

    async def stage(self, hash_: str, purge: Iterable[str], unpurge: Mapping[str, str]) -> int:
        """Stage one role set's changes for a batch; returns how many. A doc staged twice keeps the last."""
        docs = [{"_id": f"{hash_}:{i}", "hash": hash_, "doc_id": i, "op": "purge"} for i in purge]
        docs += [{"_id": f"{hash_}:{i}", "hash": hash_, "doc_id": i, "op": "unpurge", "rev": rev}
                 for i, rev in unpurge.items()]
        if not docs:
            return 0
        results = await self.db.bulk_docs(docs)
        again = [d for d, r in zip(docs, results) if r.get("error") == "conflict"]
        if again:
            stored = await self.db.get_many(d["_id"] for d in again)
            for doc in again:
                if doc["_id"] in stored:
                    doc["_rev"] = stored[doc["_id"]]["_rev"]
            await self.db.bulk_docs(again)
        return len(docs)

    async def mark_apply(self, state: Mapping[str, Any]) -> None:
        await self.db.put_local(STATE, {**state, "phase": "apply"})

    async def _pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"include_docs": True, "limit": PAGE}
        while True:
            rows = (await self.db.all_docs(**params))["rows"]
            docs = [r["doc"] for r in rows if r.get("doc") and not r["id"].startswith("_design/")]
            if docs:
                yield docs
            if len(rows) < PAGE:
                return
            params.update(startkey=rows[-1]["id"], skip=1)

    async def apply(self) -> Applied:
        """Write every staged change to its purge database; safe to do twice."""
        applied = Applied()
        async for docs in self._pages():
            by_hash: dict[str, list[dict[str, Any]]] = {}
            for doc in docs:
                change = {"_id": purged_id(doc["doc_id"])}
                if doc["op"] == "unpurge":
                    change.update(_rev=doc["rev"], _deleted=True)
                by_hash.setdefault(doc["hash"], []).append(change)
            for hash_, changes in by_hash.items():
                results = await self.couch.db(purge_db_name(self.medic_db, hash_)).bulk_docs(changes)
                for change, result in zip(changes, results):
                    if result.get("ok"):
                        if change.get("_deleted"):
                            applied.unpurged += 1
                        else:
                            applied.purged += 1
        return applied

    async def drop(self) -> None:
        await self.couch.delete_db(self.db.name)
