"""Seed the demo's KubeVirt profile with the Harvester-like cluster in examples/cluster.

The example files are cluster state as `kubectl get -o yaml` shows it (what `migration-guard check
--state examples/cluster` reads). On the real stack only what a person or Harvester creates is
created here; KubeVirt and Kubernetes make the rest:
- Nodes become KWOK nodes (annotation `kwok.x-k8s.io/node: fake`; no `kubevirt.io/heartbeat`,
  which virt-controller's node controller would find stale). KWOK reports them Ready and
  kube-controller-manager adds the cordon taint.
- NetworkAttachmentDefinitions as they are; a PersistentVolume and a PVC for every claim a VM uses
  (ReadWriteMany, as Longhorn provides, or ReadWriteOnce where the example says the PVC is not
  shared), bound by kube-controller-manager.
- Pods that are no example VM's virt-launcher (other workloads taking room), on their node.
- VMs as they are: virt-controller creates their VMIs and virt-launcher pods, kube-scheduler
  places each while the node the example shows it on is the only schedulable one.
- What the example VMI says virt-handler reported (`LiveMigratable=False`) is what the stand-in
  reports; a VM whose network the example leaves undefined starts with it, which is then removed;
  an example migration still Running is started and keeps transferring.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from kubernetes.client import ApiClient

from tests.harness.controlplane import ControlPlane
from tests.harness.nodes import KWOK_ANNOTATION
from tests.harness.virt_handler import Scenario, VirtHandler
from webhook.cluster.kubeapi import KubeError, call
from webhook.cluster.resources import RESOURCES
from webhook.cluster.state import NAD, NODE, POD, VM, VMI, VMIM

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cluster"
ORDER = [NODE, NAD, POD, VM, VMI, VMIM]
IMAGE = "registry.suse.com/suse/sles/15.6/virt-launcher:1.4.0"
DROP_META = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")
START_TIMEOUT_S = 90.0


class SeedError(RuntimeError):
    """The example could not be brought up; the message names the object."""


def example_objects(folder: Path = EXAMPLES) -> list[dict]:
    """Every object of the example files, `List`s expanded, in creation order."""
    objs: list[dict] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        text = path.read_text()
        docs = [json.loads(text)] if path.suffix == ".json" else yaml.safe_load_all(text)
        for doc in docs:
            objs.extend(_expand(doc))
    return sorted(objs, key=lambda o: ORDER.index(o["kind"]))


def _expand(doc: dict | None) -> Iterator[dict]:
    if not doc:
        return
    if doc.get("kind", "").endswith("List"):
        yield from (item for item in doc.get("items") or [])
    else:
        yield doc


def _fresh(obj: dict) -> dict:
    """`obj` as a person would write it: no status, no server-set metadata."""
    body = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in DROP_META}
    return body


def _create(api: ApiClient, obj: dict) -> dict:
    meta = obj["metadata"]
    try:
        return call(api, "POST", RESOURCES[obj["kind"]].path(meta.get("namespace")), obj)
    except KubeError as err:
        raise SeedError(f"creating {obj['kind']} {meta['name']}: {err.message}") from None


def kwok_node(node: dict) -> dict:
    body = _fresh(node)
    annotations = body["metadata"].setdefault("annotations", {})
    annotations.pop("kubevirt.io/heartbeat", None)
    annotations.update(KWOK_ANNOTATION)
    status = node.get("status") or {}
    body["status"] = {k: status[k] for k in ("capacity", "allocatable") if k in status}
    return body


def _claims(vm: dict) -> list[str]:
    volumes = ((vm["spec"].get("template") or {}).get("spec") or {}).get("volumes") or []
    return [
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    ]


def _not_shared(vmi: dict | None) -> set[str]:
    """Claims the example's virt-handler called not shared (DisksNotLiveMigratable)."""
    for condition in ((vmi or {}).get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "DisksNotLiveMigratable":
            return {word for word in condition.get("message", "").split() if "-disk-" in word}
    return set()


def _volume(api: ApiClient, namespace: str, claim: str, shared: bool) -> None:
    """A PV and its claim (once: the example's VMs may share a claim name)."""
    mode = "ReadWriteMany" if shared else "ReadWriteOnce"
    with contextlib.suppress(KubeError):
        call(api, "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
        return
    call(api, "POST", "/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pv-{namespace}-{claim}"},
        "spec": {
            "capacity": {"storage": "10Gi"}, "accessModes": [mode], "storageClassName": "",
            "hostPath": {"path": f"/var/lib/harvester/{claim}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    })  # fmt: skip
    call(api, "POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": [mode], "storageClassName": "", "volumeName": f"pv-{namespace}-{claim}",
            "resources": {"requests": {"storage": "10Gi"}},
        },
    })  # fmt: skip


@contextlib.contextmanager
def _only_schedulable(plane: ControlPlane, nodes: list[dict], node: str) -> Iterator[None]:
    """Every other node cordoned (and `node` uncordoned) while the body runs; then as before."""
    cordoned = {
        n["metadata"]["name"]: bool((n.get("spec") or {}).get("unschedulable")) for n in nodes
    }
    for name in cordoned:
        plane.kubectl("cordon" if name != node else "uncordon", name)
    try:
        yield
    finally:
        for name, was in cordoned.items():
            plane.kubectl("cordon" if was else "uncordon", name)


def _wait(what: str, check, timeout: float = START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KubeError):
            found = check()
            if found:
                return found
        time.sleep(0.25)
    raise SeedError(f"timed out after {timeout:.0f}s waiting for {what}")


def _vmi(api: ApiClient, namespace: str, name: str) -> dict:
    return call(api, "GET", RESOURCES[VMI].path(namespace, name))


def seed(plane: ControlPlane, handler: VirtHandler, folder: Path = EXAMPLES) -> list[dict]:
    """Bring the example cluster up on the real stack; the example objects."""
    api = plane.api_client()
    objs = example_objects(folder)
    by_kind = {kind: [o for o in objs if o["kind"] == kind] for kind in ORDER}
    vmis = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in by_kind[VMI]}
    for ns in sorted({o["metadata"].get("namespace") for o in objs} - {None, "default"}):
        call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for node in by_kind[NODE]:
        _create(api, kwok_node(node))
    for node in by_kind[NODE]:
        name = node["metadata"]["name"]
        _wait(f"node {name} Ready", lambda n=name: _ready(call(api, "GET", f"/api/v1/nodes/{n}")))
    for nad in by_kind[NAD]:
        _create(api, _fresh(nad))
    launchers = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in by_kind[VM]}
    for pod in by_kind[POD]:
        meta = pod["metadata"]
        owner = (meta["namespace"], (meta.get("labels") or {}).get("vm.kubevirt.io/name"))
        if owner in launchers or (pod.get("status") or {}).get("phase") == "Succeeded":
            continue
        body = _fresh(pod)
        for container in body["spec"].get("containers") or []:
            container.setdefault("image", IMAGE)
        _create(api, body)
    _start_vms(plane, handler, by_kind, vmis)
    for vmim in by_kind[VMIM]:
        if (vmim.get("status") or {}).get("phase") == "Running":
            _start_migration(api, handler, vmim)
    return objs


def _start_vms(plane: ControlPlane, handler: VirtHandler, by_kind: dict, vmis: dict) -> None:
    api = plane.api_client()
    nads = {(n["metadata"]["namespace"], n["metadata"]["name"]) for n in by_kind[NAD]}
    placed: dict[str, list[dict]] = {}
    for vm in by_kind[VM]:
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        vmi = vmis.get((ns, name))
        not_shared = _not_shared(vmi)
        for claim in _claims(vm):
            _volume(api, ns, claim, shared=claim not in not_shared)
        for condition in ((vmi or {}).get("status") or {}).get("conditions") or []:
            if condition.get("type") == "LiveMigratable" and condition.get("status") == "False":
                handler.set_not_migratable(ns, name, condition["reason"], condition["message"])
        node = ((vmi or {}).get("status") or {}).get("nodeName")
        placed.setdefault(node or "", []).append(vm)
    for node, vms in placed.items():
        if not node:  # halted VMs: created, and KubeVirt starts nothing
            for vm in vms:
                _create(api, _fresh(vm))
            continue
        with _only_schedulable(plane, by_kind[NODE], node):
            missing = []
            for vm in vms:
                missing += _networks_missing(api, vm, nads)
                _create(api, _fresh(vm))
            for vm in vms:
                ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
                _wait(
                    f"VMI {ns}/{name} Running on {node}",
                    lambda ns=ns, name=name: (
                        (_vmi(api, ns, name).get("status") or {}).get("phase") == "Running"
                    ),
                )
        for ns, nad in missing:  # the network the example says is gone, gone after the start
            call(api, "DELETE", RESOURCES[NAD].path(ns, nad))


def _networks_missing(api: ApiClient, vm: dict, nads: set) -> list[tuple[str, str]]:
    """NADs the VM names that the example does not define: created for its start only."""
    ns = vm["metadata"]["namespace"]
    missing = []
    for network in vm["spec"]["template"]["spec"].get("networks") or []:
        name = (network.get("multus") or {}).get("networkName")
        if not name:
            continue
        nad_ns, _, nad = name.rpartition("/")
        key = (nad_ns or ns, nad)
        if key not in nads:
            _create(api, {
                "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
                "metadata": {"name": nad, "namespace": key[0]},
                "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": nad, "type": "bridge"})},
            })  # fmt: skip
            missing.append(key)
    return missing


def _start_migration(api: ApiClient, handler: VirtHandler, vmim: dict) -> None:
    ns, vmi = vmim["metadata"]["namespace"], vmim["spec"]["vmiName"]
    handler.set_scenario(ns, vmi, Scenario.overrun(would_take=86400.0))
    body = _fresh(vmim)
    _create(api, body)
    path = RESOURCES[VMIM].path(ns, body["metadata"]["name"])
    _wait(
        f"migration {body['metadata']['name']} Running",
        lambda: (call(api, "GET", path).get("status") or {}).get("phase") == "Running",
    )


def _ready(node: dict) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = [t["key"] for t in (node.get("spec") or {}).get("taints") or []]
    return ready and "node.kubernetes.io/not-ready" not in taints
