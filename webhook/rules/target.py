"""Which node a migration asks for.

Harvester 1.7+ puts the chosen node in the VMIM's `spec.addedNodeSelector` as
`kubernetes.io/hostname: <node>`; older Harvester annotates the VMI with
`harvesterhci.io/migrationTargetNodeName`. The VMIM wins when both say something.
"""

from __future__ import annotations

from webhook.rules import access as a

HOSTNAME_LABEL = "kubernetes.io/hostname"
TARGET_ANNOTATION = "harvesterhci.io/migrationTargetNodeName"
_NONE: dict[str, str] = {}


def added_node_selector(vmim: dict | None) -> dict[str, str]:
    """The VMIM's `spec.addedNodeSelector` (empty without a VMIM)."""
    if vmim is None:
        return {}
    spec = vmim.get("spec")
    selector = spec.get("addedNodeSelector", _NONE) if type(spec) is dict else None
    if selector is _NONE:
        return {}
    if type(selector) is dict and a.is_str_map(selector):
        return selector  # the usual case: no description of the VMIM for an error message
    ctx = a.describe(vmim, "VirtualMachineInstanceMigration")
    return a.str_map(vmim, "spec.addedNodeSelector", ctx)


def migration_target(
    vmim: dict | None, vmi: dict | None, added: dict[str, str] | None = None
) -> str | None:
    """The requested target node name, or None for "any eligible node". `added`: the VMIM's
    `added_node_selector` when the caller has it."""
    if vmim is not None:
        selector = added if added is not None else added_node_selector(vmim)
        if selector.get(HOSTNAME_LABEL):
            return selector[HOSTNAME_LABEL]
    if vmi is not None:
        ctx = a.describe(vmi, "VirtualMachineInstance")
        annotations = a.str_map(vmi, "metadata.annotations", ctx)
        if annotations.get(TARGET_ANNOTATION):
            return annotations[TARGET_ANNOTATION]
    return None
