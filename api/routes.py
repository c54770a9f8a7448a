"""HTTP handlers, one module per concern; each exposes a ``routes`` table."""

from __future__ import annotations

from aiohttp import web

from . import (
    bulk_delete,
    contacts,
    contacts_by_phone,
    couch_config,
    credentials,
    datapoints,
    deploy_info,
    docs,
    exports,
    foci,
    forms,
    hydrate,
    medic_db,
    monitoring,
    people_places,
    records,
    replication_sync,
    reports,
    session,
    settings,
    sms,
    spatial,
    token_login,
    tokens,
    upgrades,
    users,
    users_info,
)

# Order matters where paths overlap: a module's routes win over those of modules after it.
MODULES = (
    docs,
    monitoring,
    session,
    settings,
    deploy_info,
    couch_config,
    upgrades,
    credentials,
    forms,
    records,
    sms,
    spatial,
    tokens,
    contacts,
    people_places,
    reports,
    hydrate,
    contacts_by_phone,
    bulk_delete,
    datapoints,
    foci,
    users,
    users_info,
    token_login,
    exports,
    replication_sync,
    medic_db,  # last: its /medic/{doc_id} routes catch what the others have not matched
)


def setup_routes(app: web.Application) -> None:
    for module in MODULES:
        app.add_routes(module.routes)
        if hasattr(module, "setup"):
            module.setup(app)
