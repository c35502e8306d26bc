"""VirtualMachines as a Harvester user creates them, for the KubeVirt profile: virt-api's mutator
fills in KubeVirt's defaults (host-model CPU, q35, requests) and virt-controller starts them."""

from __future__ import annotations

from tests.webhook_objects import vmim

__all__ = ["container_disk", "create_migration", "harvester_vm", "iso_cdrom", "vmim"]


def harvester_vm(
    namespace: str,
    name: str,
    memory: str = "1Gi",
    cores: int = 1,
    volumes: list[dict] | None = None,
    disks: list[dict] | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    eviction_strategy: str | None = None,
) -> dict:
    """A VM with the management network on masquerade (Harvester's default) and `volumes`."""
    spec: dict = {
        "domain": {
            "cpu": {"cores": cores},
            "memory": {"guest": memory},
            "devices": {
                "disks": disks or [],
                "interfaces": [{"name": "default", "masquerade": {}, "model": "virtio"}],
            },
            # as Harvester writes them: limits, and requests after its CPU overcommit (1600 %)
            "resources": {
                "limits": {"cpu": str(cores), "memory": memory},
                "requests": {"cpu": f"{125 * cores}m", "memory": memory},
            },
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": volumes or [],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if eviction_strategy:
        spec["evictionStrategy"] = eviction_strategy
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "runStrategy": "Always",
            "template": {"metadata": {"labels": {"harvesterhci.io/vmName": name}}, "spec": spec},
        },
    }


def container_disk(
    name: str = "rootdisk", image: str = "quay.io/kubevirt/cirros-container-disk-demo"
) -> tuple[dict, dict]:
    """A disk and its containerDisk volume (a migration-guard blocker that KubeVirt migrates)."""
    return {"name": name, "disk": {"bus": "virtio"}}, {
        "name": name,
        "containerDisk": {"image": image},
    }


def iso_cdrom(api, namespace: str, name: str = "iso") -> tuple[dict, dict]:
    """A CD-ROM with an ISO on a shared (ReadWriteMany) volume, as Harvester attaches one: a
    migration-guard blocker that KubeVirt would migrate. Creates the PVC and a PV bound to it
    (kube-controller-manager binds them); the PV is `<namespace>-<name>`, to delete after."""
    from webhook.cluster.kubeapi import call

    pv = f"{namespace}-{name}"
    call(api, "POST", "/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": f"/var/lib/{pv}"}, "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain"},
    })  # fmt: skip
    call(api, "POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                 "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    disk = {"name": name, "cdrom": {"bus": "sata"}}
    return disk, {"name": name, "persistentVolumeClaim": {"claimName": name}}


def create_migration(api, namespace: str, vmi: str, name: str | None = None) -> dict:
    """POST `vmim(...)` named `<vmi>-migration` unless named."""
    from webhook.cluster.kubeapi import call, kubevirt_path

    body = vmim(namespace, name or f"{vmi}-migration", vmi)
    return call(api, "POST", kubevirt_path(namespace, "virtualmachineinstancemigrations"), body)
