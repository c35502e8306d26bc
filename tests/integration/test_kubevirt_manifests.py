"""The manifests hack/kubevirt-manifests prints from KubeVirt's own code are KubeVirt's: its KubeVirt
CRD is the one KubeVirt ships as YAML, and the others carry the facts the tests rely on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.harness.kubevirt import kubevirt_root

KUBEVIRT = "kubevirt.io/kubevirt"
CUSTOM_GROUPS = ("kubevirt.io", "k8s.cni.cncf.io")  # the CRDs the harness installs


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _module_dir() -> Path:
    """KubeVirt's module in the Go module cache, at the version the build pins."""
    version = (kubevirt_root() / "kubevirt-version").read_text().strip()
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{KUBEVIRT}@{version}"],
        capture_output=True, text=True, check=True, cwd="/tmp",
    )  # fmt: skip
    return Path(json.loads(found.stdout)["Dir"])


def test_generated_kubevirt_crd_is_the_one_kubevirt_ships():
    crds = {d["metadata"]["name"]: d for d in _documents(kubevirt_root() / "kubevirt-crds.yaml")}
    shipped = _documents(_module_dir() / "manifests" / "generated" / "kv-resource.yaml")
    kubevirt_crd = next(d for d in shipped if d["kind"] == "CustomResourceDefinition")
    assert crds["kubevirts.kubevirt.io"] == kubevirt_crd


def test_every_crd_virt_operator_installs_with_kubevirts_schema_facts():
    crds = {d["metadata"]["name"]: d for d in _documents(kubevirt_root() / "kubevirt-crds.yaml")}
    assert len(crds) == 19
    for name in (
        "virtualmachineinstancemigrations.kubevirt.io",
        "migrationpolicies.migrations.kubevirt.io",
        "virtualmachinebackups.backup.kubevirt.io",
        "virtualmachineclones.clone.kubevirt.io",
        "virtualmachinepools.pool.kubevirt.io",
        "virtualmachinerestores.snapshot.kubevirt.io",
        "virtualmachineinstancetypes.instancetype.kubevirt.io",
    ):
        assert name in crds

    def subresources(name: str) -> dict:
        served = [v for v in crds[name]["spec"]["versions"] if v.get("storage")]
        return served[0].get("subresources") or {}

    assert "status" not in subresources("virtualmachineinstances.kubevirt.io")
    assert "status" in subresources("virtualmachineinstancemigrations.kubevirt.io")
    assert "status" in subresources("virtualmachines.kubevirt.io")


def test_virt_api_webhooks_are_virt_operators():
    configs = {d["kind"]: d for d in _documents(kubevirt_root() / "virt-api-webhooks.yaml")}
    paths = {
        kind: {w["clientConfig"]["service"]["path"] for w in config["webhooks"]}
        for kind, config in configs.items()
    }
    assert {
        "/migration-validate-create",
        "/pod-eviction-validate",
        "/virtualmachineinstances-validate-update",
    } <= paths["ValidatingWebhookConfiguration"]
    assert {"/migration-mutate-create", "/virtualmachineinstances-mutate"} <= paths[
        "MutatingWebhookConfiguration"
    ]
    for config in configs.values():
        for webhook in config["webhooks"]:
            assert webhook["clientConfig"]["service"]["namespace"] == "kubevirt"


def test_every_example_object_passes_kubevirts_schema_strictly(controlplane):
    """examples/cluster's KubeVirt objects (and NADs) as kubectl would create them, with strict
    field validation against KubeVirt's own CRDs: a field KubeVirt does not know is an error, not
    silently pruned."""
    from demo.seed import example_objects

    objs = [o for o in example_objects() if o["apiVersion"].split("/")[0] in CUSTOM_GROUPS]
    for ns in sorted({o["metadata"].get("namespace") for o in objs} - {None, "default"}):
        controlplane.kubectl("create", "namespace", ns)
    kinds = {o["kind"] for o in objs}
    assert {"VirtualMachine", "VirtualMachineInstance", "VirtualMachineInstanceMigration"} <= kinds
    for obj in objs:
        body = {k: v for k, v in obj.items() if k != "status"}
        body["metadata"] = {
            k: v for k, v in obj["metadata"].items() if k not in ("uid", "creationTimestamp")
        }
        result = controlplane.kubectl(
            "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(body)
        )
        name = f"{obj['kind']} {obj['metadata']['name']}"
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "unknown field" not in result.stderr, f"{name}: {result.stderr}"
