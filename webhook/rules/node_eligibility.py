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

from collections.abc import Callable
from dataclasses import dataclass, field

from webhook.rules import access as a
from webhook.rules import harvester
from webhook.rules import target_pod as tp
from webhook.rules.filters import node_affinity, taints
from webhook.rules.filters.pod_affinity import PodAffinityContext, pod_affinity_problems
from webhook.rules.filters.resources import Resources, allocatable, fit_problem
from webhook.rules.model import NodeVerdict, Problem

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
    pod_affinity: PodAffinityContext = field(default_factory=PodAffinityContext)


@dataclass(frozen=True)
class NodeFacts:
    """What a node brings to every verdict, read and checked once per node object.

    ClusterState computes it when a node is applied (objects in the state never change), so a
    lookup over N nodes does not re-validate N label maps and re-parse N allocatables.
    """

    name: str
    labels: dict[str, str]
    taints: tuple[dict, ...]
    allocatable: Resources
    fixed: tuple[Problem, ...]  # Harvester's reasons that depend on the node alone
    source: tp.SourceNode  # what a migration from it reads


def read_node(node: dict) -> NodeFacts:
    """The node's facts; raises InputError on malformed fields."""
    ctx = a.describe(node, "Node")
    name = a.name_of(node, ctx)
    labels = a.str_map(node, "metadata.labels", ctx)
    node_taints = tuple(t for _, t in a.dicts(node, "spec.taints", ctx))
    fixed = harvester.node_problems(node, name, labels, node_taints)
    return NodeFacts(
        name, labels, node_taints, allocatable(node), tuple(fixed), tp.source_node(labels)
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


def _selector_problems(
    name: str, labels: dict[str, str], c: NodeContext, bad: list[str]
) -> list[Problem]:
    pod = c.pod
    by_origin: dict[str, list[str]] = {}
    for key in bad:
        if key != tp.SCHEDULABLE:
            by_origin.setdefault(pod.origin.get(key, tp.KUBEVIRT), []).append(key)
    out: list[Problem] = []
    if tp.SCHEDULABLE in bad:
        value = labels.get(tp.SCHEDULABLE)
        state = "missing" if value is None else f"{value!r}"
        out.append(
            Problem(
                "NotSchedulable",
                f"node '{name}' is not schedulable for VMs (label {tp.SCHEDULABLE} is {state}; "
                "virt-handler sets it to 'true' when healthy)",
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
                Problem(
                    "NodeSelectorMismatch",
                    f"node '{name}' does not match {what} ({_pairs(pod.node_selector, keys)}): "
                    "label the node or change the selector",
                    path,
                )
            )
    return out


def _cpu_problems(
    name: str, labels: dict[str, str], c: NodeContext, bad: list[str]
) -> list[Problem]:
    pod = c.pod
    if not bad and not any(k in labels for k in pod.rejected_labels):  # the usual case, per node
        return []
    cpu = [
        _cpu_text(k, pod.node_selector[k], pod.origin[k], labels)
        for k in bad
        if pod.origin.get(k) in (tp.FROM_CPU, tp.FROM_HOST_MODEL, tp.FROM_VENDOR)
    ]
    cpu += [f"{why} ({label})" for label, why in pod.rejected_labels.items() if label in labels]
    out = []
    if cpu:
        out.append(
            Problem(
                "CPUModelUnsupported",
                f"node '{name}' {'; '.join(cpu)}: pick a node with a compatible CPU or change "
                "the VM's CPU model",
                "spec.domain.cpu",
            )
        )
    machine = [k for k in bad if pod.origin.get(k) == tp.FROM_MACHINE_TYPE]
    if machine:
        key = machine[0]
        out.append(
            Problem(
                "MachineTypeUnsupported",
                f"node '{name}' does not support the VM's machine type "
                f"'{key[len(tp.MACHINE_TYPE) :]}' ({key}=true): pick a node whose QEMU offers it",
                "spec.domain.machine.type",
            )
        )
    return out


def evaluate_node(node: dict, c: NodeContext, facts: NodeFacts | None = None) -> NodeVerdict:
    """Every reason `node` cannot receive the VM (eligible when there is none).

    `facts`: `read_node(node)` when the caller has it already (ClusterState.node_facts).
    """
    f = facts if facts is not None else read_node(node)
    name, labels = f.name, f.labels
    reasons: list[Problem] = []
    if c.source_node is not None and name == c.source_node:
        reasons.append(
            Problem("SourceNode", f"node '{name}' is where the VM runs now: choose another node")
        )
    reasons += f.fixed
    if not c.pod.by_kube_scheduler:
        reasons += harvester.network_problems(name, labels, c.networks)
        return NodeVerdict(name, tuple(reasons))

    pod = c.pod
    bad = node_affinity.selector_mismatches(pod.node_selector, labels)
    if bad:
        reasons += _selector_problems(name, labels, c, bad)
    if pod.vm_affinity_terms is not None and not node_affinity.node_selector_matches(
        pod.vm_affinity_terms, labels, name
    ):
        reasons.append(
            Problem(
                "NodeAffinityMismatch",
                f"node '{name}' does not match the VM's required node affinity: label the node "
                "or change the affinity",
                AFFINITY_PATH,
            )
        )
    untolerated = [
        t
        for t in (taints.untolerated_taints(f.taints, pod.tolerations) if f.taints else ())
        if t.get("key") != harvester.UNSCHEDULABLE_TAINT
    ]
    if untolerated:
        reasons.append(
            Problem(
                "TaintNotTolerated",
                f"node '{name}' has taint {', '.join(_taint_text(t) for t in untolerated)} that "
                "the VM does not tolerate: add a toleration to the VM or remove the taint",
                "spec.tolerations",
            )
        )
    if c.networks:
        reasons += harvester.network_problems(name, labels, c.networks)
    reasons += _cpu_problems(name, labels, c, bad)
    used, pods = c.usage(name)
    problem = fit_problem(name, f.allocatable, used, pods, pod.requests)
    if problem is not None:
        reasons.append(problem)
    if name != c.source_node and not c.pod_affinity.empty:
        reasons += pod_affinity_problems(name, labels, c.pod_affinity)
    return NodeVerdict(name, tuple(reasons))
