"""OpenID Connect login, the client side, as CHT does it (``openid-client``): the authorization URL, and the
ID token a callback's code is exchanged for.

The provider is the app settings' ``oidc_provider`` (``discovery_url``,
``client_id``, ``allow_insecure_requests``); its secret is the credential
``oidc:client-secret``. Discovery: a URL with ``/.well-known/`` is fetched as
it is, any other is an issuer whose ``/.well-known/openid-configuration`` must
name it. Plain ``http:`` is refused unless ``allow_insecure_requests``. The
authorization URL carries ``redirect_uri``, ``scope=openid email``,
``client_id`` and ``response_type=code``, in that order, and nothing else (no
``state``, no PKCE: CHT's URL). The code is exchanged at the token endpoint with
``client_secret_post``. Network errors and 5xx answers are tried three times.

One deliberate difference: CHT does not check the ID token's signature (OIDC
allows that for a token received straight from the token endpoint over TLS);
Jamii checks it against the provider's JWKS, as well as ``iss``, ``aud``
(and ``azp`` when there are several audiences), ``exp``, ``iat`` and ``sub``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

import aiohttp
import jwt

log = logging.getLogger("jamii.oidc")

SECRET_NAME = "oidc:client-secret"
SCOPE = "openid email"
ATTEMPTS = 3
RETRY_SECONDS = 0.01
LEEWAY_SECONDS = 30
TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5)


class OidcError(Exception):
    """Why an OIDC login cannot go on; ``unknown_user`` is CHT's 401 case (``sso_error=ssouserinvalid``)."""

    def __init__(self, message: str, *, unknown_user: bool = False):
        super().__init__(message)
        self.unknown_user = unknown_user


@dataclass(frozen=True)
class Provider:
    discovery_url: str
    client_id: str
    client_secret: str
    allow_insecure: bool = False


def provider(settings: Mapping[str, Any], secret: str | None) -> Provider:
    """The configured provider, or why there is none."""
    config = settings.get("oidc_provider")
    if not isinstance(config, Mapping) or not config:
        raise OidcError("OIDC login is not configured (oidc_provider)")
    url, client_id = config.get("discovery_url"), config.get("client_id")
    if not isinstance(url, str) or not url or not isinstance(client_id, str) or not client_id:
        raise OidcError("oidc_provider needs discovery_url and client_id")
    if not secret:
        raise OidcError(f"The credential {SECRET_NAME} is not set")
    return Provider(url, client_id, secret, config.get("allow_insecure_requests") is True)


def app_url(settings: Mapping[str, Any]) -> str:
    value = settings.get("app_url")
    if not isinstance(value, str) or not value.strip():
        raise OidcError("The app_url value is not configured.")
    return value.strip().rstrip("/")


def _check_scheme(url: str, config: Provider) -> None:
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and config.allow_insecure):
        raise OidcError(f"Only https is allowed for the OIDC provider ({url})")


async def _request(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """One call to the provider, tried again on network errors and 5xx; the status and the JSON body."""
    for attempt in range(ATTEMPTS):
        try:
            async with http.request(method, url, allow_redirects=False, **kwargs) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            problem: str = f"{type(exc).__name__}"
        else:
            if status < 500:
                try:
                    return status, json.loads(text) if text else None
                except ValueError:
                    raise OidcError(f"{method} {url}: answer is not JSON") from None
            problem = f"HTTP {status}"
        if attempt < ATTEMPTS - 1:
            await asyncio.sleep(RETRY_SECONDS)
    raise OidcError(f"{method} {url}: {problem}")


async def discover(http: aiohttp.ClientSession, config: Provider) -> dict[str, Any]:
    """The provider's metadata."""
    _check_scheme(config.discovery_url, config)
    url = config.discovery_url
    if "/.well-known/" not in url:
        url = url.rstrip("/") + "/.well-known/openid-configuration"
    status, metadata = await _request(http, "GET", url, headers={"Accept": "application/json"})
    if status != 200 or not isinstance(metadata, dict):
        raise OidcError(f"Discovery at {url} answered {status}")
    if "/.well-known/" not in config.discovery_url and metadata.get("issuer") != config.discovery_url:
        raise OidcError("The discovered issuer is not the configured one")
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(name), str) or not metadata[name]:
            raise OidcError(f"The provider's metadata have no {name}")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        _check_scheme(metadata[name], config)
    return metadata


def authorization_url(metadata: Mapping[str, Any], client_id: str, redirect_uri: str) -> str:
    """Where the browser goes to log in, exactly as CHT builds it."""
    endpoint = metadata["authorization_endpoint"]
    query = urlencode([("redirect_uri", redirect_uri), ("scope", SCOPE), ("client_id", client_id),
                       ("response_type", "code")])
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def _callback_code(metadata: Mapping[str, Any], params: Mapping[str, str]) -> str:
    """The code of a callback, with openid-client's checks of the other parameters."""
    if "response" in params:
        raise OidcError("JARM responses are not supported")
    if "iss" in params:
        if params["iss"] != metadata["issuer"]:
            raise OidcError("The callback's iss is not the issuer")
    elif metadata.get("authorization_response_iss_parameter_supported"):
        raise OidcError("The callback has no iss")
    if "state" in params:
        raise OidcError("The callback has a state, and none was sent")
    if "error" in params:
        raise OidcError(f"The provider answered {params['error']}")
    if "id_token" in params or "token" in params:
        raise OidcError("Implicit flow parameters in the callback")
    code = params.get("code")
    if not code:
        raise OidcError("The callback has no code")
    return code


async def id_token_claims(http: aiohttp.ClientSession, config: Provider, metadata: Mapping[str, Any],
                          redirect_uri: str, params: Mapping[str, str]) -> dict[str, Any]:
    """Exchange the callback's code for tokens; the verified claims of the ID token."""
    code = _callback_code(metadata, params)
    status, body = await _request(http, "POST", metadata["token_endpoint"], headers={"Accept": "application/json"},
                                  data={"grant_type": "authorization_code", "redirect_uri": redirect_uri,
                                        "code": code, "client_id": config.client_id,
                                        "client_secret": config.client_secret})
    if status != 200 or not isinstance(body, dict) or "error" in body:
        raise OidcError(f"The token endpoint answered {status} {body.get('error') if isinstance(body, dict) else ''}")
    if not isinstance(body.get("access_token"), str) or \
            str(body.get("token_type", "")).lower() not in ("bearer", "dpop"):
        raise OidcError("The token endpoint's answer is not a token response")
    token = body.get("id_token")
    if not isinstance(token, str):
        raise OidcError("The token endpoint sent no ID token")
    return await _verified(http, config, metadata, token)


async def _verified(http: aiohttp.ClientSession, config: Provider, metadata: Mapping[str, Any],
                    token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise OidcError(f"The ID token is malformed: {exc}") from None
    allowed = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    alg = header.get("alg")
    if alg not in allowed or alg == "none" or str(alg).startswith("HS"):
        raise OidcError(f"The ID token's algorithm {alg} is not allowed")
    status, jwks = await _request(http, "GET", metadata["jwks_uri"], headers={"Accept": "application/json"})
    if status != 200 or not isinstance(jwks, dict):
        raise OidcError(f"The provider's JWKS answered {status}")
    try:
        keys = [k for k in jwt.PyJWKSet.from_dict(jwks).keys
                if header.get("kid") is None or k.key_id == header.get("kid")]
    except jwt.PyJWKError as exc:
        raise OidcError(f"The provider's JWKS cannot be read: {exc}") from None
    if not keys:
        raise OidcError("No key of the provider's JWKS signed the ID token")
    try:
        claims = jwt.decode(token, keys[0].key, algorithms=[alg], audience=config.client_id,
                            issuer=metadata["issuer"], leeway=LEEWAY_SECONDS,
                            options={"require": ["aud", "exp", "iat", "iss", "sub"]})
    except jwt.InvalidTokenError as exc:
        raise OidcError(f"The ID token is not valid: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise OidcError("The ID token has several audiences and another azp")
    if "nonce" in claims:
        raise OidcError("The ID token has a nonce, and none was sent")
    if not isinstance(claims.get("email"), str) or not claims["email"]:
        raise OidcError("Email claim is missing in the id token.")
    return claims


def locale(claims: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The ``locale`` claim when it is one of the app's enabled languages, else the first enabled one."""
    languages = settings.get("languages")
    enabled = [entry.get("locale") for entry in languages if isinstance(entry, Mapping)
               and entry.get("enabled") is not False and isinstance(entry.get("locale"), str)] \
        if isinstance(languages, list) else []
    if claims.get("locale") in enabled:
        return str(claims["locale"])
    if enabled:
        return str(enabled[0])
    return str(settings.get("locale") or "en")


def session() -> aiohttp.ClientSession:
    """A client for one login's calls to the provider."""
    return aiohttp.ClientSession(timeout=TIMEOUT)
