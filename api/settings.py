"""App settings: the ``settings`` doc of the medic database, cached in memory.

The doc has the shape cht-conf expects, ``{"_id": "settings", "settings": {...}}``.
Each process keeps the current settings in memory and follows the database's
``_changes`` for that one doc, so an update made anywhere is seen everywhere
within a moment, and no request pays a CouchDB round trip to read them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any, Callable

from . import schemas
from .config import ROOT
from .couch import Database
from .errors import BadRequest, Conflict, JamiiError

log = logging.getLogger("jamii.settings")

SETTINGS_ID = "settings"
DEFAULTS_PATH = ROOT / "api" / "default_settings.json"


def default_settings() -> dict[str, Any]:
    return json.loads(DEFAULTS_PATH.read_text())


def deep_merge(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Merge ``source`` into ``target``: objects merge key by key, anything else (arrays too) replaces."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def updated_settings(current: dict[str, Any], body: dict[str, Any], *, replace: bool,
                     overwrite: bool) -> dict[str, Any]:
    """The settings after a PUT, as CHT computes them.

    ``overwrite``: the body becomes the settings. ``replace``: each top-level
    property given replaces the stored one. Neither: the body is deep-merged.
    """
    if overwrite:
        return copy.deepcopy(body)
    result = copy.deepcopy(current)
    if replace:
        result.update(copy.deepcopy(body))
    else:
        deep_merge(result, body)
    return result


def with_default_permissions(settings: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """CHT's last step of every settings update: each default permission the settings do not name is added
    with its default roles (all of them when there are no ``permissions`` at all)."""
    permissions = settings.get("permissions")
    if isinstance(permissions, dict):
        for name, roles in defaults.items():
            permissions.setdefault(name, copy.deepcopy(roles))
    elif not permissions:
        settings["permissions"] = copy.deepcopy(defaults)
    return settings


def value_at(settings: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``forms.P.meta``; list items by index), or ``{}`` when there
    is none — what CHT's ``app_settings/medic/<path>`` answers."""
    value: Any = settings
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return {}
    return {} if value is None else value


# Transitions CHT deprecated, as CHT lists them: cht-conf warns when the settings it uploads
# enable one. Jamii's sentinel runs neither; the replacements named are the ones to configure.
DEPRECATED_TRANSITIONS: tuple[dict[str, Any], ...] = (
    {"name": "update_notifications", "deprecated": True, "deprecatedIn": "3.2.x",
     "deprecationMessage": '"update_notifications" transition is deprecated in 3.2.x. '
                           'Please use "muting" transition instead.'},
    {"name": "generate_patient_id_on_people", "deprecated": True, "deprecatedIn": "3.8.x",
     "deprecationMessage": '"generate_patient_id_on_people" transition is deprecated in 3.8.x. '
                           'Please use "generate_shortcode_on_contacts" transition instead.'},
)


class SettingsStore:
    def __init__(self, db: Database):
        self.db = db
        self._settings: dict[str, Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    async def get(self) -> dict[str, Any]:
        """The current settings (read-only by convention: do not mutate)."""
        if self._settings is None:
            await self.reload()
        assert self._settings is not None
        return self._settings

    async def reload(self) -> dict[str, Any]:
        doc = await self.db.get_or_none(SETTINGS_ID)
        self._set((doc or {}).get("settings") or {})
        assert self._settings is not None
        return self._settings

    def _set(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        for listener in self._listeners:
            listener(settings)

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def update(self, body: Any, *, replace: bool = False, overwrite: bool = False) -> bool:
        """Apply a PUT; True when the stored settings changed."""
        if not isinstance(body, dict):
            raise BadRequest("Settings must be a JSON object", field="body")
        tried = False
        for _ in range(5):
            doc = await self.db.get_or_none(SETTINGS_ID) or {"_id": SETTINGS_ID}
            current = doc.get("settings") or {}
            new = with_default_permissions(updated_settings(current, body, replace=replace, overwrite=overwrite),
                                           default_settings()["permissions"])
            schemas.validate("app_settings", new)
            if new == current and "settings" in doc:
                if tried:  # a write of ours not confirmed (Database.confirm) is what is stored now
                    self._set(new)
                return tried
            doc["settings"] = new
            if not await self.db.claim(doc):  # merged again over the other writer's settings
                tried = True
                continue
            self._set(new)
            return True
        raise Conflict("The settings were changed by someone else at the same time; try again")

    async def seed_defaults(self) -> bool:
        """Store the default settings when there are none yet; True when it did."""
        if await self.db.get_or_none(SETTINGS_ID):
            return False
        try:
            await self.db.put({"_id": SETTINGS_ID, "settings": default_settings()})
        except Conflict:
            return False
        return True

    def start_watching(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="settings-watcher")

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
            self._watcher = None

    async def _watch(self) -> None:
        """Follow changes of the settings doc; reconnect with backoff after any error."""
        since: Any = None
        delay = 1.0
        while True:
            try:
                if since is None:
                    since = (await self.db.info())["update_seq"]
                    await self.reload()
                body = await self.db.changes(doc_ids=[SETTINGS_ID], feed="longpoll", since=since,
                                             timeout=25000, client_timeout=30)
                if body.get("results"):
                    await self.reload()
                since = body.get("last_seq", since)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except JamiiError as exc:
                log.warning("settings watcher: %s; retrying in %.0fs", exc, delay)
                since = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)  # back within 5 s of CouchDB's return
