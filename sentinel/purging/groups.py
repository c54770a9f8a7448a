"""What the purge function is called with: a contact and the records about it, as CHT groups them.

Pure functions over view rows and docs (no I/O), following CHT's sentinel:
a contact's group holds the reports whose subject is one of the contact's ids
(``_id``, ``patient_id``, ``place_id``) and the messages it sent or received; a
report whose subject is no contact of the batch is a group of its own, with
``contact = {}``. A report that ``needs_signoff`` is also emitted under its
submitter's lineage by ``medic/docs_by_replication_key``; only its row under its
subject counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

CONTACT_SUBJECT_FIELDS = ("_id", "patient_id", "place_id")
REPORT_SUBJECT_FIELDS = ("patient_id", "patient_uuid", "place_id", "place_uuid")


@dataclass
class Group:
    contact: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    subject_ids: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """Every doc of the group: the ids its purge function may name."""
        own = [self.contact["_id"]] if self.contact.get("_id") else []
        return own + [d["_id"] for d in self.reports] + [d["_id"] for d in self.messages]

    @property
    def where(self) -> dict[str, str]:
        """Where the group is, for a failure report: its contact, or its one report."""
        if self.contact.get("_id"):
            return {"contact": self.contact["_id"]}
        return {"doc": self.reports[0]["_id"]} if self.reports else {}


def contact_subject_ids(contact: Mapping[str, Any]) -> list[str]:
    """The keys a contact's records are filed under (the view's keys are strings)."""
    values = (contact.get(f) for f in CONTACT_SUBJECT_FIELDS)
    return list(dict.fromkeys(str(v) for v in values if v and isinstance(v, (str, int)) and not isinstance(v, bool)))


def report_subject(report: Mapping[str, Any]) -> Any:
    """The report's subject, as CHT's registration utilities read it: the first field set, top level first."""
    fields = report.get("fields") if isinstance(report.get("fields"), Mapping) else {}
    for name in REPORT_SUBJECT_FIELDS:
        if report.get(name):
            return report[name]
        if fields.get(name):
            return fields[name]
    return None


def relevant(row: Mapping[str, Any], contact_ids: Iterable[str]) -> bool:
    """A ``docs_by_replication_key`` row that is a record to group (not a contact, not a sign-off echo)."""
    value = row.get("value") if isinstance(row.get("value"), Mapping) else {}
    if row.get("id") in contact_ids or value.get("type") != "data_record":
        return False
    return not (value.get("needs_signoff") and row.get("key") != value.get("subject"))


def assign(contacts: list[dict[str, Any]], rows: list[Mapping[str, Any]],
           docs: Mapping[str, dict[str, Any]]) -> list[Group]:
    """The groups of a batch: one per contact, then one per report whose subject is none of them."""
    groups = [Group(contact=c, subject_ids=contact_subject_ids(c)) for c in contacts]
    by_key: dict[str, Group] = {}
    for group in groups:
        for key in group.subject_ids:
            by_key.setdefault(key, group)
    orphans: list[Group] = []
    seen: set[str] = set()
    for row in rows:
        doc = docs.get(row["id"])
        if doc is None or row["id"] in seen:
            continue
        seen.add(row["id"])
        if doc.get("form"):
            subject = report_subject(doc)
            group = by_key.get(row["key"]) if subject == row["key"] else None
            if group is None:
                orphans.append(Group(contact={}, reports=[doc]))
            else:
                group.reports.append(doc)
        elif row["key"] in by_key:
            by_key[row["key"]].messages.append(doc)
    return groups + orphans
