"""A generated CHT hierarchy for tests and benchmarks: district > health center > clinic > people, plus reports.

Every place has a primary contact living in it; every person has a short id
and a phone written in one of several formats; reports name their patient by
short id and are submitted by the clinic's CHW. Ids are deterministic per seed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from api.cht.lineage import minify_contact, minify_lineage
from api.couch import Database

WORDS = ["amani", "baraka", "chiku", "dalia", "eshe", "faraji", "gathoni", "hodari", "imani", "jabari"]
PHONE_FORMATS = ["+254 7{a:02d} {b:03d} {c:03d}", "07{a:02d}{b:03d}{c:03d}", "+254-7{a:02d}-{b:03d}-{c:03d}",
                 "(07{a:02d}) {b:03d}{c:03d}"]


@dataclass
class Hierarchy:
    docs: list[dict[str, Any]] = field(default_factory=list)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    districts: list[str] = field(default_factory=list)
    centers: list[str] = field(default_factory=list)
    clinics: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def add(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.docs.append(doc)
        self.by_id[doc["_id"]] = doc
        return doc

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("type") == kind]

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if (d.get("parent") or {}).get("_id") == parent_id]


def build(seed: int = 1, districts: int = 2, centers: int = 4, clinics: int = 8, people: int = 30,
          reports_per_clinic: int = 15) -> Hierarchy:
    rng = random.Random(seed)
    h = Hierarchy()
    codes = iter(rng.sample(range(10000, 99999), 60000))
    now = 1_700_000_000_000

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def person(parent: dict[str, Any], role: str) -> dict[str, Any]:
        a, b, c = rng.randrange(100), rng.randrange(1000), rng.randrange(1000)
        doc = {"_id": new_id(), "type": "person", "name": f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()}",
               "role": role, "patient_id": str(next(codes)), "reported_date": now + len(h.docs),
               "phone": rng.choice(PHONE_FORMATS).format(a=a, b=b, c=c),
               "parent": minify_lineage(parent)}
        h.people.append(doc["_id"])
        return h.add(doc)

    def place(kind: str, name: str, parent: dict[str, Any] | None, role: str) -> dict[str, Any]:
        doc = {"_id": new_id(), "type": kind, "name": name, "place_id": str(next(codes)),
               "reported_date": now + len(h.docs)}
        if parent is not None:
            doc["parent"] = minify_lineage(parent)
        h.add(doc)
        contact = person(doc, role)
        doc["contact"] = minify_contact(contact)
        return doc

    for d in range(districts):
        dh = place("district_hospital", f"District {d}", None, "manager")
        h.districts.append(dh["_id"])
        for c in range(centers):
            hc = place("health_center", f"Center {d}.{c}", dh, "nurse")
            h.centers.append(hc["_id"])
            for k in range(clinics):
                cl = place("clinic", f"Clinic {d}.{c}.{k} {rng.choice(WORDS)}", hc, "chw")
                h.clinics.append(cl["_id"])
                chw = h.by_id[cl["contact"]["_id"]]
                residents = [person(cl, "patient") for _ in range(people - 1)]
                for r in range(reports_per_clinic):
                    patient = rng.choice(residents)
                    report = {"_id": new_id(), "type": "data_record", "form": rng.choice(["P", "V", "D"]),
                              "content_type": "xml", "reported_date": now + 10_000_000 + len(h.docs),
                              "fields": {"patient_id": patient["patient_id"], "patient_name": patient["name"],
                                         "note": f"visit {rng.choice(WORDS)}"},
                              "contact": minify_contact(chw)}
                    h.reports.append(report["_id"])
                    h.add(report)
    return h


async def load(db: Database, hierarchy: Hierarchy, batch: int = 1000) -> None:
    """Write every doc with ``_bulk_docs`` (never one request per doc); revs are set on the docs."""
    for start in range(0, len(hierarchy.docs), batch):
        chunk = hierarchy.docs[start:start + batch]
        results = await db.bulk_docs(chunk)
        for doc, result in zip(chunk, results):
            assert result.get("ok"), result
            doc["_rev"] = result["rev"]
