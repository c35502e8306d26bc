"""Every node's verdict for a lookup without a target, each label check once per group of nodes.

A target lookup judges every node (issue 18: 5,000 of them within 30 ms). Most of what a node is
checked for depends on its labels and taints alone (`label_reasons`: nodeSelector, node affinity,
taints, cluster networks, CPU), and reading ~25 keys of each node's ~100 labels was most of a
lookup's cost (memory, not Python: 5,000 label maps do not stay in the caches). A cluster's
nodes mostly have equal labels but for their hostnames: `NodeFacts.common` is then one object
for all of them, so nodes whose `common` is the same object and whose taints read the same get
the reasons of the first of them, each with its own name (`node_problem`). Where the pod reads
the hostname label or the node's name (affinity's `matchFields`), each node is judged alone.
The rest (the source node, Harvester's reasons of the node alone, resources, pod affinity) is
per node, done cheaply. The verdicts are `evaluate_node`'s, reason for reason and text for text
(tests/unit/test_node_groups.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from webhook.rules.filters.pod_affinity import pod_affinity_problems
from webhook.rules.filters.resources import PODS, Resources, fit_problem
from webhook.rules.harvester import NODE_NETWORK_PREFIX
from webhook.rules.model import NodeVerdict, Problem, Reason, node_problem
from webhook.rules.node_eligibility import (
    NodeContext,
    NodeFacts,
    evaluate_node,
    label_reasons,
    read_node,
    source_problem,
)
from webhook.rules.target import HOSTNAME_LABEL
from webhook.rules.target_pod import TargetPod

_NONE: Resources = {}


def reads_node_identity(pod: TargetPod, cluster_networks: Iterable[str]) -> bool:
    """Whether `label_reasons` may read the node's hostname label or its name for `pod`: then
    no two nodes can share its answer. (Prefix scans, such as the CPU vendor's, never meet the
    hostname label.)"""
    keys = {*pod.node_selector, *pod.rejected_labels}
    keys.update(NODE_NETWORK_PREFIX + cn for cn in cluster_networks)
    if HOSTNAME_LABEL in keys:
        return True
    for term in pod.vm_affinity_terms or ():
        if not isinstance(term, dict):
            continue
        if term.get("matchFields"):
            return True
        exprs = term.get("matchExpressions")
        if isinstance(exprs, list) and any(
            isinstance(e, dict) and e.get("key") == HOSTNAME_LABEL for e in exprs
        ):
            return True
    return False


def evaluate_nodes(
    nodes: Iterable[tuple[dict, NodeFacts | None]], c: NodeContext
) -> list[NodeVerdict]:
    """`evaluate_node` of each (node, its facts or None), in the order given."""
    pod = c.pod
    if not pod.by_kube_scheduler:  # Harvester's rules only: nothing worth grouping
        return [evaluate_node(n, c, f) for n, f in nodes]
    alone = reads_node_identity(pod, (n.cluster_network for n in c.networks))
    # fit_problem's test, unrolled: its resources once, not per node
    needed = tuple((r, n) for r, n in pod.requests.items() if r != PODS and n > 0)
    usage, source, pa = c.usage, c.source_node, c.pod_affinity
    requested, counts = c.usage_maps if c.usage_maps is not None else (None, None)
    pa_empty = pa.empty
    # (id of `common`, taint key) -> that `common` (kept, so no other map gets its id during the
    # lookup) and the reasons
    groups: dict[tuple[int, tuple], tuple[dict[str, str], tuple[Reason, ...]]] = {}
    out: list[NodeVerdict] = []
    for node, facts in nodes:
        f = facts if facts is not None else read_node(node)
        name = f.name
        if alone or facts is None or f.taint_key is None:
            shared = label_reasons(f, c)
        else:
            key = (id(f.common), f.taint_key)
            found = groups.get(key)
            if found is None:
                found = groups[key] = (f.common, label_reasons(f, c))
            shared = found[1]
        if requested is None or counts is None:
            used, count = usage(name)
        else:
            used, count = requested.get(name, _NONE), counts.get(name, 0)
        alloc = f.allocatable
        fits = count < alloc.get(PODS, 0)
        if fits:
            for res, need in needed:
                if need > alloc.get(res, 0) - used.get(res, 0):
                    fits = False
                    break
        if fits and not shared and not f.fixed and name != source and pa_empty:
            out.append(NodeVerdict(name))  # the usual case
            continue
        reasons: list[Problem] = [source_problem(name)] if name == source else []
        reasons += f.fixed
        reasons += [node_problem(name, r) for r in shared]
        if not fits:
            problem = fit_problem(name, alloc, used, count, pod.requests)
            if problem is not None:
                reasons.append(problem)
        if name != source and not pa_empty:
            reasons += pod_affinity_problems(name, f.labels, pa)
        out.append(NodeVerdict(name, tuple(reasons)))
    return out
