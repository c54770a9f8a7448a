"""Requests that are not valid HTTP get a JSON 4xx that echoes nothing, and what they held never reaches
the log (issue 23, class 2: credentials echoed and logged on oversized headers).

Raw bytes go over a socket to ``python -m api`` started as a real process (the production server, not
the test client), whose log (at DEBUG, aiohttp's included) is then scanned for the secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import pytest

from api.errors import loggable
from tests.helpers import admin_headers
from tests.processes import ApiProcess

SECRET = "S3cr3t-Cr3d3nt1al"
PAD = "A" * 9000


def exchange(port: int, *parts: bytes, pause: float = 0.3) -> bytes:
    """Send ``parts`` (pausing between them) and read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for index, part in enumerate(parts):
            if index:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:
                break
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return received


def answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


CASES = {
    # name: (bytes sent, expected status)
    "oversized cookie": (request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nCookie: AuthSession={SECRET}{PAD}\n"), 431),
    "oversized basic": (request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nAuthorization: Basic {SECRET}{PAD}\n"), 431),
    "oversized bearer": (request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nAuthorization: Bearer {SECRET}{PAD}\n"),
                         431),
    "oversized token": (request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nAuthorization: Token {SECRET}{PAD}\n"), 431),
    "oversized header name": (request(f"GET /api/info HTTP/1.1\nHost: x\n{SECRET}{PAD}: 1\n"), 431),
    "too many headers": (request("GET /api/info HTTP/1.1\nHost: x\n" + "".join(
        f"X-{i}: {SECRET}\n" for i in range(200))), 431),
    "oversized request line": (request(f"GET /api/info?key={SECRET}{PAD * 2} HTTP/1.1\nHost: x\n"), 400),
    "bad method": (request(f"G{SECRET}T /api/info HTTP/1.1\nHost: x\n"), 400),
    "bad header character": (request(f"GET /api/info HTTP/1.1\nHost: x\nAuthorization: Basic {SECRET}\x01\n"), 400),
    "bad content-length": (request(f"POST /_session HTTP/1.1\nHost: x\nContent-Length: 5{SECRET}\n"), 400),
    "bad chunk size": (request("POST /_session HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                               "Transfer-Encoding: chunked\n", f'5\r\n{{"nam\r\nZZ{SECRET}\r\n'.encode()), 400),
    "tls on the http port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode() + b"\r\n\r\n", 400),
}


@pytest.fixture
async def api(config, tmp_path):
    process = ApiProcess(config, tmp_path, LOG_LEVEL="DEBUG")
    await process.start()
    yield process
    process.stop()


async def test_protocol_errors_are_json_and_echo_nothing(api):
    for name, (sent, status) in CASES.items():
        raw = await asyncio.to_thread(exchange, api.port, sent)
        assert raw, name
        got, headers, body = answer(raw)
        assert got == status, (name, raw[:300])
        assert headers["content-type"].startswith("application/json"), name
        assert headers["x-content-type-options"] == "nosniff", name
        parsed = json.loads(body)
        assert parsed["code"] == status and parsed["error"], name
        assert SECRET.encode() not in raw and b"AAAA" not in raw, (name, raw[:300])
    assert SECRET not in api.log_text()
    assert "refused a malformed request" in api.log_text()


async def test_a_body_found_malformed_part_way_is_a_json_400_at_once(api, config):
    """The headers arrive and the handler starts; then the chunked body turns out malformed."""
    head = request("POST /_session HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n",
                   b'9\r\n{"name": \r\n')
    started = time.monotonic()
    raw = await asyncio.to_thread(exchange, api.port, head, f'ZZ{SECRET}\r\n"password": "{SECRET}"}}\r\n'.encode())
    status, headers, body = answer(raw)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": "bad_request", "reason": "Malformed request body"}
    assert time.monotonic() - started < 4, "answered at once, not when the client gave up"
    assert SECRET.encode() not in raw
    # the server is still well: a good request is served as usual
    ok = await asyncio.to_thread(exchange, api.port, request(
        "GET /_session HTTP/1.1\nHost: x\nConnection: close\nAuthorization: "
        + admin_headers(config)["Authorization"] + "\n"))
    assert answer(ok)[0] == 200
    assert SECRET not in api.log_text()
    assert "Traceback" not in api.log_text()


async def test_credentials_never_reach_the_log(api, config):
    """Wrong passwords, tokens, cookies and login links, sent in every place a client puts them."""
    wrong = "Basic " + base64.b64encode(f"nobody:{SECRET}".encode()).decode()
    sends = [
        request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nConnection: close\nAuthorization: {wrong}\n"),
        request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nConnection: close\nAuthorization: Bearer {SECRET}\n"),
        request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nConnection: close\nAuthorization: Token {SECRET}\n"),
        request(f"GET /api/v1/settings HTTP/1.1\nHost: x\nConnection: close\nCookie: AuthSession={SECRET}\n"),
        request(f"GET /medic/login/token/{SECRET} HTTP/1.1\nHost: x\nConnection: close\n"),
        request(f"POST /medic/login/token/{SECRET} HTTP/1.1\nHost: x\nConnection: close\nContent-Length: 0\n"),
        request(f"GET /api/v1/settings?password={SECRET} HTTP/1.1\nHost: x\nConnection: close\n"),
    ]
    body = json.dumps({"name": "nobody", "password": SECRET}).encode()
    sends.append(request("POST /_session HTTP/1.1\nHost: x\nConnection: close\nContent-Type: application/json\n"
                         f"Content-Length: {len(body)}\n", body))
    for sent in sends:
        raw = await asyncio.to_thread(exchange, api.port, sent)
        assert raw, sent
        if not sent.startswith(b"GET /medic/login/token/"):  # that page's form posts back to its own link
            assert SECRET.encode() not in raw, raw[:300]
    log = api.log_text()
    assert SECRET not in log
    assert "/medic/login/token/{token}" in log  # the access log shows the route, not the link


def test_unexpected_errors_are_logged_without_their_message():
    try:
        int(SECRET)
    except ValueError as exc:
        logged = loggable(exc)
    assert SECRET not in logged
    assert "Traceback (most recent call last)" in logged and "builtins.ValueError" in logged
    assert "test_protocol_errors.py" in logged  # where it was raised is kept
