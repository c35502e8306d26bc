"""The enforcer's Prometheus metrics, in a registry of its own (no process-global state in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from webhook.enforcer.decisions import HOLD_REASONS, REASON_STALLED, REASON_TIMED_OUT

PREFIX = "migration_guard_enforcer_"


class EnforcerMetrics:
    """What an operator graphs: what is watched, what was aborted and why, how close a deadline is."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.migrations_watched = Gauge(
            PREFIX + "migrations_watched",
            "Migrations not final that the enforcer tracks (started or not).",
            registry=self.registry,
        )
        self.migrations_running = Gauge(
            PREFIX + "migrations_running",
            "Migrations whose completion deadline is running.",
            registry=self.registry,
        )
        self.aborts = Counter(
            PREFIX + "aborts",
            "Migrations aborted (dry_run=true: would have been aborted), by reason.",
            ["reason", "dry_run"],
            registry=self.registry,
        )
        self.not_aborted = Counter(
            PREFIX + "not_aborted",
            "Overdue migrations left alone on purpose (reason PostCopy: aborting would lose the "
            "VM; AbortInProgress: KubeVirt is aborting it), once each.",
            ["reason"],
            registry=self.registry,
        )
        self.abort_errors = Counter(
            PREFIX + "abort_errors",
            "Abort attempts that failed (the next check retries).",
            registry=self.registry,
        )
        self.seconds_to_deadline = Gauge(
            PREFIX + "seconds_to_nearest_deadline",
            "Seconds until the nearest completion or progress deadline (NaN: none running).",
            registry=self.registry,
        )
        self.progress_source_up = Gauge(
            PREFIX + "progress_source_up",
            "1 when the progress source answered at the last check; 0: only completion timeouts.",
            registry=self.registry,
        )
        self.leader = Gauge(
            PREFIX + "leader", "1 when this replica holds the Lease.", registry=self.registry
        )
        self.synced = Gauge(
            PREFIX + "informers_synced",
            "1 when the VMIM, VMI and VM caches are synced (nothing is aborted otherwise).",
            registry=self.registry,
        )
        self.kubevirt_limit_shorter = Gauge(
            PREFIX + "kubevirt_limit_shorter",
            "1 when KubeVirt's own limit (source=kubevirt: the KubeVirt CR or its default; "
            "source=policy: any MigrationPolicy) is shorter than migration-guard's, so KubeVirt "
            "aborts first and the enforcer's timeout of that kind cannot act.",
            ["limit", "source"],
            registry=self.registry,
        )
        self.seconds_to_deadline.set(float("nan"))
        for reason in (REASON_TIMED_OUT, REASON_STALLED):
            for dry in ("true", "false"):
                self.aborts.labels(reason=reason, dry_run=dry)
        for reason in HOLD_REASONS:
            self.not_aborted.labels(reason=reason)

    def render(self) -> bytes:
        return generate_latest(self.registry)
