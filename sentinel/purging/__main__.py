"""``python -m sentinel.purging``: run purging now, whatever the schedule, and print what it did as JSON.

``--logs N`` prints the last N purge logs (``purgelog:`` docs of the sentinel database) instead: what each
run purged, or why it failed and where. Both need a CouchDB admin (``COUCH_URL`` or the embedded server's).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys

from api.config import Config
from api.couch import Couch
from api.settings import SettingsStore

from .run import run


async def _logs(config: Config, count: int) -> list[dict]:
    async with Couch.from_config(config) as couch:
        rows = (await couch.db(config.db_sentinel).all_docs(startkey="purgelog:\ufff0", endkey="purgelog:",
                                                            descending=True, include_docs=True,
                                                            limit=count))["rows"]
        return [row["doc"] for row in rows]


async def _run(config: Config) -> dict:
    async with Couch.from_config(config) as couch:
        settings = await SettingsStore(couch.db(config.db_medic)).get()
        return dataclasses.asdict(await run(couch, config, settings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, metavar="N", help="print the last N purge logs instead of running")
    args = parser.parse_args()
    config = Config.from_env()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.couch_user:
        print("No CouchDB admin: set COUCH_URL with credentials or start the embedded server (make run)",
              file=sys.stderr)
        return 2
    result = asyncio.run(_logs(config, args.logs) if args.logs else _run(config))
    print(json.dumps(result, indent=2))
    return 1 if isinstance(result, dict) and result.get("status") == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
