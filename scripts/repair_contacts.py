"""Find (and repair) what a crash left of user imports, and report contacts whose references lead nowhere.

    python -m scripts.repair_contacts --dry-run            # list what it would do; exit 1 when anything is found
    python -m scripts.repair_contacts                      # repair (safe to run again: a second run finds nothing)
    python -m scripts.repair_contacts --stale-minutes 0    # right after an API restart: no import is still running

**Interrupted user imports** (repaired). ``POST /api/v2/users`` creates users
100 at a time (places and people, then user-settings docs, then ``_users``
docs) and rewrites its ``bulk-user-upload-<ms>`` log after each batch. An API
process killed part-way leaves the log in a running state and, for the rows of
the batch under way, places and people made for users that were never
created. Importing the same CSV again would make them a second time. The
repair, for each row the log never saw saved: a row whose ``_users`` doc
exists is marked imported; otherwise the places and people made for it are
deleted (found under the row's parent by type and name, created after the
import started, the primary contact or child of nothing and no user's place or
contact) and the row is marked ``error``; the log's status becomes ``error``.
A user-settings doc written without its ``_users`` doc is ``repair_users``'s
business (run it too). Imports started less than ``--stale-minutes`` ago
(default 60) are left alone: they may still be running.

**Dangling references** (reported only). A contact whose parent (or any
ancestor in its lineage) names a doc that never existed, and a place whose
``contact`` does. Jamii writes a nested create with one ``_bulk_docs``, which
CouchDB may apply only in part if it dies in the middle; but the same picture
is normal for a moment while a device's replication is under way, so the
script does not guess: it lists them for a person to judge. (A reference to a
*deleted* doc is not listed: that is a deletion, not a half-made write.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from api.cht import contact_types
from api.cht.lineage import lineage_ids
from api.cht.users.csv_upload import LOG_PREFIX, log_entry
from api.cht.users.users import by_field, user_id
from api.config import Config
from api.couch import Couch, Database
from api.errors import JamiiError
from api.timestamps import to_ms

from .admin import admin_config

RUNNING = frozenset({"initiated", "parsing", "parsed", "saving"})
INTERRUPTED = "interrupted: the API stopped during the import; this user was not created, import it again"


@dataclass
class Findings:
    """What one run found (and, unless dry, did)."""

    imports: list[str] = field(default_factory=list)  # log ids repaired
    leftovers: list[str] = field(default_factory=list)  # doc ids deleted
    dangling: list[str] = field(default_factory=list)  # lines reported

    @property
    def count(self) -> int:
        return len(self.imports) + len(self.leftovers) + len(self.dangling)


async def _children(medic: Database, parent_id: str, type_id: str | None = None) -> list[dict[str, Any]]:
    key = {"startkey": [parent_id], "endkey": [parent_id, {}]} if type_id is None else {"key": [parent_id, type_id]}
    rows = (await medic.view("medic-client", "contacts_by_parent", include_docs=True, **key))["rows"]
    return [row["doc"] for row in rows if row.get("doc")]


async def _leftovers(medic: Database, users: Database, row: dict[str, Any], started: int,
                     settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The places and people an interrupted import made for this row's (never created) user."""
    place, contact = row.get("place"), row.get("contact")
    found: list[dict[str, Any]] = []
    if isinstance(place, dict) and isinstance(place.get("parent"), str):
        type_id = place.get("contact_type") or place.get("type")
        for doc in await _children(medic, place["parent"], type_id):
            if doc.get("name") == place.get("name") and (doc.get("reported_date") or 0) >= started:
                found.append(doc)
                contact_id = (doc.get("contact") or {}).get("_id")
                person = await medic.get_or_none(contact_id) if contact_id else None
                if person and (person.get("parent") or {}).get("_id") == doc["_id"]:
                    found.append(person)
    elif isinstance(place, str) and isinstance(contact, dict):
        parent = contact.get("parent") if isinstance(contact.get("parent"), str) else place
        for doc in await _children(medic, parent):
            if contact_types.is_person(settings, doc) and doc.get("name") == contact.get("name") and \
                    (doc.get("reported_date") or 0) >= started:
                found.append(doc)
    if not found:
        return []
    ids = {doc["_id"] for doc in found}
    # made for this user only: nobody's place or contact, and nothing else below them
    if await by_field(users, "facility_id", ids) or await by_field(users, "contact_id", ids):
        return []
    for doc in found:
        if any(child["_id"] not in ids for child in await _children(medic, doc["_id"])):
            return []
    return found


async def repair_imports(couch: Couch, config: Config, findings: Findings, *, dry_run: bool,
                         stale_minutes: float, out: Callable[[str], None]) -> None:
    logs, medic, users = couch.db(config.db_logs), couch.db(config.db_medic), couch.db(config.db_users)
    settings = ((await medic.get_or_none("settings")) or {}).get("settings") or {}
    rows = (await logs.all_docs(startkey=LOG_PREFIX, endkey=LOG_PREFIX + "\ufff0", include_docs=True))["rows"]
    cutoff = (time.time() - stale_minutes * 60) * 1000
    for log_doc in (row["doc"] for row in rows if row.get("doc")):
        if (log_doc.get("progress") or {}).get("status") not in RUNNING:
            continue
        try:
            started = to_ms(log_doc.get("bulk_uploaded_on"))
        except JamiiError:
            out(f"{log_doc['_id']}: an unfinished import log without a start date; left alone")
            continue
        if started > cutoff:
            continue
        out(f"{log_doc['_id']}: an import interrupted at '{log_doc['progress']['status']}'")
        data = log_doc.get("data") or []
        pending = [i for i, entry in enumerate(data) if (entry.get("import") or {}).get("status") == "parsed"]
        created = {r["id"] for r in (await users.all_docs([user_id(str(data[i].get("username"))) for i in pending]
                                                           ))["rows"] if r.get("value") and not r["value"].get("deleted")}
        doomed: dict[str, dict[str, Any]] = {}
        for i in pending:
            entry = {k: v for k, v in data[i].items() if k != "import"}
            if user_id(str(entry.get("username"))) in created:
                data[i] = log_entry(entry, "imported", "imported (found after the interruption)")
                continue
            for doc in await _leftovers(medic, users, entry, started, settings):
                if doc["_id"] not in doomed:
                    out(f"{doc['_id']}: a {contact_types.type_of(doc)} made for user {entry.get('username')}, "
                        f"who was never created: {'would delete' if dry_run else 'deleting'}")
                doomed[doc["_id"]] = doc
            data[i] = log_entry(entry, "error", INTERRUPTED)
        findings.imports.append(log_doc["_id"])
        findings.leftovers += list(doomed)
        if dry_run:
            continue
        results = await medic.bulk_docs([{**doc, "_deleted": True} for doc in doomed.values()])
        failed = [r["id"] for r in results if r.get("error")]
        if failed:
            raise JamiiError(f"could not delete {', '.join(failed)}; run the script again")
        saving = (log_doc.get("progress") or {}).get("saving") or {}
        statuses = [(entry.get("import") or {}).get("status") for entry in data]
        log_doc["progress"] = {**log_doc["progress"], "status": "error", "message": INTERRUPTED.split(";")[0],
                               "saving": {**saving, "successful": statuses.count("imported"),
                                          "failed": statuses.count("error")}}
        log_doc["data"] = data
        await logs.put(log_doc)
        out(f"{log_doc['_id']}: repaired")


async def _missing(medic: Database, ids: Iterable[str]) -> set[str]:
    """Ids that never existed (deleted docs are not missing: they were deleted)."""
    ids = list(dict.fromkeys(ids))
    missing: set[str] = set()
    for start in range(0, len(ids), 500):
        rows = (await medic.all_docs(ids[start:start + 500]))["rows"]
        missing |= {row["key"] for row in rows if row.get("error") == "not_found"}
    return missing


async def report_dangling(couch: Couch, config: Config, findings: Findings, out: Callable[[str], None]) -> None:
    medic = couch.db(config.db_medic)
    contacts: list[dict[str, Any]] = []
    for type_id in contact_types.CONTACT_DOC_TYPES:
        async for row in medic.iter_view("medic-client", "doc_by_type", key=[type_id], include_docs=True):
            if row.get("doc"):
                contacts.append({"_id": row["id"], "lineage": lineage_ids(row["doc"])[1:],
                                 "contact": (row["doc"].get("contact") or {}).get("_id")
                                 if isinstance(row["doc"].get("contact"), dict) else None})
    missing = await _missing(medic, [i for c in contacts for i in c["lineage"] + [c["contact"]] if i])
    for contact in contacts:
        for ancestor in contact["lineage"]:
            if ancestor in missing:
                findings.dangling.append(f"{contact['_id']}: its lineage names {ancestor}, which never existed")
        if contact["contact"] in missing:
            findings.dangling.append(f"{contact['_id']}: its primary contact {contact['contact']} never existed")
    for line in findings.dangling:
        out(line + " (reported only: fix by hand, or wait if a device is still syncing)")


async def run(config: Config, *, dry_run: bool = False, stale_minutes: float = 60,
              out: Callable[[str], None] = print) -> Findings:
    findings = Findings()
    async with Couch.from_config(config) as couch:
        await repair_imports(couch, config, findings, dry_run=dry_run, stale_minutes=stale_minutes, out=out)
        await report_dangling(couch, config, findings, out)
    return findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list what would be repaired; change nothing")
    parser.add_argument("--stale-minutes", type=float, default=60,
                        help="leave imports started less than this long ago alone (default 60)")
    args = parser.parse_args()
    config = admin_config()
    if config is None:
        return 2
    try:
        findings = asyncio.run(run(config, dry_run=args.dry_run, stale_minutes=args.stale_minutes))
    except JamiiError as exc:
        print(f"error: {exc} ({config.couch_url})", file=sys.stderr)
        return 1
    return 1 if (args.dry_run and findings.count) or findings.dangling else 0


if __name__ == "__main__":
    sys.exit(main())
