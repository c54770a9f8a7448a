"""HTTP handlers, one module per concern; each exposes a ``routes`` table."""

from __future__ import annotations

from aiohttp import web

from . import (bulk_delete, contacts, contacts_by_phone, docs, hydrate, monitoring, people_places, reports, session,
               settings)

MODULES = (docs, monitoring, session, settings, contacts, people_places, reports, hydrate, contacts_by_phone,
           bulk_delete)


def setup_routes(app: web.Application) -> None:
    for module in MODULES:
        app.add_routes(module.routes)
        if hasattr(module, "setup"):
            module.setup(app)
