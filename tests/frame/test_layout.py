"""The layout's rules (docs/architecture.md), checked on the import graph of every module.

Imports run one way: frame <- APIs <- sentinel. An API never reaches into another API, the frame names
the APIs only where it assembles them (``api/app.py``, ``api/routes.py``), and only HTTP modules import
aiohttp's server side.
"""

from __future__ import annotations

import ast
from pathlib import Path

from api.config import ROOT

APIS = ("cht", "foci", "datapoints", "spatial")
COMPOSITION = {"api.app", "api.routes"}
# Modules besides handlers that need aiohttp's server side, and why.
SERVER_SIDE = {
    "api.app": "the application factory",
    "api.routes": "adds every route table to the app",
    "api.web": "app keys and request helpers for handlers",
    "api.middlewares": "the middlewares",
    "api.security_headers": "adds security headers to every response as it is prepared",
    "api.server": "the HTTP server, whose protocol errors it answers as JSON",
    "api.openapi": "reads the app's routes to check they are documented",
    "api.streaming": "streams a response to the client",
    "api.cht.replication.proxy": "streams a request to CouchDB and its answer back",
    "api.cht.replication.changes": "a longpoll _changes answer is streamed with heartbeats",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("api", "sentinel"):
        for path in (ROOT / top).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(name: str) -> set[str]:
    """The project modules ``name`` imports (``from x import y`` counts ``x.y`` when it is a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else _resolve(target))
        elif isinstance(node, ast.Import):
            found.update(_resolve(alias.name) for alias in node.names)
    found.discard(None)
    found.discard(name)
    return found  # type: ignore[return-value]


GRAPH = {name: _imports(name) for name in MODULES}


def _area(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "sentinel":
        return "sentinel"
    return parts[1] if len(parts) > 1 and parts[1] in APIS else "frame"


def test_the_graph_is_read():
    assert "api.couch" in GRAPH["api.cht.lineage"] or "api.cht.contact_types" in GRAPH["api.cht.lineage"]
    assert "api.cht.replication.visible_set" in GRAPH["api.cht.replication.handlers"]


def test_the_frame_names_no_api_but_where_it_assembles_them():
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _area(m) == "frame" and m not in COMPOSITION
                    for d in deps if _area(d) != "frame")
    assert upward == []


def test_an_api_never_imports_another_api():
    across = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _area(m) in APIS
                    for d in deps if _area(d) in APIS and _area(d) != _area(m))
    assert across == []


def test_the_api_never_imports_the_sentinel():
    assert sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith("api")
                  for d in deps if d.startswith("sentinel")) == []


def test_only_http_modules_use_aiohttps_server_side():
    server_side = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "aiohttp" and \
                    any(alias.name == "web" for alias in node.names):
                server_side.add(name)
    http = {m for m in server_side if m.endswith("handlers") or ".handlers." in m}
    assert sorted(server_side - http - set(SERVER_SIDE)) == []


def test_no_import_cycles():
    """Tarjan's strongly connected components over module imports: every component is one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in GRAPH[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert cycles == []
