"""Paging through cht-core's data endpoints never repeats an id of an earlier page, nor misses one, whatever
the ids (mixed case, accents composed or not, punctuation: CouchDB orders them by ICU collation and
pouchdb-server by code point) and however many words of a freetext search a doc is indexed under.

Run on both servers (``COUCH_URL`` for Apache CouchDB). New docs between two pages: one sorting after the
cursor is seen; one sorting before it shifts the skip by one, so the next page starts with the last id of
the previous one, as in cht-core (docs/contacts.md).
"""

from __future__ import annotations

import asyncio

import pytest

from api.couch import Couch
from tests.helpers import admin_headers

JSON = {"Accept": "application/json"}
HC = {"_id": "hc", "parent": {"_id": "dh"}}
ODD_IDS = ["a", "A", "b", "B", "a-1", "a_1", "a.1", "a 1", "A-1", "e", "é", "e\u0301", "E", "z", "Z", "1", "10",
           "2", "clinic-1", "Clinic-1", "clinic_1", "CLINIC", "ä", "ß", "ss", "ö", "Ö", "~", "x\u0301", "á",
           "a\u0301", "\u00e5", "a\u030a", "ﬁ", "fi", "日本", "\U0001f600", "\ue000"]
WORDY = [  # contacts indexed under several words starting with "bar"
    {"_id": f"w{i}", "type": "clinic", "name": f"Barn {i} barley", "notes": "barista bar baraka" if i % 2 else "bark",
     "parent": HC} for i in range(12)
] + [{"_id": f"p{i}", "type": "person", "name": f"Baraka {i}", "nickname": "Barakazi", "parent": {"_id": "w0"}}
     for i in range(7)]
REPORTS = [{"_id": f"r{i}", "type": "data_record", "form": "V", "reported_date": i,
            "fields": {"note": "visit visitor visiting" if i % 3 else "visit", "other": "revisit"}} for i in range(10)]


@pytest.fixture(scope="module")
def data(config):
    docs = [{"_id": "dh", "type": "district_hospital", "name": "D"},
            {"_id": "hc", "type": "health_center", "name": "H", "parent": {"_id": "dh"}}]
    docs += [{"_id": i, "type": "clinic", "name": "odd " + i, "parent": HC} for i in ODD_IDS]
    docs += [{"_id": f"cc{n:02d}", "type": "contact", "contact_type": "clinic", "name": "configured", "parent": HC}
             for n in range(5)]
    docs += WORDY + REPORTS

    async def go():
        async with Couch.from_config(config) as couch:
            results = await couch.db(config.db_medic).bulk_docs(docs)
            assert all(r.get("ok") for r in results), results

    asyncio.run(go())
    return docs


async def _page(client, config, url):
    response = await client.get(url, headers={**JSON, **admin_headers(config)})
    assert response.status == 200, await response.text()
    return await response.json()


def _limits(total):
    """Page sizes that put page boundaries everywhere: small ones, primes, and around the total."""
    return sorted({1, 2, 3, 4, 5, 7, 11, 13, total - 1, total, total + 1} - {0})


async def _walk(client, config, path, limit):
    items, cursor = [], None
    while True:
        url = f"{path}&limit={limit}" + (f"&cursor={cursor}" if cursor is not None else "")
        body = await _page(client, config, url)
        items.extend(d if isinstance(d, str) else d["_id"] for d in body["data"])
        cursor = body["cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("path", ["/api/v1/place?type=clinic", "/api/v1/contact?type=clinic",
                                  "/api/v1/contact/uuid?type=clinic"])
async def test_pages_by_type_never_repeat_or_miss_an_id(client, config, data, path):
    expected = {d["_id"] for d in data if d.get("type") == "clinic" or d.get("contact_type") == "clinic"}
    whole = await _walk(client, config, path, 10000)
    assert sorted(whole) == sorted(expected) and len(whole) == len(expected)
    for limit in _limits(len(expected)):
        items = await _walk(client, config, path, limit)
        assert items == whole, limit  # same order, each id once


@pytest.mark.parametrize("path", ["/api/v1/contact/uuid?freetext=bar", "/api/v1/contact/uuid?freetext=BARAKA",
                                  "/api/v1/contact/uuid?type=clinic&freetext=bar",
                                  "/api/v1/report/uuid?freetext=visit"])
async def test_freetext_pages_never_repeat_or_miss_an_id(client, config, data, path):
    term = path.rsplit("=", 1)[1].lower()
    if "report" in path:
        expected = {r["_id"] for r in REPORTS}
    else:
        expected = {d["_id"] for d in WORDY if (d["type"] == "clinic" or "type=clinic" not in path)
                    and any(w.startswith(term) for v in d.values() if isinstance(v, str) for w in v.lower().split())}
    whole = await _walk(client, config, path, 10000)
    assert sorted(whole) == sorted(expected) and len(whole) == len(set(whole))
    for limit in _limits(len(expected)):
        items = await _walk(client, config, path, limit)
        assert items == whole, limit


async def test_new_docs_between_pages(client, config, data, couch):
    medic = couch.db(config.db_medic)
    path = "/api/v1/contact/uuid?type=health_center"
    await medic.bulk_docs([{"_id": f"hc-{n}", "type": "health_center", "name": "h", "parent": {"_id": "dh"}}
                           for n in (2, 4, 6)])
    first = await _page(client, config, path + "&limit=2")
    assert first == {"data": ["hc", "hc-2"], "cursor": "2"}
    await medic.put({"_id": "hc-9", "type": "health_center", "name": "after the cursor", "parent": {"_id": "dh"}})
    second = await _page(client, config, path + "&limit=2&cursor=2")
    assert second == {"data": ["hc-4", "hc-6"], "cursor": "4"}
    await medic.put({"_id": "hc-1", "type": "health_center", "name": "before the cursor", "parent": {"_id": "dh"}})
    third = await _page(client, config, path + "&limit=2&cursor=4")
    # the new doc sorts before the cursor: the skip now lands one doc earlier, as in cht-core
    assert third == {"data": ["hc-6", "hc-9"], "cursor": "6"}
