"""``/medic/login/token/{token}``: log in with the link of a login-by-SMS message.

``GET`` answers a small page whose button POSTs back: opening the link (or an
SMS app fetching a preview of it) never uses the token up. ``POST`` uses it:
the user's password is replaced by a random one, a CouchDB session is opened
with it (the ``AuthSession`` cookie, as ``/medic/login`` sets) and the token
is spent, all or nothing.
"""

from __future__ import annotations

import html
import logging
import time

from aiohttp import web

from api.errors import Conflict, JamiiError
from api.handlers.session import set_session_cookie
from api.web import AUTH, CONFIG, json_response, public, secret_path, settings

from . import token_login
from .handlers import dbs
from .users import synced_settings

routes = web.RouteTableDef()
log = logging.getLogger("jamii.token_login")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Log in</title></head>
<body><form method="post" action="{action}"><p>Log in to the app with this link (it works once).</p>
<button type="submit">Log in</button></form></body></html>
"""


@routes.get("/medic/login/token/{token}")
@public
@secret_path
async def token_page(request: web.Request) -> web.Response:
    action = html.escape(request.path, quote=True)
    return web.Response(text=PAGE.format(action=action), content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.post("/medic/login/token/{token}")
@public
@secret_path
async def token_login_post(request: web.Request) -> web.Response:
    token_login.require_enabled(await settings(request))
    both = dbs(request.app)
    user_doc, password = await token_login.claim(both.users, both.medic, request.match_info["token"],
                                                 int(time.time() * 1000))
    name = user_doc["name"]
    request.app[AUTH].forget(name)
    principal, cookie = await request.app[AUTH].login(name, password)
    await _settings_follow(both, user_doc)
    response = json_response({"success": True, "name": principal.name, "roles": list(principal.roles)})
    set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    return response


async def _settings_follow(both, user_doc: dict) -> None:
    """Record the spent token in user-settings too (a failure here is left to the repair script)."""
    for _ in range(3):
        try:
            current = await both.medic.get_or_none(user_doc["_id"])
            await both.medic.put(synced_settings(user_doc, current))
            return
        except Conflict:
            continue
        except JamiiError as exc:
            log.error("user %s logged in by token, but user-settings not updated: %s", user_doc["name"], exc)
            return
