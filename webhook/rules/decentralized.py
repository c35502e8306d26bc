"""Decentralized live migration (KubeVirt's DecentralizedLiveMigration feature gate).

A VMIM with `spec.sendTo` is the source side: its VMI runs here and leaves for another cluster (or
namespace) through KubeVirt's synchronization controller. A VMIM with `spec.receive` is the target
side: its VMI waits here in phase WaitingForSync, with no node, for the VM to arrive. KubeVirt
treats a VMIM as decentralized only when exactly one of the two is set (`IsDecentralized`).

What migration-guard can judge on each side, and what it cannot (it never denies what it cannot):
- both sides: the VM's own restrictions (bridge on the management network, CD-ROM, container disk,
  PCI passthrough) and another migration in progress. Like virt-api, a LiveMigratable=False
  condition with reason DisksNotMigratable does not stop a decentralized migration.
- source side: the VM must be running. Its target node is in the other cluster, out of sight, so
  no node of this cluster is judged, and a node pin does not matter (the VM leaves this cluster).
- target side: the VMI is not running yet (WaitingForSync), and the source's node, CPU and machine
  type are not known here, so neither the phase nor any node is judged: the receiving pod is placed
  by kube-scheduler once KubeVirt renders it.
"""

from __future__ import annotations

from webhook.rules import access as a

SOURCE = "source"
TARGET = "target"
DISKS_NOT_MIGRATABLE = "DisksNotMigratable"

NOTES = {
    SOURCE: (
        "decentralized migration (spec.sendTo): the VM leaves for another cluster, whose nodes "
        "migration-guard does not see; only the VM itself is checked"
    ),
    TARGET: (
        "decentralized migration (spec.receive): the VMI waits here for a VM from another "
        "cluster; its phase and the nodes that could receive it are not judged (the source's "
        "node and CPU are not known here), only the VM itself is checked"
    ),
}


def decentralized_side(vmim: dict | None) -> str | None:
    """SOURCE, TARGET, or None for an ordinary migration (also when both fields are set)."""
    if vmim is None:
        return None
    spec = vmim.get("spec")
    if isinstance(spec, dict) and "sendTo" not in spec and "receive" not in spec:
        return None  # every migration but a decentralized one: nothing to check
    ctx = a.describe(vmim, "VirtualMachineInstanceMigration")
    send = a.get(vmim, "spec.sendTo", dict, ctx) is not None
    receive = a.get(vmim, "spec.receive", dict, ctx) is not None
    if send == receive:
        return None
    return SOURCE if send else TARGET
