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
# The scheduler counts a container without requests as asking this much (util.GetNonzeroRequests).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
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


def node_score(allocatable: Resources, used: Resources, pod: Resources) -> int:
    """The two scores for `pod` on a node whose pods request `used` already."""
    after = {
        CPU: used.get(CPU, 0) + (pod.get(CPU, 0) or DEFAULT_MILLI_CPU),
        MEMORY: used.get(MEMORY, 0) + (pod.get(MEMORY, 0) or DEFAULT_MEMORY),
    }
    return least_allocated(allocatable, after) + balanced_allocation(allocatable, after)


def best_nodes(scores: Iterable[tuple[str, int]]) -> tuple[list[str], int]:
    """The nodes with the highest score (several: kube-scheduler picks one at random), sorted."""
    ranked = list(scores)
    if not ranked:
        return [], 0
    top = max(score for _, score in ranked)
    return sorted(name for name, score in ranked if score == top), top
