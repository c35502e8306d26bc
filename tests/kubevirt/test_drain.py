"""`kubectl drain` of a node: virt-api's eviction webhook turns each virt-launcher eviction into an
evacuation, virt-controller's evacuation controller creates the VMIMs, and migration-guard decides
each one. The migratable VMs leave; the blocked one stays, the Warning event KubeVirt records
on its VMI carries migration-guard's reasons, and migration-guard's Warning on the Node names the
VM that holds the drain and why.
"""

from __future__ import annotations

import pytest

from tests.harness.enforcers import events_for
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.registration import WEBHOOK_NAME
from tests.harness.vms import container_disk, harvester_vm

pytestmark = pytest.mark.kubevirt


def test_drain_moves_migratable_vms_and_names_why_one_stays(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str
):
    cluster, ns = kubevirt_cluster, vm_namespace
    node = cluster.nodes[-1]
    disk, volume = container_disk()
    with cluster.only_schedulable(node):
        for name in ("web-1", "web-2"):
            cluster.start_vm(harvester_vm(ns, name))
        cluster.start_vm(harvester_vm(ns, "boxed", disks=[disk], volumes=[volume]))
    for name in ("web-1", "web-2", "boxed"):
        assert cluster.vmi(ns, name)["status"]["nodeName"] == node

    try:
        drained = cluster.plane.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s",
            timeout=90,
        )  # fmt: skip
        # the blocked VM holds the drain: kubectl gives up on its virt-launcher pod
        assert drained.returncode != 0
        assert "virt-launcher-boxed" in drained.stderr
        for name in ("web-1", "web-2"):
            moved = cluster.wait_for(
                f"{name} evacuated",
                lambda n=name: (vmi := cluster.vmi(ns, n))["status"]["nodeName"] != node and vmi,
            )
            assert moved["status"]["migrationState"]["completed"] is True
            assert not moved["status"]["migrationState"].get("failed")
        boxed = cluster.vmi(ns, "boxed")
        assert boxed["status"]["nodeName"] == node
        assert boxed["status"]["evacuationNodeName"] == node

        def refusal():
            return [
                e
                for e in events_for(cluster.plane, ns, "boxed")
                if e["reason"] == "FailedCreate" and e["type"] == "Warning"
            ]

        events = cluster.wait_for("KubeVirt's FailedCreate event on the blocked VMI", refusal)
        message = events[0]["message"]
        assert message.startswith("Error creating a Migration")
        assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in message
        assert "ContainerDiskVolume" in message

        def blocked():
            return [
                e
                for e in events_for(cluster.plane, "default", node)
                if e["reason"] == "EvacuationBlocked"
            ]

        (held,) = cluster.wait_for("migration-guard's EvacuationBlocked event on the Node", blocked)
        assert held["type"] == "Warning" and held["involvedObject"]["kind"] == "Node"
        assert held["source"]["component"] == "migration-guard-webhook"
        assert held["message"].startswith(f"VM {ns}/boxed cannot leave this node")
        assert "ContainerDiskVolume: volume 'rootdisk' is a containerDisk" in held["message"]
    finally:
        cluster.kubectl_ok("uncordon", node)
