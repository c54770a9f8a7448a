"""The write rules (pure), and that the JavaScript validate_doc_update agrees with them."""

import json
import shutil
import subprocess

import pytest

from api.auth import Principal
from api.cht.replication.write_rules import refusal
from api.config import ROOT
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


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
def test_validate_doc_update_agrees_on_what_couchdb_can_judge():
    """CouchDB only knows roles, not app permissions: compare the cases both can judge, messages included."""
    source = (ROOT / "ddocs" / "medic" / "medic-client" / "validate_doc_update.js").read_text()
    cases = [(w, i, n, o, r) for w, i, n, o, r in CASES if w is not NO_EDIT]
    script = (
        "const validate = new Function('return (' + process.argv[1] + ')')();"
        "const cases = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify(cases.map(([ctx, doc, old]) => {"
        "  try { validate(doc, old, ctx); return null; } catch (e) { return e.forbidden || String(e); } })));"
    )
    payload = [[{"name": w.name, "roles": list(w.roles)}, {"_id": i, **n}, ({"_id": i, **o} if o else None)]
               for w, i, n, o, _ in cases]
    out = subprocess.run(["node", "-e", script, source, json.dumps(payload)], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == [refusal(w, SETTINGS, i, n, o) for w, i, n, o, _ in cases]
