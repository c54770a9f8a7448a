"""Contact-type rules from settings (pure)."""

import pytest

from api.cht import contact_types as ct
from api.errors import BadRequest
from api.settings import default_settings

SETTINGS = {**default_settings()}
SETTINGS["contact_types"] = SETTINGS["contact_types"] + [
    {"id": "chp_area", "parents": ["health_center"]},
    {"id": "patient", "parents": ["clinic", "chp_area"], "person": True},
]


def test_type_of_and_kinds():
    assert ct.type_of({"type": "clinic"}) == "clinic"
    assert ct.type_of({"type": "contact", "contact_type": "patient"}) == "patient"
    assert ct.type_of({"type": "contact"}) is None and ct.type_of(None) is None
    assert ct.is_person(SETTINGS, {"type": "contact", "contact_type": "patient"})
    assert ct.is_place(SETTINGS, {"type": "contact", "contact_type": "chp_area"})
    assert ct.is_contact(SETTINGS, {"type": "person"})
    assert not ct.is_contact(SETTINGS, {"type": "contact", "contact_type": "unknown"})
    assert not ct.is_contact(SETTINGS, {"type": "data_record"})
    assert not ct.is_contact(SETTINGS, {"type": "chp_area"})  # a custom type must say type: contact


def test_type_fields():
    assert ct.type_fields("clinic") == {"type": "clinic"}
    assert ct.type_fields("patient") == {"type": "contact", "contact_type": "patient"}


def test_parent_rules_use_chts_messages():
    ct.check_parent(SETTINGS, "health_center", "district_hospital")
    ct.check_parent(SETTINGS, "district_hospital", None)
    ct.check_parent(SETTINGS, "person", None)  # people may stand alone
    with pytest.raises(BadRequest, match='^Health Centers should have "district_hospital" parent type.$'):
        ct.check_parent(SETTINGS, "health_center", "clinic")
    with pytest.raises(BadRequest, match='^Clinics should have "health_center" parent type.$'):
        ct.check_parent(SETTINGS, "clinic", None)
    with pytest.raises(BadRequest, match="District Hospitals should not have a parent"):
        ct.check_parent(SETTINGS, "district_hospital", "health_center")
    with pytest.raises(BadRequest, match='patient should have "clinic" or "chp_area" parent type'):
        ct.check_parent(SETTINGS, "patient", "health_center")
