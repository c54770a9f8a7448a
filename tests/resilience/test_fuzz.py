"""Fuzzing: schemathesis, driven by the served OpenAPI document, against ``python -m api`` on a real port.

Every operation of ``/api/openapi.json`` gets generated requests (schema-valid
ones and, in the full run, schema-breaking ones too), each sent by every kind
of caller: the CouchDB admin, an online user, an offline user, a JWT with the
Foci scopes, a JWT without scopes and nobody. A response fails when it is a 5xx,
when its status code is not documented for the operation, or when its
content type, headers or body break what the document says. Failures are
collected over the whole run (not stopped at the first) and reported together,
with the server's own log of tracebacks.

``make test`` runs a few examples per operation and caller (the smoke run);
``make fuzz`` runs the full variant (``slow``: hundreds per operation);
``FUZZ_ONLY=<regex>`` narrows it to the operations whose ``METHOD /path`` matches
(to finish or repeat part of a full run).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from api.couch import Couch
from api.settings import SettingsStore
from scripts.couchdb import EmbeddedCouch, free_port

from .fuzz_world import KINDS, FuzzWorld, build, start_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

# Left out, and why:
# - DELETE /medic(/): as the admin it deletes the whole medic database (CouchDB's own behaviour, passed
#   through); every later request would then test an empty server. Non-admins get 403 (test_replication_*).
# - PUT and DELETE /{db}: the pass-through creates and deletes databases for the admin, here under generated
#   names on the shared test server. Their rules are tested in tests/cht/passthrough/.
EXCLUDED = {("DELETE", "/medic"), ("DELETE", "/medic/"), ("PUT", "/{db}"), ("DELETE", "/{db}")}
# Operations whose 500 is CHT's own documented answer, and why.
CHT_SERVER_ERRORS = {
    "GET /medic/login/oidc/authorize": "CHT answers 500 Server error while OIDC login is not configured, and the "
                                       "fuzzed server has no provider (tests/frame/test_oidc_login.py covers it)",
}
# aiohttp's default max_line_size, less the method and protocol of the request line.
URL_LIMIT = 8190 - 32
# The full run is split over this many processes (make fuzz).
FULL_SHARDS = 2
# Operations that change what every later request sees: the settings are put back after each example.
SETTINGS_WRITES = {("PUT", "/api/v1/settings"), ("PUT", "/medic/_design/medic/_rewrite/update_settings/medic")}


@dataclass
class Report:
    """What one run saw: requests and statuses per operation, and each distinct failure once."""

    requests: Counter = field(default_factory=Counter)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)  # request lines over the HTTP parser's limit

    def record(self, label: str, kind: str, status: int, failures: list[Failure], curl: str) -> None:
        self.requests[label] += 1
        self.statuses[label][status] += 1
        for failure in failures:
            key = (label, failure.title, str(status))
            self.failures.setdefault(key, f"{label} as {kind} -> {status}: {failure.title}\n"
                                          f"{failure.message[:1500]}\n{curl}")


    def no_answer(self, label: str, kind: str, exc: Exception, curl: str) -> None:
        self.requests[label] += 1
        self.statuses[label][0] += 1
        self.failures.setdefault((label, "no answer", "0"), f"{label} as {kind}: no answer: {exc!r}\n{curl}")


@pytest.fixture(scope="module")
def fuzz_world(config, tmp_path_factory) -> Iterator[FuzzWorld]:
    log = tmp_path_factory.mktemp("fuzz") / "api.log"
    port = free_port()
    world = build(config, f"http://127.0.0.1:{port}", log)
    process = start_server(config, port, log)
    try:
        yield world
    finally:
        process.terminate()
        try:
            process.wait(10)
        except Exception:
            process.kill()


@pytest.fixture(scope="module")
def schema(fuzz_world):
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_url(fuzz_world.base_url + "/api/openapi.json", config=config, timeout=60)


def operations(schema, shard: int = 0, shards: int = 1, aliases: bool = True) -> list[Any]:
    """The operations to fuzz: every ``shards``-th from ``shard`` on; without ``aliases``, a path
    that only differs from another by its trailing slash (the same handler) is left to the smoke run."""
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in EXCLUDED:
            found.append(operation)
    only = os.environ.get("FUZZ_ONLY")
    if only:
        found = [op for op in found if re.search(only, f"{op.method.upper()} {op.path}")]
    if not aliases:
        present = {(op.method, op.path) for op in found}
        found = [op for op in found if not (op.path.endswith("/") and (op.method, op.path[:-1]) in present)]
    return found[shard::shards]


def too_long(case: Any, base_url: str) -> bool:
    """Whether the request line is over what aiohttp's parser reads (8190 bytes): such a request is
    refused with a plain 400 before the application sees it, so it tests aiohttp, not Jamii."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    prepared = requests.Request(method=kwargs["method"], url=kwargs["url"], params=kwargs.get("params")).prepare()
    return len(prepared.path_url) > URL_LIMIT


def settings_snapshot(config) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with Couch.from_config(config) as couch:
            return await SettingsStore(couch.db(config.db_medic)).get()

    return asyncio.run(read())


def restore_settings(config, saved: dict[str, Any]) -> None:
    async def write() -> None:
        async with Couch.from_config(config) as couch:
            await SettingsStore(couch.db(config.db_medic)).update(saved, overwrite=True)

    asyncio.run(write())


def fuzz(operations_: list[Any], world: FuzzWorld, config, examples: int, modes: list[GenerationMode],
         derandomize: bool, database: EmbeddedCouch | None = None, verbose: bool = False) -> Report:
    """Send ``examples`` generated requests per operation, mode and caller kind; collect what fails.

    When the embedded database dies, that is a failure of the operation being fuzzed; it is
    restarted (as ``make run`` would) so that one finding does not hide all the others.
    """
    report = Report()
    session = requests.Session()
    saved_settings = settings_snapshot(config)
    for operation in operations_:
        method = operation.method.upper()
        label = f"{method} {operation.path}"
        restore = (method, operation.path) in SETTINGS_WRITES
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)
            for kind in KINDS:
                @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                          print_blob=False)
                @given(case=strategy, data=st.data())
                def send(case: Any, data: Any) -> None:
                    for name in list(case.path_parameters or {}):
                        values = world.values(method, operation.path, name)
                        if values and data.draw(st.booleans()):
                            case.path_parameters[name] = data.draw(st.sampled_from(values))
                    for name in ("type", "country"):
                        if isinstance(case.query, dict) and name in case.query and data.draw(st.booleans()):
                            case.query[name] = data.draw(st.sampled_from(world.known[name]))
                    if isinstance(case.query, dict) and case.query.get("feed") == "longpoll":
                        # A long poll waits for a change as asked (pouchdb-server ignores its timeout):
                        # a wait, not an answer to check. The replication tests cover long polls.
                        del case.query["feed"]
                    headers = dict(world.headers[kind])
                    if case.headers:
                        case.headers.pop("Authorization", None)
                    if too_long(case, world.base_url):
                        report.skipped[label] += 1
                        return
                    session.cookies.clear()  # a login answered earlier must not make the next caller someone
                    try:
                        response = case.call(base_url=world.base_url, session=session, headers=headers,
                                             timeout=60)
                    except requests.RequestException as exc:
                        report.no_answer(label, kind, exc, case.as_curl_command(headers=headers))
                        return
                    try:
                        case.validate_response(response, checks=CHECKS, headers=headers)
                        failures: list[Failure] = []
                    except FailureGroup as group:
                        failures = [f for f in group.exceptions
                                    if not (label in CHT_SERVER_ERRORS and f.title == "Server error")]
                    report.record(label, kind, response.status_code, failures,
                                  case.as_curl_command(headers=headers))
                    if restore and response.status_code < 300:
                        restore_settings(config, saved_settings)

                try:
                    send()
                except Unsatisfiable:  # nothing invalid to send: an operation without parameters or body
                    continue
                if verbose:
                    print(f"{label} as {kind} ({mode.value}): {report.requests[label]} requests, "
                          f"{dict(report.statuses[label])}", flush=True)
                if database is not None and not database.alive():
                    report.failures.setdefault((label, "database died", kind),
                                               f"{label} as {kind}: the embedded database died")
                    database.start()
    return report


def summary(report: Report, world: FuzzWorld) -> str:
    tracebacks = world.log.read_text(errors="replace").count("Traceback")
    lines = [f"{sum(report.requests.values())} requests over {len(report.requests)} operations; "
             f"{len(report.failures)} distinct failures; {tracebacks} tracebacks in the server log; "
             f"{sum(report.skipped.values())} generated requests not sent (request line over {URL_LIMIT} bytes)"]
    lines += list(report.failures.values())
    return "\n\n".join(lines)


def check(report: Report, world: FuzzWorld) -> None:
    print(summary(report, world))
    assert not report.failures, summary(report, world)
    assert "Traceback" not in world.log.read_text(errors="replace"), world.log.read_text()[-5000:]


def test_fuzz_smoke(schema, fuzz_world, config, couch_server):
    """A schema-valid example per operation and caller: every operation answers within its document."""
    report = fuzz(operations(schema), fuzz_world, config, examples=1, modes=[GenerationMode.POSITIVE],
                  derandomize=True,
                  database=couch_server.embedded)
    assert len(report.requests) == len(operations(schema))
    check(report, fuzz_world)


@pytest.mark.slow
@pytest.mark.parametrize("shard", [f"shard{n}of{FULL_SHARDS}" for n in range(FULL_SHARDS)])
def test_fuzz_full(schema, fuzz_world, config, couch_server, shard):
    """Hundreds of examples per operation, valid and invalid, over every caller kind.

    ``make fuzz`` runs the shards as parallel processes (each with its own world and server).
    """
    chosen = operations(schema, int(shard[5:].split("of")[0]), FULL_SHARDS, aliases=False)
    report = fuzz(chosen, fuzz_world, config, examples=25, modes=list(GenerationMode), derandomize=False,
                  database=couch_server.embedded, verbose=True)
    per_operation = sorted(report.requests.items())
    print("\n".join(f"{count:6d} {label}  {dict(report.statuses[label])}" for label, count in per_operation))
    check(report, fuzz_world)
