"""Message tasks (pure) and the messages_by_state view."""

import datetime as dt

import pytest

from api.cht import messages

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)


def test_state_history_is_appended():
    task = messages.new_task("+254700000001", "Hello", "u-1", NOW)
    assert task["state"] == "pending"
    assert task["state_history"] == [{"state": "pending", "timestamp": "2026-01-02T03:04:05.678Z"}]
    assert messages.set_state(task, "sent", NOW) is True
    assert messages.set_state(task, "sent", NOW) is False
    messages.set_state(task, "failed", NOW, details="no credit")
    assert [h["state"] for h in task["state_history"]] == ["pending", "sent", "failed"]
    assert task["state_details"] == "no credit"
    with pytest.raises(ValueError):
        messages.set_state(task, "lost", NOW)


def test_tasks_are_added_once():
    doc = {}
    uuid = messages.message_uuid("doc-1", "registration", "+2547", "Welcome")
    assert uuid == messages.message_uuid("doc-1", "registration", "+2547", "Welcome")
    assert messages.add_task(doc, messages.new_task("+2547", "Welcome", uuid, NOW))
    assert not messages.add_task(doc, messages.new_task("+2547", "Welcome", uuid, NOW))
    assert len(doc["tasks"]) == 1
    assert messages.find_task(doc, uuid) is doc["tasks"][0]


async def test_messages_by_state_view(couch, config):
    medic = couch.db(config.db_medic)
    doc = {"_id": "msg-doc", "type": "data_record", "reported_date": 1}
    messages.add_task(doc, messages.new_task("+1", "now", "m-now", NOW))
    later = messages.new_task("+2", "later", "m-later", NOW, state="scheduled", due="2026-02-01T00:00:00.000Z")
    messages.add_task(doc, later, scheduled=True)
    await medic.put(doc)
    pending = (await medic.view("medic", "messages_by_state", reduce=False, startkey=["pending"], endkey=["pending", {}]))["rows"]
    assert [r["value"] for r in pending] == [{"id": "m-now", "to": "+1", "content": "now"}]
    scheduled = (await medic.view("medic", "messages_by_state", reduce=False, startkey=["scheduled"],
                                  endkey=["scheduled", {}]))["rows"]
    assert scheduled[0]["key"] == ["scheduled", "2026-02-01T00:00:00.000Z"]
