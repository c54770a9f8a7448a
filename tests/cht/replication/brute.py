"""The visible set the slow way: every doc of the database judged one by one by ``api.cht.visibility``."""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.visibility import Scope, doc_visible, js_string, js_truthy, lookup_keys, scope_for
from api.config import Config
from api.couch import Couch
from api.settings import default_settings


def judge_all(docs: list[dict[str, Any]], scope: Scope) -> set[str]:
    by_key: dict[str, dict[str, Any]] = {}
    primary_of: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        if doc.get("type") in CONTACT_DOC_TYPES:
            by_key[doc["_id"]] = doc
            for code in (doc.get("patient_id"), doc.get("place_id")):
                if js_truthy(code):
                    by_key.setdefault(js_string(code), doc)
            contact = doc.get("contact")
            primary = contact.get("_id") if isinstance(contact, Mapping) else contact
            if isinstance(primary, str) and primary:
                primary_of.setdefault(primary, []).append(doc)
    return {doc["_id"] for doc in docs
            if doc_visible(scope, doc, {k: by_key[k] for k in lookup_keys(doc) if k in by_key}, primary_of)}


async def expected_ids(couch: Couch, config: Config, who: Principal, settings: Mapping[str, Any] | None = None
                       ) -> set[str]:
    scope = scope_for(who, settings or default_settings())
    rows = (await couch.db(config.db_medic).all_docs(include_docs=True))["rows"]
    return judge_all([r["doc"] for r in rows if r.get("doc")], scope)
