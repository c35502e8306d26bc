"""Migration status from VMIM + VMI + VM: phase, nodes, elapsed, deadlines, and why it ended."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from extension.status import (
    ABORT_ANNOTATION,
    abort_record,
    current_or_last,
    migration_status,
    parse_time,
)
from webhook.rules.model import Timeouts

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUTS = Timeouts(
    data_bytes=8 << 30, data_gib=8, completion_timeout_seconds=6400, progress_timeout_seconds=150
)


def vmim(name, phase=None, created="2025-01-01T11:00:00Z", uid=None, **status):
    obj = {
        "metadata": {"name": name, "uid": uid or f"uid-{name}", "creationTimestamp": created},
        "spec": {"vmiName": "vm1"},
    }
    if phase:
        obj["status"] = {"phase": phase, **status}
    return obj


def vmi(**state):
    return {"metadata": {"name": "vm1"}, "status": {"migrationState": state}}


def test_current_is_the_newest_unfinished_else_the_newest():
    old = vmim("a", "Succeeded", "2025-01-01T10:00:00Z")
    running = vmim("b", "Running", "2025-01-01T10:30:00Z")
    newest_final = vmim("c", "Failed", "2025-01-01T11:00:00Z")
    assert current_or_last([old, running, newest_final])["metadata"]["name"] == "b"
    assert current_or_last([old, newest_final])["metadata"]["name"] == "c"
    assert current_or_last([]) is None


def test_running_migration_has_elapsed_and_deadline_from_the_vmi_start():
    m = vmim("m1", "Running")
    v = vmi(
        startTimestamp="2025-01-01T11:50:00Z",
        sourceNode="node-1",
        targetNode="node-2",
        migrationUid="uid-m1",
    )
    out = migration_status([m], v, None, TIMEOUTS, NOW)
    assert out["name"] == "m1"
    assert out["phase"] == "Running"
    assert out["final"] is False
    assert (out["sourceNode"], out["targetNode"]) == ("node-1", "node-2")
    assert out["elapsedSeconds"] == 600
    assert out["completionDeadline"] == "2025-01-01T13:36:40Z"
    assert out["completionTimeoutSeconds"] == 6400
    assert out["progressTimeoutSeconds"] == 150
    assert out["dataRemainingBytes"] is None
    assert out["why"] is None


def test_data_remaining_comes_from_the_progress_source_when_given():
    m = vmim("m1", "Running")
    out = migration_status([m], vmi(migrationUid="uid-m1"), None, TIMEOUTS, NOW, 12345)
    assert out["dataRemainingBytes"] == 12345


def test_vmi_state_of_another_migration_is_not_used():
    m = vmim("m2", "Scheduling", uid="uid-m2")
    v = vmi(startTimestamp="2025-01-01T10:00:00Z", migrationUid="uid-old", targetNode="node-9")
    out = migration_status([m], v, None, TIMEOUTS, NOW)
    assert out["startTimestamp"] is None
    assert out["elapsedSeconds"] is None
    assert out["targetNode"] is None


def test_target_falls_back_to_the_requested_node():
    m = vmim("m1", "Pending")
    m["spec"]["addedNodeSelector"] = {"kubernetes.io/hostname": "node-3"}
    out = migration_status([m], None, None, None, NOW)
    assert out["targetNode"] == "node-3"
    assert out["completionDeadline"] is None


def test_finished_migration_elapsed_stops_at_the_end():
    m = vmim("m1", "Succeeded")
    v = vmi(
        startTimestamp="2025-01-01T11:00:00Z",
        endTimestamp="2025-01-01T11:01:40Z",
        completed=True,
        migrationUid="uid-m1",
    )
    out = migration_status([m], v, None, TIMEOUTS, NOW)
    assert out["elapsedSeconds"] == 100
    assert out["final"] is True


def test_enforcer_abort_is_shown_with_the_reason():
    m = vmim("m1", "Failed")
    record = {
        "reason": "MigrationTimedOut",
        "message": "did not finish within 6400s",
        "migration": "m1",
        "migrationUID": "uid-m1",
        "time": "2025-01-01T11:59:00Z",
    }
    vm = {"metadata": {"annotations": {ABORT_ANNOTATION: json.dumps(record)}}}
    v = vmi(migrationUid="uid-m1", abortStatus="Succeeded", failed=True)
    out = migration_status([m], v, vm, TIMEOUTS, NOW)
    assert out["abort"] == record
    assert "MigrationTimedOut" in out["why"]
    assert "did not finish within 6400s" in out["why"]
    assert out["abortStatus"] == "Succeeded"


def test_abort_record_of_an_older_migration_is_not_shown():
    m = vmim("m2", "Running", uid="uid-m2")
    record = {"reason": "MigrationStalled", "migration": "m1", "migrationUID": "uid-m1"}
    vm = {"metadata": {"annotations": {ABORT_ANNOTATION: json.dumps(record)}}}
    out = migration_status([m], None, vm, TIMEOUTS, NOW)
    assert out["abort"] is None
    assert out["why"] is None


def test_failed_migration_explains_from_failure_reason_and_conditions():
    m = vmim(
        "m1",
        "Failed",
        conditions=[{"type": "Failed", "status": "True", "message": "target pod unschedulable"}],
    )
    v = vmi(migrationUid="uid-m1", failed=True, failureReason="Live migration failed: io error")
    out = migration_status([m], v, None, TIMEOUTS, NOW)
    assert "io error" in out["why"]
    assert "target pod unschedulable" in out["why"]
    assert out["failureReason"] == "Live migration failed: io error"


def test_failed_without_any_reason_still_says_so():
    out = migration_status([vmim("m1", "Failed")], None, None, None, NOW)
    assert out["why"] == "the migration failed; KubeVirt gave no reason"


def test_migration_whose_vmim_is_gone_is_shown_from_the_vmi_and_the_abort_record():
    record = {"reason": "MigrationStalled", "migration": "m1", "migrationUID": "uid-m1"}
    vm = {"metadata": {"annotations": {ABORT_ANNOTATION: json.dumps(record)}}}
    v = vmi(migrationUid="uid-m1", abortStatus="Succeeded", sourceNode="node-1")
    out = migration_status([], v, vm, TIMEOUTS, NOW)
    assert out["name"] == "m1"
    assert out["uid"] == "uid-m1"
    assert out["phase"] == "Failed"
    assert out["sourceNode"] == "node-1"
    assert "MigrationStalled" in out["why"]


def test_never_migrated_is_none():
    assert migration_status([], {"status": {}}, {"metadata": {}}, TIMEOUTS, NOW) is None
    assert migration_status([], None, None, None, NOW) is None


def test_unreadable_abort_annotation_is_shown_as_text():
    vm = {"metadata": {"annotations": {ABORT_ANNOTATION: "not json"}}}
    assert abort_record(vm) == {"message": "not json"}


def test_vmim_without_status_counts_as_pending():
    out = migration_status([vmim("m1")], None, None, None, NOW)
    assert out["phase"] == "Pending"


def test_parse_time_accepts_z_and_rejects_garbage():
    assert parse_time("2025-01-01T11:00:00Z") == datetime(2025, 1, 1, 11, tzinfo=UTC)
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
