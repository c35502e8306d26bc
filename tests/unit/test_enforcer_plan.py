"""The enforcer's incremental paths give the verdicts `decide` gives from scratch.

The runner plans once per object change (`plan`), judges every check (`judge`) and keeps only
the samples `prune_samples` returns; these tests feed the same histories both ways.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_enforcer_decisions import GIB, SETTINGS, T0, vmi, vmim
from webhook.enforcer.decisions import Sample, decide, judge, plan, prune_samples

remaining = st.integers(min_value=0, max_value=8).map(lambda g: g * GIB)
steps = st.lists(st.tuples(st.integers(min_value=1, max_value=120), remaining), max_size=40)


@given(steps)
def test_pruned_history_gives_the_same_verdicts(history: list[tuple[int, int]]) -> None:
    at = T0 - 50  # some samples before the start, which never count
    full: list[Sample] = []
    kept: list[Sample] = []
    p = plan(vmim(), vmi(), None, SETTINGS)
    for step, value in history:
        at += step
        full.append(Sample(at, value))
        kept = prune_samples([*kept, Sample(at, value)], T0)
        assert len(kept) <= 2
        assert judge(p, kept, at) == decide(vmim(), vmi(), None, full, at, SETTINGS)


def test_plan_keeps_the_order_of_the_checks() -> None:
    aborted = {"u1"}
    final = plan(vmim("Succeeded"), None, None, SETTINGS)
    assert judge(final, [], T0, aborted).why == "migration is final (Succeeded)"
    missing = plan(vmim(), None, None, SETTINGS)
    assert judge(missing, [], T0, aborted).why == "migration was already aborted by this enforcer"
    assert judge(missing, [], T0).why == "VMI does not exist"
