"""VM blockers (DESIGN "VM blockers"): what stops a VM from live-migrating to any node.

Every blocker found is returned, in the order of the DESIGN table, each naming the disk, volume,
device, network or migration at fault, the field, and what to do.
"""

from __future__ import annotations

from webhook.rules import access as a
from webhook.rules.decentralized import DISKS_NOT_MIGRATABLE, SOURCE
from webhook.rules.model import Problem
from webhook.rules.target import HOSTNAME_LABEL

ALLOW_POD_BRIDGE = "kubevirt.io/allow-pod-bridge-network-live-migration"
FINAL_MIGRATION_PHASES = ("Succeeded", "Failed")


def vmi_ctx(vmi: dict) -> str:
    return a.describe(vmi, "VirtualMachineInstance")


def management_network_bridge(vmi: dict) -> list[Problem]:
    ctx = vmi_ctx(vmi)
    if ALLOW_POD_BRIDGE in a.str_map(vmi, "metadata.annotations", ctx):
        return []
    pod_networks = {
        a.get(net, "name", str, ctx, "", f"spec.networks[{i}]")
        for i, net in a.dicts(vmi, "spec.networks", ctx)
        if "pod" in net
    }
    out = []
    for i, iface in a.dicts(vmi, "spec.domain.devices.interfaces", ctx):
        name = a.get(iface, "name", str, ctx, "", f"spec.domain.devices.interfaces[{i}]")
        if name in pod_networks and "bridge" in iface:
            out.append(
                Problem(
                    "ManagementNetworkBridge",
                    f"interface '{name}' uses bridge binding on the management (pod) network: "
                    "change it to masquerade binding (or move the VM to a VLAN network)",
                    f"spec.domain.devices.interfaces[{i}]",
                )
            )
    return out


def _volumes(vmi: dict) -> list[tuple[int, dict]]:
    return a.dicts(vmi, "spec.volumes", vmi_ctx(vmi))


def _volume_source(volume: dict) -> str:
    """ "PVC 'x'" / "containerDisk image 'y'" / "volume" for messages."""
    claim = volume.get("persistentVolumeClaim")
    if isinstance(claim, dict) and isinstance(claim.get("claimName"), str):
        return f"PVC '{claim['claimName']}'"
    dv = volume.get("dataVolume")
    if isinstance(dv, dict) and isinstance(dv.get("name"), str):
        return f"DataVolume '{dv['name']}'"
    cd = volume.get("containerDisk")
    if isinstance(cd, dict) and isinstance(cd.get("image"), str):
        return f"containerDisk image '{cd['image']}'"
    return "a volume"


def cdrom_volumes(vmi: dict) -> list[Problem]:
    ctx = vmi_ctx(vmi)
    volumes = {a.get(v, "name", str, ctx, "", f"spec.volumes[{i}]"): v for i, v in _volumes(vmi)}
    out = []
    for i, disk in a.dicts(vmi, "spec.domain.devices.disks", ctx):
        name = a.get(disk, "name", str, ctx, "", f"spec.domain.devices.disks[{i}]")
        if "cdrom" in disk and name in volumes:
            out.append(
                Problem(
                    "CDROMVolume",
                    f"CD-ROM '{name}' has {_volume_source(volumes[name])} inserted: "
                    "eject the CD-ROM before migrating",
                    f"spec.domain.devices.disks[{i}]",
                )
            )
    return out


def container_disk_volumes(vmi: dict) -> list[Problem]:
    ctx = vmi_ctx(vmi)
    out = []
    for i, volume in _volumes(vmi):
        if "containerDisk" in volume:
            name = a.get(volume, "name", str, ctx, "", f"spec.volumes[{i}]")
            out.append(
                Problem(
                    "ContainerDiskVolume",
                    f"volume '{name}' is a containerDisk ({_volume_source(volume)}): "
                    "remove the volume before migrating",
                    f"spec.volumes[{i}]",
                )
            )
    return out


def pci_devices(vmi: dict) -> list[Problem]:
    ctx = vmi_ctx(vmi)
    out = []
    for field, what in (("hostDevices", "host device"), ("gpus", "GPU")):
        for i, dev in a.dicts(vmi, f"spec.domain.devices.{field}", ctx):
            base = f"spec.domain.devices.{field}[{i}]"
            name = a.get(dev, "name", str, ctx, "", base)
            device = a.get(dev, "deviceName", str, ctx, "", base)
            out.append(
                Problem(
                    "PCIDevicePassthrough",
                    f"{what} '{name}' ({device}) is passed through to the VM: "
                    "remove the device before migrating",
                    f"spec.domain.devices.{field}[{i}]",
                )
            )
    return out


def node_pinned(vmi: dict) -> list[Problem]:
    selector = a.str_map(vmi, "spec.nodeSelector", vmi_ctx(vmi))
    if HOSTNAME_LABEL not in selector:
        return []
    return [
        Problem(
            "NodePinned",
            f"the VM is pinned to node '{selector[HOSTNAME_LABEL]}' by nodeSelector "
            f"{HOSTNAME_LABEL}: remove the pin to migrate it",
            f"spec.nodeSelector[{HOSTNAME_LABEL}]",
        )
    ]


def not_running(vmi: dict) -> list[Problem]:
    phase = a.get(vmi, "status.phase", str, vmi_ctx(vmi), "")
    if phase == "Running":
        return []
    return [
        Problem(
            "VMINotRunning",
            f"the VM is not running (VMI phase {phase or 'unknown'}): start the VM first",
            "status.phase",
        )
    ]


def vmi_missing(vm: str) -> Problem:
    return Problem(
        "VMINotRunning",
        f"VM {vm} has no VirtualMachineInstance, so it is not running: start the VM first",
    )


def _same_object(x: dict, y: dict | None) -> bool:
    if y is None:
        return False
    mx, my = x.get("metadata") or {}, y.get("metadata") or {}
    if not isinstance(my, dict):
        return False
    if mx.get("uid") and my.get("uid"):
        return mx.get("uid") == my.get("uid")
    return bool(my.get("name")) and (mx.get("namespace"), mx.get("name")) == (
        my.get("namespace") or mx.get("namespace"),
        my.get("name"),
    )


def migrations_in_progress(vmims: list[dict], admitted: dict | None) -> list[Problem]:
    """Other VMIMs of the VMI that are not final; the one being admitted never counts."""
    out = []
    for vmim in sorted(vmims, key=lambda m: a.name_of(m, a.describe(m))):
        ctx = a.describe(vmim, "VirtualMachineInstanceMigration")
        phase = a.get(vmim, "status.phase", str, ctx, "")
        if phase in FINAL_MIGRATION_PHASES or _same_object(vmim, admitted):
            continue
        ns, name = a.namespace_of(vmim, ctx), a.name_of(vmim, ctx)
        out.append(
            Problem(
                "MigrationInProgress",
                f"migration '{name}' (phase {phase or 'Pending'}) is still in progress: wait for "
                f"it to finish, or abort it (kubectl delete vmim -n {ns} {name})",
            )
        )
    return out


def not_live_migratable(vmi: dict, decentralized: bool = False) -> list[Problem]:
    """KubeVirt's LiveMigratable=False; DisksNotMigratable does not stop a decentralized one."""
    ctx = vmi_ctx(vmi)
    out = []
    for i, cond in a.dicts(vmi, "status.conditions", ctx):
        if cond.get("type") == "LiveMigratable" and cond.get("status") == "False":
            reason = a.get(cond, "reason", str, ctx, "", f"status.conditions[{i}]")
            if decentralized and reason == DISKS_NOT_MIGRATABLE:
                continue
            message = a.get(cond, "message", str, ctx, "", f"status.conditions[{i}]")
            detail = ": ".join(x for x in (reason, message) if x) or "no reason given"
            out.append(
                Problem(
                    "NotLiveMigratable",
                    f"KubeVirt reports the VM is not live-migratable ({detail}): fix what KubeVirt "
                    "names",
                    f"status.conditions[{i}]",
                )
            )
    return out


def vmi_blockers(
    vmi: dict, side: str | None = None
) -> tuple[tuple[Problem, ...], tuple[Problem, ...]]:
    """The blockers that depend on the VMI alone: (those listed before, after the migrations).

    `side`: the decentralized side of the migration (webhook.rules.decentralized), which drops
    what that side cannot judge.
    """
    before = (
        *management_network_bridge(vmi),
        *cdrom_volumes(vmi),
        *container_disk_volumes(vmi),
        *pci_devices(vmi),
        *(node_pinned(vmi) if side is None else ()),
        *(not_running(vmi) if side in (None, SOURCE) else ()),
    )
    return before, tuple(not_live_migratable(vmi, decentralized=side is not None))


def vm_blockers(
    vmi: dict,
    vmims: list[dict],
    admitted: dict | None = None,
    fixed: tuple[tuple[Problem, ...], tuple[Problem, ...]] | None = None,
    side: str | None = None,
) -> list[Problem]:
    """Every blocker of a present VMI, in DESIGN order.

    `fixed`: `vmi_blockers(vmi)` when the caller has it already (ClusterState.vmi_facts); not
    used for a decentralized `side`.
    """
    before, after = vmi_blockers(vmi, side) if fixed is None or side else fixed
    return [*before, *migrations_in_progress(vmims, admitted), *after]
