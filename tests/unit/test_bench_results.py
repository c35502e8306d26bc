"""bench/results.json keeps the format the issue fixes, written by the code `make bench` runs."""

from __future__ import annotations

import json

import pytest

from bench.results import Figure, check_results, format_table, write_results


def test_results_json_shape_and_table(tmp_path):
    figures = [
        Figure("admission.echo.throughput", 1000.0, "req/s", better="higher"),
        Figure("admission.validate.throughput_ratio", 0.9, "x echo", budget=0.8, better="higher"),
        Figure("enforcer.walk_10000", 20.0, "ms"),
        Figure("enforcer.pass_10000", 250.0, "ms", budget=200.0, baseline="enforcer.walk_10000"),
    ]
    path = tmp_path / "results.json"
    write_results(figures, path)

    data = json.loads(path.read_text())
    assert isinstance(data, list) and len(data) == 4
    for entry in data:
        assert set(entry) == {"name", "value", "unit", "budget", "better"}
        assert entry["name"].split(".")[0] in (
            "admission",
            "lookup",
            "enforcer",
            "memory",
            "kubectl",
        )
        assert entry["better"] in ("lower", "higher")
    assert data[1] == {
        "name": "admission.validate.throughput_ratio",
        "value": 0.9,
        "unit": "x echo",
        "budget": 0.8,
        "better": "higher",
    }
    assert data[0]["budget"] is None

    table = format_table(figures).splitlines()
    assert "OK" in table[1] and "MISSED" in table[3]
    assert "12.50x enforcer.walk_10000" in table[3]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "admission.x", "value": 1, "unit": "ms", "budget": None}, "exactly"),
        ({"name": "other.x", "value": 1, "unit": "ms", "budget": None, "better": "lower"}, "start"),
        (
            {"name": "lookup.x", "value": "1", "unit": "ms", "budget": None, "better": "lower"},
            "number",
        ),
        ({"name": "lookup.x", "value": 1, "unit": "ms", "budget": None, "better": "up"}, "better"),
    ],
)
def test_check_results_names_the_bad_entry(entry, problem):
    with pytest.raises(ValueError, match=problem):
        check_results([entry])


def test_figure_rejects_unknown_prefix_and_nan():
    with pytest.raises(ValueError, match="must start with"):
        Figure("latency.p99", 1.0, "ms")
    with pytest.raises(ValueError, match="finite"):
        Figure("lookup.p99", float("nan"), "ms")
