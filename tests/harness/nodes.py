"""Harvester-like nodes for KWOK: the labels KubeVirt's node-labeller writes and the allocatable a
kubelet with KubeVirt's device plugins reports, so virt-controller's launcher pods schedule on them
as they would on a Harvester host.

KWOK manages nodes annotated `kwok.x-k8s.io/node: fake` (it keeps the capacity and allocatable given
here, and adds conditions, addresses and node info); no taint is added, since launcher pods carry
only the VMI's tolerations.
"""

from __future__ import annotations

from collections.abc import Iterable

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
# What virt-handler reports as the VMI's resolved machine type, and the node-labeller's labels for it.
MACHINE_TYPE = "pc-q35-rhel9.6.0"
MACHINE_TYPES = ("q35", MACHINE_TYPE)
HOST_MODEL = "Skylake-Client-IBRS"
HOST_MODEL_FEATURES = ("ibpb", "md-clear", "ssbd", "stibp")
SUPPORTED_MODELS = ("Penryn", "Nehalem", "Westmere", "SandyBridge", "IvyBridge", "Haswell-noTSX",
                    "Broadwell-noTSX", HOST_MODEL)  # fmt: skip
FEATURES = ("aes", "avx", "avx2", "ibpb", "md-clear", "pcid", "ssbd", "stibp", "vmx", "x2apic")


def cpu_labels(
    host_model: str = HOST_MODEL,
    vendor: str = "Intel",
    models: Iterable[str] = SUPPORTED_MODELS,
    features: Iterable[str] = FEATURES,
    host_model_features: Iterable[str] = HOST_MODEL_FEATURES,
) -> dict[str, str]:
    """The CPU labels the node-labeller writes for a host of that model and vendor."""
    labels = {f"host-model-cpu.node.kubevirt.io/{host_model}": "true"}
    labels |= {f"cpu-vendor.node.kubevirt.io/{vendor}": "true"}
    for model in models:
        labels[f"cpu-model.node.kubevirt.io/{model}"] = "true"
        labels[f"cpu-model-migration.node.kubevirt.io/{model}"] = "true"
    labels |= {f"cpu-feature.node.kubevirt.io/{f}": "true" for f in features}
    labels |= {
        f"host-model-required-features.node.kubevirt.io/{f}": "true" for f in host_model_features
    }
    labels |= {f"machine-type.node.kubevirt.io/{m}": "true" for m in MACHINE_TYPES}
    return labels


def harvester_node(
    name: str,
    cpu: str = "32",
    memory: str = "128Gi",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    allocatable: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> dict:
    """A Node manifest (status included, as a kubelet registers it) for a Harvester host."""
    resources = {
        "cpu": cpu,
        "memory": memory,
        "pods": "200",
        "ephemeral-storage": "200Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "devices.kubevirt.io/kvm": "1k",
        "devices.kubevirt.io/tun": "1k",
        "devices.kubevirt.io/vhost-net": "1k",
        **(allocatable or {}),
    }
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubevirt.io/schedulable": "true",
        "network.harvesterhci.io/mgmt": "true",
        **cpu_labels(),
        **(labels or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {**KWOK_ANNOTATION, **(annotations or {})},
        },
        "spec": {"unschedulable": unschedulable} if unschedulable else {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }
