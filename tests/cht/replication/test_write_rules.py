"""The write rules (pure): the API is the only gate for writes through the CouchDB protocol."""

import pytest

from api.auth import Principal
from api.cht.replication.write_rules import refusal
from api.settings import default_settings

SETTINGS = default_settings()
CHW = Principal("mary", ("chw",))
ADMIN = Principal("root", ("_admin",))
NO_EDIT = Principal("viewer", ("analytics",))

CASES = [
    # (who, id, new, old, refused?)
    (CHW, "report-1", {"type": "data_record"}, None, False),
    (CHW, "report-1", {"type": "data_record", "_deleted": True}, {"type": "data_record"}, False),
    (CHW, "_design/medic-client", {"views": {}}, None, True),
    (CHW, "settings", {"settings": {}}, {"settings": {}}, True),
    (CHW, "form:anc", {"type": "form"}, None, True),
    (CHW, "x", {"type": "data_record"}, {"type": "form"}, True),
    (CHW, "messages-en", {"type": "translations"}, None, True),
    (CHW, "org.couchdb.user:mary", {"type": "user-settings", "name": "mary"}, None, False),
    (CHW, "org.couchdb.user:john", {"type": "user-settings", "name": "john"}, None, True),
    (CHW, "org.couchdb.user:mary", {"type": "user-settings", "name": "john"}, None, True),
    (NO_EDIT, "report-2", {"type": "data_record"}, None, True),
    (ADMIN, "_design/medic-client", {"views": {}}, None, False),
    (ADMIN, "settings", {}, None, False),
]


@pytest.mark.parametrize("who, doc_id, new, old, refused", CASES)
def test_rules(who, doc_id, new, old, refused):
    assert (refusal(who, SETTINGS, doc_id, new, old) is not None) == refused
