"""kube-scheduler's default node scores for a pod, as far as they set VMs apart.

Of the default score plugins, two depend on what a migration target pod asks and what a node
holds: NodeResourcesFit with the LeastAllocated strategy and NodeResourcesBalancedAllocation
(k8s.io/kubernetes pkg/scheduler/framework/plugins/noderesources, v1.35), both over cpu and
memory with weight 1, each scoring 0-100 and weighted 1 in the default profile. The others give
launcher pods equal scores here (no preferred affinities or PreferNoSchedule taints in Harvester's
VMs, no images to prefer, no default spread: launcher pods belong to no Service or ReplicaSet),
so the highest sum of these two is where kube-scheduler puts the pod; between equal sums it picks
at random, which `best_nodes` reports as a tie.
"""

from __future__ import annotations

from collections.abc import Iterable

from webhook.rules.filters.resources import CPU, MEMORY, Resources

MAX_NODE_SCORE = 100
RESOURCES = (CPU, MEMORY)


def least_allocated(allocatable: Resources, requested: Resources) -> int:
    """Mean over cpu and memory of the share left free after placing the pod, 0-100."""
    total = 0
    for r in RESOURCES:
        capacity, used = allocatable.get(r, 0), requested.get(r, 0)
        if capacity > 0 and used <= capacity:
            total += (capacity - used) * MAX_NODE_SCORE // capacity
    return total // len(RESOURCES)


def balanced_allocation(allocatable: Resources, requested: Resources) -> int:
    """How evenly cpu and memory would be used, 0-100: (1 - standard deviation) x 100."""
    fractions = []
    for r in RESOURCES:
        capacity = allocatable.get(r, 0)
        if capacity > 0:
            fractions.append(min(requested.get(r, 0) / capacity, 1.0))
    if len(fractions) < 2:
        return MAX_NODE_SCORE
    std = abs(fractions[0] - fractions[1]) / 2
    return int((1 - std) * MAX_NODE_SCORE)


def node_score(
    allocatable: Resources,
    requested: Resources,
    nonzero: Resources,
    pod: Resources,
    pod_nonzero: Resources | None = None,
) -> int:
    """The two scores for a pod requesting `pod` on a node whose pods request `requested`.

    LeastAllocated counts what the scheduler's NonZeroRequested does (`nonzero`, and the pod's
    `pod_nonzero` when it differs from `pod`: rules.filters.resources.nonzero_requests);
    BalancedAllocation counts the requests as written, and skips a pod that requests no cpu or
    memory (scores it 0 everywhere).
    """
    counted = pod if pod_nonzero is None else pod_nonzero
    least = least_allocated(
        allocatable, {r: nonzero.get(r, 0) + counted.get(r, 0) for r in RESOURCES}
    )
    if not any(pod.get(r, 0) for r in RESOURCES):
        return least
    after = {r: requested.get(r, 0) + pod.get(r, 0) for r in RESOURCES}
    return least + balanced_allocation(allocatable, after)


def best_nodes(scores: Iterable[tuple[str, int]]) -> tuple[list[str], int]:
    """The nodes with the highest score (several: kube-scheduler picks one at random), sorted."""
    ranked = list(scores)
    if not ranked:
        return [], 0
    top = max(score for _, score in ranked)
    return sorted(name for name, score in ranked if score == top), top
