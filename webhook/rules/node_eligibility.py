"""Node eligibility (DESIGN "Node eligibility"): may this node receive this VM?

`NodeContext` gathers once per request what every node is checked against (selectors, affinity,
tolerations, networks, CPU labels, requests), so checking N nodes is O(N) and checking one target
is O(1) in the cluster size. `evaluate_node` returns every reason, in DESIGN order.

Decisions the DESIGN leaves open:
- NodeCordoned covers `spec.unschedulable` and the `node.kubernetes.io/unschedulable` taint and
  is reported once; that taint is never also a TaintNotTolerated.
- CPU model: a named model (not host-passthrough / host-model) needs
  `cpu-model.node.kubevirt.io/<model>=true`, and each required feature (policy require or unset)
  needs `cpu-feature.node.kubevirt.io/<name>=true`. For host-model KubeVirt puts the
  `host-model-cpu.node.kubevirt.io/...` and `host-model-required-features...` labels on the
  virt-launcher pod's nodeSelector, so those come from the source pod: every entry with a CPU
  prefix must match the node.
- A network whose NAD is missing is a VM blocker (NetworkUnavailable, the same for every node);
  a NAD without the cluster-network label needs nothing from the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from webhook.rules import access as a
from webhook.rules import scheduling
from webhook.rules.capacity import allocatable, capacity_problem
from webhook.rules.model import NodeVerdict, Problem

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MAINTENANCE_ANNOTATIONS = ("harvesterhci.io/maintain-status", "harvesterhci.io/drain-requested")
WITNESS_LABEL = "node-role.harvesterhci.io/witness"
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
CLUSTER_NETWORK_LABEL = "network.harvesterhci.io/clusternetwork"
NODE_NETWORK_PREFIX = "network.harvesterhci.io/"
CPU_MODEL_PREFIX = "cpu-model.node.kubevirt.io/"
CPU_FEATURE_PREFIX = "cpu-feature.node.kubevirt.io/"
CPU_SELECTOR_PREFIXES = (
    CPU_MODEL_PREFIX,
    CPU_FEATURE_PREFIX,
    "host-model-cpu.node.kubevirt.io/",
    "host-model-required-features.node.kubevirt.io/",
)
UNLABELLED_CPU_MODELS = ("", "host-passthrough", "host-model")


@dataclass(frozen=True)
class ClusterNetwork:
    """A VM network that needs node label network.harvesterhci.io/<cluster_network>=true."""

    network: str  # the VMI network name
    nad: str  # ns/name
    cluster_network: str
    field: str


@dataclass
class NodeContext:
    """Everything about the VM that nodes are checked against, read once."""

    vm: str
    source_node: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    added_node_selector: dict[str, str] = field(default_factory=dict)
    affinity_terms: list[dict] | None = None  # None: no required node affinity
    tolerations: list[dict] = field(default_factory=list)
    networks: list[ClusterNetwork] = field(default_factory=list)
    cpu_labels: dict[str, str] = field(default_factory=dict)  # label -> where it comes from
    pod_cpu_selector: dict[str, str] = field(default_factory=dict)
    needed: tuple[int, int] = (0, 0)
    requested: Callable[[str], tuple[int, int]] = lambda _name: (0, 0)


AFFINITY_PATH = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


def resolve_networks(
    vmi: dict, nad_lookup: Callable[[str, str], dict | None]
) -> tuple[list[ClusterNetwork], list[Problem]]:
    """The cluster networks the VM's multus networks need, and a problem per missing NAD."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    vmi_ns = a.namespace_of(vmi, ctx) or "default"
    needs: list[ClusterNetwork] = []
    missing: list[Problem] = []
    for i, net in a.dicts(vmi, "spec.networks", ctx):
        path = f"spec.networks[{i}]"
        ref = a.get(net, "multus.networkName", str, ctx, None, path)
        if not ref:
            continue
        ns, _, name = ref.rpartition("/")
        ns = ns or vmi_ns
        net_name = a.get(net, "name", str, ctx, "", path)
        nad = nad_lookup(ns, name)
        if nad is None:
            missing.append(
                Problem(
                    "NetworkUnavailable",
                    f"network '{net_name}' uses NetworkAttachmentDefinition {ns}/{name}, which "
                    "does not exist: create it or remove the network from the VM",
                    path,
                )
            )
            continue
        labels = a.str_map(nad, "metadata.labels", a.describe(nad, "NetworkAttachmentDefinition"))
        cn = labels.get(CLUSTER_NETWORK_LABEL)
        if cn:
            needs.append(ClusterNetwork(net_name, f"{ns}/{name}", cn, path))
    return needs, missing


def vmi_cpu_labels(vmi: dict) -> dict[str, str]:
    """Node labels the VMI's CPU model and required features need -> what needs them."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    model = a.get(vmi, "spec.domain.cpu.model", str, ctx, "")
    labels: dict[str, str] = {}
    if model not in UNLABELLED_CPU_MODELS:
        labels[CPU_MODEL_PREFIX + model] = f"CPU model '{model}'"
    for i, feature in a.dicts(vmi, "spec.domain.cpu.features", ctx):
        name = a.get(feature, "name", str, ctx, "", f"spec.domain.cpu.features[{i}]")
        policy = a.get(feature, "policy", str, ctx, "require", f"spec.domain.cpu.features[{i}]")
        if name and policy == "require":
            labels[CPU_FEATURE_PREFIX + name] = f"CPU feature '{name}'"
    return labels


def pod_cpu_selector(pod: dict | None) -> dict[str, str]:
    """The CPU entries of the virt-launcher pod's nodeSelector (host-model labels among them)."""
    if pod is None:
        return {}
    selector = a.str_map(pod, "spec.nodeSelector", a.describe(pod, "Pod"))
    return {k: v for k, v in selector.items() if k.startswith(CPU_SELECTOR_PREFIXES)}


def cpu_requirements(vmi: dict, pod: dict | None) -> tuple[dict[str, str], dict[str, str]]:
    """(labels the VMI's CPU spec needs -> description, CPU entries of the pod's nodeSelector)."""
    return vmi_cpu_labels(vmi), pod_cpu_selector(pod)


@dataclass(frozen=True, slots=True)
class VMIPlacement:
    """What nodes are checked against that comes from the VMI alone (see VMIFacts)."""

    source_node: str | None
    node_selector: dict[str, str]
    affinity_terms: list[dict] | None
    tolerations: list[dict]
    cpu_labels: dict[str, str]


def _affinity_terms(vmi: dict, ctx: str) -> list[dict] | None:
    affinity = a.get(vmi, AFFINITY_PATH, dict, ctx)
    if affinity is None:
        return None
    return [t for _, t in a.dicts(affinity, "nodeSelectorTerms", ctx, AFFINITY_PATH)]


def _placement(
    vmi: dict, ctx: str, terms: list[dict] | None, cpu_labels: dict[str, str]
) -> VMIPlacement:
    return VMIPlacement(
        source_node=a.get(vmi, "status.nodeName", str, ctx),
        node_selector=a.str_map(vmi, "spec.nodeSelector", ctx),
        affinity_terms=terms,
        tolerations=[t for _, t in a.dicts(vmi, "spec.tolerations", ctx)],
        cpu_labels=cpu_labels,
    )


def read_placement(vmi: dict) -> VMIPlacement:
    """The VMI's part of a NodeContext; raises InputError on malformed fields."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    return _placement(vmi, ctx, _affinity_terms(vmi, ctx), vmi_cpu_labels(vmi))


def build_context(
    vmi: dict,
    vm: str,
    *,
    vmim: dict | None,
    pod: dict | None,
    networks: list[ClusterNetwork],
    needed: tuple[int, int],
    requested: Callable[[str], tuple[int, int]],
    placement: VMIPlacement | None = None,
) -> NodeContext:
    """Read the VMI (and VMIM, launcher pod) once; raises InputError on malformed fields.

    `placement`: `read_placement(vmi)` when the caller has it already (ClusterState.vmi_facts).
    """
    ctx = a.describe(vmi, "VirtualMachineInstance")
    # Without `placement`, fields are read in this order so the first malformed one is named.
    terms = _affinity_terms(vmi, ctx) if placement is None else None
    added: dict[str, str] = {}
    if vmim is not None:
        added = a.str_map(vmim, "spec.addedNodeSelector", a.describe(vmim, "Migration"))
    cpu_labels = vmi_cpu_labels(vmi) if placement is None else {}
    pod_cpu = pod_cpu_selector(pod)
    if placement is None:
        placement = _placement(vmi, ctx, terms, cpu_labels)
    return NodeContext(
        vm=vm,
        source_node=placement.source_node,
        node_selector=placement.node_selector,
        added_node_selector=added,
        affinity_terms=placement.affinity_terms,
        tolerations=placement.tolerations,
        networks=networks,
        cpu_labels=placement.cpu_labels,
        pod_cpu_selector=pod_cpu,
        needed=needed,
        requested=requested,
    )


def _taint_text(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


@dataclass(frozen=True)
class NodeFacts:
    """What a node brings to every verdict, read and checked once per node object.

    ClusterState computes it when a node is applied (objects in the state never change), so a
    lookup over N nodes does not re-validate N label maps and re-parse N allocatables.
    """

    name: str
    labels: dict[str, str]
    taints: tuple[dict, ...]
    allocatable: tuple[int | None, int | None]
    fixed: tuple[Problem, ...]  # the reasons that depend on the node alone, in DESIGN order


def read_node(node: dict) -> NodeFacts:
    """The node's facts; raises InputError on malformed fields."""
    ctx = a.describe(node, "Node")
    name = a.name_of(node, ctx)
    labels = a.str_map(node, "metadata.labels", ctx)
    annotations = a.str_map(node, "metadata.annotations", ctx)
    taints = tuple(t for _, t in a.dicts(node, "spec.taints", ctx))
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
        t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") in scheduling.EXCLUDING_EFFECTS
        for t in taints
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

    if labels.get(SCHEDULABLE_LABEL) != "true":
        value = labels.get(SCHEDULABLE_LABEL)
        state = "missing" if value is None else f"{value!r}"
        reasons.append(
            Problem(
                "NotSchedulable",
                f"node '{name}' is not schedulable for VMs (label {SCHEDULABLE_LABEL} is "
                f"{state}; virt-handler sets it to 'true' when healthy)",
            )
        )
    return NodeFacts(name, labels, taints, allocatable(node), tuple(reasons))


def evaluate_node(node: dict, c: NodeContext, facts: NodeFacts | None = None) -> NodeVerdict:
    """Every reason `node` cannot receive the VM (eligible when there is none).

    `facts`: `read_node(node)` when the caller has it already (ClusterState.node_facts).
    """
    f = facts if facts is not None else read_node(node)
    name, labels, taints = f.name, f.labels, f.taints
    reasons: list[Problem] = []

    if c.source_node is not None and name == c.source_node:
        reasons.append(
            Problem("SourceNode", f"node '{name}' is where the VM runs now: choose another node")
        )
    reasons += f.fixed

    for selector, path, what in (
        (c.node_selector, "spec.nodeSelector", "the VM's nodeSelector"),
        (c.added_node_selector, "spec.addedNodeSelector", "the migration's addedNodeSelector"),
    ):
        bad = scheduling.selector_mismatches(selector, labels) if selector else None
        if bad:
            wanted = ", ".join(f"{k}={selector[k]}" for k in bad)
            reasons.append(
                Problem(
                    "NodeSelectorMismatch",
                    f"node '{name}' does not match {what} ({wanted}): label the node or change "
                    "the selector",
                    path,
                )
            )

    if c.affinity_terms is not None and not scheduling.node_selector_matches(
        c.affinity_terms, labels, name
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
        for t in (scheduling.untolerated_taints(taints, c.tolerations) if taints else ())
        if t.get("key") != UNSCHEDULABLE_TAINT
    ]
    if untolerated:
        text = ", ".join(_taint_text(t) for t in untolerated)
        reasons.append(
            Problem(
                "TaintNotTolerated",
                f"node '{name}' has taint {text} that the VM does not tolerate: add a "
                "toleration to the VM or remove the taint",
                "spec.tolerations",
            )
        )

    for net in c.networks:
        label = NODE_NETWORK_PREFIX + net.cluster_network
        if labels.get(label) != "true":
            reasons.append(
                Problem(
                    "NetworkUnavailable",
                    f"node '{name}' lacks cluster network '{net.cluster_network}' needed by "
                    f"network '{net.network}' ({net.nad}); label {label}=true is missing",
                    net.field,
                )
            )

    missing_cpu = [desc for label, desc in c.cpu_labels.items() if labels.get(label) != "true"]
    if c.pod_cpu_selector:
        missing_cpu += [
            f"label {k}={v} required by the virt-launcher pod"
            for k, v in c.pod_cpu_selector.items()
            if labels.get(k) != v and c.cpu_labels.get(k) is None
        ]
    if missing_cpu:
        reasons.append(
            Problem(
                "CPUModelUnsupported",
                f"node '{name}' lacks {', '.join(missing_cpu)}: pick a node with a compatible "
                "CPU or change the VM's CPU model",
                "spec.domain.cpu",
            )
        )

    problem = capacity_problem(f.allocatable, name, c.requested(name), c.needed)
    if problem is not None:
        reasons.append(problem)
    return NodeVerdict(name, tuple(reasons))
