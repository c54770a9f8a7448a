"""App settings: ``/api/v1/settings``, the deprecated-transitions list, and the CouchDB-app
paths CHT keeps for cht-conf (``/medic/_design/medic/_rewrite/...``)."""

from __future__ import annotations

import copy

from aiohttp import web

from api import settings as app_settings
from api.web import SETTINGS, basic_prompt, json_response, read_json, require, settings

routes = web.RouteTableDef()
REWRITE = "/medic/_design/medic/_rewrite"


@routes.get("/api/v1/settings")
@basic_prompt
async def get_settings(request: web.Request) -> web.Response:
    return json_response(await settings(request))


def cht_flag(request: web.Request, name: str) -> bool:
    """CHT reads ``replace`` and ``overwrite`` as raw query strings: any non-empty value is true
    (``?replace=false`` replaces)."""
    return bool(request.query.get(name))


async def _update(request: web.Request) -> bool:
    await require(request, "can_edit", "can_configure")
    body = await read_json(request)
    return await request.app[SETTINGS].update(body, replace=cht_flag(request, "replace"),
                                              overwrite=cht_flag(request, "overwrite"))


@routes.put("/api/v1/settings")
@basic_prompt
async def put_settings(request: web.Request) -> web.Response:
    """``{success, updated}`` as CHT answers, and ``upgraded`` (the same value) as the spec names it."""
    changed = await _update(request)
    return json_response({"success": True, "updated": changed, "upgraded": changed})


@routes.get("/api/v1/settings/deprecated-transitions")
@basic_prompt
async def deprecated_transitions(request: web.Request) -> web.Response:
    await require(request)
    return json_response(copy.deepcopy(list(app_settings.DEPRECATED_TRANSITIONS)))


@routes.get(REWRITE + "/app_settings/medic")
@routes.get(REWRITE + "/app_settings/medic/{path}")
@basic_prompt
async def get_settings_v0(request: web.Request) -> web.Response:
    """CHT's deprecated settings read (cht-conf's backup-app-settings): ``{settings, meta, schema}``."""
    current = await settings(request)
    path = request.match_info.get("path")
    return json_response({"settings": app_settings.value_at(current, path) if path else current,
                          "meta": {}, "schema": {}})


@routes.put(REWRITE + "/update_settings/medic")
@basic_prompt
async def put_settings_v0(request: web.Request) -> web.Response:
    """CHT's deprecated settings update (cht-conf's upload-app-settings): ``{success, updated}``."""
    return json_response({"success": True, "updated": await _update(request)})
