"""Which node a migration asks for.

Harvester 1.7+ puts the chosen node in the VMIM's `spec.addedNodeSelector` as
`kubernetes.io/hostname: <node>`; older Harvester annotates the VMI with
`harvesterhci.io/migrationTargetNodeName`. The VMIM wins when both say something.
"""

from __future__ import annotations

from webhook.rules import access as a

HOSTNAME_LABEL = "kubernetes.io/hostname"
TARGET_ANNOTATION = "harvesterhci.io/migrationTargetNodeName"


def migration_target(vmim: dict | None, vmi: dict | None) -> str | None:
    """The requested target node name, or None for "any eligible node"."""
    if vmim is not None:
        ctx = a.describe(vmim, "VirtualMachineInstanceMigration")
        selector = a.str_map(vmim, "spec.addedNodeSelector", ctx)
        if selector.get(HOSTNAME_LABEL):
            return selector[HOSTNAME_LABEL]
    if vmi is not None:
        ctx = a.describe(vmi, "VirtualMachineInstance")
        annotations = a.str_map(vmi, "metadata.annotations", ctx)
        if annotations.get(TARGET_ANNOTATION):
            return annotations[TARGET_ANNOTATION]
    return None
