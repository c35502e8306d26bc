"""Verdicts of the enforcer's pure decision function, driven with plain dicts and a fake clock."""

from __future__ import annotations

from webhook.enforcer.decisions import (
    ABORT,
    HOLD,
    HOLD_ABORTING,
    HOLD_POST_COPY,
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
    assert decide(deleting, vmi(uid="old"), None, [], late, SETTINGS).action == IGNORE
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


# -- never aborted: post-copy, KubeVirt aborting already; Paused gets KubeVirt's doubled limit ----
def test_post_copy_past_completion_deadline_is_held() -> None:
    verdict = decide(vmim(), vmi(mode="PostCopy"), None, [], T0 + 6500, SETTINGS)
    assert verdict.action == HOLD and verdict.reason == HOLD_POST_COPY
    assert verdict.held == REASON_TIMED_OUT
    assert verdict.completion_deadline == T0 + 6400
    assert "completion deadline passed 100 s ago (mode PostCopy)" in verdict.message
    assert "post-copy" in verdict.why and "completion deadline passed" in verdict.why


def test_post_copy_past_progress_deadline_is_held() -> None:
    samples = [Sample(T0 + 10, 4 * GIB), Sample(T0 + 200, 4 * GIB)]
    verdict = decide(vmim(), vmi(mode="PostCopy"), None, samples, T0 + 200, SETTINGS)
    assert verdict.action == HOLD and verdict.held == REASON_STALLED
    assert "progress deadline passed 40 s ago" in verdict.message
    assert "4.00 GiB" in verdict.message


def test_post_copy_before_any_deadline_says_why() -> None:
    verdict = decide(vmim(), vmi(mode="PostCopy"), None, [], T0 + 10, SETTINGS)
    assert verdict.action == HOLD and verdict.held is None and verdict.message == ""
    assert verdict.why.startswith("it is in post-copy")
    assert verdict.completion_deadline == T0 + 6400  # still shown


def test_post_copy_of_another_migration_does_not_hold_this_one() -> None:
    verdict = decide(vmim(), vmi(uid="old", mode="PostCopy"), None, [], T0 + 6500, SETTINGS)
    assert verdict.action == PENDING


def test_kubevirt_aborting_is_held() -> None:
    late = T0 + 6500
    for state in ({"abortRequested": True}, {"abortStatus": "Aborting"}, {"abortStatus": "Failed"}):
        verdict = decide(vmim(), vmi(mode="PreCopy", **state), None, [], late, SETTINGS)
        assert verdict.action == HOLD and verdict.reason == HOLD_ABORTING, state
        assert verdict.held == REASON_TIMED_OUT and "already aborting" in verdict.message
    deleting = vmim(deletionTimestamp="2025-01-01T00:01:00Z")
    verdict = decide(deleting, vmi(mode="PreCopy"), None, [], late, SETTINGS)
    assert verdict.action == HOLD and verdict.reason == HOLD_ABORTING
    assert "VMIM is being deleted" in verdict.why


def test_post_copy_wins_over_aborting() -> None:
    state = {"mode": "PostCopy", "abortRequested": True, "abortStatus": "Failed"}
    verdict = decide(vmim(), vmi(**state), None, [], T0 + 6500, SETTINGS)
    assert verdict.reason == HOLD_POST_COPY


def test_own_abort_is_not_held_after_a_restart() -> None:
    """This enforcer deleted it (its VM abort record names the UID): nothing to record."""
    record = '{"migrationUID": "u1", "reason": "MigrationTimedOut"}'
    vm = {"metadata": {"name": "vm1", "annotations": {"migration-guard.io/abort": record}}}
    deleting = vmim(deletionTimestamp="2025-01-01T01:47:00Z")
    assert decide(deleting, vmi(), vm, [], T0 + 6500, SETTINGS).action == IGNORE
    # the record alone (no delete yet: the writer died before it) does not stop the abort
    assert decide(vmim(), vmi(), vm, [], T0 + 6500, SETTINGS).action == ABORT


def test_paused_is_aborted_at_the_doubled_completion_limit() -> None:
    paused = vmi(mode="Paused")
    within = decide(vmim(), paused, None, [], T0 + 12799, SETTINGS)
    assert within.action == WATCH and within.completion_deadline == T0 + 12800
    assert "paused" in within.why
    at = decide(vmim(), paused, None, [], T0 + 12800, SETTINGS)
    assert at.action == ABORT and at.reason == REASON_TIMED_OUT
    assert "limit 12800 s (doubled: KubeVirt paused the guest)" in at.message


def test_paused_still_aborted_when_stalled() -> None:
    samples = [Sample(T0 + 10, 4 * GIB), Sample(T0 + 160, 4 * GIB)]
    verdict = decide(vmim(), vmi(mode="Paused"), None, samples, T0 + 160, SETTINGS)
    assert verdict.action == ABORT and verdict.reason == REASON_STALLED


def test_pre_copy_is_still_aborted() -> None:
    verdict = decide(vmim(), vmi(mode="PreCopy"), None, [], T0 + 6400, SETTINGS)
    assert verdict.action == ABORT and verdict.reason == REASON_TIMED_OUT and verdict.held is None
