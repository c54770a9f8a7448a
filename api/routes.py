"""Every route of the server: the frame's own, then each API's, in the order the router tries them.

This module and ``app.py`` are the only frame modules that name the APIs: they put the house together.
"""

from __future__ import annotations

from aiohttp import web

from api.cht.contacts import bulk_delete_handlers as bulk_delete
from api.cht.contacts import contacts_by_phone_handlers as contacts_by_phone
from api.cht.contacts import handlers as contacts
from api.cht.contacts import hydrate_handlers as hydrate
from api.cht.contacts import people_places_handlers as people_places
from api.cht.exports import handlers as exports
from api.cht.messaging import handlers as forms
from api.cht.messaging import records_handlers as records
from api.cht.messaging import sms_handlers as sms
from api.cht.monitoring import handlers as monitoring
from api.cht.replication import handlers as medic_db
from api.cht.replication import sync_handlers as replication_sync
from api.cht.reports import handlers as reports
from api.cht.users import handlers as users
from api.cht.users import token_login_handlers as token_login
from api.cht.users import users_info_handlers as users_info
from api.datapoints import handlers as datapoints
from api.foci import handlers as foci
from api.handlers import couch_config, credentials, deploy_info, docs, session, settings, tokens, upgrades
from api.spatial import handlers as spatial

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
