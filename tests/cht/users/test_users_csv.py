"""POST /api/v2/users: CSV columns to nested users, :excluded columns, the spec's errors, the progress log."""

import pytest

from api.cht.users.csv_upload import parse
from tests.helpers import admin_headers, basic

from .world import make_users_world

HEADER = ("contact.first_name,contact.last_name,contact.sex,contact.phone,email,contact.meta.created_by,"
          "token_login,contact.role,contact.type,contact.contact_type,contact.name,username,password,phone,"
          "place.parent,place.type,place.name,place.contact_type,type,fullname,notes:excluded")


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


def _csv(uw, *rows):
    return "\n".join([HEADER, *rows]) + "\n"


def _row(uw, short, parent, password="WrAGyGD9805"):
    username = uw.name(short) if short else ""
    return (f"Mary,Anyango,female,+2868917046,,,FALSE,chw,contact,person,Mary {short},{username},{password},"
            f"2868917046,{parent},clinic,Area of {short},clinic,chw,Mary {short},\"anything, really\"")


async def _logs(couch, config):
    rows = (await couch.db(config.db_logs).all_docs(startkey="bulk-user-upload-", endkey="bulk-user-upload-\ufff0",
                                                    include_docs=True))["rows"]
    return sorted((r["doc"] for r in rows), key=lambda d: d["_id"])


def test_parse_maps_columns_to_nested_properties():
    rows = parse(b"\xef\xbb\xbfusername,contact.name,contact.meta.by,roles,known,x:EXCLUDED,place\n"
                 b"a,Ann,\"Smith, J\",chw;data_entry,TRUE,skip me,p1\n\n"
                 b"b,,,chw,false,,\n"
                 b"c,too,many,cells,here,now,x,y\n")
    assert rows[0].data == {"username": "a", "contact": {"name": "Ann", "meta": {"by": "Smith, J"}},
                            "roles": ["chw", "data_entry"], "known": True, "place": "p1"}
    assert rows[1].data == {"username": "b", "roles": ["chw"], "known": False}
    assert rows[2].error and "cells" in rows[2].error
    skipped = parse(b"username,import.status:excluded,import.message:excluded\na,imported,done before\nb,error,x\n")
    assert (skipped[0].skip, skipped[1].skip) == ("done before", None)
    clash = parse(b"place,place.name\np1,Area\n")
    assert clash[0].error


async def test_import_creates_users_and_logs_progress(client, uw, config, couch):
    center = uw.h.centers[0]
    body = _csv(uw, _row(uw, "csv1", center), _row(uw, "csv2", center))
    response = await client.post("/api/v2/users", data=body.encode(),
                                 headers={**admin_headers(config), "Content-Type": "text/csv"})
    assert response.status == 200, await response.text()
    results = await response.json()
    assert [list(r) for r in results] == [["contact", "user", "user-settings"]] * 2
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{uw.name('csv1')}")
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{uw.name('csv1')}")
    contact = await couch.db(config.db_medic).get(results[0]["contact"]["id"])
    place = await couch.db(config.db_medic).get(user_doc["facility_id"][0])
    assert user_doc["roles"] == ["chw"] and settings_doc["fullname"] == "Mary csv1"
    assert "notes" not in settings_doc and "notes:excluded" not in contact
    assert contact["first_name"] == "Mary" and contact["role"] == "chw" and "meta" not in contact
    assert contact["type"] == "person"  # type contact + contact_type person is stored the classic way
    assert place["name"] == "Area of csv1" and place["parent"]["_id"] == center and place["contact"]["_id"] == contact["_id"]
    log = (await _logs(couch, config))[-1]
    assert log["progress"]["status"] == "finished"
    assert log["progress"]["saving"] == {"total": 2, "failed": 0, "successful": 2, "ignored": 0}
    assert [d["import"]["status"] for d in log["data"]] == ["imported", "imported"]
    assert all("password" not in d for d in log["data"])
    assert log["bulk_uploaded_by"] == config.couch_user


async def test_invalid_rows_fail_alone(client, uw, config, couch):
    """As in CHT, each row is created on its own: a row with a missing field fails, the others are created."""
    center = uw.h.centers[1]
    body = _csv(uw, _row(uw, "csv3", center), _row(uw, "", center), _row(uw, "csv4", center, password=""))
    response = await client.post("/api/v2/users", data=body.encode(),
                                 headers={**admin_headers(config), "Content-Type": "text/csv"})
    assert response.status == 200
    results = await response.json()
    assert list(results[0]) == ["contact", "user", "user-settings"]
    assert results[1:] == [{"error": "Missing required fields: username"}, {"error": "Missing required fields: password"}]
    assert await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{uw.name('csv3')}") is not None
    log = (await _logs(couch, config))[-1]
    assert log["progress"]["status"] == "finished"
    assert log["progress"]["saving"] == {"total": 3, "failed": 2, "successful": 1, "ignored": 0}
    assert [d["import"]["status"] for d in log["data"]] == ["imported", "error", "error"]


async def test_failures_inline_and_skipped_rows(client, uw, config, couch):
    center = uw.h.centers[1]
    header = "username,password,type,place,contact.name,import.status:excluded"
    body = "\n".join([header, f"{uw.name('csv5')},WrAGyGD9805,chw,{center},Five,",
                      f"{uw.name('csv6')},WrAGyGD9805,chw,no-such-place,Six,",
                      f"{uw.name('csv7')},WrAGyGD9805,chw,{center},Seven,imported"])
    response = await client.post("/api/v2/users", data=body.encode(),
                                 headers={**admin_headers(config), "Content-Type": "text/csv"})
    assert response.status == 200, await response.text()
    results = await response.json()
    # the skipped row gets no entry, as in CHT
    assert len(results) == 2 and "user" in results[0] and results[1] == {"error": "Failed to find place."}
    assert await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{uw.name('csv7')}") is None
    log = (await _logs(couch, config))[-1]
    assert log["progress"]["saving"] == {"total": 3, "failed": 1, "successful": 1, "ignored": 1}
    assert [d["import"]["status"] for d in log["data"]] == ["imported", "error", "skipped"]


async def test_errors_and_permissions(client, uw, config):
    headers = {**admin_headers(config), "Content-Type": "text/csv"}
    assert (await client.post("/api/v2/users", data=b"", headers=headers)).status == 400
    header_only = await client.post("/api/v2/users", data=b"username,password\n", headers=headers)
    assert header_only.status == 200 and await header_only.json() == []
    assert (await client.post("/api/v2/users", data=b"\xff\xfe", headers=headers)).status == 400
    chw = {**basic(uw.world.users["chw"]), "Content-Type": "text/csv"}
    assert (await client.post("/api/v2/users", data=b"username\nx\n", headers=chw)).status == 403
    assert (await client.post("/api/v2/users", data=b"username\nx\n")).status == 401
