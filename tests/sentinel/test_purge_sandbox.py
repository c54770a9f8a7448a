"""The purge function's sandbox (QuickJS): modern JavaScript works, nothing of the host is reachable, limits
stop a bad function with the right kind, and CHT's permission helpers answer as CHT 4.22's."""

from __future__ import annotations

import time

import pytest

from sentinel.purging.sandbox import KINDS, PurgeFunctionError, Sandbox

PERMISSIONS = {"can_edit": ["chw", "chw_supervisor"], "can_export_all": ["chw_supervisor"], "can_view": ["chw"]}


async def call(source: str, *args_list, timeout_ms: int = 1000, memory_mb: int = 32, permissions=PERMISSIONS):
    sandbox = Sandbox(source, permissions, timeout_ms=timeout_ms, memory_mb=memory_mb)
    try:
        await sandbox.open()
        return await sandbox.call_many(list(args_list) or [(["chw"], {}, [], [])])
    finally:
        sandbox.close()


async def test_modern_javascript_and_chts_arguments():
    source = """(userCtx, contact, reports = [], messages) => {
      const old = reports.filter(({ reported_date }) => reported_date < Date.now() - 864e5)
        .map(r => r?._id ?? 'none');
      return [...old, `${contact.name}`, userCtx.roles.join('+'), String(messages.length),
              new Date('2020-02-01T00:00:00Z').toISOString().slice(0, 7), [1, [2]].flat().length + ''];
    }"""
    result = await call(source, (["chw", "x"], {"name": "Amani"}, [{"_id": "r1", "reported_date": 1},
                                                                   {"_id": "r2", "reported_date": 4e12}], [{}]))
    assert result == [["r1", "Amani", "chw+x", "1", "2020-02", "2"]]


async def test_nothing_of_the_host_is_reachable():
    probes = ["require", "process", "fetch", "XMLHttpRequest", "setTimeout", "std", "os", "print", "python",
              "Deno", "load", "readFile", "module", "exports", "WebAssembly"]
    source = "function () { return [" + ", ".join(f"typeof {p}" for p in probes) + "]; }"
    assert await call(source) == [["undefined"] * len(probes)]
    dynamic = "function () { var out = []; import('os').then(() => out.push('loaded')); return out; }"
    assert await call(dynamic) == [[]]
    assert await call("function () { console.log('x'); console.error(new Error('y')); return ['quiet']; }") \
        == [["quiet"]]


async def test_results_that_are_not_arrays_are_none_and_only_strings_count():
    assert await call("function () { return 'r1'; }") == [None]
    assert await call("function () { }") == [None]
    assert await call("function () { return {0: 'r1'}; }") == [None]
    assert await call("function () { return ['r1', 2, null, {}, 'r2']; }") == [["r1", "r2"]]


@pytest.mark.parametrize(("source", "kind"), [
    ("function (", "syntax"),
    ("function () { return [ }", "syntax"),
    ("42", "not_a_function"),
    ("undefined", "not_a_function"),
    ("(function () { throw new Error('at compile'); })()", "exception"),
])
async def test_functions_that_cannot_be_compiled(source, kind):
    with pytest.raises(PurgeFunctionError) as failed:
        await call(source)
    assert failed.value.kind == kind and failed.value.message and failed.value.index is None


@pytest.mark.parametrize(("body", "kind", "fragment"), [
    ("throw new Error('boom ' + c.id)", "exception", "boom b"),
    ("throw 'a string'", "exception", "a string"),
    ("return c.missing.field", "exception", "TypeError"),
    ("while (true) {}", "timeout", "interrupted"),
    ("var a = []; while (true) { a.push(new Array(100000).fill(1)); }", "memory", "out of memory"),
    ("var f = function (n) { return f(n + 1) + 1; }; return [String(f(0))]", "stack", "stack"),
])
async def test_failures_are_named_and_the_sandbox_stays_usable(body, kind, fragment):
    assert kind in KINDS
    source = "function (u, c) { if (c.id === 'b') { " + body + " } return [c.id]; }"
    sandbox = Sandbox(source, PERMISSIONS, timeout_ms=300, memory_mb=16)
    try:
        await sandbox.open()
        started = time.monotonic()
        with pytest.raises(PurgeFunctionError) as failed:
            await sandbox.call_many([(["chw"], {"id": "a"}, [], []), (["chw"], {"id": "b"}, [], [])])
        assert time.monotonic() - started < 20
        assert failed.value.kind == kind and failed.value.index == 1
        assert fragment in failed.value.message and len(failed.value.message) <= 500
        assert await sandbox.call_many([(["chw"], {"id": "c"}, [], [])]) == [["c"]]
    finally:
        sandbox.close()


async def test_the_time_limit_is_per_call():
    """Twenty calls of about 0.1 s each pass a 0.5 s limit: the limit restarts with every call."""
    source = "function () { var t = Date.now(); while (Date.now() - t < 100) {} return ['ok']; }"
    sandbox = Sandbox(source, {}, timeout_ms=500, memory_mb=16)
    try:
        await sandbox.open()
        assert await sandbox.call_many([(["chw"], {}, [], [])] * 20) == [["ok"]] * 20
        assert sandbox.calls == 20 and sandbox.cpu_seconds > 0
    finally:
        sandbox.close()


async def test_a_function_replacing_globals_does_not_break_the_calls():
    source = "function () { JSON.parse = null; JSON.stringify = null; Array.isArray = () => false; return ['x']; }"
    assert await call(source, (["chw"], {}, [], []), (["chw"], {}, [], [])) == [["x"], ["x"]]


@pytest.mark.parametrize(("wanted", "roles", "expected"), [
    ("can_edit", ["chw"], True),
    (["can_edit", "can_view"], ["chw"], True),
    (["can_edit", "can_export_all"], ["chw"], False),
    (["can_edit", "!can_export_all"], ["chw"], True),
    (["!can_view"], ["chw"], False),
    (["!can_unknown"], ["chw"], True),
    (["can_unknown"], ["chw"], False),
    (["can_edit"], ["_admin"], True),
    (["!can_edit"], ["_admin"], False),
    ([], ["chw"], False),
    ("can_edit", "chw", False),
])
async def test_has_permissions_as_cht_4_22(wanted, roles, expected):
    source = "function (u, c, r, m, cht, permissions) { return [String(cht.v1.hasPermissions(c.wanted, c.roles, " \
             "permissions))]; }"
    assert await call(source, (["x"], {"wanted": wanted, "roles": roles}, [], [])) == [[str(expected).lower()]]


@pytest.mark.parametrize(("groups", "roles", "expected"), [
    ([["can_export_all"], ["can_view"]], ["chw"], True),
    ([["can_export_all"], ["can_edit", "!can_view"]], ["chw"], False),
    ([["!can_edit"], ["!can_view"]], ["_admin"], False),
    ([["!can_edit"], ["can_view"]], ["_admin"], True),
    (["can_view"], ["chw"], False),
])
async def test_has_any_permission_as_cht_4_22(groups, roles, expected):
    source = "function (u, c, r, m, cht, permissions) { return [String(cht.v1.hasAnyPermission(c.groups, c.roles, " \
             "permissions))]; }"
    assert await call(source, (["x"], {"groups": groups, "roles": roles}, [], [])) == [[str(expected).lower()]]


async def test_no_configured_permissions_grant_nothing():
    source = "function (u, c, r, m, cht, permissions) { return [String(cht.v1.hasPermissions('can_edit', " \
             "['chw'], permissions))]; }"
    assert await call(source, permissions={}) == [["false"]]
