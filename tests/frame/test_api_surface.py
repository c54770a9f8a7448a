"""The API as a whole: OpenAPI coverage, docs page, error shapes, body limits, access log."""

import logging

from api.app import create_app
from api.errors import Forbidden
from api.openapi import build, undocumented
from api.web import error_body
from tests.helpers import PASSWORD, admin_headers, basic


def test_every_route_is_documented(config):
    assert undocumented(create_app(config)) == []


def test_openapi_document_is_well_formed():
    doc = build()
    assert doc["openapi"].startswith("3.")
    for path, item in doc["paths"].items():
        assert path.startswith("/"), path
        for method, operation in item.items():
            assert "responses" in operation, f"{method} {path}"


async def test_openapi_json_and_docs_page(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert "/api/v1/settings" in (await response.json())["paths"]
    page = await client.get("/api/docs")
    assert page.status == 200 and "swagger-ui-bundle.js" in await page.text()
    asset = await client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status == 200 and len(await asset.read()) > 100000
    assert (await client.get("/api/docs/assets/..%2Fpackage.json")).status == 404


async def test_unknown_route_and_method_are_json(client, config):
    missing = await client.get("/api/v1/does-not-exist", headers=admin_headers(config))
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"  # as cht-core answers it
    wrong_method = await client.delete("/api/v1/settings", headers=admin_headers(config))
    assert wrong_method.status == 405 and (await wrong_method.json())["code"] == 405
    assert wrong_method.headers["Allow"] == "GET, HEAD, PUT"


async def test_body_over_the_limit_is_413(aiohttp_client, config):
    client = await aiohttp_client(create_app(config.replace(max_body_bytes=1000)))
    response = await client.put("/api/v1/settings", data=b"{" + b" " * 5000 + b"}",
                                headers={**admin_headers(config), "Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["code"] == 413


async def test_access_log_has_one_line_without_secrets(client, make_user, caplog):
    name = await make_user("logged", ["chw"])
    with caplog.at_level(logging.INFO, logger="jamii.access"):
        await client.get("/api/v1/settings?token=very-secret-token", headers=basic(name))
        await client.post("/_session", json={"name": name, "password": PASSWORD})
    lines = [r.getMessage() for r in caplog.records if r.name == "jamii.access"]
    assert len(lines) == 2
    assert lines[0].startswith("GET /api/v1/settings 200 ") and lines[0].endswith(name)
    joined = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in joined and "very-secret-token" not in joined and "AuthSession" not in joined


async def test_error_body_flag_shapes_every_error_of_its_route(aiohttp_client, config):
    app = create_app(config)

    @error_body(lambda request, exc: {"status": exc.status, "message": exc.message})
    async def refuse(request):
        raise Forbidden("not you")

    app.router.add_get("/test-error-body", refuse)
    client = await aiohttp_client(app)
    anonymous = await client.get("/test-error-body")
    assert anonymous.status == 401
    assert await anonymous.json() == {"status": 401, "message": "Authentication required"}
    refused = await client.get("/test-error-body", headers=admin_headers(config))
    assert refused.status == 403 and await refused.json() == {"status": 403, "message": "not you"}
    other = await client.get("/api/v1/settings")
    assert await other.json() == {"code": 401, "error": "unauthorized"}
