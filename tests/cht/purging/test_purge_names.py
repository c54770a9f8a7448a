"""CHT's names for purge records, checked against values computed with CHT's own code (Node)."""

from api.cht.purging.names import extract_id, purge_db_name, purged_id, role_hash, sorted_unique_roles


def test_role_hashes_are_chts():
    assert role_hash(["chw"]) == "dc6aef2f5bbad17a51df3cbf5eea105a"
    assert role_hash(["chw_supervisor", "chw", "chw"]) == "f37f82c6fa9eae6073ba7da0d01f7be5"
    assert role_hash(["médecin", "chw"]) == "e72c3e726fb04e7b1d65df7e66f4ec45"


def test_roles_sort_as_javascript_sorts_strings():
    # by UTF-16 code unit: an astral character (surrogates, 0xD8xx) sorts before U+FF01
    assert sorted_unique_roles(["\uff01", "\U0001F600", "b", "B", "b"]) == ["B", "b", "\U0001F600", "\uff01"]


def test_purge_db_and_doc_names():
    assert purge_db_name("medic", "abc") == "medic-purged-role-abc"
    assert purged_id("r1") == "purged:r1" and extract_id("purged:r1") == "r1" and extract_id("other") is None
