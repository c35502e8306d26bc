"""Prometheus metrics of the webhook, in a registry per app so several apps (tests) never clash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_CHILDREN_MAX = 256


class WebhookMetrics:
    """The webhook's counters, the decision latency histogram and the cache gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "migration_guard_admission_requests_total",
            "Admission reviews answered, by kind, operation and result "
            "(allowed, denied, ignored = another kind or operation, invalid = HTTP 400).",
            ["kind", "operation", "result"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self.denials = Counter(
            "migration_guard_admission_denials_total",
            "Problems listed in denials, by code (one denial can count several codes).",
            ["code"],
            registry=self.registry,
        )
        self.kubevirt_migrations = Counter(
            "migration_guard_kubevirt_migrations_total",
            "Migrations KubeVirt started itself, by origin (evacuation, workload-update) and "
            "result (allowed, denied, warned = let through with its problems by a warn setting).",
            ["origin", "result"],
            registry=self.registry,
        )
        self.policy_warnings = Counter(
            "migration_guard_policy_warnings_total",
            "Problems of admitted migrations that the policy only warns about (a rule set to "
            "warn, or audit mode), by code.",
            ["code"],
            registry=self.registry,
        )
        self.exempt = Counter(
            "migration_guard_admission_exempt_total",
            "Migrations admitted unchecked: the policy exempts their VM (its namespace, or the "
            "migration-guard.io/exempt label).",
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "migration_guard_policy_info",
            "1 for the policy in force: its Harvester profile (e.g. v1.8) and mode "
            "(enforce, audit).",
            ["profile", "mode"],
            registry=self.registry,
        )
        self.memo_hits = Counter(
            "migration_guard_admission_memo_hits_total",
            "Decisions answered with the Report of an identical request on an unchanged cluster "
            "(KubeVirt's retries of what was denied).",
            registry=self.registry,
        )
        self.events_written = Counter(
            "migration_guard_events_written_total",
            "Events created or updated (a repeated Event is written at most once a minute).",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "migration_guard_events_dropped_total",
            "Events not recorded because the queue of Events to write was full.",
            registry=self.registry,
        )
        self.latency = Histogram(
            "migration_guard_admission_decision_seconds",
            "Time to parse, decide and build an admission response.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.cache_age = Gauge(
            "migration_guard_cache_age_seconds",
            "Seconds since the oldest informer last heard from the API server "
            "(list, event or bookmark); +Inf before the first sync.",
            registry=self.registry,
        )
        self.cache_synced = Gauge(
            "migration_guard_cache_synced",
            "1 when every informer finished its first full list.",
            registry=self.registry,
        )
        self.cert_expiry = Gauge(
            "migration_guard_serving_cert_expiry_timestamp_seconds",
            "Expiry (Unix time) of the serving certificate in use.",
            registry=self.registry,
        )

    def count_request(self, kind: str, operation: str, result: str) -> None:
        """One answered review. The labelled child is kept: `labels()` takes a lock and a lookup
        (~2 us), and every review is counted."""
        key = (kind, operation, result)
        child = self._request_children.get(key)
        if child is None:
            if len(self._request_children) >= _CHILDREN_MAX:  # kinds are whatever reviews name
                self._request_children.clear()
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()

    def bind_cache(self, age: Callable[[], float], synced: Callable[[], bool]) -> None:
        """Read the cache gauges at scrape time, so they are never out of date."""
        self.cache_age.set_function(age)
        self.cache_synced.set_function(lambda: 1.0 if synced() else 0.0)

    def show_policy(self, profile: str, mode: str) -> None:
        """The policy in force is the one series at 1 (a new profile after an upgrade)."""
        self.policy_info.clear()
        self.policy_info.labels(profile, mode).set(1)

    def bind_cert_expiry(self, expiry: Callable[[], float]) -> None:
        self.cert_expiry.set_function(expiry)
