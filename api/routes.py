"""Every route of the server: the frame's own, then each API's, in the order the router tries them.

This module and ``app.py`` are the only frame modules that name the APIs: they put the house together.
"""

from __future__ import annotations

from aiohttp import web

from api.cht.contacts import handlers as cht_contacts
from api.cht.exports import handlers as cht_exports
from api.cht.messaging import handlers as cht_messaging
from api.cht.monitoring import handlers as cht_monitoring
from api.cht.passthrough import handlers as cht_passthrough
from api.cht.purging import handlers as cht_purging
from api.cht.replication import handlers as cht_replication
from api.cht.reports import handlers as cht_reports
from api.cht.user_meta import handlers as cht_user_meta
from api.cht.users import handlers as cht_users
from api.datapoints import handlers as datapoints
from api.foci import handlers as foci
from api.handlers import couch_config, credentials, deploy_info, docs, session, settings, tokens, upgrades
from api.spatial import handlers as spatial

# Order matters where paths overlap: a module's routes win over those of modules after it.
MODULES = (
    docs,
    cht_monitoring,
    session,
    settings,
    deploy_info,
    couch_config,
    upgrades,
    credentials,
    tokens,
    cht_messaging,
    cht_contacts,
    cht_reports,
    cht_users,
    cht_exports,
    foci,
    datapoints,
    spatial,
    cht_purging,
    cht_user_meta,
    cht_replication,  # its /medic/{doc_id} routes catch what the others have not matched
    cht_passthrough,  # last: what no route serves is passed on to CouchDB, or refused
)


def setup_routes(app: web.Application) -> None:
    for module in MODULES:
        app.add_routes(module.routes)
        if hasattr(module, "setup"):
            module.setup(app)
