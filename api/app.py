"""The application factory: ``create_app(config)`` builds the aiohttp app.

Clients (CouchDB, the authenticator, the settings store) are made in
``on_startup`` and closed in ``on_cleanup``, as in aiohttp's own examples.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from . import deadline, metrics, security_headers, server
from .auth import Authenticator
from .auth_follow import CredentialFollower
from .config import Config
from .connected_users import ConnectedUsers
from .couch import Couch
from .credentials import CredentialStore
from .ddocs import ViewWarmer
from .middlewares import access_log, auth_middleware, error_middleware
from .routes import setup_routes
from .settings import SettingsStore
from .web import (AUTH, AUTH_FOLLOWER, BACKGROUND_COUCH, CONFIG, CONNECTED, COUCH, CREDENTIALS, SETTINGS, STARTED,
                  WARMER)


async def _start_clients(app: web.Application) -> None:
    config = app[CONFIG]
    couch = Couch.from_config(config, observer=metrics.observe_couch)
    app[COUCH] = couch
    app[BACKGROUND_COUCH] = Couch.from_config(
        config.replace(couch_timeout=max(config.couch_timeout, deadline.SHARED_WORK_SECONDS)),
        observer=metrics.observe_couch)
    app[AUTH] = Authenticator.from_config(couch, config)
    app[AUTH_FOLLOWER] = CredentialFollower(app[AUTH], app[BACKGROUND_COUCH].db(config.db_users),
                                            app[BACKGROUND_COUCH].db(config.db_spatial))
    app[AUTH_FOLLOWER].start()
    app[SETTINGS] = SettingsStore(couch.db(config.db_medic))
    app[CREDENTIALS] = CredentialStore.from_config(couch, config)
    app[SETTINGS].start_watching()
    app[CONNECTED] = ConnectedUsers(couch.db(config.db_logs))
    app[WARMER] = ViewWarmer(app[BACKGROUND_COUCH], config, config.view_warm_seconds, used=(couch,))
    app[WARMER].start()
    app[STARTED] = time.monotonic()


async def _close_clients(app: web.Application) -> None:
    await app[WARMER].close()
    await app[SETTINGS].stop_watching()
    await app[CONNECTED].close()
    await app[AUTH_FOLLOWER].close()
    app[AUTH].close()
    await app[BACKGROUND_COUCH].close()
    await app[COUCH].close()


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[access_log, error_middleware, auth_middleware],
        handler_args=server.handler_args(),
    )
    app[CONFIG] = config
    security_headers.setup(app)
    app.on_startup.append(_start_clients)
    app.on_cleanup.append(_close_clients)
    setup_routes(app)
    return app


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    config = Config.from_env()
    configure_logging(config.log_level)
    if not config.couch_user:
        raise SystemExit("No CouchDB admin: set COUCH_URL with credentials, or COUCH_USER and COUCH_PASSWORD, "
                         "or start the embedded server first (make run)")
    metrics.label_process(config.api_worker)
    server.run(create_app(config), config.api_host, config.api_port, reuse_port=config.api_reuse_port,
               own_port=config.metrics_port)
