"""Whether KubeVirt's own limits are shorter than the enforcer's: then the enforcer never acts.

KubeVirt's launcher aborts a migration by its own completion and progress limits
(webhook.rules.kubevirt_limits). Where the KubeVirt CR (or KubeVirt's default) or a
MigrationPolicy allows less time than migration-guard's settings, KubeVirt aborts first and the
enforcer's timeout of that kind can never fire. This check says so: one log line once the caches
synced and whenever the finding changes, a gauge per (limit, source), and /readyz detail.
The decision is `shorter_limits` (pure); this module only keeps its last answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from webhook.cluster.state import ClusterState
from webhook.enforcer.metrics import EnforcerMetrics
from webhook.rules.kubevirt_limits import ShorterLimit, cluster_summary, shorter_limits
from webhook.rules.model import TimeoutSettings

log = logging.getLogger("migration_guard.enforcer")

# Every (limit, source) the gauge has; a MigrationPolicy has no progressTimeout.
GAUGE_LABELS = (("completion", "kubevirt"), ("progress", "kubevirt"), ("completion", "policy"))


class KubeVirtLimitsCheck:
    """The last comparison of KubeVirt's limits with `settings`, refreshed by `update`."""

    def __init__(
        self,
        settings: TimeoutSettings,
        state: ClusterState,
        metrics: EnforcerMetrics,
        synced: Callable[[], bool],
        policies_served: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.synced = synced
        self.policies_served = policies_served
        self.shorter: list[ShorterLimit] | None = None  # None: not checked yet
        self.notes: list[str] = []
        self._lock = threading.Lock()
        for limit, source in GAUGE_LABELS:
            metrics.kubevirt_limit_shorter.labels(limit=limit, source=source).set(0)

    def update(self) -> list[ShorterLimit] | None:
        """Compare again (after the first sync only); log when the finding changed."""
        if not self.synced():
            return None
        found, notes = shorter_limits(
            self.settings, self.state.kubevirts(), self.state.migration_policies()
        )
        with self._lock:
            changed = self.shorter is None or [s.to_dict() for s in found] != [
                s.to_dict() for s in self.shorter
            ]
            first = self.shorter is None
            self.shorter, self.notes = found, notes
        for limit, source in GAUGE_LABELS:
            hit = any(s.limit == limit and s.source == source for s in found)
            self.metrics.kubevirt_limit_shorter.labels(limit=limit, source=source).set(int(hit))
        if changed:
            if found:
                log.warning(
                    "KubeVirt's own limits are shorter than migration-guard's (KubeVirt aborts "
                    "first): %s",
                    "; ".join(s.message for s in found),
                )
            elif not first:
                log.info("KubeVirt's own limits are no longer shorter than migration-guard's")
            for note in notes:
                log.warning("KubeVirt limits: %s", note)
        return found

    def status(self) -> dict:
        """/readyz detail: KubeVirt's cluster-wide limits and what is shorter."""
        with self._lock:
            shorter, notes = self.shorter, list(self.notes)
        return {
            "checked": shorter is not None,
            "cluster": cluster_summary(self.state.kubevirts()),
            "migrationPolicies": {
                "served": self.policies_served(),
                "count": len(self.state.migration_policies()),
            },
            "shorter": [s.to_dict() for s in shorter or []],
            "notes": notes,
        }

    def run(self, stop: threading.Event, interval: float) -> None:
        """Re-check every `interval` until `stop` (cheap: one CR and a few policies)."""
        while not stop.is_set():
            try:
                self.update()
            except Exception:
                log.exception("KubeVirt limits check failed")
            stop.wait(interval)
