"""GET /api/couch-config-attachments: CouchDB's attachments config, for admins."""

from api.couch_config import ATTACHMENT_DEFAULTS
from tests.helpers import admin_headers, basic


async def test_admins_read_the_attachments_config(client, config, couch):
    response = await client.get("/api/couch-config-attachments", headers=admin_headers(config))
    assert response.status == 200
    body = await response.json()
    types = [t.strip() for t in body["compressible_types"].split(",")]
    assert types and all(types), "cht-conf splits it on commas"
    assert body == {**ATTACHMENT_DEFAULTS, **await couch.config_section("attachments")}


async def test_only_admins(client, make_user):
    officer = basic(await make_user("config-officer", ["national_admin"]))
    refused = await client.get("/api/couch-config-attachments", headers=officer)
    assert refused.status == 403 and (await refused.json())["code"] == 403
    assert (await client.get("/api/couch-config-attachments")).status == 401
