"""What every admin script needs first: the configuration, with a CouchDB admin to act as."""

from __future__ import annotations

import sys

from api.config import Config


def admin_config() -> Config | None:
    """The configuration from the environment, or None (having said how to fix it) when it names no admin."""
    config = Config.from_env()
    if not config.couch_user:
        print("No CouchDB admin: set COUCH_URL with credentials or start the embedded server (make run)",
              file=sys.stderr)
        return None
    return config
