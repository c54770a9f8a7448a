"""Upload the design docs in ``ddocs/``: only what differs, each changed ddoc staged and
its views warmed before it is swapped in. Exits non-zero on a bad ddoc or an
unreachable server. ``python -m scripts.upload_ddocs``
"""

from __future__ import annotations

import asyncio
import sys

from api.config import Config
from api.couch import Couch
from api.ddocs import DdocError, upload_all
from api.errors import JamiiError


async def upload(config: Config) -> dict[str, str]:
    async with Couch.from_config(config) as couch:
        return await upload_all(couch, config, progress=lambda line: print(line, flush=True))


def main() -> int:
    config = Config.from_env()
    try:
        outcomes = asyncio.run(upload(config))
    except DdocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except JamiiError as exc:
        print(f"error: {exc} ({config.couch_url})", file=sys.stderr)
        return 1
    changed = sum(1 for outcome in outcomes.values() if outcome != "unchanged")
    print(f"{changed} design document(s) changed, {len(outcomes) - changed} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
