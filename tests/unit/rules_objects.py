"""Harvester-shaped objects for rule-engine tests (plain dicts, as the API returns them)."""

from __future__ import annotations

import copy
from typing import Any

NS = "default"
ALLOCATABLE = {
    "cpu": "16",
    "memory": "64Gi",
    "pods": "110",
    "devices.kubevirt.io/kvm": "1k",
    "devices.kubevirt.io/tun": "1k",
    "devices.kubevirt.io/vhost-net": "1k",
}


def node(name: str = "node-2", *, labels: dict | None = None, **kw: Any) -> dict:
    """A healthy, schedulable Harvester node with the `data` cluster network."""
    base_labels = {
        "kubernetes.io/hostname": name,
        "kubevirt.io/schedulable": "true",
        "network.harvesterhci.io/mgmt": "true",
        "network.harvesterhci.io/data": "true",
        "cpu-model.node.kubevirt.io/Cascadelake-Server": "true",
        "host-model-cpu.node.kubevirt.io/Cascadelake-Server": "true",
        "cpu-model-migration.node.kubevirt.io/Cascadelake-Server": "true",
        "cpu-vendor.node.kubevirt.io/Intel": "true",
    }
    base_labels.update(labels or {})
    obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {k: v for k, v in base_labels.items() if v is not None},
            "annotations": kw.pop("annotations", {}),
        },
        "spec": kw.pop("spec", {}),
        "status": {
            "allocatable": kw.pop("allocatable", ALLOCATABLE),
            "conditions": kw.pop("conditions", [{"type": "Ready", "status": "True"}]),
        },
    }
    assert not kw, kw
    return obj


def vmi(name: str = "vm1", **kw: Any) -> dict:
    """A running Harvester VMI on node-1: masquerade management network, one VLAN network."""
    spec: dict = {
        "domain": {
            "cpu": {"cores": 2, "sockets": 1, "threads": 1},
            "memory": {"guest": kw.pop("memory", "8Gi")},
            "resources": {"requests": {"cpu": "125m", "memory": "8Gi"}},
            "devices": {
                "disks": [{"name": "disk-0", "disk": {"bus": "virtio"}, "bootOrder": 1}],
                "interfaces": [
                    {"name": "default", "model": "virtio", "masquerade": {}},
                    {"name": "nic-1", "model": "virtio", "bridge": {}},
                ],
            },
        },
        "networks": [
            {"name": "default", "pod": {}},
            {"name": "nic-1", "multus": {"networkName": f"{NS}/vlan100"}},
        ],
        "volumes": [{"name": "disk-0", "persistentVolumeClaim": {"claimName": f"{name}-disk-0"}}],
    }
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "annotations": kw.pop("annotations", {}),
        },
        "spec": spec,
        "status": {
            "phase": kw.pop("phase", "Running"),
            "nodeName": kw.pop("node_name", "node-1"),
            "conditions": kw.pop(
                "conditions",
                [{"type": "Ready", "status": "True"}, {"type": "LiveMigratable", "status": "True"}],
            ),
        },
    }
    assert not kw, kw
    return obj


def nad(name: str = "vlan100", cluster_network: str | None = "data", ns: str = NS) -> dict:
    labels = {"network.harvesterhci.io/type": "L2VlanNetwork"}
    if cluster_network:
        labels["network.harvesterhci.io/clusternetwork"] = cluster_network
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"config": "{}"},
    }


def launcher(
    vmi_name: str = "vm1",
    node_name: str = "node-1",
    *,
    cpu: str = "125m",
    memory: str = "8448Mi",
    selector: dict | None = None,
    phase: str = "Running",
    name: str | None = None,
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or f"virt-launcher-{vmi_name}-abcde",
            "namespace": NS,
            "labels": {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": vmi_name},
            "managedFields": [{"manager": "virt-controller"}],
        },
        "spec": {
            "nodeName": node_name,
            "nodeSelector": selector
            if selector is not None
            else {
                "kubevirt.io/schedulable": "true",
                "host-model-cpu.node.kubevirt.io/Cascadelake-Server": "true",
            },
            "containers": [
                {
                    "name": "compute",
                    "image": "virt-launcher",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
            "volumes": [{"name": "private", "emptyDir": {}}],
        },
        "status": {"phase": phase, "podIP": "10.52.0.10"},
    }


def pod(
    name: str,
    node_name: str,
    cpu: str = "1",
    memory: str = "1Gi",
    phase: str = "Running",
    ns: str = "kube-system",
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "nodeName": node_name,
            "containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
            ],
        },
        "status": {"phase": phase},
    }


def vmim(
    name: str = "mig-1",
    vmi_name: str = "vm1",
    *,
    phase: str | None = None,
    target: str | None = None,
    selector: dict | None = None,
) -> dict:
    spec: dict = {"vmiName": vmi_name}
    if target is not None:
        spec["addedNodeSelector"] = {"kubernetes.io/hostname": target}
    if selector is not None:
        spec["addedNodeSelector"] = selector
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": spec,
    }
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def vm(name: str = "vm1", annotations: dict | None = None) -> dict:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {"runStrategy": "RerunOnFailure"},
    }


def cluster(*extra: dict, nodes: list[dict] | None = None) -> list[dict]:
    """A clean scene: vm1 on node-1 with its launcher pod; node-1 (source) and node-2."""
    objs = [node("node-1"), node("node-2")] if nodes is None else list(nodes)
    objs += [vmi(), vm(), nad(), launcher()]
    objs += list(extra)
    return copy.deepcopy(objs)
