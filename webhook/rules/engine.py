"""evaluate_migration: the one decision the webhook, the extension, the enforcer and the CLI share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from webhook.rules import access as a
from webhook.rules.capacity import pod_requests, vmi_requests
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
    vmi = state.vmi(namespace, vmi_name)
    if target is None and vmim is not None:
        target = migration_target(vmim, vmi)
    if vmi is None:
        return Report(vm_ref, None, target, (vmi_missing(vm_ref),), (), None, nodes_evaluated=False)

    ctx = a.describe(vmi, "VirtualMachineInstance")
    blockers = vm_blockers(vmi, state.vmims_for_vmi(namespace, vmi_name), vmim)
    networks, missing_nads = resolve_networks(vmi, state.nad)
    blockers += missing_nads
    pod = state.launcher_pod(namespace, vmi_name)
    needed = pod_requests(pod) if pod is not None else vmi_requests(vmi)
    node_ctx = build_context(
        vmi,
        vm_ref,
        vmim=vmim,
        pod=pod,
        networks=networks,
        needed=needed,
        requested=state.node_requested,
    )

    verdicts: list[NodeVerdict]
    if target is not None:
        node = state.node(target)
        facts = state.node_facts(target)
        verdicts = [evaluate_node(node, node_ctx, facts)] if node is not None else []
    else:
        verdicts = [evaluate_node(n, node_ctx, f) for n, f in state.nodes_with_facts()]
        verdicts.sort(key=lambda v: v.name)

    timeouts = compute_timeouts(vmi, settings, state.vm(namespace, vmi_name))
    return Report(
        vm=vm_ref,
        source_node=a.get(vmi, "status.nodeName", str, ctx),
        target=target,
        blockers=tuple(blockers),
        nodes=tuple(verdicts),
        timeouts=timeouts,
    )
