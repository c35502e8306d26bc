"""Migrations KubeVirt starts itself, and decentralized ones, on the real stack.

- An evacuation (the node tainted `kubevirt.io/drain`, virt-controller's evacuation controller
  creates the VMIM) with `--evacuation-migrations=warn`: migration-guard lets it through, the VM
  leaves, and the VMI carries migration-guard's Warning naming the problem; the same VMIM created
  by a person is still denied.
- Decentralized migrations with KubeVirt's DecentralizedLiveMigration gate on and real virt-api:
  a receiving VMI waiting in phase WaitingForSync and a sending running VMI are admitted; what
  migration-guard can judge (the VM's own restrictions) is still denied, with nothing about nodes.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator

import pytest

from tests.harness.enforcers import events_for
from tests.harness.kubevirt import DEFAULT_CONFIGURATION
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.vms import container_disk, harvester_vm, iso_cdrom, vmim
from tests.webhook_process import running_webhook
from webhook.rules.origin import EVACUATION_ANNOTATION

pytestmark = pytest.mark.kubevirt
DRAIN_TAINT = "kubevirt.io/drain"
GATE = "DecentralizedLiveMigration"


def vmims_in(cluster: KubeVirtCluster, ns: str) -> list[dict]:
    return cluster.get(f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations")[
        "items"
    ]


def test_warn_lets_kubevirts_evacuation_through_and_says_so_on_the_vmi(
    kubevirt_cluster: KubeVirtCluster,
):
    cluster = kubevirt_cluster
    with running_webhook(cluster.plane, "--evacuation-migrations", "warn") as hook:
        ns = f"kv-warn-{uuid.uuid4().hex[:8]}"
        cluster.kubectl_ok("create", "namespace", ns)
        hook.label_namespace(cluster.plane, ns)
        node = cluster.nodes[1]
        disk, volume = iso_cdrom(cluster.plane.api_client(), ns)
        try:
            with cluster.only_schedulable(node):
                cluster.start_vm(harvester_vm(ns, "boxed", disks=[disk], volumes=[volume]))
            cluster.kubectl_ok("taint", "node", node, f"{DRAIN_TAINT}=draining:NoSchedule")
            try:
                moved = cluster.wait_for(
                    "the evacuation to move the VM off the drained node",
                    lambda: (v := cluster.vmi(ns, "boxed"))["status"]["nodeName"] != node and v,
                    timeout=90,
                )
            finally:
                cluster.kubectl_ok("taint", "node", node, f"{DRAIN_TAINT}-")
            assert moved["status"]["migrationState"]["completed"] is True
            (evacuation,) = vmims_in(cluster, ns)
            assert evacuation["metadata"]["name"].startswith("kubevirt-evacuation-")
            assert evacuation["metadata"]["annotations"][EVACUATION_ANNOTATION] == node

            def warned():
                return [
                    e
                    for e in events_for(cluster.plane, ns, "boxed")
                    if e["reason"] == "MigrationWarned"
                ]

            (event,) = cluster.wait_for("migration-guard's MigrationWarned event", warned)
            assert event["type"] == "Warning"
            assert "--evacuation-migrations=warn lets it through" in event["message"]
            assert "CDROMVolume: CD-ROM 'iso' has PVC 'iso' inserted" in event["message"]
            status, metrics = hook.get("/metrics")
            assert status == 200
            assert (
                'migration_guard_kubevirt_migrations_total{origin="evacuation",result="warned"} 1.0'
                in metrics
            )

            # a person writing the same annotation gets the rules, not the setting
            by_hand = vmim(ns, "by-hand", "boxed")
            by_hand["metadata"]["annotations"] = {EVACUATION_ANNOTATION: node}
            denied = cluster.plane.kubectl("create", "-f", "-", input=json.dumps(by_hand))
            assert denied.returncode != 0
            assert "denied the request" in denied.stderr and "CDROMVolume" in denied.stderr
        finally:
            cluster.plane.kubectl("delete", "namespace", ns, "--wait=false")
            cluster.plane.kubectl("delete", "pv", f"{ns}-iso", "--wait=false")


@pytest.fixture
def decentralized_gate(kubevirt_cluster: KubeVirtCluster, vm_namespace: str) -> Iterator[str]:
    """The DecentralizedLiveMigration gate on in the KubeVirt CR while the test runs."""
    stack = kubevirt_cluster.plane.stack
    config = copy.deepcopy(DEFAULT_CONFIGURATION)
    config["developerConfiguration"]["featureGates"] = [GATE]
    stack.configure(config)
    try:
        yield vm_namespace
    finally:
        stack.configure(DEFAULT_CONFIGURATION)


def receiver_vm(ns: str, name: str, **kw) -> dict:
    vm = harvester_vm(ns, name, **kw)
    vm["spec"]["runStrategy"] = "WaitAsReceiver"
    return vm


def create(cluster: KubeVirtCluster, obj: dict):
    return cluster.plane.kubectl("create", "-f", "-", input=json.dumps(obj))


def test_decentralized_migrations_are_judged_only_where_they_can_be(
    kubevirt_cluster: KubeVirtCluster, decentralized_gate: str
):
    cluster, ns = kubevirt_cluster, decentralized_gate
    # virt-api follows the CR through its informer: it accepts a receiver VM once it sees the gate
    cluster.wait_for(
        "virt-api to accept a WaitAsReceiver VM (the gate seen)",
        lambda: create(cluster, receiver_vm(ns, "receiver")).returncode == 0,
        timeout=30,
        interval=0.5,
    )
    disk, volume = container_disk()
    cluster.kubectl_ok("create", "-f", "-", input=json.dumps(
        receiver_vm(ns, "boxed-receiver", disks=[disk], volumes=[volume])
    ))  # fmt: skip
    for name in ("receiver", "boxed-receiver"):
        cluster.wait_for(
            f"VMI {name} WaitingForSync",
            lambda n=name: cluster.vmi(ns, n).get("status", {}).get("phase") == "WaitingForSync",
        )
    sender = cluster.start_vm(harvester_vm(ns, "sender"))
    cluster.start_vm(harvester_vm(ns, "boxed-sender", disks=[disk], volumes=[volume]))
    assert sender["status"]["nodeName"]

    def decentralized(name: str, vmi: str, side: str, spec: dict) -> dict:
        body = vmim(ns, name, vmi)
        body["spec"][side] = spec
        return body

    receive = {"migrationID": "mig-in"}
    send = {"migrationID": "mig-out", "connectURL": "sync.other-cluster.example:9185"}
    # judged as far as it can be: admitted by migration-guard and virt-api alike
    assert create(cluster, decentralized("in", "receiver", "receive", receive)).returncode == 0
    assert create(cluster, decentralized("out", "sender", "sendTo", send)).returncode == 0
    # the VM's own restrictions still hold on either side, with no word about phase or nodes
    for name, vmi_name, side, spec in (
        ("in-boxed", "boxed-receiver", "receive", receive),
        ("out-boxed", "boxed-sender", "sendTo", send),
    ):
        denied = create(cluster, decentralized(name, vmi_name, side, spec))
        assert denied.returncode != 0, f"{name} was admitted"
        assert "(1 problem):" in denied.stderr and "ContainerDiskVolume" in denied.stderr
        for absent in ("VMINotRunning", "NoEligibleTarget", "node '"):
            assert absent not in denied.stderr, denied.stderr
