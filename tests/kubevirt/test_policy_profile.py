"""The Harvester v1.8 profile on the real stack: a CD-ROM VM migrates, with a warning kubectl prints.

Harvester v1.8 removed its CD-ROM migration check (CD-ROMs became hotplug volumes). With the
cluster's `server-version` Setting at v1.8, migration-guard's policy turns CDROMVolume into a
warning: kubectl prints it, KubeVirt migrates the VM, and the VMI carries a MigrationWarned Event.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.harness.enforcers import events_for
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.metrics import sample
from tests.harness.vms import harvester_vm, iso_cdrom, vmim
from tests.webhook_process import running_webhook

pytestmark = pytest.mark.kubevirt

SETTING = {
    "apiVersion": "harvesterhci.io/v1beta1",
    "kind": "Setting",
    "metadata": {"name": "server-version"},
    "value": "v1.8.1",
}


def test_a_v1_8_profile_migrates_a_cdrom_vm_with_a_warning_kubectl_prints(
    kubevirt_cluster: KubeVirtCluster,
):
    cluster = kubevirt_cluster
    cluster.kubectl_ok("apply", "-f", "-", input=json.dumps(SETTING))
    ns = f"kv-policy-{uuid.uuid4().hex[:8]}"
    try:
        with running_webhook(cluster.plane) as hook:
            cluster.kubectl_ok("create", "namespace", ns)
            hook.label_namespace(cluster.plane, ns)
            source = cluster.nodes[1]
            disk, volume = iso_cdrom(cluster.plane.api_client(), ns)
            with cluster.only_schedulable(source):
                cluster.start_vm(harvester_vm(ns, "boxed", disks=[disk], volumes=[volume]))
            created = cluster.plane.kubectl(
                "create", "-f", "-", input=json.dumps(vmim(ns, "boxed-migration", "boxed"))
            )
            assert created.returncode == 0, created.stderr
            assert (
                "Warning: migration-guard: CDROMVolume (warn): CD-ROM 'iso' has PVC 'iso' "
                "inserted" in created.stderr
            )
            moved = cluster.wait_for(
                "KubeVirt to migrate the CD-ROM VM",
                lambda: (v := cluster.vmi(ns, "boxed"))["status"]["nodeName"] != source and v,
                timeout=90,
            )
            assert moved["status"]["migrationState"]["completed"] is True

            (event,) = cluster.wait_for(
                "migration-guard's MigrationWarned event",
                lambda: [
                    e
                    for e in events_for(cluster.plane, ns, "boxed")
                    if e["reason"] == "MigrationWarned"
                ],
            )
            assert "its policy warns about them" in event["message"]
            assert "CDROMVolume: CD-ROM 'iso'" in event["message"]
            status, metrics = hook.get("/metrics")
            assert status == 200
            assert (
                sample(metrics, "migration_guard_policy_warnings_total", code="CDROMVolume") == 1.0
            )
            assert (
                sample(metrics, "migration_guard_policy_info", profile="v1.8", mode="enforce")
                == 1.0
            )
    finally:
        cluster.plane.kubectl("delete", "setting", "server-version")
        cluster.plane.kubectl("delete", "namespace", ns, "--wait=false")
        cluster.plane.kubectl("delete", "pv", f"{ns}-iso", "--wait=false")
