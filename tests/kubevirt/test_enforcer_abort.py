"""An enforcer abort goes through KubeVirt's real abort path.

The enforcer deletes the overrunning VMIM; virt-controller asks the source handler to abort
(`migrationState.abortRequested`), the stand-in reports the abort done, virt-controller fails the
VMIM and removes its finalizer, and the VMI stays on its source node.
"""

from __future__ import annotations

import json

import pytest

from tests.harness.enforcers import Enforcers, events_for
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario
from tests.harness.vms import harvester_vm, vmim

pytestmark = pytest.mark.kubevirt


def test_enforcer_abort_runs_through_virt_controller_and_the_vmi_stays(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, enforcers: Enforcers
):
    cluster, ns = kubevirt_cluster, vm_namespace
    vmi = cluster.start_vm(harvester_vm(ns, "slow"))
    source = vmi["status"]["nodeName"]
    cluster.handler.set_scenario(ns, "slow", Scenario.overrun(would_take=600.0))
    # 5 s per GiB: the 1 GiB guest must finish within 5 s of the transfer's start
    enforcer = enforcers.start(
        "kv-enforcer", ns, "--virt-handler-urls", cluster.handler.metrics_url
    )
    enforcers.wait_ready(enforcer)

    cluster.kubectl_ok("create", "-f", "-", input=json.dumps(vmim(ns, "m-slow", "slow")))
    uid = cluster.get(
        f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations/m-slow"
    )["metadata"]["uid"]
    cluster.wait_for("the migration Running", lambda: cluster.vmim_phase(ns, "m-slow") == "Running")

    def gone():
        found = cluster.plane.kubectl("get", "vmim", "m-slow", "-n", ns)
        return found.returncode == 1 and "NotFound" in found.stderr

    cluster.wait_for("the enforcer's abort to finish (VMIM gone)", gone, timeout=60)
    after = cluster.vmi(ns, "slow")
    state = after["status"]["migrationState"]
    # virt-controller's abort path, not a shortcut: it requested, the handler reported
    assert state["migrationUid"] == uid
    assert state["abortRequested"] is True
    assert state["abortStatus"] == "Succeeded"
    assert state["failed"] is True
    assert after["status"]["nodeName"] == source
    assert after["status"]["phase"] == "Running"
    reasons = {e["reason"] for e in events_for(cluster.plane, ns, "slow")}
    assert "MigrationTimedOut" in reasons

    # the target virt-launcher is done: only the source pod still runs
    def running_pods():
        pods = cluster.pods_of(after)
        return [p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running"]

    cluster.wait_for("only the source virt-launcher running", lambda: running_pods() == [source])
