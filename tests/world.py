"""A module-scoped world for the contact tests: the generated hierarchy loaded, and users placed in it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from api.config import Config
from api.couch import Couch

from .helpers import PASSWORD, user_prefix
from .hierarchy import Hierarchy, build, load


@dataclass
class World:
    h: Hierarchy
    users: dict[str, str]  # short name -> full user name
    chw_clinic: str
    chw_contact: str
    sup_center: str


def make_users(config: Config, specs: dict[str, tuple[list[str], dict[str, object]]]) -> dict[str, str]:
    """Create users once for a module: short name -> (roles, extra _users fields); returns full names."""
    prefix = user_prefix(config)

    async def go() -> None:
        async with Couch.from_config(config) as couch:
            await couch.db(config.db_users).bulk_docs([
                {"_id": f"org.couchdb.user:{prefix}{name}", "name": prefix + name, "type": "user", "roles": roles,
                 "password": PASSWORD, **fields} for name, (roles, fields) in specs.items()])

    asyncio.run(go())
    return {name: prefix + name for name in specs}


def make_world(config: Config, **sizes: int) -> World:
    h = build(**sizes)
    clinic = h.by_id[h.clinics[0]]
    center = h.by_id[h.centers[0]]
    specs: dict[str, tuple[list[str], dict[str, object]]] = {
        "po": (["program_officer"], {}),
        "analyst": (["analytics"], {}),
        "gateway": (["gateway"], {}),
        "chw": (["chw"], {"facility_id": clinic["_id"], "contact_id": clinic["contact"]["_id"]}),
        "sup": (["chw_supervisor"], {"facility_id": center["_id"], "contact_id": center["contact"]["_id"]}),
        "national": (["national_admin"], {}),
    }

    async def go() -> None:
        async with Couch.from_config(config) as couch:
            await load(couch.db(config.db_medic), h)

    asyncio.run(go())
    return World(h, make_users(config, specs), clinic["_id"], clinic["contact"]["_id"], center["_id"])
