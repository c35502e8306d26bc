"""evaluate_migration: the one decision the webhook, the extension, the enforcer and the CLI share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from webhook.rules import access as a
from webhook.rules.capacity import vmi_requests
from webhook.rules.model import NodeVerdict, Report, TimeoutSettings
from webhook.rules.node_eligibility import build_context, evaluate_node, resolve_networks
from webhook.rules.target import migration_target
from webhook.rules.timeouts import compute_timeouts
from webhook.rules.vm_blockers import vm_blockers, vmi_missing

if TYPE_CHECKING:
    from webhook.state import ClusterState


def evaluate_migration(
    state: ClusterState,
    namespace: str,
    vmi_name: str,
    *,
    vmim: dict | None = None,
    target: str | None = None,
    settings: TimeoutSettings = TimeoutSettings(),  # noqa: B008 (frozen, shared on purpose)
) -> Report:
    """Decide whether VMI `namespace/vmi_name` may live-migrate, and where.

    Target: `target` when given, else the one `vmim` asks for (`migration_target`). Without a
    VMIM the VMI's target annotation is not used, so a target lookup lists every node.
    With a target only that node is evaluated (`Report.nodes` holds it, or nothing when it does
    not exist: TargetNotFound); without one every node is, in name order, linearly.
    A missing VMI gives VMINotRunning and no node evaluation. `vmim` is never counted as another
    migration in progress. Malformed objects raise InputError naming the object and field.
    """
    vm_ref = f"{namespace}/{vmi_name}"
    vmi, vf = state.vmi_with_facts(namespace, vmi_name)
    if target is None and vmim is not None:
        target = migration_target(vmim, vmi)
    if vmi is None:
        return Report(vm_ref, None, target, (vmi_missing(vm_ref),), (), None, nodes_evaluated=False)

    # With the VMI's facts (computed when it was stored) the same rules run minus the VMI-only
    # reads; without them (a malformed VMI) everything is read here, naming the bad field.
    ctx = a.describe(vmi, "VirtualMachineInstance")
    vmims = state.vmims_for_vmi(namespace, vmi_name)
    blockers = vm_blockers(vmi, vmims, vmim, vf.blockers if vf else None)
    networks, missing_nads = resolve_networks(vmi, state.nad)
    blockers += missing_nads
    pod, pod_needs = state.launcher_pod_and_requests(namespace, vmi_name)
    if pod_needs is not None:
        needed = pod_needs  # pod_requests(pod), computed when the pod was stored
    elif vf is not None:
        needed = vf.requests
    else:
        needed = vmi_requests(vmi)
    node_ctx = build_context(
        vmi,
        vm_ref,
        vmim=vmim,
        pod=pod,
        networks=networks,
        needed=needed,
        requested=state.node_requested,
        placement=vf.placement if vf else None,
    )

    verdicts: list[NodeVerdict]
    if target is not None:
        node = state.node(target)
        node_facts = state.node_facts(target)
        verdicts = [evaluate_node(node, node_ctx, node_facts)] if node is not None else []
    else:
        verdicts = [evaluate_node(n, node_ctx, f) for n, f in state.nodes_with_facts()]
        verdicts.sort(key=lambda v: v.name)

    vm = state.vm(namespace, vmi_name)
    timeouts = compute_timeouts(vmi, settings, vm, data=vf.data_bytes if vf else None)
    source = vf.placement.source_node if vf else a.get(vmi, "status.nodeName", str, ctx)
    return Report(
        vm=vm_ref,
        source_node=source,
        target=target,
        blockers=tuple(blockers),
        nodes=tuple(verdicts),
        timeouts=timeouts,
    )
