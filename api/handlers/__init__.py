"""HTTP handlers, one module per concern; each exposes a ``routes`` table."""

from __future__ import annotations

from aiohttp import web

from . import docs, foci, monitoring, session, settings

MODULES = (docs, monitoring, session, settings, foci)


def setup_routes(app: web.Application) -> None:
    for module in MODULES:
        app.add_routes(module.routes)
        if hasattr(module, "setup"):
            module.setup(app)
