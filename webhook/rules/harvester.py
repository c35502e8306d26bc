"""Harvester's own node rules, on top of what kube-scheduler decides (DESIGN "Node eligibility").

Each refuses on purpose what the scheduler might allow (docs/internals.md "Where migration-guard is
stricter than the scheduler"):
- NodeNotReady: the scheduler only sees the taints the node lifecycle controller adds;
- NodeCordoned: `spec.unschedulable` or the `node.kubernetes.io/unschedulable` taint, even when the
  VM tolerates that taint (the scheduler's NodeUnschedulable would then allow it); reported once,
  and that taint is never also a TaintNotTolerated;
- NodeInMaintenance and WitnessNode: Harvester's maintenance mode and witness role;
- NetworkUnavailable: a VM network whose NAD is labelled with a cluster network needs the node's
  `network.harvesterhci.io/<cn>=true` label (Harvester's network webhook adds no selector for it).
A network whose NAD is missing is a VM blocker (the same for every node).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from webhook.rules import access as a
from webhook.rules.filters.taints import EXCLUDING_EFFECTS
from webhook.rules.model import Problem, Reason, node_problem

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MAINTENANCE_ANNOTATIONS = ("harvesterhci.io/maintain-status", "harvesterhci.io/drain-requested")
WITNESS_LABEL = "node-role.harvesterhci.io/witness"
CLUSTER_NETWORK_LABEL = "network.harvesterhci.io/clusternetwork"
NODE_NETWORK_PREFIX = "network.harvesterhci.io/"


@dataclass(frozen=True)
class ClusterNetwork:
    """A VM network that needs node label network.harvesterhci.io/<cluster_network>=true."""

    network: str  # the VMI network name
    nad: str  # ns/name
    cluster_network: str
    field: str


@dataclass(frozen=True, slots=True)
class NetworkRef:
    """A VMI network on a multus NetworkAttachmentDefinition."""

    network: str  # the VMI network name
    namespace: str  # the NAD's
    name: str
    field: str  # spec.networks[i]


def multus_networks(vmi: dict) -> tuple[NetworkRef, ...]:
    """The VMI's multus networks (read once per VMI object, in VMIFacts); raises InputError."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    vmi_ns = a.namespace_of(vmi, ctx) or "default"
    out = []
    for i, net in a.dicts(vmi, "spec.networks", ctx):
        path = f"spec.networks[{i}]"
        ref = a.get(net, "multus.networkName", str, ctx, None, path)
        if not ref:
            continue
        ns, _, name = ref.rpartition("/")
        net_name = a.get(net, "name", str, ctx, "", path)
        out.append(NetworkRef(net_name, ns or vmi_ns, name, sys.intern(path)))
    return tuple(out)


def resolve_networks(
    vmi: dict,
    nad_lookup: Callable[[str, str], dict | None],
    refs: tuple[NetworkRef, ...] | None = None,
) -> tuple[list[ClusterNetwork], list[Problem]]:
    """The cluster networks the VM's multus networks need, and a problem per missing NAD.

    `refs`: `multus_networks(vmi)` when the caller has them (VMIFacts).
    """
    needs: list[ClusterNetwork] = []
    missing: list[Problem] = []
    for ref in refs if refs is not None else multus_networks(vmi):
        ns, name, path = ref.namespace, ref.name, ref.field
        nad = nad_lookup(ns, name)
        if nad is None:
            missing.append(
                Problem(
                    "NetworkUnavailable",
                    f"network '{ref.network}' uses NetworkAttachmentDefinition {ns}/{name}, which "
                    "does not exist: create it or remove the network from the VM",
                    path,
                )
            )
            continue
        labels = a.str_map(nad, "metadata.labels", a.describe(nad, "NetworkAttachmentDefinition"))
        cn = labels.get(CLUSTER_NETWORK_LABEL)
        if cn:
            needs.append(ClusterNetwork(ref.network, f"{ns}/{name}", cn, path))
    return needs, missing


def node_problems(
    node: dict, name: str, labels: dict[str, str], taints: tuple[dict, ...]
) -> list[Problem]:
    """NodeNotReady, NodeCordoned, NodeInMaintenance, WitnessNode: the node alone decides."""
    ctx = a.describe(node, "Node")
    annotations = a.str_map(node, "metadata.annotations", ctx)
    reasons: list[Problem] = []
    ready = None
    for _, cond in a.dicts(node, "status.conditions", ctx):
        if cond.get("type") == "Ready":
            ready = cond
    if ready is None or ready.get("status") != "True":
        why = "no Ready condition"
        if ready is not None:
            why = f"Ready is {ready.get('status')}"
            if ready.get("reason"):
                why += f" ({ready.get('reason')})"
        reasons.append(
            Problem("NodeNotReady", f"node '{name}' is not ready ({why}): wait or pick another")
        )
    cordon_taint = any(
        t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") in EXCLUDING_EFFECTS for t in taints
    )
    if a.get(node, "spec.unschedulable", bool, ctx, False) or cordon_taint:
        reasons.append(
            Problem("NodeCordoned", f"node '{name}' is cordoned: uncordon it or pick another node")
        )
    for key in MAINTENANCE_ANNOTATIONS:
        if key in annotations:
            reasons.append(
                Problem(
                    "NodeInMaintenance",
                    f"node '{name}' is in maintenance mode ({key}={annotations[key]}): "
                    "end maintenance or pick another node",
                )
            )
            break
    if labels.get(WITNESS_LABEL) == "true":
        reasons.append(Problem("WitnessNode", f"node '{name}' is a witness node and runs no VMs"))
    return reasons


def network_problems(
    name: str, labels: dict[str, str], networks: list[ClusterNetwork]
) -> list[Problem]:
    return [node_problem(name, r) for r in network_reasons(labels, networks)]


def network_reasons(labels: dict[str, str], networks: list[ClusterNetwork]) -> list[Reason]:
    """NetworkUnavailable for each cluster network the node's labels lack (without its name)."""
    out: list[Reason] = []
    for net in networks:
        label = NODE_NETWORK_PREFIX + net.cluster_network
        if labels.get(label) != "true":
            out.append(
                Reason(
                    "NetworkUnavailable",
                    f"lacks cluster network '{net.cluster_network}' needed by "
                    f"network '{net.network}' ({net.nad}); label {label}=true is missing",
                    net.field,
                )
            )
    return out
