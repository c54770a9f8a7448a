"""The purged part of each offline user's visible set, kept per user and exact.

Before each use the purge database of the user's role set is asked for its
``update_seq`` (one cheap request; a missing database purges nothing). While it
is unchanged, only the ids that entered the user's set since the last look are
looked up in it; when it has changed (a purge run applied), the whole set is
looked up again, 1,000 ids per request. No separate cache database is needed:
the visible set is already kept per user (``api.cht.replication.visible_set``),
and the purge database's ``update_seq`` says exactly when its answer changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from api.couch import Couch

from .names import purge_db_name, role_hash
from .store import purged_among, update_seq

MAX_USERS = 10000


@dataclass(frozen=True)
class _Known:
    seq: Any
    ids: frozenset[str]
    purged: frozenset[str]


class PurgedSets:
    """``purged(user, roles, ids)``: which of a user's visible ids their role set purges."""

    def __init__(self, couch: Couch, medic_db: str):
        self.couch = couch
        self.medic_db = medic_db
        self._known: dict[tuple[str, str], _Known] = {}

    async def purged(self, user: str, roles: Iterable[str], ids: frozenset[str]) -> frozenset[str]:
        hash_ = role_hash(roles)
        key = (user, hash_)
        db = self.couch.db(purge_db_name(self.medic_db, hash_))
        seq = await update_seq(db)
        if seq is None:
            self._known.pop(key, None)
            return frozenset()
        known = self._known.get(key)
        if known is not None and known.seq == seq:
            if known.ids is ids or known.ids == ids:
                return known.purged
            purged = (known.purged & ids) | await purged_among(db, ids - known.ids)
        else:
            purged = await purged_among(db, ids)
        self._known[key] = _Known(seq, ids, frozenset(purged))
        if len(self._known) > MAX_USERS:
            self._known.pop(next(iter(self._known)))
        return self._known[key].purged
