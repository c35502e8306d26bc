"""Verdicts of the enforcer's pure decision function, driven with plain dicts and a fake clock."""

from __future__ import annotations

from webhook.enforcer.decisions import (
    ABORT,
    IGNORE,
    PENDING,
    REASON_STALLED,
    REASON_TIMED_OUT,
    WATCH,
    Sample,
    decide,
    parse_time,
    progress_point,
    prune_samples,
)
from webhook.rules.model import TimeoutSettings

START = "2025-01-01T00:00:00Z"
T0 = parse_time(START)
GIB = 1024**3
SETTINGS = TimeoutSettings(completion_timeout_per_gib=800, progress_timeout_seconds=150)


def vmim(phase: str = "Running", uid: str = "u1", **meta: object) -> dict:
    return {
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "mig", "namespace": "ns", "uid": uid, **meta},
        "spec": {"vmiName": "vm1"},
        "status": {"phase": phase},
    }


def vmi(
    memory: str = "8Gi", uid: str = "u1", annotations: dict | None = None, **state: object
) -> dict:
    migration = {"migrationUid": uid, "startTimestamp": START, **state}
    return {
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "ns", "annotations": annotations or {}},
        "spec": {"domain": {"memory": {"guest": memory}}},
        "status": {"phase": "Running", "nodeName": "n1", "migrationState": migration},
    }


def test_completion_deadline_is_800s_per_gib_from_start() -> None:
    just_before = decide(vmim(), vmi(), None, [], T0 + 6399, SETTINGS)
    assert just_before.action == WATCH
    assert just_before.completion_deadline == T0 + 6400
    at = decide(vmim(), vmi(), None, [], T0 + 6400, SETTINGS)
    assert at.action == ABORT and at.reason == REASON_TIMED_OUT
    assert "8 GiB" in at.message and "limit 6400 s" in at.message
    assert "elapsed 6400 s" in at.message and "data remaining unknown" in at.message


def test_stall_needs_progress_timeout_of_own_samples() -> None:
    samples = [Sample(T0 + 10, 5 * GIB), Sample(T0 + 20, 4 * GIB), Sample(T0 + 169, 4 * GIB)]
    assert decide(vmim(), vmi(), None, samples, T0 + 169, SETTINGS).action == WATCH
    samples.append(Sample(T0 + 170, 4 * GIB))
    verdict = decide(vmim(), vmi(), None, samples, T0 + 170, SETTINGS)
    assert verdict.action == ABORT and verdict.reason == REASON_STALLED
    assert "no progress for 150 s" in verdict.message and "4.00 GiB" in verdict.message


def test_time_without_samples_proves_nothing() -> None:
    """A restart (or a dead source) leaves a gap: the clock alone never makes a stall."""
    samples = [Sample(T0 + 10, 4 * GIB)]
    verdict = decide(vmim(), vmi(), None, samples, T0 + 1000, SETTINGS)
    assert verdict.action == WATCH
    assert verdict.progress_deadline == T0 + 160


def test_restart_judges_from_first_own_sample() -> None:
    """A process started late: data flat since long before, yet the window starts at its sample."""
    samples = [Sample(T0 + 3000, 2 * GIB), Sample(T0 + 3100, 2 * GIB)]
    assert decide(vmim(), vmi(), None, samples, T0 + 3100, SETTINGS).action == WATCH
    samples.append(Sample(T0 + 3150, 2 * GIB))
    assert decide(vmim(), vmi(), None, samples, T0 + 3150, SETTINGS).reason == REASON_STALLED


def test_samples_before_start_are_ignored() -> None:
    samples = [Sample(T0 - 500, 1 * GIB), Sample(T0 + 1, 3 * GIB), Sample(T0 + 100, 3 * GIB)]
    point = progress_point(samples, T0)
    assert point == Sample(T0 + 1, 3 * GIB)
    assert decide(vmim(), vmi(), None, samples, T0 + 100, SETTINGS).action == WATCH


def test_rising_data_remaining_is_not_progress() -> None:
    samples = [Sample(T0 + 1, 3 * GIB), Sample(T0 + 100, 4 * GIB), Sample(T0 + 151, 3 * GIB)]
    assert decide(vmim(), vmi(), None, samples, T0 + 151, SETTINGS).reason == REASON_STALLED


def test_prune_keeps_verdict() -> None:
    samples = [Sample(T0 + i, (10 - min(i, 5)) * GIB) for i in range(1, 40)]
    pruned = prune_samples(samples, T0)
    assert pruned[0] == Sample(T0 + 5, 5 * GIB)
    assert progress_point(pruned, T0) == progress_point(samples, T0)


def test_completion_wins_over_stall() -> None:
    samples = [Sample(T0 + 1, GIB), Sample(T0 + 6500, GIB)]
    assert decide(vmim(), vmi(), None, samples, T0 + 6500, SETTINGS).reason == REASON_TIMED_OUT


def test_final_deleting_aborted_and_foreign_are_left_alone() -> None:
    late = T0 + 100000
    assert decide(vmim("Succeeded"), vmi(), None, [], late, SETTINGS).action == IGNORE
    assert decide(vmim("Failed"), vmi(), None, [], late, SETTINGS).action == IGNORE
    deleting = vmim(deletionTimestamp="2025-01-01T00:01:00Z")
    assert decide(deleting, vmi(), None, [], late, SETTINGS).action == IGNORE
    assert decide(vmim(), vmi(), None, [], late, SETTINGS, aborted={"u1"}).action == IGNORE
    assert decide(vmim(), None, None, [], late, SETTINGS).action == IGNORE
    assert decide(vmim(), vmi(completed=True), None, [], late, SETTINGS).action == IGNORE
    # VMI's migrationState belongs to an older migration: ours has not started.
    assert decide(vmim(), vmi(uid="old"), None, [], late, SETTINGS).action == PENDING
    no_start = vmi()
    del no_start["status"]["migrationState"]["startTimestamp"]
    assert decide(vmim(), no_start, None, [], late, SETTINGS).action == PENDING


def test_per_vm_override_and_settings_scale() -> None:
    vm = {
        "kind": "VirtualMachine",
        "metadata": {
            "name": "vm1",
            "namespace": "ns",
            "annotations": {"migration-guard.io/completion-timeout-per-gib": "10"},
        },
    }
    verdict = decide(vmim(), vmi(memory="2Gi"), vm, [], T0 + 19, SETTINGS)
    assert verdict.completion_deadline == T0 + 20 and verdict.action == WATCH
    fast = TimeoutSettings(completion_timeout_per_gib=5, progress_timeout_seconds=4)
    assert decide(vmim(), vmi(memory="1Gi"), None, [], T0 + 5, fast).reason == REASON_TIMED_OUT


def test_nearest_deadline() -> None:
    samples = [Sample(T0 + 10, GIB)]
    verdict = decide(vmim(), vmi(), None, samples, T0 + 20, SETTINGS)
    assert verdict.nearest_deadline == T0 + 160
    assert decide(vmim(), vmi(), None, [], T0 + 20, SETTINGS).nearest_deadline == T0 + 6400


def test_parse_time() -> None:
    assert parse_time("2025-01-01T00:00:01Z") == T0 + 1
    assert parse_time("2025-01-01T00:00:00.500000Z") == T0 + 0.5
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
