"""Transitions: what the sentinel does to a document when it changes.

Each transition is a module in this package exposing an object with

* ``name`` — the key under settings ``transitions`` that enables it;
* ``filter(doc, ctx) -> bool`` — does it apply? Pure and fast;
* ``async run(doc, ctx) -> bool`` — change ``doc`` in place (the engine
  saves all transitions' changes in one write) and say whether it changed;
  raise ``TransitionError`` for an expected failure (recorded on the doc).
  Other docs are read with ``ctx.work.fetch`` and saved with
  ``ctx.work.write`` (see ``sentinel.workspace``), never written directly;

and optionally

* ``once = True`` — run at most once per doc (CHT's ``hasRun``): a later
  revision of a doc it handled successfully is not considered again;
* ``hydrate = True`` — the engine fills in the doc's lineage, contact,
  patient and place (``doc["patient"]``...) before ``run``, for the whole batch
  at once; they are dropped again (minified) when the doc is saved;
* ``async prepare(docs, ctx)`` — called once per batch with the docs that
  passed the filter, before ``run`` on each: the place for the one view query
  per batch a transition needs (results kept in ``ctx.work.cache``).

The engine runs the transitions phase by phase: the first transition on
every doc of the batch, then the second, and so on, so each doc still sees
them in the fixed order.

The contract that makes the sentinel crash-safe: **a transition is
idempotent on the document it changes** — applied to a doc that already
carries its effect, it changes nothing (messages get deterministic ids,
fields are set, not appended). So ``filter`` says whether the transition
applies to the doc at all, never whether its effect is already there: that
is for ``run`` to find out. Then a doc replayed after a crash gets the same
transitions recorded in its info doc as it would have without the crash. CouchDB has no transactions across
documents, so a crash between saving a doc and saving its info doc may
replay a transition; idempotency makes that replay a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.config import Config
from api.couch import Couch, Database
from sentinel.workspace import Workspace


class TransitionError(Exception):
    """An expected failure (bad data, unknown patient...): recorded on the doc as ``{code, message}``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Context:
    couch: Couch
    config: Config
    settings: dict[str, Any]
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    seq: Any = None
    work: Workspace | None = None
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def medic(self) -> Database:
        return self.couch.db(self.config.db_medic)

    @property
    def sentinel(self) -> Database:
        return self.couch.db(self.config.db_sentinel)

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def transition_config(self, name: str) -> Any:
        return (self.settings.get("transitions") or {}).get(name)

    @property
    def ws(self) -> Workspace:
        """The batch's workspace (a fresh one when a transition is run alone, e.g. in a unit test)."""
        if self.work is None:
            self.work = Workspace(self.medic, codes=self.sentinel)
        return self.work


class Transition(Protocol):
    name: str

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool: ...

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool: ...


def is_enabled(settings: dict[str, Any], name: str) -> bool:
    """Settings ``transitions.<name>``: ``true``, or an object without ``"disable": true``."""
    value = (settings.get("transitions") or {}).get(name)
    if isinstance(value, dict):
        return not value.get("disable", False)
    return value is True


def add_error(doc: dict[str, Any], code: str, message: str) -> None:
    """Record a failure on the doc once (CHT's ``errors: [{code, message}]``)."""
    errors = doc.setdefault("errors", [])
    if not any(e.get("code") == code and e.get("message") == message for e in errors):
        errors.append({"code": code, "message": message})


def clear_error(doc: dict[str, Any], code: str) -> bool:
    errors = doc.get("errors") or []
    kept = [e for e in errors if e.get("code") != code]
    if len(kept) != len(errors):
        doc["errors"] = kept
        return True
    return False
