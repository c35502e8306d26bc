"""Load: 1,000 VMIM creates through the real kube-apiserver with the webhook registered.

Eight client threads (the official python client) create VMIMs at once; kube-apiserver calls the
real `migration-guard webhook` process over TLS for each. The mix, shuffled:
- 100 real creates, each for its own clean VM, to a good node: allowed and stored;
- 400 dry-run creates for another clean VM to a good node: allowed, nothing stored;
- 250 creates for a VM with a CD-ROM and a GPU: denied naming both;
- 250 creates to a cordoned node: denied naming the node.
Every decision must be the expected one, and none may time out or fail otherwise.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.harness.registration import WEBHOOK_NAME
from tests.integration.test_webhook import create
from tests.reliability.support import FIGURES
from tests.webhook_process import running_webhook

pytestmark = pytest.mark.controlplane

L1, L2, L3 = "load-node-1", "load-node-2", "load-node-3"
REAL = 100
THREADS = 8
KV = ("kubevirt.io", "v1")


def _create_running_vmi(api: k8s.ApiClient, ns: str, name: str) -> None:
    custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    vmi = o.vmi(ns, name, L1)
    status = vmi.pop("status")
    custom.create_namespaced_custom_object(*KV, ns, "virtualmachineinstances", vmi)
    custom.patch_namespaced_custom_object(  # the VMI CRD has no status subresource
        *KV, ns, "virtualmachineinstances", name, {"status": status}
    )
    pod = o.launcher_pod(ns, name, L1)
    pod["metadata"]["name"] = f"virt-launcher-{name}"
    core.create_namespaced_pod(ns, pod)


DENIED = f'admission webhook \\"{WEBHOOK_NAME}\\" denied the request'
EXPECTED = {  # what a denial must name, per kind of case
    "messy": ("CDROMVolume", "PCIDevicePassthrough"),
    "cordoned": (f"target node '{L3}'", "is cordoned"),
}


def _timed_out(outcome: str) -> bool:
    return any(t in outcome for t in ("deadline", "Timeout", "timed out", "failed calling"))


def _right(kind: str, outcome: str) -> bool:
    """The expected decision: allowed for the clean cases, the webhook's denial naming why else."""
    if kind in ("real", "dry"):
        return outcome == "allowed"
    return (
        outcome.startswith("403 ")
        and DENIED in outcome
        and all(word in outcome for word in EXPECTED[kind])
    )


def test_thousand_creates_every_decision_right_none_timed_out(
    controlplane: ControlPlane, namespace: str
) -> None:
    api = controlplane.api_client()
    for node in (o.node(L1), o.node(L2), o.node(L3, cordoned=True)):
        if controlplane.kubectl("get", "node", node["metadata"]["name"]).returncode != 0:
            create(controlplane, node)
    create(controlplane, o.nad(namespace))
    for name, messy in (("clean", False), ("messy", True)):
        create(controlplane, o.vmi(namespace, name, L1, cdrom=messy, pci=messy))
        create(controlplane, o.launcher_pod(namespace, name, L1))
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: _create_running_vmi(api, namespace, f"c-{i:03d}"), range(REAL)))

    cases = (
        [("real", f"c-{i:03d}", L2) for i in range(REAL)]
        + [("dry", "clean", L2)] * 400
        + [("messy", "messy", L2)] * 250
        + [("cordoned", "clean", L3)] * 250
    )
    random.Random(9).shuffle(cases)
    assert len(cases) == 1000
    custom = k8s.CustomObjectsApi(api)

    def attempt(i: int, case: tuple[str, str, str]) -> tuple[str, str]:
        kind, vmi, target = case
        body = o.vmim(namespace, f"load-{i:04d}", vmi, target)
        extra = {"dry_run": "All"} if kind != "real" else {}
        try:
            custom.create_namespaced_custom_object(
                *KV,
                namespace,
                "virtualmachineinstancemigrations",
                body,
                _request_timeout=30,
                **extra,
            )
            return kind, "allowed"
        except ApiException as e:
            return kind, f"{e.status} {e.body}"

    with running_webhook(controlplane) as hook:
        hook.label_namespace(controlplane, namespace)
        # the cache must hold all the VMIs before the clock starts
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = attempt(9999, ("dry", f"c-{REAL - 1:03d}", L2))[1]
            if probe == "allowed":
                break
            time.sleep(0.2)
        started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda ic: attempt(*ic), enumerate(cases)))
        took = time.monotonic() - started
        assert hook.proc.poll() is None

    wrong = [(kind, out[:300]) for kind, out in results if not _right(kind, out)]
    timed_out = [out[:300] for _, out in results if _timed_out(out)]
    FIGURES.add("requests served (load, through kube-apiserver)", len(results))
    FIGURES.add("decisions wrong or lost", len(wrong) + len(timed_out))
    assert not timed_out, timed_out[:3]
    assert not wrong, wrong[:3]
    stored = custom.list_namespaced_custom_object(
        *KV, namespace, "virtualmachineinstancemigrations"
    )["items"]
    assert sorted(m["spec"]["vmiName"] for m in stored) == [f"c-{i:03d}" for i in range(REAL)]
    print(f"load: 1000 creates in {took:.1f}s ({1000 / took:.0f}/s), 0 wrong, 0 timed out")
