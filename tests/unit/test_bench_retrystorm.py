"""The retry-storm benchmark's figures: names, units, and the budgets the reliability test holds."""

from __future__ import annotations

from bench.results import format_table
from bench.retrystorm import storm_figures
from tests.harness.retry_storm import Latencies, Storm


def test_storm_figures_have_their_budgets_and_ratios():
    storm = Storm(
        requests=500,
        seconds=20.0,
        cpu_seconds=1.0,
        memo_hits=450,
        answered=600,
        before=Latencies(through_api=[0.02] * 39 + [0.04], direct=[0.01] * 40),
        during=Latencies(through_api=[0.05] * 39 + [2.5], direct=[0.03] * 40),
    )
    figures = {f.name: f for f in storm_figures(storm)}
    assert figures["retrystorm.request_rate"].value == 25.0
    assert figures["retrystorm.webhook_cpu"].value == 5.0
    assert figures["retrystorm.memo_share"].value == 0.75
    assert figures["retrystorm.memo_share"].within_budget is True
    assert figures["retrystorm.user.direct.during.p99"].value == 30.0
    assert figures["retrystorm.user.direct.during.p99"].within_budget is True
    assert figures["retrystorm.user.api.during.p99"].within_budget is False  # 2.5 s > 2 s
    assert figures["retrystorm.user.api.p99_ratio"].value == 2.5 / 0.04
    assert figures["retrystorm.user.api.before.p50"].budget is None
    table = format_table(list(figures.values()))
    assert "3.00x retrystorm.user.direct.before.p99" in table
