"""``python -m sentinel``: run the sentinel worker."""

import asyncio
import logging

from api.config import Config

from .app import run

config = Config.from_env()
logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
if not config.couch_user:
    raise SystemExit("No CouchDB admin: set COUCH_URL with credentials, or COUCH_USER and COUCH_PASSWORD")
asyncio.run(run(config))
