"""Harvester-like objects for the webhook tests: nodes, NADs, VMs, VMIs, launcher pods, VMIMs.

They look like what Harvester 1.x creates (labels, annotations, masquerade on the management
network, a bridge NAD on a cluster network) so the webhook is tested on realistic shapes.
"""

from __future__ import annotations

import copy
import json

CLUSTER_NETWORK = "vlan100"
# What KubeVirt's device plugins add to a Harvester node's allocatable (launcher pods request them).
DEVICE_PLUGINS = {
    "devices.kubevirt.io/kvm": "1k",
    "devices.kubevirt.io/tun": "1k",
    "devices.kubevirt.io/vhost-net": "1k",
}


def node(
    name: str,
    *,
    cordoned: bool = False,
    labels: dict[str, str] | None = None,
    cpu: str = "16",
    memory: str = "64Gi",
) -> dict:
    base_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubevirt.io/schedulable": "true",
        f"network.harvesterhci.io/{CLUSTER_NETWORK}": "true",
        "node-role.kubernetes.io/control-plane": "true",
    }
    obj: dict = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {**base_labels, **(labels or {})}},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "200", **DEVICE_PLUGINS},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "200", **DEVICE_PLUGINS},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }
    return obj


def nad(
    namespace: str, name: str = CLUSTER_NETWORK, cluster_network: str = CLUSTER_NETWORK
) -> dict:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"network.harvesterhci.io/clusternetwork": cluster_network},
        },
        "spec": {
            "config": json.dumps(
                {
                    "cniVersion": "0.3.1",
                    "name": name,
                    "type": "bridge",
                    "bridge": f"{cluster_network}-br",
                    "vlan": 100,
                }
            )
        },
    }


def _domain(cdrom: bool, pci: bool, memory: str) -> dict:
    disks = [{"name": "rootdisk", "bootOrder": 1, "disk": {"bus": "virtio"}}]
    if cdrom:
        disks.append({"name": "cdrom-disk", "bootOrder": 2, "cdrom": {"bus": "sata"}})
    devices: dict = {
        "disks": disks,
        "interfaces": [
            {"name": "default", "masquerade": {}, "model": "virtio"},
            {"name": "nic-1", "bridge": {}, "model": "virtio"},
        ],
    }
    if pci:
        devices["hostDevices"] = [{"name": "gpu-passthrough", "deviceName": "nvidia.com/GP104GL"}]
    return {
        "cpu": {"cores": 2, "sockets": 1, "threads": 1},
        "memory": {"guest": memory},
        "resources": {"requests": {"memory": memory, "cpu": "125m"}},
        "devices": devices,
    }


def _volumes(name: str, cdrom: bool) -> list[dict]:
    vols = [{"name": "rootdisk", "persistentVolumeClaim": {"claimName": f"{name}-rootdisk"}}]
    if cdrom:
        vols.append({"name": "cdrom-disk", "persistentVolumeClaim": {"claimName": f"{name}-iso"}})
    return vols


def _networks(namespace: str) -> list[dict]:
    return [
        {"name": "default", "pod": {}},
        {"name": "nic-1", "multus": {"networkName": f"{namespace}/{CLUSTER_NETWORK}"}},
    ]


def vm(namespace: str, name: str, *, cdrom: bool = False, pci: bool = False) -> dict:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"harvesterhci.io/creator": "harvester"},
        },
        "spec": {
            "runStrategy": "RerunOnFailure",
            "template": {
                "metadata": {"labels": {"harvesterhci.io/vmName": name}},
                "spec": {
                    "domain": _domain(cdrom, pci, "2Gi"),
                    "networks": _networks(namespace),
                    "volumes": _volumes(name, cdrom),
                },
            },
        },
    }


def vmi(
    namespace: str,
    name: str,
    node_name: str,
    *,
    cdrom: bool = False,
    pci: bool = False,
    memory: str = "2Gi",
) -> dict:
    """A Running VMI on `node_name` (status must be written through the status subresource)."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"harvesterhci.io/vmName": name, "kubevirt.io/nodeName": node_name},
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachine",
                    "name": name,
                    "uid": "00000000-0000-0000-0000-000000000001",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "domain": _domain(cdrom, pci, memory),
            "networks": _networks(namespace),
            "volumes": _volumes(name, cdrom),
            "evictionStrategy": "LiveMigrateIfPossible",
        },
        "status": {
            "phase": "Running",
            "nodeName": node_name,
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "LiveMigratable", "status": "True"},
            ],
        },
    }


def launcher_pod(namespace: str, vmi_name: str, node_name: str, memory: str = "2Gi") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"virt-launcher-{vmi_name}-abcde",
            "namespace": namespace,
            "labels": {
                "kubevirt.io": "virt-launcher",
                "vm.kubevirt.io/name": vmi_name,
                "kubevirt.io/created-by": "00000000-0000-0000-0000-000000000002",
            },
        },
        "spec": {
            "nodeName": node_name,
            "containers": [
                {
                    "name": "compute",
                    "image": "registry.suse.com/suse/sles/15.6/virt-launcher:1.4.0",
                    "resources": {"requests": {"cpu": "125m", "memory": memory}},
                }
            ],
        },
    }


def vmim(namespace: str, name: str, vmi_name: str, target: str | None = None) -> dict:
    spec: dict = {"vmiName": vmi_name}
    if target:
        spec["addedNodeSelector"] = {"kubernetes.io/hostname": target}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def review(
    obj: dict, *, uid: str = "uid-1", operation: str = "CREATE", dry_run: bool = False
) -> dict:
    """An AdmissionReview as kube-apiserver sends it for `obj`."""
    meta = obj.get("metadata", {})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": obj["kind"]},
            "resource": {
                "group": "kubevirt.io",
                "version": "v1",
                "resource": "virtualmachineinstancemigrations",
            },
            "operation": operation,
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "object": copy.deepcopy(obj),
            "dryRun": dry_run,
            "userInfo": {"username": "alice"},
        },
    }
