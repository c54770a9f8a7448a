"""The admin's purge function, run in a QuickJS sandbox (the ``quickjs-ng`` package).

CHT evaluates the function inside its sentinel process with no limits: an
endless loop stops the sentinel, and the function can reach Node and the
sentinel's own variables. Here it runs in a QuickJS context that can reach
nothing of the host (no ``require``, ``process``, files, network or timers;
``console`` is there and does nothing), with a CPU-time limit per call, a memory
limit and a stack limit. A call that breaks one of them, throws, or a function
that does not compile raises ``PurgeFunctionError`` with its kind; the context
stays usable, but the purge run stops (``sentinel.purging.run``).

QuickJS was chosen after measuring the candidates (docs/purging.md): it is the
one embeddable engine on PyPI with both limits and no host access, and a call
costs about 30 microseconds of CPU. A context belongs to one thread: each
sandbox has a thread of its own (8 MB stack, so QuickJS's stack limit fires
before the thread's), and the event loop waits for it without blocking, as
QuickJS releases the GIL while JavaScript runs.

The function is called as CHT calls it: ``fn(userCtx, contact, reports,
messages, chtScriptApi, permissions)`` with ``userCtx = {roles}``,
``chtScriptApi.v1.hasPermissions`` / ``hasAnyPermission`` as in CHT 4.22 and
``permissions`` the app settings' ``permissions``. Its result is kept when it is
an array (its strings); anything else is None, as CHT ignores it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import quickjs

THREAD_STACK = 8 * 1024 * 1024
JS_STACK = 512 * 1024
MESSAGE_CHARS = 500

# Jamii's own JavaScript, evaluated before the admin's function. It keeps its own references to JSON
# and Array.isArray, so a function that replaces the globals cannot break the calls.
PRELUDE = r"""
var console = (function () {
  var nothing = function () {};
  return { log: nothing, info: nothing, warn: nothing, error: nothing, debug: nothing, trace: nothing };
}());
var __jamii = (function () {
  var parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  var ADMIN = '_admin';
  var split = function (wanted) {
    var out = { allowed: [], denied: [] };
    wanted.forEach(function (name) {
      if (String(name).indexOf('!') === 0) { out.denied.push(String(name).substring(1)); }
      else { out.allowed.push(name); }
    });
    return out;
  };
  // every permission granted (expected true) or every one refused (expected false) to these roles
  var all = function (names, roles, settings, expected) {
    return names.every(function (name) {
      var granted = settings[name];
      if (!granted) { return !expected; }
      return expected === roles.some(function (role) { return granted.indexOf(role) !== -1; });
    });
  };
  var usable = function (wanted, roles, settings) {
    return isArray(wanted) && wanted.length > 0 && isArray(roles) &&
      !!settings && typeof settings === 'object' && Object.keys(settings).length > 0;
  };
  var hasPermissions = function (wanted, roles, settings) {
    if (wanted && typeof wanted === 'string') { wanted = [wanted]; }
    if (!usable(wanted, roles, settings)) { return false; }
    var groups = split(wanted);
    if (roles.indexOf(ADMIN) !== -1) { return groups.denied.length === 0; }
    return all(groups.denied, roles, settings, false) && all(groups.allowed, roles, settings, true);
  };
  var hasAnyPermission = function (groupsOf, roles, settings) {
    if (!usable(groupsOf, roles, settings) || !groupsOf.every(isArray)) { return false; }
    var groups = groupsOf.map(split);
    if (roles.indexOf(ADMIN) !== -1) {
      return !groups.every(function (group) { return group.denied.length > 0; });
    }
    return groups.some(function (group) {
      return all(group.allowed, roles, settings, true) && all(group.denied, roles, settings, false);
    });
  };
  var api = { v1: { hasPermissions: hasPermissions, hasAnyPermission: hasAnyPermission } };
  var permissions = {};
  return {
    setPermissions: function (text) { permissions = parse(text); },
    call: function (fn, text) {
      var a = parse(text);
      var result = fn(a[0], a[1], a[2], a[3], api, permissions);
      return isArray(result) ? stringify(result) : null;
    },
    isFunction: function (fn) { return typeof fn === 'function'; }
  };
}());
var __jamii_call = function (text) { return __jamii.call(__jamii_fn, text); };
"""

KINDS = ("syntax", "not_a_function", "exception", "timeout", "memory", "stack")


class PurgeFunctionError(Exception):
    """The purge function failed: ``kind`` is one of ``KINDS``, ``message`` the engine's (no host detail)."""

    def __init__(self, kind: str, message: str, index: int | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.index = index  # which call of a batch failed


def _kind_and_message(exc: Exception, compiling: bool) -> tuple[str, str]:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip() and line.strip() != "undefined"]
    first = lines[0] if lines else type(exc).__name__
    message = "\n".join(lines[:2])[:MESSAGE_CHARS]
    if isinstance(exc, quickjs.StackOverflow):
        return "stack", message
    if first.startswith("InternalError: interrupted"):
        return "timeout", message
    if first.startswith("InternalError: out of memory"):
        return "memory", message
    if compiling and first.startswith("SyntaxError"):
        return "syntax", message
    return "exception", message


def _executor() -> ThreadPoolExecutor:
    """One worker thread with a stack large enough for QuickJS's own limit to fire first."""
    previous = threading.stack_size()
    threading.stack_size(THREAD_STACK)
    try:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="purge-js")
        pool.submit(lambda: None).result()
    finally:
        threading.stack_size(previous)
    return pool


class Sandbox:
    """One purge run's function, compiled once in a fresh context and called many times."""

    def __init__(self, source: str, permissions: Mapping[str, Any] | None, *, timeout_ms: int, memory_mb: int):
        self.source = source
        self.permissions = permissions if isinstance(permissions, Mapping) else {}
        self.timeout = timeout_ms / 1000
        self.memory = memory_mb * 1024 * 1024
        self.calls = 0
        self.cpu_seconds = 0.0  # JavaScript CPU time, summed over calls
        self._pool = _executor()
        self._context: Any = None
        self._call: Any = None

    async def open(self) -> None:
        """Compile the function; ``PurgeFunctionError`` (``syntax``, ``not_a_function``...) when it cannot be."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._open)

    async def call_many(self, calls: Sequence[tuple[Sequence[str], Any, Any, Any]]) -> list[list[str] | None]:
        """``fn`` for each (roles, contact, reports, messages); stops at the first failure (its index named)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call_many, list(calls))

    def close(self) -> None:
        self._pool.submit(self._drop)
        self._pool.shutdown(wait=True)

    # -- on the sandbox's thread ---------------------------------------------------------------

    def _open(self) -> None:
        context = quickjs.Context()
        context.set_memory_limit(self.memory)
        context.set_max_stack_size(JS_STACK)
        context.set_time_limit(self.timeout)
        context.eval(PRELUDE)
        context.eval("__jamii.setPermissions(" + json.dumps(json.dumps(self.permissions)) + ");")
        try:
            context.eval("var __jamii_fn = (" + self.source + "\n);")
        except (quickjs.JSException, quickjs.StackOverflow) as exc:
            raise PurgeFunctionError(*_kind_and_message(exc, compiling=True)) from None
        if context.eval("__jamii.isFunction(__jamii_fn)") is not True:
            raise PurgeFunctionError("not_a_function", "the purge function is not a function")
        context.set_time_limit(-1)
        self._context = context
        self._call = context.get("__jamii_call")

    def _call_many(self, calls: list[tuple[Sequence[str], Any, Any, Any]]) -> list[list[str] | None]:
        results: list[list[str] | None] = []
        started = time.thread_time()
        try:
            for index, (roles, contact, reports, messages) in enumerate(calls):
                text = json.dumps([{"roles": list(roles)}, contact, reports, messages], separators=(",", ":"))
                self._context.set_time_limit(self.timeout)
                try:
                    raw = self._call(text)
                except (quickjs.JSException, quickjs.StackOverflow) as exc:
                    raise PurgeFunctionError(*_kind_and_message(exc, compiling=False), index=index) from None
                finally:
                    self._context.set_time_limit(-1)
                self.calls += 1
                if raw is None:
                    results.append(None)
                else:
                    ids = json.loads(raw)
                    results.append([i for i in ids if isinstance(i, str)])
        finally:
            self.cpu_seconds += time.thread_time() - started
            self._context.gc()
        return results

    def _drop(self) -> None:
        self._call = None
        self._context = None
