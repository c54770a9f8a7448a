"""The write rules (pure): the API is the only gate for writes through the CouchDB protocol."""

import pytest

from api.auth import Principal
from api.cht.replication.write_rules import refusal
from api.settings import default_settings

SETTINGS = default_settings()
CHW = Principal("mary", ("chw",))
ADMIN = Principal("root", ("_admin",))
NO_EDIT = Principal("viewer", ("analytics",))

MARY = {"type": "user-settings", "name": "mary", "roles": ["chw"]}

CASES = [
    # (who, id, new, old, refused?)
    (CHW, "report-1", {"type": "data_record"}, None, False),
    (CHW, "report-1", {"type": "data_record", "_deleted": True}, {"type": "data_record"}, False),
    (CHW, "_design/medic-client", {"views": {}}, None, True),
    (CHW, "settings", {"settings": {}}, {"settings": {}}, True),
    (CHW, "extension-libs", {"_attachments": {}}, None, True),
    (CHW, "migration-log", {}, None, True),
    (CHW, "form:anc", {"type": "form"}, None, True),
    (CHW, "x", {"type": "data_record"}, {"type": "form"}, True),
    (CHW, "messages-en", {"type": "translations"}, None, True),
    (CHW, "ext-1", {"type": "ui-extension"}, None, True),
    (CHW, "token-login-1", {"type": "token_login"}, None, True),
    (CHW, "report-2", {"type": "data_record", "purged": True}, None, True),
    (ADMIN, "report-2", {"type": "data_record", "purged": True}, None, True),  # purging stays on the device
    (CHW, "org.couchdb.user:mary", {**MARY, "known": True}, MARY, False),
    (CHW, "org.couchdb.user:mary", MARY, None, True),  # user-settings are made by the users API only
    (CHW, "org.couchdb.user:mary", {**MARY, "roles": ["chw", "admin"]}, MARY, True),
    (CHW, "org.couchdb.user:mary", {**MARY, "roles": None}, MARY, True),
    (CHW, "org.couchdb.user:mary", {**MARY, "known": "yes"}, MARY, True),
    (CHW, "org.couchdb.user:mary", {"_deleted": True}, MARY, False),
    (CHW, "org.couchdb.user:john", {**MARY, "name": "john"}, {**MARY, "name": "john"}, True),
    (CHW, "org.couchdb.user:mary", {**MARY, "name": "john"}, MARY, True),
    (NO_EDIT, "report-2", {"type": "data_record"}, None, True),
    (ADMIN, "_design/medic-client", {"views": {}}, None, False),
    (ADMIN, "settings", {}, None, False),
    (ADMIN, "org.couchdb.user:mary", MARY, None, False),
]


@pytest.mark.parametrize("who, doc_id, new, old, refused", CASES)
def test_rules(who, doc_id, new, old, refused):
    assert (refusal(who, SETTINGS, doc_id, new, old) is not None) == refused
