"""A module-scoped world for the users tests: a small hierarchy, token login enabled, a few callers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from api.config import Config
from api.couch import Couch
from api.settings import SettingsStore
from tests.helpers import user_prefix
from tests.world import World, make_world

APP_URL = "https://jamii.example.org"


@dataclass
class UsersWorld:
    world: World
    prefix: str

    def name(self, short: str) -> str:
        return self.prefix + short

    @property
    def h(self):
        return self.world.h


def make_users_world(config: Config, **settings: object) -> UsersWorld:
    world = make_world(config, districts=1, centers=2, clinics=2, people=3, reports_per_clinic=2)

    async def go() -> None:
        async with Couch.from_config(config) as couch:
            await SettingsStore(couch.db(config.db_medic)).update(
                {"token_login": {"enabled": True, "message": "Your link is next"}, "app_url": APP_URL,
                 **settings})

    asyncio.run(go())
    return UsersWorld(world, user_prefix(config))
