"""The drain plan of a node: will every VM on it leave, where will each go, which one holds it?

What `kubectl drain` (or Harvester's maintenance mode) sets off, followed as KubeVirt v1.8 does it
(pkg/virt-controller/watch/drain/evacuation, pkg/util/migrations):
- a VMI's eviction strategy is its own `spec.evictionStrategy`, else the KubeVirt CR's
  `spec.configuration.evictionStrategy`, else none;
- none: the drain evicts the launcher pod and the VM is shut down; External: left to the
  controller that asked for it; LiveMigrateIfPossible: migrated when KubeVirt says it is
  LiveMigratable, else shut down; LiveMigrate: migrated, and while it cannot be, the eviction is
  refused and the drain waits (the VM holds it);
- migrations start in waves of at most `parallelOutboundMigrationsPerNode` (2), capped by
  `parallelMigrationsPerCluster` (5) (KubeVirt takes VMIs in no set order; the plan takes them by
  namespace and name).
Each migration is decided by the rule engine, as the webhook would, and its target is where
kube-scheduler's default scores put it (rules.scoring); each placement then uses the target's
room, so a VM that fits nowhere once the others are placed is reported as holding the drain.
Where kube-scheduler may choose otherwise (equal scores, or the order of a wave's migrations),
the other nodes are listed as alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from webhook.rules.engine import evaluate_migration
from webhook.rules.filters.resources import PODS, Resources
from webhook.rules.kubevirt_limits import kubevirt_configuration
from webhook.rules.model import Problem, Report, TimeoutSettings
from webhook.rules.policy import ALL_DENY, Policy
from webhook.rules.scoring import RESOURCES, best_nodes, node_score

if TYPE_CHECKING:
    from webhook.cluster.state import ClusterState

LIVE_MIGRATE, IF_POSSIBLE, EXTERNAL, NONE = (
    "LiveMigrate",
    "LiveMigrateIfPossible",
    "External",
    "None",
)
MIGRATES, HOLDS, SHUT_DOWN, LEFT = "migrates", "holds-drain", "shut-down", "left"
DEFAULT_PER_CLUSTER, DEFAULT_PER_NODE = 5, 2


@dataclass(frozen=True)
class PlannedVM:
    """What the drain does to one VM."""

    vm: str  # namespace/name
    eviction_strategy: str
    outcome: str  # MIGRATES, HOLDS, SHUT_DOWN, LEFT
    target: str | None = None  # where kube-scheduler's scores put it, in the plan's order
    # other nodes kube-scheduler may choose: scoring the same (it picks one at random), or best
    # when KubeVirt starts this migration before the earlier ones of its wave (it starts a
    # wave's migrations at once, in no set order)
    alternatives: tuple[str, ...] = ()
    score: int | None = None
    wave: int | None = None  # 1: the first migrations KubeVirt starts
    reasons: tuple[Problem, ...] = ()  # why it holds the drain, or is not migrated
    warnings: tuple[Problem, ...] = ()  # what the policy lets it migrate with

    def to_dict(self) -> dict:
        return {
            "vm": self.vm,
            "evictionStrategy": self.eviction_strategy,
            "outcome": self.outcome,
            "target": self.target,
            "alternatives": list(self.alternatives),
            "score": self.score,
            "wave": self.wave,
            "reasons": [r.to_dict() for r in self.reasons],
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True)
class DrainPlan:
    node: str
    vms: tuple[PlannedVM, ...]
    parallel_per_cluster: int
    parallel_per_node: int

    @property
    def drainable(self) -> bool:
        """Every VM leaves the node (migrated, shut down, or left to its controller)."""
        return all(p.outcome != HOLDS for p in self.vms)

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "drainable": self.drainable,
            "parallelMigrationsPerCluster": self.parallel_per_cluster,
            "parallelOutboundMigrationsPerNode": self.parallel_per_node,
            "vms": [p.to_dict() for p in self.vms],
        }


def eviction_strategy(vmi: dict, cluster_configuration: dict) -> str:
    """VMIEvictionStrategy: the VMI's, else the cluster's, else None."""
    own = (vmi.get("spec") or {}).get("evictionStrategy")
    if isinstance(own, str) and own:
        return own
    cluster = cluster_configuration.get("evictionStrategy")
    return cluster if isinstance(cluster, str) and cluster else NONE


def _live_migratable(vmi: dict) -> bool:
    conditions = (vmi.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, dict) and c.get("type") == "LiveMigratable" and c.get("status") == "True"
        for c in conditions
    )


def _parallelism(cluster_configuration: dict) -> tuple[int, int]:
    migrations = cluster_configuration.get("migrations") or {}
    per_cluster = migrations.get("parallelMigrationsPerCluster")
    per_node = migrations.get("parallelOutboundMigrationsPerNode")
    return (
        per_cluster if isinstance(per_cluster, int) and per_cluster > 0 else DEFAULT_PER_CLUSTER,
        per_node if isinstance(per_node, int) and per_node > 0 else DEFAULT_PER_NODE,
    )


@dataclass(frozen=True)
class _Asks:
    """What a VM's target pod asks: its requests, and cpu and memory as the scheduler's scores
    count them (None: the same)."""

    requests: Resources
    nonzero: Resources | None


def _asks(state: ClusterState, namespace: str, name: str) -> _Asks:
    """Its launcher pod's (KubeVirt renders the target pod with the same containers), else the
    VMI's as KubeVirt would render them."""
    _, requests = state.launcher_pod_and_requests(namespace, name)
    if requests is not None:
        return _Asks(requests, state.launcher_nonzero_requests(namespace, name))
    _, facts = state.vmi_with_facts(namespace, name)
    requests = facts.pod.requests if facts is not None else {}
    return _Asks(requests, None)


@dataclass
class _Placed:
    """What the plan's migrations add to a node: requests (and the pod count), and cpu and
    memory as the scheduler's scores count them."""

    requests: Resources = field(default_factory=dict)
    nonzero: Resources = field(default_factory=dict)

    def add(self, asks: _Asks) -> None:
        for k, v in asks.requests.items():
            self.requests[k] = self.requests.get(k, 0) + v
        self.requests[PODS] = self.requests.get(PODS, 0) + 1
        for k in RESOURCES:
            v = (asks.nonzero or asks.requests).get(k, 0)
            self.nonzero[k] = self.nonzero.get(k, 0) + v

    def copy(self) -> _Placed:
        return _Placed(dict(self.requests), dict(self.nonzero))


@dataclass(frozen=True)
class Migratability:
    """Whether a VM can live-migrate now, for the gauges (without judging nodes: cheap)."""

    vm: str
    node: str
    blockers: tuple[str, ...]  # the codes of what stops it, sorted
    holds_drain: bool  # its eviction strategy migrates it on a drain, and it cannot move
    problems: tuple[Problem, ...] = ()  # the blockers themselves
    warnings: tuple[Problem, ...] = ()  # what the policy only warns about
    exemption: str | None = None


def migratability(
    state: ClusterState, vmi: dict, policy: Policy = ALL_DENY, configuration: dict | None = None
) -> Migratability:
    """The VM's blockers as the webhook denies them (policy applied), judged on its own node
    only, so no node's reasons are computed; InputError on a malformed VMI."""
    ns, name = vmi["metadata"].get("namespace", "default"), vmi["metadata"]["name"]
    node = (vmi.get("status") or {}).get("nodeName") or ""
    report = evaluate_migration(state, ns, name, target=node or None, policy=policy)
    problems = () if report.exemption is not None else report.blockers
    codes = tuple(sorted({b.code for b in problems}))
    strategy = eviction_strategy(vmi, configuration or {})
    migrates_on_drain = strategy == LIVE_MIGRATE or (
        strategy == IF_POSSIBLE and _live_migratable(vmi)
    )
    return Migratability(
        f"{ns}/{name}",
        node,
        codes,
        migrates_on_drain and bool(codes),
        problems,
        report.warnings,
        report.exemption,
    )


def cluster_configuration(state: ClusterState) -> dict:
    """The deployed KubeVirt CR's `spec.configuration` (eviction strategy, migrations), or {}."""
    return kubevirt_configuration(state.kubevirts())


def drain_plan(
    state: ClusterState,
    node: str,
    *,
    policy: Policy = ALL_DENY,
    settings: TimeoutSettings = TimeoutSettings(),  # noqa: B008 (frozen, shared on purpose)
) -> DrainPlan:
    """The plan for draining `node` on the cluster `state` describes."""
    config = cluster_configuration(state)
    per_cluster, per_node = _parallelism(config)
    wave_size = min(per_cluster, per_node)
    placed: dict[str, _Placed] = {}  # node -> what the plan's migrations add to it
    wave_start: dict[str, _Placed] = {}  # `placed` when the current wave began
    vmis = sorted(
        (v for v in state.vmis() if ((v.get("status") or {}).get("nodeName")) == node),
        key=lambda v: (v["metadata"].get("namespace", ""), v["metadata"]["name"]),
    )
    planned: list[PlannedVM] = []
    # per wave, its migrations: (index in `planned`, their scores when the wave began)
    waves: list[list[tuple[int, list[tuple[str, int]]]]] = []
    for vmi in vmis:
        ns, name = vmi["metadata"].get("namespace", "default"), vmi["metadata"]["name"]
        vm = f"{ns}/{name}"
        strategy = eviction_strategy(vmi, config)
        if strategy == EXTERNAL:
            planned.append(PlannedVM(vm, strategy, LEFT))
            continue
        if strategy not in (LIVE_MIGRATE, IF_POSSIBLE) or (
            strategy == IF_POSSIBLE and not _live_migratable(vmi)
        ):
            why = Problem(
                "ShutDownOnDrain",
                f"evictionStrategy {strategy}: the drain evicts its pod and the VM is shut down"
                if strategy != IF_POSSIBLE
                else "evictionStrategy LiveMigrateIfPossible and KubeVirt says it is not "
                "LiveMigratable: the drain shuts it down",
            )
            planned.append(PlannedVM(vm, strategy, SHUT_DOWN, reasons=(why,)))
            continue
        if not waves or len(waves[-1]) == wave_size:
            waves.append([])
            wave_start = {k: v.copy() for k, v in placed.items()}
        report, scores = _place(state, ns, name, settings, policy, placed)
        best, top = best_nodes(scores)
        if not best:  # its blockers, else why no node can take it
            reasons = tuple(report.blockers or report.problems())
            if not report.blockers and _place(state, ns, name, settings, policy, {})[1]:
                reasons = (
                    Problem(
                        "NoRoomAfterPlacements",
                        f"VM {vm} fits on a node now, but not once the VMs planned before it "
                        "have moved there",
                    ),
                    *reasons,
                )
            planned.append(PlannedVM(vm, strategy, HOLDS, reasons=reasons))
            continue
        chosen = best[0]
        placed.setdefault(chosen, _Placed()).add(_asks(state, ns, name))
        before = (
            scores if not waves[-1] else _place(state, ns, name, settings, policy, wave_start)[1]
        )
        waves[-1].append((len(planned), before))
        planned.append(
            PlannedVM(
                vm,
                strategy,
                MIGRATES,
                target=chosen,
                alternatives=tuple(best[1:]),
                score=top,
                wave=len(waves),
                warnings=tuple(report.all_warnings()),
            )
        )
    for wave in waves:  # the wave's other migrations may take the better nodes first
        for index, before in wave:
            entry = planned[index]
            others = set(entry.alternatives) | contenders(before, len(wave) - 1)
            others.discard(entry.target)
            planned[index] = replace(entry, alternatives=tuple(sorted(others)))
    return DrainPlan(node, tuple(planned), per_cluster, per_node)


def contenders(scores: list[tuple[str, int]], peers: int) -> set[str]:
    """The nodes a pod may be bound to when up to `peers` other pods, scheduled first, may each
    take one of the nodes scoring above it: those with at most `peers` nodes scoring higher."""
    ranked = sorted((score for _, score in scores), reverse=True)
    if not ranked:
        return set()
    # the lowest score that still has at most `peers` nodes above it (ties are not above)
    floor = ranked[min(peers, len(ranked) - 1)]
    return {name for name, score in scores if score >= floor}


def _place(
    state: ClusterState,
    namespace: str,
    name: str,
    settings: TimeoutSettings,
    policy: Policy,
    placed: dict[str, _Placed],
) -> tuple[Report, list[tuple[str, int]]]:
    """(the rule engine's report, the eligible nodes' scores) with what the plan `placed` on
    nodes added to them; no nodes when the migration is denied."""

    def usage(node: str) -> tuple[Resources, int]:
        requested, pods = state.node_usage(node)
        extra = placed.get(node)
        if extra is None:
            return requested, pods
        merged = dict(requested)
        for k, v in extra.requests.items():
            if k != PODS:
                merged[k] = merged.get(k, 0) + v
        return merged, pods + extra.requests.get(PODS, 0)

    report = evaluate_migration(
        state, namespace, name, settings=settings, policy=policy, usage=usage
    )
    if report.problems():
        return report, []
    asks = _asks(state, namespace, name)
    scores = []
    for target in report.eligible_nodes:
        facts = state.node_facts(target)
        if facts is None:
            continue
        nonzero = state.node_nonzero_requested(target)
        extra = placed.get(target)
        if extra is not None:
            nonzero = {k: v + extra.nonzero.get(k, 0) for k, v in nonzero.items()}
        scores.append(
            (
                target,
                node_score(
                    facts.allocatable, usage(target)[0], nonzero, asks.requests, asks.nonzero
                ),
            )
        )
    return report, scores
