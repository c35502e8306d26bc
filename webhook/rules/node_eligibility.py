"""Node eligibility: may this node receive this VM's migration target pod?

A node is judged as kube-scheduler judges the target pod (`target_pod`), filter by filter
(`filters`), with Harvester's own rules on top (`harvester`). `NodeContext` holds what every node
is checked against, built once per request, so checking N nodes is O(N) and one target is O(1) in
the cluster size. `evaluate_node` returns every reason, in DESIGN order.

A failed nodeSelector entry is reported by who asked for it: `kubevirt.io/schedulable` as
NotSchedulable; the VM's nodeSelector and the migration's addedNodeSelector as
NodeSelectorMismatch; the CPU model, features, host model and vendor as CPUModelUnsupported; the
machine type as MachineTypeUnsupported; other entries KubeVirt adds as NodeSelectorMismatch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from webhook.rules import access as a
from webhook.rules import harvester
from webhook.rules import target_pod as tp
from webhook.rules.filters import node_affinity, taints
from webhook.rules.filters.pod_affinity import PodAffinityContext, pod_affinity_problems
from webhook.rules.filters.resources import Resources, allocatable, fit_problem
from webhook.rules.model import NodeVerdict, Problem, Reason, node_problem
from webhook.rules.target import HOSTNAME_LABEL

AFFINITY_PATH = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
Usage = tuple[Resources, int]  # what the node's pods request, and how many there are


@dataclass
class NodeContext:
    """Everything about the migration that nodes are checked against, read once."""

    vm: str
    pod: tp.TargetPod
    source_node: str | None = None
    networks: list[harvester.ClusterNetwork] = field(default_factory=list)
    usage: Callable[[str], Usage] = lambda _name: ({}, 0)
    # `usage` of every node at once (requests, pod counts by node name; ClusterState.usage_by_node)
    # for a lookup over every node: rules.node_groups reads these instead when they are set
    usage_maps: tuple[dict[str, Resources], dict[str, int]] | None = None
    pod_affinity: PodAffinityContext = field(default_factory=PodAffinityContext)


@dataclass(frozen=True)
class NodeFacts:
    """What a node brings to every verdict, read and checked once per node object.

    ClusterState computes it when a node is applied (objects in the state never change), so a
    lookup over N nodes does not re-validate N label maps and re-parse N allocatables.
    `common` and `taint_key` let a lookup group nodes whose label checks read the same
    (rules.node_groups) without reading each node's labels; `common` and `allocatable` are one
    object for nodes with equal ones (less memory for a lookup to go through).
    """

    name: str
    labels: dict[str, str]
    taints: tuple[dict, ...]
    allocatable: Resources
    fixed: tuple[Problem, ...]  # Harvester's reasons that depend on the node alone
    source: tp.SourceNode  # what a migration from it reads
    common: dict[str, str]  # `labels` without the hostname: one object for equal ones
    taint_key: tuple | None  # what `label_reasons` reads of the taints; None: not hashable


class _Shared(dict):
    """A map `_share` keeps: weakly referable, so the table forgets it with its last node."""

    __slots__ = ("__weakref__",)


# Equal maps of nodes, one object each while a node has it (by identity a lookup tells that two
# nodes' labels are equal but for their hostnames without comparing them).
_SHARED: weakref.WeakValueDictionary[tuple, _Shared] = weakref.WeakValueDictionary()


def _share(m: _Shared) -> dict:
    return _SHARED.setdefault((type(m), *m.items()), m)


def _common_labels(labels: dict[str, str]) -> dict[str, str]:
    common = _Shared(labels)
    common.pop(HOSTNAME_LABEL, None)
    return _share(common)


def _taint_key(node_taints: tuple[dict, ...]) -> tuple | None:
    """Each taint's key, value and effect with their types (1, 1.0, True and "1" read apart)."""
    key = tuple(
        tuple((type(v), v) for v in (t.get("key"), t.get("value"), t.get("effect")))
        for t in node_taints
    )
    try:
        hash(key)
    except TypeError:  # a list or map where a string belongs: this node is not grouped
        return None
    return key


def read_node(node: dict) -> NodeFacts:
    """The node's facts; raises InputError on malformed fields."""
    ctx = a.describe(node, "Node")
    name = a.name_of(node, ctx)
    labels = a.str_map(node, "metadata.labels", ctx)
    node_taints = tuple(t for _, t in a.dicts(node, "spec.taints", ctx))
    fixed = harvester.node_problems(node, name, labels, node_taints)
    return NodeFacts(
        name,
        labels,
        node_taints,
        _share(_Shared(allocatable(node))),
        tuple(fixed),
        tp.source_node(labels),
        _common_labels(labels),
        _taint_key(node_taints),
    )


def _taint_text(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _pairs(selector: dict[str, str], keys: list[str]) -> str:
    return ", ".join(f"{k}={selector[k]}" for k in keys)


def _cpu_text(key: str, value: str, origin: str, labels: dict[str, str]) -> str:
    if origin == tp.FROM_VENDOR:
        vendor = key[len(tp.CPU_VENDOR) :]
        theirs = tp.vendor_key(labels)
        has = (
            f"has CPU vendor {theirs[len(tp.CPU_VENDOR) :]}"
            if theirs
            else "has no CPU vendor label"
        )
        return f"{has}, the VM runs on a {vendor} node ({key})"
    if key.startswith(tp.CPU_MODEL):
        return f"lacks CPU model '{key[len(tp.CPU_MODEL) :]}' ({key}={value})"
    if key.startswith(tp.HOST_MODEL_MIGRATION):
        return (
            f"cannot run the VM's host-model CPU '{key[len(tp.HOST_MODEL_MIGRATION) :]}' "
            f"({key}={value})"
        )
    if key.startswith(tp.CPU_FEATURE):
        return f"lacks CPU feature '{key[len(tp.CPU_FEATURE) :]}' ({key}={value})"
    return f"lacks label {key}={value}"


def _selector_reasons(labels: dict[str, str], c: NodeContext, bad: list[str]) -> list[Reason]:
    pod = c.pod
    by_origin: dict[str, list[str]] = {}
    for key in bad:
        if key != tp.SCHEDULABLE:
            by_origin.setdefault(pod.origin.get(key, tp.KUBEVIRT), []).append(key)
    out: list[Reason] = []
    if tp.SCHEDULABLE in bad:
        value = labels.get(tp.SCHEDULABLE)
        state = "missing" if value is None else f"{value!r}"
        out.append(
            Reason(
                "NotSchedulable",
                f"is not schedulable for VMs (label {tp.SCHEDULABLE} is {state}; "
                "virt-handler sets it to 'true' when healthy)",
                None,
            )
        )
    for origin, what, path in (
        (tp.VM, "the VM's nodeSelector", "spec.nodeSelector"),
        (tp.MIGRATION, "the migration's addedNodeSelector", "spec.addedNodeSelector"),
        (tp.KUBEVIRT, "the node selector KubeVirt gives the VM's pod", None),
    ):
        keys = by_origin.get(origin)
        if keys:
            out.append(
                Reason(
                    "NodeSelectorMismatch",
                    f"does not match {what} ({_pairs(pod.node_selector, keys)}): "
                    "label the node or change the selector",
                    path,
                )
            )
    return out


def _cpu_reasons(labels: dict[str, str], c: NodeContext, bad: list[str]) -> list[Reason]:
    pod = c.pod
    if not bad and not any(
        map(labels.__contains__, pod.rejected_labels)
    ):  # the usual case, per node
        return []
    cpu = [
        _cpu_text(k, pod.node_selector[k], pod.origin[k], labels)
        for k in bad
        if pod.origin.get(k) in (tp.FROM_CPU, tp.FROM_HOST_MODEL, tp.FROM_VENDOR)
    ]
    cpu += [f"{why} ({label})" for label, why in pod.rejected_labels.items() if label in labels]
    out: list[Reason] = []
    if cpu:
        out.append(
            Reason(
                "CPUModelUnsupported",
                f"{'; '.join(cpu)}: pick a node with a compatible CPU or change the VM's CPU model",
                "spec.domain.cpu",
            )
        )
    machine = [k for k in bad if pod.origin.get(k) == tp.FROM_MACHINE_TYPE]
    if machine:
        key = machine[0]
        out.append(
            Reason(
                "MachineTypeUnsupported",
                f"does not support the VM's machine type "
                f"'{key[len(tp.MACHINE_TYPE) :]}' ({key}=true): pick a node whose QEMU offers it",
                "spec.domain.machine.type",
            )
        )
    return out


def label_reasons(f: NodeFacts, c: NodeContext) -> tuple[Reason, ...]:
    """What the node's labels and taints refuse (and its name, for affinity's matchFields), in
    DESIGN order, without the node's name: nodes that read the same share them (node_groups).

    Only for a pod kube-scheduler places. Reads `f.labels`, `f.taints` (key, value and effect)
    and `f.name` only; rules.node_groups relies on that."""
    pod = c.pod
    labels = f.labels
    out: list[Reason] = []
    bad = node_affinity.selector_mismatches(pod.node_selector, labels)
    if bad:
        out += _selector_reasons(labels, c, bad)
    if pod.vm_affinity_terms is not None and not node_affinity.node_selector_matches(
        pod.vm_affinity_terms, labels, f.name
    ):
        out.append(
            Reason(
                "NodeAffinityMismatch",
                "does not match the VM's required node affinity: label the node or change the "
                "affinity",
                AFFINITY_PATH,
            )
        )
    untolerated = f.taints and [
        t
        for t in taints.untolerated_taints(f.taints, pod.tolerations)
        if t.get("key") != harvester.UNSCHEDULABLE_TAINT
    ]
    if untolerated:
        out.append(
            Reason(
                "TaintNotTolerated",
                f"has taint {', '.join(_taint_text(t) for t in untolerated)} that the VM does "
                "not tolerate: add a toleration to the VM or remove the taint",
                "spec.tolerations",
            )
        )
    if c.networks:
        out += harvester.network_reasons(labels, c.networks)
    if bad or pod.rejected_labels:
        out += _cpu_reasons(labels, c, bad)
    return tuple(out) if out else ()


def source_problem(name: str) -> Problem:
    return Problem("SourceNode", f"node '{name}' is where the VM runs now: choose another node")


def evaluate_node(node: dict, c: NodeContext, facts: NodeFacts | None = None) -> NodeVerdict:
    """Every reason `node` cannot receive the VM (eligible when there is none).

    `facts`: `read_node(node)` when the caller has it already (ClusterState.node_facts).
    A lookup over every node gives the same through rules.node_groups, faster.
    """
    f = facts if facts is not None else read_node(node)
    name, labels = f.name, f.labels
    reasons: list[Problem] = []
    if c.source_node is not None and name == c.source_node:
        reasons.append(source_problem(name))
    reasons += f.fixed
    if not c.pod.by_kube_scheduler:
        reasons += harvester.network_problems(name, labels, c.networks)
        return NodeVerdict(name, tuple(reasons))

    pod = c.pod
    found = label_reasons(f, c)
    if found:
        reasons += [node_problem(name, r) for r in found]
    used, pods = c.usage(name)
    problem = fit_problem(name, f.allocatable, used, pods, pod.requests)
    if problem is not None:
        reasons.append(problem)
    if name != c.source_node and not c.pod_affinity.empty:
        reasons += pod_affinity_problems(name, labels, c.pod_affinity)
    return NodeVerdict(name, tuple(reasons))
