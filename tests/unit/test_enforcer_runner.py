"""The enforcer loop's own state: sampling, not acting unsynced or as standby, dry-run counting,
and one log line per progress-source state change. No API calls happen on these paths."""

from __future__ import annotations

import logging

import pytest

from webhook.cluster.state import ClusterState
from webhook.enforcer.decisions import ABORT, HOLD, WATCH, parse_time
from webhook.enforcer.metrics import EnforcerMetrics
from webhook.enforcer.runner import Enforcer
from webhook.enforcer.settings import EnforcerSettings
from webhook.progress import ProgressUnavailable

START = "2025-01-01T00:00:00Z"
T0 = parse_time(START)
GIB = 1024**3


class Source:
    """A progress source whose answers the test sets (a stand-in for Prometheus, not Kubernetes)."""

    description = "test source"

    def __init__(self) -> None:
        self.values: dict | None = {}

    def fetch(self) -> dict:
        if self.values is None:
            raise ProgressUnavailable("test source: down")
        return dict(self.values)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Standby:
    namespace, name, identity, holder, last_error = "ns", "lease", "me", "other", None

    def is_leader(self) -> bool:
        return False


def objects(memory: str = "1Gi", mode: str = "PreCopy") -> list[dict]:
    return [
        {
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "mig", "namespace": "ns", "uid": "u1"},
            "spec": {"vmiName": "vm1"},
            "status": {"phase": "Running"},
        },
        {
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "vm1", "namespace": "ns"},
            "spec": {"domain": {"memory": {"guest": memory}}},
            "status": {
                "phase": "Running",
                "nodeName": "n1",
                "migrationState": {"migrationUid": "u1", "startTimestamp": START, "mode": mode},
            },
        },
    ]


def make(
    synced: bool = True,
    dry_run: bool = False,
    elector=None,
    source=None,
    per_gib: int = 5,
    mode: str = "PreCopy",
):
    settings = EnforcerSettings(
        completion_timeout_per_gib=per_gib,
        progress_timeout_seconds=4,
        dry_run=dry_run,
        identity="me",
    )
    clock = Clock(T0 + 1)
    enforcer = Enforcer(
        settings,
        api=None,  # type: ignore[arg-type]  # never reached on these paths
        state=ClusterState.from_objects(objects(mode=mode)),
        synced=lambda: synced,
        source=source or Source(),
        elector=elector,
        metrics=EnforcerMetrics(),
        clock=clock,
    )
    return enforcer, clock


def test_samples_decide_stall_and_metrics_show_deadline() -> None:
    source = Source()
    enforcer, clock = make(dry_run=True, source=source, per_gib=60)
    source.values = {("ns", "vm1"): GIB // 2}
    result = enforcer.check_once()
    assert result.decisions[0][1].action == WATCH
    assert enforcer.metrics.seconds_to_deadline._value.get() == pytest.approx(4.0)
    for step in (1, 2, 3, 4):
        clock.now = T0 + 1 + step * 0.9
        result = enforcer.check_once()
    assert result.decisions[0][1].action == WATCH  # 3.6 s flat < 4 s
    clock.now = T0 + 5.0  # 4 s after the first (and only) progress point
    result = enforcer.check_once()
    assert result.decisions[0][1].action == ABORT
    assert result.decisions[0][1].reason == "MigrationStalled"
    assert enforcer.metrics.migrations_running._value.get() == 1


def test_unsynced_or_standby_aborts_nothing(caplog) -> None:
    caplog.set_level(logging.WARNING)
    enforcer, clock = make(synced=False, dry_run=True)
    clock.now = T0 + 10
    for _ in range(3):
        assert enforcer.check_once().aborted == []
    assert caplog.text.count("cannot confirm state") == 1
    standby, clock = make(dry_run=True, elector=Standby())
    clock.now = T0 + 10
    assert standby.check_once().aborted == []
    assert standby.status()["leader"] is False


def test_dry_run_counts_each_migration_once() -> None:
    enforcer, clock = make(dry_run=True)
    clock.now = T0 + 6
    assert enforcer.check_once().aborted == ["u1"]
    clock.now = T0 + 7
    assert enforcer.check_once().aborted == []
    counted = enforcer.metrics.aborts.labels(reason="MigrationTimedOut", dry_run="true")
    assert counted._value.get() == 1


def test_post_copy_past_its_deadline_is_recorded_once_and_never_aborted(caplog) -> None:
    caplog.set_level(logging.INFO, logger="migration_guard.enforcer")
    enforcer, clock = make(dry_run=True, mode="PostCopy")
    clock.now = T0 + 3  # before the deadline: held, nothing to record
    result = enforcer.check_once()
    assert result.decisions[0][1].action == HOLD and result.decisions[0][1].held is None
    assert enforcer.status()["held"] == {
        "ns/mig": {"reason": "PostCopy", "why": result.decisions[0][1].why, "overdue": None}
    }
    for at in (6, 7, 8):
        clock.now = T0 + at
        assert enforcer.check_once().aborted == []
    counted = enforcer.metrics.not_aborted.labels(reason="PostCopy")
    assert counted._value.get() == 1
    assert caplog.text.count("not aborting ns/mig (PostCopy)") == 1
    assert (
        enforcer.metrics.aborts.labels(reason="MigrationTimedOut", dry_run="true")._value.get() == 0
    )
    assert enforcer.status()["held"]["ns/mig"]["overdue"] == "MigrationTimedOut"
    assert enforcer.metrics.migrations_running._value.get() == 0  # no deadline of its enforced


def test_standby_records_no_hold() -> None:
    standby, clock = make(dry_run=True, elector=Standby(), mode="PostCopy")
    clock.now = T0 + 10
    standby.check_once()
    assert standby.metrics.not_aborted.labels(reason="PostCopy")._value.get() == 0
    assert standby.held == set()


def test_progress_source_changes_are_logged_once_each(caplog) -> None:
    caplog.set_level(logging.INFO, logger="migration_guard.enforcer")
    source = Source()
    enforcer, _ = make(source=source)
    source.values = None
    for _ in range(3):
        enforcer.check_once()
    assert enforcer.status()["progressSource"]["up"] is False
    assert enforcer.metrics.progress_source_up._value.get() == 0
    source.values = {}
    for _ in range(3):
        enforcer.check_once()
    assert caplog.text.count("unreachable") == 1
    assert caplog.text.count("reachable: progress timeouts are enforced") == 1
    assert enforcer.status()["progressSource"]["enforced"] == ["completion", "progress"]
