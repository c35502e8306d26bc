"""evaluate_migration: the one decision the webhook, the extension, the enforcer and the CLI share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from webhook.errors import InputError
from webhook.rules.decentralized import NOTES as DECENTRALIZED_NOTES
from webhook.rules.decentralized import decentralized_side
from webhook.rules.filters import pod_affinity
from webhook.rules.harvester import resolve_networks
from webhook.rules.kubevirt_limits import ClusterConfig, kubevirt_timeouts
from webhook.rules.model import NodeVerdict, Report, Timeouts, TimeoutSettings
from webhook.rules.node_eligibility import NodeContext, NodeFacts, Usage, evaluate_node, read_node
from webhook.rules.node_groups import evaluate_nodes
from webhook.rules.policy import ALL_DENY, EXEMPT_LABEL, Policy
from webhook.rules.target import added_node_selector, migration_target
from webhook.rules.target_pod import SourceNode, TargetPod, render_pod
from webhook.rules.timeouts import compute_timeouts
from webhook.rules.vm_blockers import vm_blockers, vmi_missing
from webhook.rules.vmi_facts import VMIFacts, node_name

if TYPE_CHECKING:
    from webhook.cluster.state import ClusterState, VMIView

    MigrationInputs = tuple[ClusterConfig, list[dict], dict[str, str] | None]


def _source_node(
    state: ClusterState, source: str | None, facts: NodeFacts | None
) -> SourceNode | None:
    """What the migration reads of the VMI's node (`facts`: its NodeFacts when read already)."""
    if not source:
        return None
    if facts is None:
        facts = state.node_facts(source)
    if facts is None:
        node = state.node(source)
        facts = read_node(node) if node is not None else None
    return facts.source if facts is not None else None


def _pod_affinity(state: ClusterState, pod: TargetPod) -> pod_affinity.PodAffinityContext:
    def node_labels(name: str) -> dict[str, str] | None:
        facts = state.node_facts(name)
        return facts.labels if facts is not None else None

    return pod_affinity.build_context(
        pod.namespace,
        pod.labels,
        pod.affinity_terms,
        pod.anti_affinity_terms,
        state.bound_pods,
        state.anti_affinity_of_others(pod.labels),
        node_labels,
    )


def _notes(pod: TargetPod, source: str | None, pa: pod_affinity.PodAffinityContext) -> list[str]:
    notes = []
    if pod.rendered:
        notes.append(
            "no virt-launcher pod of the VM is cached: its target pod was rendered from the VMI, "
            "without KubeVirt's memory overhead"
        )
    if not pod.source_node_known:
        notes.append(
            f"the VM's node {source!r} is not known: the host-model CPU and CPU vendor that "
            "KubeVirt takes from it are not checked"
        )
    if not pod.by_kube_scheduler:
        notes.append(
            f"the VM's pods are placed by scheduler '{pod.scheduler_name}', not kube-scheduler: "
            "only Harvester's node rules are checked"
        )
    notes += [
        f"{what} is not judged (namespaceSelector is not evaluated yet)" for what in pa.unjudged
    ]
    return notes


def migration_timeouts(
    state: ClusterState,
    vmi: dict,
    settings: TimeoutSettings,
    vm: dict | None,
    migration_uid: str | None = None,
    facts: VMIFacts | None = None,
    inputs: MigrationInputs | None = None,
) -> tuple[Timeouts, list[str]]:
    """migration-guard's deadlines for `vmi` (`compute_timeouts`, InputError on a bad field) with
    KubeVirt's own limits, from the cached KubeVirt CR, policies and namespace labels
    (rules.kubevirt_limits); a VMI KubeVirt's size cannot be read of keeps migration-guard's
    alone, with a note. `facts` and `inputs`: the VMI's VMIFacts and `ClusterState.migration_inputs`
    when the caller has them."""
    timeouts = compute_timeouts(
        vmi,
        settings,
        vm,
        data=facts.data_bytes if facts else None,
        overrides=facts.overrides if facts else None,
    )
    if inputs is None:
        namespace = ((vmi.get("metadata") or {}).get("namespace")) or "default"
        inputs = state.migration_inputs(namespace)
    config, policies, namespace_labels = inputs
    try:
        out = kubevirt_timeouts(
            vmi,
            timeouts,
            config,
            policies,
            namespace_labels,
            migration_uid,
            facts.kubevirt_data if facts is not None else None,
        )
    except InputError as exc:
        return timeouts, [f"KubeVirt's own migration limits are not known: {exc}"]
    return out, []


def evaluate_migration(
    state: ClusterState,
    namespace: str,
    vmi_name: str,
    *,
    vmim: dict | None = None,
    target: str | None = None,
    settings: TimeoutSettings = TimeoutSettings(),  # noqa: B008 (frozen, shared on purpose)
    policy: Policy = ALL_DENY,
    usage: Callable[[str], Usage] | None = None,
) -> Report:
    """Decide whether VMI `namespace/vmi_name` may live-migrate, and where.

    `policy` (rules.policy) then sorts the problems of migration-guard's own rules into denials
    and warnings, and may exempt the VM; by default every rule denies. `usage`: what each node's
    pods request, when not the cluster's as it is (a drain plan adds what it placed).

    Target: `target` when given, else the one `vmim` asks for (`migration_target`). Without a
    VMIM the VMI's target annotation is not used, so a target lookup lists every node.
    With a target only that node is evaluated (`Report.nodes` holds it, or nothing when it does
    not exist: TargetNotFound); without one every node is, in name order, linearly.
    A missing VMI gives VMINotRunning and no node evaluation; so does a decentralized `vmim`
    (webhook.rules.decentralized: its nodes are not judged here). `vmim` is never counted as
    another migration in progress. Malformed objects raise InputError naming the object and field.
    """
    view = state.vmi_view(namespace, vmi_name)
    report = _evaluate(state, view, namespace, vmi_name, vmim, target, settings, usage)
    return with_policy(report, policy, view, namespace)


def with_policy(report: Report, policy: Policy, view: VMIView, namespace: str) -> Report:
    """`report` as `policy` decides it: warned and disabled rules out of the denials, and the
    exemption that leaves the VM alone (if any)."""
    exemption = None
    vm = view.vm or view.vmi or {}
    labels = (vm.get("metadata") or {}).get("labels")
    if (isinstance(labels, dict) and EXEMPT_LABEL in labels) or policy.exempts:
        exemption = policy.exemption(
            namespace, view.namespace_labels, labels if isinstance(labels, dict) else {}
        )
    if not policy.relaxed and exemption is None:
        return report
    blockers, warnings = policy.split(report.blockers)
    nodes = report.nodes
    if policy.relaxes_node_rules:
        nodes = tuple(
            NodeVerdict(v.name, *(tuple(part) for part in policy.split(v.reasons)))
            for v in report.nodes
        )
    return replace(
        report,
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        nodes=nodes,
        exemption=exemption,
    )


def _evaluate(
    state: ClusterState,
    view: VMIView,
    namespace: str,
    vmi_name: str,
    vmim: dict | None,
    target: str | None,
    settings: TimeoutSettings,
    usage: Callable[[str], Usage] | None,
) -> Report:
    vm_ref = f"{namespace}/{vmi_name}"
    vmi, vf = view.vmi, view.facts
    side = decentralized_side(vmim)
    added = added_node_selector(vmim)
    if target is None and vmim is not None and side is None:
        target = migration_target(vmim, vmi, added)
    if vmi is None:
        return Report(vm_ref, None, target, (vmi_missing(vm_ref),), (), None, nodes_evaluated=False)

    # With the VMI's facts (computed when it was stored) the same rules run minus the VMI-only
    # reads; without them (a malformed VMI) everything is read here, naming the bad field.
    blockers = vm_blockers(vmi, view.vmims, vmim, vf.blockers if vf else None, side)
    networks, missing_nads = resolve_networks(vmi, state.nad, vf.networks if vf else None)
    blockers += missing_nads
    source = vf.node_name if vf else node_name(vmi)
    inputs = (view.config, view.policies, view.namespace_labels)
    timeouts, kv_notes = migration_timeouts(state, vmi, settings, view.vm, facts=vf, inputs=inputs)
    if side is not None:
        return Report(
            vm_ref,
            source,
            None,
            tuple(blockers),
            (),
            timeouts,
            nodes_evaluated=False,
            notes=(DECENTRALIZED_NOTES[side], *kv_notes),
        )
    source_node = _source_node(state, source, view.source_facts)
    pod = render_pod(
        vmi, vmim, view.launcher, source_node, vf.pod if vf else None, view.launcher_facts, added
    )
    blockers += pod.problems
    pa = _pod_affinity(state, pod)
    node_ctx = NodeContext(
        vm=vm_ref,
        pod=pod,
        source_node=source,
        networks=networks,
        usage=usage or state.node_usage,
        pod_affinity=pa,
    )

    verdicts: list[NodeVerdict]
    if target is not None:
        node, node_facts, used = state.node_view(target)
        if usage is None:
            node_ctx.usage = lambda _name: used
        verdicts = [evaluate_node(node, node_ctx, node_facts)] if node is not None else []
    else:
        if usage is None:
            node_ctx.usage_maps = state.usage_by_node()
        verdicts = evaluate_nodes(state.nodes_with_facts(), node_ctx)
        verdicts.sort(key=lambda v: v.name)

    return Report(
        vm=vm_ref,
        source_node=source,
        target=target,
        blockers=tuple(blockers),
        nodes=tuple(verdicts),
        timeouts=timeouts,
        notes=tuple(_notes(pod, source, pa) + kv_notes),
    )
