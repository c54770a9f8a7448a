"""Sessions: CouchDB's ``/_session``, and CHT's logins: ``/medic/login`` (password), ``/medic/password-reset``,
``/medic/login/identity`` and ``/medic/login/oidc`` (OpenID Connect, see ``api.oidc``).

The cookie is CouchDB's own ``AuthSession``; the API adds the ``Expires``
attribute clients such as cht-conf rely on. CHT's logins answer 302 with the
URL to go to as the body (the login page's script follows it) and set CHT's
``userCtx`` and ``locale`` cookies beside the session.
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from email.utils import formatdate
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlencode, urlsplit

from aiohttp import web

from api import oidc, passwords, permissions
from api.auth import USER_PREFIX, Principal, parse_basic
from api.errors import BadRequest, Conflict, JamiiError, Unauthorized
from api.sessions import login_after_change, session_for
from api.web import AUTH, CONFIG, CREDENTIALS, couch_errors, json_response, public, read_json, settings, user

log = logging.getLogger("jamii.login")

routes = web.RouteTableDef()


ONE_YEAR = 31536000
PASSWORD_RESET_URL = "/medic/password-reset"
NOT_LOGGED_IN = {"error": "Not logged in"}
SSO_PASSWORD_LOGIN = "Password Login Not Permitted For SSO Users"
# CHT's password-reset page's error classes for its translation keys
RESET_ERRORS = {"password.weak": "password-weak", "password.length.minimum": "password-short"}


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str, max_age: int) -> None:
    """Set-Cookie as CouchDB writes it. Attribute names are case-insensitive by the RFC, but
    pouchdb-session-authentication (cht-conf's PouchDB) looks for exactly ``Expires``, which
    aiohttp's cookie writer lower-cases; so the header is written here."""
    attributes = [f"AuthSession={value}", "Version=1", f"Expires={formatdate(time.time() + max_age, usegmt=True)}",
                  f"Max-Age={max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if request.secure or request.headers.get("X-Forwarded-Proto", "") == "https":
        attributes.append("Secure")
    response.headers.add("Set-Cookie", "; ".join(attributes))


async def _credentials(request: web.Request) -> tuple[str, str]:
    """Name and password from a JSON or form body, or else the Basic header."""
    name = password = None
    if request.can_read_body:
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            name, password = form.get("name") or form.get("user"), form.get("password")
        else:
            body = await read_json(request)
            if isinstance(body, dict):
                name, password = body.get("name") or body.get("user"), body.get("password")
    if not name and request.headers.get("Authorization", "").lower().startswith("basic "):
        name, password = parse_basic(request.headers["Authorization"].split(" ", 1)[1].strip())
    if not isinstance(name, str) or not name or not isinstance(password, str):
        raise BadRequest("name and password are required", field="name")
    return name, password


def _ctx(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"name": None, "roles": []}
    return {"name": principal.name, "roles": list(principal.roles)}


@routes.post("/_session")
@public
@couch_errors
async def post_session(request: web.Request) -> web.Response:
    name, password = await _credentials(request)
    principal, cookie = await request.app[AUTH].login(name, password)
    response = json_response({"ok": True, **_ctx(principal)})
    set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    return response


@routes.get("/_session")
@public
@couch_errors
async def get_session(request: web.Request) -> web.Response:
    principal = user(request)
    info = {"authentication_handlers": ["cookie", "default"], "authentication_db": "_users"}
    if principal is not None:
        info["authenticated"] = "cookie" if principal.method == "cookie" else "default"
    return json_response({"ok": True, "userCtx": _ctx(principal), "info": info})


@routes.delete("/_session")
@public
@couch_errors
async def delete_session(request: web.Request) -> web.Response:
    response = json_response({"ok": True})
    response.del_cookie("AuthSession", path="/")
    return response


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    """A cookie as Express writes CHT's (its value URL-encoded)."""
    response.set_cookie(name, quote(value, safe="-_.!~*'()"), max_age=max_age, path="/", samesite="Lax",
                        expires=formatdate(time.time() + max_age, usegmt=True), secure=_secure(request) or None)


def home_url(principal: Principal, current: Mapping[str, Any]) -> str:
    """CHT's landing page after a login: the admin app for online users who may configure, else the app."""
    if permissions.has_online_role(principal.roles) and \
            permissions.has_permission(principal, "can_configure", current):
        return "/admin/"
    return "/"


def redirect_target(requested: Any, home: str) -> str:
    """The ``redirect`` a login asked for, reduced to a path on this server (CHT's rule), or ``home``."""
    if not isinstance(requested, str) or not requested:
        return home
    parts = urlsplit(requested)
    path = posixpath.normpath("/" + parts.path.lstrip("/")) if parts.path else "/"
    if parts.path.endswith("/") and not path.endswith("/"):
        path += "/"
    if "//" in unquote(unquote(path)):
        return home
    return path + (f"#{parts.fragment}" if parts.fragment else "")


def logged_in(request: web.Request, principal: Principal, cookie: str | None, target: str, locale: str,
              home: str) -> web.Response:
    """CHT's answer to a login: 302, the URL as the body, and its cookies (``AuthSession`` when a session was
    opened, ``userCtx``, ``locale``; ``login`` cleared)."""
    response = web.Response(status=302, text=target, content_type="text/html", headers={"Cache-Control": "no-store"})
    if cookie is not None:
        set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    ctx = _ctx(principal)
    if home != "/":
        ctx["home"] = home
    _set_cookie(request, response, "userCtx", json.dumps(ctx, separators=(",", ":")), ONE_YEAR)
    _set_cookie(request, response, "locale", locale, ONE_YEAR)
    if cookie is not None:
        response.del_cookie("login", path="/")
    return response


async def _open_session(request: web.Request, name: Any, password: Any) -> tuple[Principal, str]:
    if not isinstance(name, str) or not name or not isinstance(password, str):
        raise Unauthorized("Not logged in", body=NOT_LOGGED_IN)
    try:
        return await request.app[AUTH].login(name, password)
    except Unauthorized:
        raise Unauthorized("Not logged in", body=NOT_LOGGED_IN) from None


async def _user_doc(request: web.Request, name: str) -> dict[str, Any]:
    """The caller's ``_users`` doc (a server admin has none: ``{}``)."""
    return await request.app[AUTH].users.get_or_none(USER_PREFIX + name) or {}


@routes.post("/medic/login")
@public
async def login(request: web.Request) -> web.Response:
    """CHT's login form endpoint: ``{"user", "password", "redirect"?, "locale"?}``; 302 to the app (or to the
    password reset, without a session, when the user must change their password)."""
    body = await read_json(request) if request.can_read_body else {}
    body = body if isinstance(body, dict) else {}
    principal, cookie = await _open_session(request, body.get("user"), body.get("password"))
    current = await settings(request)
    user_doc = await _user_doc(request, principal.name)
    if user_doc.get("oidc_username") and current.get("oidc_provider"):
        raise Unauthorized(SSO_PASSWORD_LOGIN, body={"error": SSO_PASSWORD_LOGIN})
    locale = body.get("locale") or current.get("locale") or "en"
    home = home_url(principal, current)
    if user_doc.get("password_change_required"):
        return logged_in(request, principal, None, PASSWORD_RESET_URL, str(locale), home)
    return logged_in(request, principal, cookie, redirect_target(body.get("redirect"), home), str(locale), home)


@routes.post("/medic/password-reset")
@public
async def password_reset(request: web.Request) -> web.Response:
    """CHT's first-login password change: ``{"username", "currentPassword", "password", "locale"?}``."""
    body = await read_json(request) if request.can_read_body else {}
    body = body if isinstance(body, dict) else {}
    name, current_password, password = body.get("username"), body.get("currentPassword"), body.get("password")
    weak = passwords.problem(password)
    if weak:
        reset = {"error": RESET_ERRORS[weak.key], **({"params": weak.params} if weak.params else {})}
        raise BadRequest(weak.message, body=reset)
    try:
        await _open_session(request, name, current_password)
    except Unauthorized:
        raise BadRequest("The current password is incorrect", body={"error": "current-password-incorrect"}) from None
    if current_password == password:
        raise BadRequest("The new password is the current one", body={"error": "password-same"})
    current = await settings(request)
    users = request.app[AUTH].users
    for _ in range(3):
        user_doc = await _user_doc(request, name)
        if not user_doc:
            raise BadRequest("Admins change their password in CouchDB", body={"error": "Error updating password"})
        if user_doc.get("oidc_username") and current.get("oidc_provider"):
            message = "Password Reset Not Permitted For SSO Users"
            raise BadRequest(message, body={"error": message})
        try:
            await users.put({**user_doc, "password": password, "password_change_required": False})
            break
        except Conflict:
            continue
    try:
        principal, cookie = await login_after_change(request.app[AUTH], name, password)
    except Unauthorized:
        raise Unauthorized("Not logged in", body=NOT_LOGGED_IN) from None
    home = home_url(principal, current)
    return logged_in(request, principal, cookie, home, str(body.get("locale") or current.get("locale") or "en"), home)


@routes.get("/medic/login/identity")
@public
async def identity(request: web.Request) -> web.Response:
    """Who is logged in, as CHT answers it: ``{"success": true}`` and the ``userCtx`` cookie, or an empty 401."""
    principal = user(request)
    if principal is None:
        return web.Response(status=401)
    response = json_response({"success": True})
    home = home_url(principal, await settings(request))
    ctx = {**_ctx(principal), **({"home": home} if home != "/" else {})}
    _set_cookie(request, response, "userCtx", json.dumps(ctx, separators=(",", ":")), ONE_YEAR)
    return response


# ``/medic/login/oidc/authorize`` and ``/medic/login/oidc``: CHT's OpenID Connect login.

async def _provider(request: web.Request) -> tuple[oidc.Provider, str, dict[str, Any]]:
    current = await settings(request)
    config = oidc.provider(current, await request.app[CREDENTIALS].get(oidc.SECRET_NAME))
    return config, oidc.app_url(current), current


@routes.get("/medic/login/oidc/authorize")
@public
async def oidc_authorize(request: web.Request) -> web.Response:
    """CHT's answer: 302 without a Location, the provider's authorization URL as the body (the login page's
    script goes there); any problem is a 500."""
    try:
        config, base, _ = await _provider(request)
        async with oidc.session() as http:
            metadata = await oidc.discover(http, config)
    except (oidc.OidcError, JamiiError) as exc:
        log.error("OIDC authorize: %s", exc)
        raise JamiiError("Server error") from None
    url = oidc.authorization_url(metadata, config.client_id, f"{base}/medic/login/oidc")
    return web.Response(status=302, text=url, content_type="text/html", headers={"Cache-Control": "no-store"})


def _sso_failed(unknown_user: bool) -> web.Response:
    query = urlencode({"sso_error": "ssouserinvalid" if unknown_user else "loginerror"})
    target = f"/medic/login?{query}"
    return web.Response(status=302, text=f"Found. Redirecting to {target}", headers={"Location": target})


@routes.get("/medic/login/oidc")
@public
async def oidc_login(request: web.Request) -> web.Response:
    """The provider sends the browser back here with a code: the user whose ``oidc_username`` is the ID token's
    ``email`` is logged in (302 to the app), or 302 back to the login page with CHT's ``sso_error``."""
    try:
        config, base, current = await _provider(request)
        async with oidc.session() as http:
            metadata = await oidc.discover(http, config)
            claims = await oidc.id_token_claims(http, config, metadata, f"{base}{request.path}", request.query)
        rows = (await request.app[AUTH].users.view("users", "users_by_field", key=["oidc_username", claims["email"]],
                                                   include_docs=True))["rows"]
        docs = [r["doc"] for r in rows if r.get("doc")]
        if len(docs) > 1:
            raise oidc.OidcError(f"Several users have the oidc_username {claims['email']}")
        if not docs or not docs[0].get("salt"):
            raise oidc.OidcError("No user has this oidc_username", unknown_user=True)
        principal, cookie = await session_for(request.app[AUTH], docs[0]["name"])
    except oidc.OidcError as exc:
        log.warning("OIDC login refused: %s", exc)
        return _sso_failed(exc.unknown_user)
    except Unauthorized as exc:
        log.warning("OIDC login: no session: %s", exc)
        return _sso_failed(True)
    except JamiiError as exc:
        log.error("OIDC login failed: %s", exc)
        return _sso_failed(False)
    home = home_url(principal, current)
    response = logged_in(request, principal, cookie, home, oidc.locale(claims, current), home)
    response.headers["Location"] = home
    response.text = f"Found. Redirecting to {home}"
    response.content_type = "text/plain"
    return response
