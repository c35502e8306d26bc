"""The webhook through the real kube-apiserver and kubectl (a real `migration-guard webhook` process).

kube-apiserver reaches the webhook over TLS with the caBundle the server wrote, so every kubectl
answer here also proves the certificate chain.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.harness.registration import WEBHOOK_NAME
from tests.webhook_process import WebhookProcess, running_webhook

pytestmark = pytest.mark.controlplane

TAG = uuid.uuid4().hex[:6]
N1, N2, N3 = f"wh-{TAG}-node-1", f"wh-{TAG}-node-2", f"wh-{TAG}-node-3"


def kubectl_ok(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    result = plane.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def create(plane: ControlPlane, obj: dict) -> None:
    """Create like a controller would: the object, then its status."""
    body = {k: v for k, v in obj.items() if k != "status"}
    kubectl_ok(plane, "create", "-f", "-", input=json.dumps(body))
    if "status" in obj:
        meta = obj["metadata"]
        kind = {"VirtualMachineInstance": "vmi", "Node": "node"}[obj["kind"]]
        plane.patch_status(kind, meta["name"], obj["status"], namespace=meta.get("namespace", ""))
    if obj["kind"] == "Node":
        # The NodeRestriction/TaintNodesByCondition admission adds a not-ready taint on create;
        # the node lifecycle controller (not running here) removes it once the node is Ready.
        plane.kubectl("taint", "node", obj["metadata"]["name"], "node.kubernetes.io/not-ready-")


@pytest.fixture(scope="module")
def webhook(controlplane: ControlPlane):
    for node in (o.node(N1), o.node(N2), o.node(N3, cordoned=True)):
        create(controlplane, node)
    with running_webhook(controlplane) as hook:
        yield hook
    for name in (N1, N2, N3):
        controlplane.kubectl("delete", "node", name, "--wait=false")


@pytest.fixture
def vms(controlplane: ControlPlane, webhook: WebhookProcess, namespace: str) -> str:
    """A labelled namespace with a clean VM and a VM with a CD-ROM and a GPU, both on node-1."""
    webhook.label_namespace(controlplane, namespace)
    create(controlplane, o.nad(namespace))
    for name, messy in (("clean", False), ("messy", True)):
        create(controlplane, o.vm(namespace, name, cdrom=messy, pci=messy))
        create(controlplane, o.vmi(namespace, name, N1, cdrom=messy, pci=messy))
        create(controlplane, o.launcher_pod(namespace, name, N1))
    return namespace


def create_vmim(plane: ControlPlane, ns: str, vmi: str, target: str | None = None, *dry: str):
    obj = o.vmim(ns, f"mig-{uuid.uuid4().hex[:6]}", vmi, target)
    return plane.kubectl("create", "-f", "-", *dry, input=json.dumps(obj))


DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: '


def test_cdrom_and_pci_denied_naming_both(controlplane: ControlPlane, vms: str):
    result = create_vmim(controlplane, vms, "messy")
    assert result.returncode != 0
    err = result.stderr
    assert DENIED in err
    assert f"live migration of VM {vms}/messy is not allowed" in err
    assert "- CDROMVolume: CD-ROM 'cdrom-disk'" in err and "eject the CD-ROM" in err
    assert "- PCIDevicePassthrough: host device 'gpu-passthrough'" in err
    assert "remove the device" in err


def test_cordoned_target_denied_naming_node_and_reason(controlplane: ControlPlane, vms: str):
    result = create_vmim(controlplane, vms, "clean", N3)
    assert result.returncode != 0
    assert DENIED in result.stderr
    assert f"- TargetNotEligible: target node '{N3}'" in result.stderr
    assert "is cordoned" in result.stderr


def test_clean_vm_created_with_warning(controlplane: ControlPlane, vms: str):
    result = create_vmim(controlplane, vms, "clean", N2)
    assert result.returncode == 0, result.stderr
    assert "virtualmachineinstancemigration.kubevirt.io/mig-" in result.stdout
    assert "created" in result.stdout
    assert (
        f"Warning: migration-guard: VM {vms}/clean must finish migrating within 1600s"
        in result.stderr
    )


def test_dry_run_server_gets_the_same_answers(controlplane: ControlPlane, vms: str):
    denied = create_vmim(controlplane, vms, "messy", None, "--dry-run=server")
    assert denied.returncode != 0 and "CDROMVolume" in denied.stderr
    assert "PCIDevicePassthrough" in denied.stderr
    cordoned = create_vmim(controlplane, vms, "clean", N3, "--dry-run=server")
    assert cordoned.returncode != 0 and f"target node '{N3}'" in cordoned.stderr
    allowed = create_vmim(controlplane, vms, "clean", N2, "--dry-run=server")
    assert allowed.returncode == 0, allowed.stderr
    assert "(server dry run)" in allowed.stdout
    assert "Warning: migration-guard: VM" in allowed.stderr
    listed = kubectl_ok(controlplane, "get", "vmim", "-n", vms, "-o", "name")
    assert listed.strip() == ""  # dry-run created nothing


def _first_answer_change(plane: ControlPlane, ns: str, node: str, want_denied: bool) -> float:
    """Seconds until a dry-run VMIM to `node` gets the wanted answer (polling via kubectl)."""
    start = time.monotonic()
    while time.monotonic() - start < 10:
        result = create_vmim(plane, ns, "clean", node, "--dry-run=server")
        if (result.returncode != 0) == want_denied:
            return time.monotonic() - start
    raise AssertionError(f"answer for {node} did not change within 10 s: {result.stderr}")


def test_cache_follows_cordon_and_relabel_within_a_second(controlplane: ControlPlane, vms: str):
    assert create_vmim(controlplane, vms, "clean", N2, "--dry-run=server").returncode == 0
    kubectl_ok(controlplane, "cordon", N2)
    try:
        took = _first_answer_change(controlplane, vms, N2, want_denied=True)
        assert took < 1.0, f"cordon reflected after {took:.2f}s"
        print(f"cordon reflected after {took:.3f}s")
        result = create_vmim(controlplane, vms, "clean", N2, "--dry-run=server")
        assert f"node '{N2}' is cordoned" in result.stderr
    finally:
        kubectl_ok(controlplane, "uncordon", N2)
    assert _first_answer_change(controlplane, vms, N2, want_denied=False) < 1.0
    kubectl_ok(controlplane, "label", "node", N2, "kubevirt.io/schedulable=false", "--overwrite")
    try:
        took = _first_answer_change(controlplane, vms, N2, want_denied=True)
        assert took < 1.0, f"relabel reflected after {took:.2f}s"
        print(f"relabel reflected after {took:.3f}s")
        result = create_vmim(controlplane, vms, "clean", N2, "--dry-run=server")
        assert "NotSchedulable" in result.stderr or "schedulable" in result.stderr
    finally:
        kubectl_ok(controlplane, "label", "node", N2, "kubevirt.io/schedulable=true", "--overwrite")


def test_vmi_created_just_now_is_found(controlplane: ControlPlane, vms: str):
    """A VMI missing from the cache is read from the API before the webhook says it is missing."""
    create(controlplane, o.vmi(vms, "fresh", N1))
    create(controlplane, o.launcher_pod(vms, "fresh", N1))
    result = create_vmim(controlplane, vms, "fresh", N2, "--dry-run=server")
    assert result.returncode == 0, result.stderr


def test_metrics_and_readyz_over_tls(controlplane: ControlPlane, vms: str, webhook: WebhookProcess):
    create_vmim(controlplane, vms, "messy", None, "--dry-run=server")
    status, body = webhook.get("/metrics")
    assert status == 200
    assert 'migration_guard_admission_denials_total{code="CDROMVolume"}' in body
    assert "migration_guard_admission_decision_seconds_bucket" in body
    assert "migration_guard_cache_synced 1.0" in body
    status, body = webhook.get("/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["ready"] is True
    assert set(ready["informers"]) >= {"Node", "Pod", "VirtualMachineInstance"}
