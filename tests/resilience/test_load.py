"""A short run of bench.load (50 clients, 30 s): every route answers, and nothing fails.

The full run (200 clients for 5 minutes, ``make load``) is recorded in the README.
"""

import pytest

from bench import load


@pytest.mark.slow
async def test_mixed_load_has_no_errors():
    result = await load.run(clients=50, seconds=30)
    assert result.errors == 0, result.samples
    ran = {row["route"] for row in result.rows if row["requests"]}
    assert ran == {
        "GET /api/v1/contact/{uuid}", "GET /api/v1/person/{uuid}", "GET /api/v1/place/{uuid}",
        "GET /api/v1/report/{uuid}", "POST /api/v1/people", "POST /api/v2/records",
        "GET /medic/_changes", "POST /medic/_bulk_get", "POST /medic/_all_docs", "POST /medic/_revs_diff",
        "POST /medic/_bulk_docs", "GET /api/v2/export/reports", "GET /api/v2/export/contacts",
        "GET /api/v2/monitoring"}


@pytest.mark.slow
async def test_each_action_alone_prints_couchdbs_cpu_per_request():
    table = await load.run_each(clients=2, seconds=1)
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [row[0].strip(" `") for row in rows] == [action.__name__ for action, _ in load.ACTIONS]
    for row in rows:
        assert int(row[2]) > 0 and int(row[3]) == 0, row  # requests made, none failed
        assert "+" in row[5] or "not measurable" in row[5], row
