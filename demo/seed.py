"""Seed the demo control plane with the Harvester-like cluster in examples/cluster.

Objects are created as their controllers would leave them: the object first, then its status
(through the status subresource where the kind has one) (nodes Ready, VMIs Running, launcher pods Running), and node taints
set to what the example says (the API server adds `not-ready` on create; no kubelet clears it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import yaml
from kubernetes.client import ApiClient

from webhook.kubeapi import KubeError, call, kubevirt_path
from webhook.resources import RESOURCES
from webhook.state import NAD, NODE, POD, VM, VMI, VMIM

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cluster"
# creation order: what an object refers to exists before it
ORDER = [NODE, POD, NAD, VM, VMI, VMIM]
LAUNCHER_IMAGE = "registry.suse.com/suse/sles/15.6/virt-launcher:1.4.0"
DROP_META = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")


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


def path_of(obj: dict, name: bool = True) -> str:
    meta = obj["metadata"]
    return RESOURCES[obj["kind"]].path(meta.get("namespace"), meta["name"] if name else None)


def create(api: ApiClient, obj: dict) -> None:
    """Create `obj`, then write its status (and a node's taints) as its controller would."""
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in DROP_META}
    if obj["kind"] == "VirtualMachineInstance":
        _link_owner(api, body)
    if obj["kind"] == "Pod":
        # `kubectl get -o yaml` state files may leave out what the API requires to create a pod
        for c in body.get("spec", {}).get("containers") or []:
            c.setdefault("image", LAUNCHER_IMAGE)
    try:
        call(api, "POST", path_of(obj, name=False), body)
    except KubeError as err:
        if err.status != 409:
            raise
    merge = "application/merge-patch+json"
    if obj.get("status"):
        meta = obj["metadata"]
        path = RESOURCES[obj["kind"]].status_path(meta.get("namespace"), meta["name"])
        call(api, "PATCH", path, {"status": obj["status"]}, content_type=merge)
    if obj["kind"] == "Node":
        taints = (obj.get("spec") or {}).get("taints") or None
        call(api, "PATCH", path_of(obj), {"spec": {"taints": taints}}, content_type=merge)


def _link_owner(api: ApiClient, vmi: dict) -> None:
    """The example's ownerReferences carry no real UID: point them at the created VM."""
    for ref in vmi["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "VirtualMachine":
            path = kubevirt_path(vmi["metadata"]["namespace"], "virtualmachines", ref["name"])
            vm = call(api, "GET", path)
            ref["uid"] = vm["metadata"]["uid"]


def seed(api: ApiClient, folder: Path = EXAMPLES) -> list[dict]:
    """Create the whole example cluster; the objects created."""
    objs = example_objects(folder)
    for ns in sorted({o["metadata"].get("namespace") for o in objs} - {None, "default"}):
        try:
            call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        except KubeError as err:
            if err.status != 409:
                raise
    for obj in objs:
        create(api, obj)
    return objs
