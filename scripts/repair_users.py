"""Find (and with --fix, repair) users whose two docs disagree: half-made, half-deleted or diverged.

    python -m scripts.repair_users            # report; exit 1 when something needs repair
    python -m scripts.repair_users --fix      # repair: the _users doc wins (see api/cht/users/users.py)
    python -m scripts.repair_users --prefix t # only users whose name starts with t
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Callable

from api.cht.users.users import Dbs, find_problems, repair
from api.config import Config
from api.couch import Couch
from api.errors import JamiiError

from .admin import admin_config


async def run(config: Config, *, prefix: str = "", fix: bool = False, out: Callable[[str], None] = print) -> int:
    """Report (and repair) every problem; returns how many are left unrepaired."""
    left = 0
    async with Couch.from_config(config) as couch:
        dbs = Dbs(couch.db(config.db_users), couch.db(config.db_medic), couch.db(config.db_logs),
                   couch.db(config.db_sentinel))
        async for problem in find_problems(dbs, prefix):
            out(f"{problem.name}: " + "; ".join(problem.problems))
            if not fix:
                left += 1
                continue
            try:
                await repair(dbs, problem)
                out(f"{problem.name}: repaired")
            except JamiiError as exc:
                left += 1
                out(f"{problem.name}: NOT repaired: {exc}")
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fix", action="store_true", help="repair what is found")
    parser.add_argument("--prefix", default="", help="only users whose name starts with this")
    args = parser.parse_args()
    config = admin_config()
    if config is None:
        return 2
    try:
        return 1 if asyncio.run(run(config, prefix=args.prefix, fix=args.fix)) else 0
    except JamiiError as exc:
        print(f"error: {exc} ({config.couch_url})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
