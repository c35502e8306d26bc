"""A migration migration-guard admits runs on the real KubeVirt and kube-scheduler, and one it
refuses never reaches them.

kubectl creates the VMIM; virt-api's mutator and validator and migration-guard's webhook admit it;
virt-controller renders the target virt-launcher pod; kube-scheduler binds it; the virt-handler
stand-in carries the migration out; the VMI reports its new node.
"""

from __future__ import annotations

import json

import pytest

from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.registration import WEBHOOK_NAME
from tests.harness.vms import container_disk, harvester_vm, vmim

pytestmark = pytest.mark.kubevirt


def test_admitted_migration_is_scheduled_where_allowed_and_completes(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str
):
    cluster, ns = kubevirt_cluster, vm_namespace
    vmi = cluster.start_vm(harvester_vm(ns, "clean"))
    source = vmi["status"]["nodeName"]
    # virt-api's mutator filled KubeVirt's defaults in: this is the VMI KubeVirt renders pods from
    assert vmi["spec"]["domain"]["cpu"]["model"] == "host-model"
    assert vmi["spec"]["domain"]["machine"]["type"] == "q35"
    target = next(n for n in cluster.nodes if n != source)

    created = cluster.kubectl_ok(
        "create", "-f", "-", input=json.dumps(vmim(ns, "m1", "clean", target))
    )
    assert "virtualmachineinstancemigration.kubevirt.io/m1 created" in created
    # virt-api's mutator labelled it and added KubeVirt's finalizer
    admitted = cluster.get(
        f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations/m1"
    )
    assert admitted["metadata"]["labels"]["kubevirt.io/vmi-name"] == "clean"

    def target_pod():
        pods = [
            p
            for p in cluster.pods_of(vmi)
            if p["metadata"]["labels"].get("kubevirt.io/migrationJobUID")
            == admitted["metadata"]["uid"]
        ]
        return pods[0] if pods and pods[0]["spec"].get("nodeName") else None

    pod = cluster.wait_for("the target virt-launcher pod bound by kube-scheduler", target_pod)
    assert pod["spec"]["nodeName"] == target
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == target
    # KubeVirt's own migration additions are on the pod kube-scheduler placed
    selector = pod["spec"]["nodeSelector"]
    assert selector["cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS"] == "true"
    assert selector["cpu-vendor.node.kubevirt.io/Intel"] == "true"

    cluster.wait_for("the VMIM Succeeded", lambda: cluster.vmim_phase(ns, "m1") == "Succeeded")
    # the target's handler takes the VMI over once the source reported completion
    moved = cluster.wait_for(
        "the VMI on its new node",
        lambda: (v := cluster.vmi(ns, "clean"))["status"]["nodeName"] == target and v,
    )
    assert moved["metadata"]["labels"]["kubevirt.io/nodeName"] == target
    assert "kubevirt.io/migrationTargetNodeName" not in moved["metadata"]["labels"]
    assert moved["status"]["migrationState"]["completed"] is True
    shown = cluster.kubectl_ok("get", "vmi", "clean", "-n", ns, "-o", "jsonpath={.status.nodeName}")
    assert shown == target


def test_refused_migration_never_reaches_kubevirt(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str
):
    cluster, ns = kubevirt_cluster, vm_namespace
    disk, volume = container_disk()
    vmi = cluster.start_vm(harvester_vm(ns, "boxed", disks=[disk], volumes=[volume]))

    denied = cluster.plane.kubectl("create", "-f", "-", input=json.dumps(vmim(ns, "m2", "boxed")))
    assert denied.returncode == 1
    assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in denied.stderr
    assert "ContainerDiskVolume" in denied.stderr
    gone = cluster.plane.kubectl("get", "vmim", "m2", "-n", ns)
    assert "NotFound" in gone.stderr
    # nothing for virt-controller to act on: the VMI keeps its one launcher pod
    assert len(cluster.pods_of(vmi)) == 1


def test_cordoned_target_is_refused_and_dry_run_answers_alike(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str
):
    cluster, ns = kubevirt_cluster, vm_namespace
    source = cluster.start_vm(harvester_vm(ns, "steady"))["status"]["nodeName"]
    target = next(n for n in cluster.nodes if n != source)
    cluster.kubectl_ok("cordon", target)
    try:
        # kube-controller-manager's taint is there too, as on a real cluster
        cluster.wait_for(
            "the unschedulable taint",
            lambda: any(
                t["key"] == "node.kubernetes.io/unschedulable"
                for t in cluster.get(f"/api/v1/nodes/{target}")["spec"].get("taints") or []
            ),
        )
        body = json.dumps(vmim(ns, "m3", "steady", target))
        for dry in ((), ("--dry-run=server",)):
            denied = cluster.plane.kubectl("create", *dry, "-f", "-", input=body)
            assert denied.returncode == 1, denied.stdout
            assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in denied.stderr
            assert f"TargetNotEligible: target node '{target}'" in denied.stderr
            assert f"node '{target}' is cordoned" in denied.stderr
    finally:
        cluster.kubectl_ok("uncordon", target)
    body = json.dumps(vmim(ns, "m3", "steady", target))
    # once the uncordon reaches migration-guard's watch-fed cache
    admitted = cluster.wait_for(
        "the uncordoned target admitted",
        lambda: (
            (
                r := cluster.plane.kubectl("create", "--dry-run=server", "-f", "-", input=body)
            ).returncode
            == 0
            and r
        ),
        timeout=10,
    )
    assert "Warning: migration-guard: VM" in admitted.stderr
    assert "created (server dry run)" in admitted.stdout
