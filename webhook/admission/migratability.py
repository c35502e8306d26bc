"""Every VM's migratability as Prometheus gauges, kept current from the cache.

`migration_guard_vm_migratable{namespace,vm,node,blockers}` is 1 for a VM that can live-migrate
now and 0 for one that cannot, `blockers` naming the codes (a bounded set: the rule codes, sorted
and comma-joined); `migration_guard_node_drain_blockers{node}` counts the VMs of each node that
would hold its drain (their eviction strategy migrates them, and they cannot move). Nodes are not
judged here (that is the drain plan's work: `migration-guard drain-plan`), so a VM whose only
problem is room elsewhere counts as migratable.

A background thread recomputes them when the cluster changed, at most every `interval` seconds,
yielding to request threads between VMs; a scrape reads the last result. The same results feed
the PolicyReports (webhook.admission.policyreports).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules.drain import Migratability, cluster_configuration, migratability
from webhook.rules.policy import Policy

log = logging.getLogger("migration_guard.migratability")

DEFAULT_INTERVAL_S = 30.0
YIELD_EVERY = 50  # VMs evaluated between two pauses for the request threads


def compute(state: ClusterState, policy: Policy) -> list[Migratability]:
    """Every Running VMI's migratability (a malformed VMI is left out, and logged)."""
    config = cluster_configuration(state)
    out = []
    for i, vmi in enumerate(state.vmis()):
        if (vmi.get("status") or {}).get("phase") != "Running":
            continue
        try:
            out.append(migratability(state, vmi, policy, config))
        except InputError as exc:
            log.warning("migratability: %s", exc)
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)  # let request threads take the GIL
    return out


class MigratabilityGauges(Collector):
    """The gauges (a prometheus_client collector) and the thread that keeps them current."""

    def __init__(
        self,
        state: ClusterState,
        policy: Callable[[], Policy],
        ready: Callable[[], bool],
        interval: float = DEFAULT_INTERVAL_S,
        after_round: Callable[[list[Migratability]], object] | None = None,
    ) -> None:
        """`after_round(results)` runs after every round, changed or not (the PolicyReport
        writer, which writes a bounded number of reports a round)."""
        self.state = state
        self.policy = policy
        self.ready = ready
        self.interval = interval
        self.after_round = after_round
        self._results: list[Migratability] = []
        self._generation = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Recompute if the cluster changed since the last time; whether it did."""
        generation = self.state.generation
        if generation == self._generation or not self.ready():
            return False
        self._results = compute(self.state, self.policy())
        self._generation = generation
        return True

    def start(self) -> MigratabilityGauges:
        self._thread = threading.Thread(target=self._run, name="migratability", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval if self._generation >= 0 else 1.0):
            try:
                self.refresh()
                if self.after_round is not None and self._generation >= 0:
                    self.after_round(self._results)
            except Exception:  # keep the last figures; try again next round
                log.exception("migratability gauges not refreshed")

    def collect(self) -> Iterable[GaugeMetricFamily]:
        results = self._results
        vms = GaugeMetricFamily(
            "migration_guard_vm_migratable",
            "1 when the VM can live-migrate now, 0 when not; blockers: the codes of what stops "
            "it (nodes are not judged: see migration-guard drain-plan).",
            labels=["namespace", "vm", "node", "blockers"],
        )
        holding: Counter[str] = Counter()
        for r in results:
            namespace, _, name = r.vm.partition("/")
            vms.add_metric([namespace, name, r.node, ",".join(r.blockers)], 0 if r.blockers else 1)
            if r.holds_drain:
                holding[r.node] += 1
        nodes = GaugeMetricFamily(
            "migration_guard_node_drain_blockers",
            "VMs of the node that would hold its drain: their eviction strategy migrates them, "
            "and they cannot move.",
            labels=["node"],
        )
        for node in sorted({r.node for r in results}):
            nodes.add_metric([node], holding.get(node, 0))
        yield vms
        yield nodes
