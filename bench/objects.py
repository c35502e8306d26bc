"""Harvester-sized objects for the benchmarks: what a real cluster's API returns, bulk included.

Based on the shapes of tests/webhook_objects.py, with the weight real objects carry and no rule
reads (managedFields, the node's image list and KubeVirt's CPU labels, VMI status detail), so the
memory figure measures what the cache really holds after `ClusterState.apply` slims it.
"""

from __future__ import annotations

import json
import random

from tests import webhook_objects as wo
from tests.harness import nodes

NAMESPACE = "bench"
CPU_FEATURES = [
    "abm", "adx", "aes", "amd-ssbd", "amd-stibp", "arat", "avx", "avx2", "bmi1", "bmi2",
    "clflushopt", "clwb", "clzero", "cmp_legacy", "cr8legacy", "erms", "f16c", "fma", "fsgsbase",
    "fxsr_opt", "ibpb", "ibrs", "invpcid", "lahf_lm", "lbrv", "misalignsse", "movbe", "mmxext",
    "npt", "nrip-save", "pclmuldq", "pdpe1gb", "perfctr_core", "pku", "popcnt", "rdpid",
    "rdrand", "rdseed", "rdtscp", "sha-ni", "smap", "smep", "sse4.1", "sse4.2", "sse4a", "ssbd",
    "svm", "tsc-deadline", "umip", "vaes", "vmcb-clean", "vpclmulqdq", "wbnoinvd", "x2apic",
    "xgetbv1", "xsave", "xsavec", "xsaveerptr", "xsaveopt", "xsaves",
]  # fmt: skip
CPU_MODELS = ["EPYC", "EPYC-IBPB", "EPYC-Milan", "EPYC-Rome", "Opteron_G3", "Penryn", "Westmere"]


def _managed_fields(manager: str, n: int) -> list[dict]:
    """managedFields as server-side apply writes them: large, and read by no rule."""
    fields = {f"f:field-{i}": {} for i in range(n)}
    return [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": fields}, "f:status": {"f:conditions": {}}},
        },
        {
            "manager": f"{manager}-status",
            "operation": "Update",
            "subresource": "status",
            "apiVersion": "v1",
            "time": "2025-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": fields},
        },
    ]


def node(i: int, *, api_shape: bool = False) -> dict:
    """Node `node-i` as kubelet and KubeVirt's node-labeller leave it (~20 KB of JSON)."""
    name = f"node-{i}"
    obj = wo.node(name)
    labels = obj["metadata"]["labels"]
    labels.update(
        nodes.cpu_labels(
            host_model="EPYC-Milan",
            vendor="AMD",
            models=CPU_MODELS,
            features=CPU_FEATURES,
            host_model_features=CPU_FEATURES[:20],
        )
    )
    labels["kubernetes.io/arch"] = "amd64"
    labels["topology.kubernetes.io/zone"] = f"zone-{i % 3}"
    obj["metadata"]["annotations"] = {
        "kubevirt.io/heartbeat": "2025-01-01T00:00:00Z",
        "node.alpha.kubernetes.io/ttl": "0",
        "csi.volume.kubernetes.io/nodeid": '{"driver.longhorn.io":"' + name + '"}',
        "rke2.io/node-args": '["server","--cluster-reset=false","--disable","rke2-snapshot"]',
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    status = obj["status"]
    status["addresses"] = [
        {"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250}"},
        {"type": "Hostname", "address": name},
    ]
    status["nodeInfo"] = {
        "architecture": "amd64",
        "bootID": f"{i:08d}-0000-0000-0000-000000000000",
        "containerRuntimeVersion": "containerd://1.7.11-k3s2",
        "kernelVersion": "5.14.21-150500.55.39-default",
        "kubeletVersion": "v1.28.10+rke2r1",
        "machineID": f"{i:032d}",
        "operatingSystem": "linux",
        "osImage": "Harvester v1.3.1",
        "systemUUID": f"{i:08d}-1111-2222-3333-444444444444",
    }
    status["images"] = [
        {
            "names": [
                f"registry.suse.com/harvester/image-{k}@sha256:{k:064d}",
                f"registry.suse.com/harvester/image-{k}:v1.3.{k}",
            ],
            "sizeBytes": 100_000_000 + k,
        }
        for k in range(40)
    ]
    status["conditions"] = [
        {"type": t, "status": "False", "reason": f"No{t}", "message": f"kubelet has no {t}",
         "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ] + [status["conditions"][0]]  # fmt: skip
    status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
    if not api_shape:
        obj["metadata"]["managedFields"] = _managed_fields("kubelet", 120)
        obj["metadata"]["uid"] = f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd"
        obj["metadata"]["resourceVersion"] = str(1000 + i)
    return obj


def vmi(i: int, nodes: int, *, api_shape: bool = False) -> dict:
    """A Running VMI `vm-i` on node i % nodes with the status detail KubeVirt writes."""
    name, node_name = f"vm-{i}", f"node-{i % nodes}"
    obj = wo.vmi(NAMESPACE, name, node_name)
    obj["spec"]["networks"] = obj["spec"]["networks"][:1]  # management network (masquerade)
    obj["spec"]["domain"]["devices"]["interfaces"] = obj["spec"]["domain"]["devices"]["interfaces"][
        :1
    ]
    obj["spec"]["domain"]["cpu"]["model"] = "host-model"
    obj["spec"]["domain"]["firmware"] = {"uuid": f"{i:08d}-5555-6666-7777-888888888888"}
    obj["spec"]["domain"]["machine"] = {"type": "q35"}
    obj["metadata"]["annotations"] = {
        "harvesterhci.io/sshNames": "[]",
        "kubevirt.io/latest-observed-api-version": "v1",
        "kubevirt.io/storage-observed-api-version": "v1",
    }
    obj["metadata"]["finalizers"] = ["kubevirt.io/virtualMachineControllerFinalize"]
    status = obj["status"]
    status.update(
        {
            "activePods": {f"{i:08d}-pod": node_name},
            "guestOSInfo": {"id": "opensuse-leap", "name": "openSUSE Leap", "version": "15.5"},
            "interfaces": [
                {"name": "default", "interfaceName": "eth0", "ipAddress": f"10.52.{i // 250}.{i % 250}",
                 "mac": "52:54:00:12:34:56", "infoSource": "domain, guest-agent"}
            ],
            "launcherContainerImageVersion": "registry.suse.com/suse/sles/15.5/virt-launcher:1.1.0",
            "migrationMethod": "LiveMigration",
            "migrationTransport": "Unix",
            "qosClass": "Burstable",
            "volumeStatus": [
                {"name": "rootdisk", "target": "vda", "persistentVolumeClaimInfo": {
                    "accessModes": ["ReadWriteMany"], "capacity": {"storage": "10Gi"},
                    "filesystemOverhead": "0.055", "requests": {"storage": "10Gi"},
                    "volumeMode": "Block"}}
            ],
        }
    )  # fmt: skip
    if not api_shape:
        obj["metadata"]["managedFields"] = _managed_fields("virt-handler", 40)
        obj["metadata"]["uid"] = f"{i:08d}-aaaa-bbbb-cccc-eeeeeeeeeeee"
    return obj


def vm(i: int) -> dict:
    return wo.vm(NAMESPACE, f"vm-{i}")


def pod(i: int, nodes: int, vmis: int) -> dict:
    """Pod i: the virt-launcher of vm-i while i < vmis, else an ordinary workload pod."""
    node_name = f"node-{i % nodes}"
    if i < vmis:
        obj = wo.launcher_pod(NAMESPACE, f"vm-{i}", node_name)
    else:
        obj = wo.launcher_pod(NAMESPACE, f"app-{i}", node_name, memory="256Mi")
        obj["metadata"]["name"] = f"app-{i}"
        obj["metadata"]["labels"] = {"app": f"app-{i % 100}", "pod-template-hash": "5d8f7c9b6"}
    spec = obj["spec"]
    spec["volumes"] = [{"name": f"vol-{k}", "emptyDir": {}} for k in range(6)]
    spec["containers"][0]["env"] = [{"name": f"ENV_{k}", "value": "x" * 20} for k in range(10)]
    spec["containers"][0]["volumeMounts"] = [
        {"name": f"vol-{k}", "mountPath": f"/v{k}"} for k in range(6)
    ]
    spec["tolerations"] = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    ]
    obj["metadata"]["managedFields"] = _managed_fields("kube-controller-manager", 30)
    obj["metadata"]["uid"] = f"{i:08d}-aaaa-bbbb-cccc-ffffffffffff"
    obj["status"] = {
        "phase": "Running",
        "podIP": "10.52.0.1",
        "hostIP": "10.0.0.1",
        "conditions": [{"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "containerStatuses": [{"name": "compute", "ready": True, "restartCount": 0, "image": "x", "imageID": "y" * 64}],
    }  # fmt: skip
    return obj


def vmim(i: int, vmi_index: int, target: str | None) -> dict:
    return wo.vmim(NAMESPACE, f"mig-{i}", f"vm-{vmi_index}", target)


def review(obj: dict, uid: str) -> dict:
    return wo.review(obj, uid=uid)


def review_bodies(
    count: int, vmis: range, nodes: int, *, targeted: bool, seed: int, uid: str = "bench"
) -> list[bytes]:
    """AdmissionReviews of VMIM creates for random VMIs of `vmis`, as compact JSON bodies;
    targeted: at another node of `nodes` than the VMI's own, as Harvester's UI asks."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        vmi_index = rng.choice(vmis)
        target = None
        if targeted:
            target = f"node-{(vmi_index % nodes + 1 + rng.randrange(nodes - 1)) % nodes}"
        body = review(vmim(i, vmi_index, target), uid=f"{uid}-{seed}-{i}")
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out
