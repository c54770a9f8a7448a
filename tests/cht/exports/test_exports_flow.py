"""Exports under load: a slow reader holds its export back (pages are read as the client takes them);
exports of one kind beyond ``EXPORT_CONCURRENCY`` wait for a slot (as many as there are slots, for
``EXPORT_WAIT_SECONDS``), and any more are answered 503 with ``Retry-After`` at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from api.app import create_app
from api.cht.reports import search as report_search
from tests.helpers import basic
from tests.world import make_users

BASE = 1704067200000
REPORTS = 1000
PAGE = 50
EXPORT = "/api/v2/export/reports?filters[forms][selected][0][code]=FLOW"


@pytest.fixture(scope="module")
def users(config):
    return make_users(config, {"national": (["national_admin"], {})})


@pytest.fixture
async def reports(couch, config):
    """1,000 reports of about 10 kB each: 10 MB of CSV, more than the socket buffers between server and client."""
    db = couch.db(config.db_medic)
    if await db.get_or_none("flow-0000") is None:
        for start in range(0, REPORTS, 200):
            await db.bulk_docs([{"_id": f"flow-{i:04d}", "type": "data_record", "form": "FLOW",
                                 "reported_date": BASE + i, "fields": {"text": "x" * 10000}}
                                for i in range(start, start + 200)])
    await db.view("medic", "reports_by_form_date", limit=1, timeout=600)  # indexed: the export waits on nothing else
    return db


async def _slow_reader(port: int, headers: dict[str, str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection with a small receive buffer that sends the export request and reads nothing yet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
    lines = [f"GET {EXPORT} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    return reader, writer


async def _pages_when_quiet(pages: list[int]) -> int:
    """The number of pages read once it has not grown for two seconds (the export waits for the client)."""
    seen, quiet = -1, 0
    for _ in range(120):
        await asyncio.sleep(0.5)
        quiet = quiet + 1 if len(pages) == seen else 0
        if quiet == 4:
            return seen
        seen = len(pages)
    raise AssertionError("the export kept reading pages while the client read nothing")


async def test_a_slow_reader_holds_its_export_back_and_then_gets_all_of_it(aiohttp_client, config, users, reports,
                                                                          monkeypatch):
    pages: list[int] = []
    real_page = report_search.page

    async def counted(*args, **kwargs):
        pages.append(1)
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(report_search, "page", counted)
    monkeypatch.setattr(report_search, "PAGE_SIZE", PAGE)
    client = await aiohttp_client(create_app(config))
    reader, writer = await _slow_reader(client.server.port, basic(users["national"]))
    try:
        waiting = await _pages_when_quiet(pages)
        assert waiting < REPORTS // PAGE - 2, f"{waiting} pages read while the client read nothing"
        body = await asyncio.wait_for(reader.read(), timeout=120)
    finally:
        writer.close()
    assert body.count(b'"flow-') == REPORTS, "the whole export arrives once the client reads"
    assert len(pages) >= REPORTS // PAGE


async def _slot_given_back(client, headers: dict[str, str]) -> None:
    """The one slot is free again: an export is answered whole within five seconds."""
    for _ in range(50):
        again = await client.get(EXPORT, headers=headers)
        if again.status == 200:
            assert (await again.read()).count(b'"flow-') == REPORTS
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the slot was not given back")


async def test_exports_beyond_the_limit_are_503_with_retry_after(aiohttp_client, config, users, reports,
                                                                 monkeypatch):
    monkeypatch.setattr(report_search, "PAGE_SIZE", PAGE)
    client = await aiohttp_client(create_app(config.replace(export_concurrency=1, export_wait_seconds=0)))
    headers = basic(users["national"])
    reader, writer = await _slow_reader(client.server.port, headers)  # holds the one reports slot
    try:
        refused = await client.get(EXPORT, headers=headers)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "5"
        assert (await refused.json())["code"] == 503
        other_kind = await client.get("/api/v2/export/contacts", headers=headers)
        assert other_kind.status == 200, "the limit is per kind of export"
        await other_kind.read()
        await asyncio.wait_for(reader.read(), timeout=120)
    finally:
        writer.close()
    await _slot_given_back(client, headers)  # when the export ends


async def test_an_export_beyond_the_limit_waits_for_the_next_free_slot(aiohttp_client, config, users, reports,
                                                                      monkeypatch):
    """One request per slot may wait: it is handed the slot the moment it frees; one more is refused at once,
    and a waiter whose time is up is refused too."""
    monkeypatch.setattr(report_search, "PAGE_SIZE", PAGE)
    client = await aiohttp_client(create_app(config.replace(export_concurrency=1, export_wait_seconds=60)))
    headers = basic(users["national"])
    reader, writer = await _slow_reader(client.server.port, headers)  # holds the one reports slot
    try:
        waiting = asyncio.create_task(client.get(EXPORT, headers=headers))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "a request within the queue waits for the slot"
        refused = await client.get(EXPORT, headers=headers)
        assert refused.status == 503 and refused.headers["Retry-After"] == "5"
        await asyncio.wait_for(reader.read(), timeout=120)  # the held export ends: its slot is handed on
    finally:
        writer.close()
    handed = await asyncio.wait_for(waiting, timeout=30)
    assert handed.status == 200 and (await handed.read()).count(b'"flow-') == REPORTS

    short = await aiohttp_client(create_app(config.replace(export_concurrency=1, export_wait_seconds=0.5)))
    reader, writer = await _slow_reader(short.server.port, headers)
    try:
        timed_out = await short.get(EXPORT, headers=headers)
        assert timed_out.status == 503 and timed_out.headers["Retry-After"] == "5"
        await asyncio.wait_for(reader.read(), timeout=120)
    finally:
        writer.close()
    await _slot_given_back(short, headers)  # the waiter that gave up holds nothing
