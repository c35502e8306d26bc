"""The extension backend's migrate, abort and status on the real KubeVirt: what the Harvester UI
starts is run by virt-controller and placed by kube-scheduler on the node the user picked, and an
abort from the UI goes through virt-controller's abort path."""

from __future__ import annotations

import pytest

from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario
from tests.harness.vms import harvester_vm
from tests.integration.test_extension import Server, grant, start_server, stop_server
from webhook.cluster.kubeapi import kubevirt_path

pytestmark = pytest.mark.kubevirt


@pytest.fixture(scope="module")
def extension(kubevirt_cluster: KubeVirtCluster, tmp_path_factory):
    server = start_server(kubevirt_cluster.plane, tmp_path_factory.mktemp("ext"), "extension")
    yield server
    stop_server(server)


def _only_vmim(cluster: KubeVirtCluster, ns: str) -> dict:
    items = cluster.get(kubevirt_path(ns, "virtualmachineinstancemigrations"))["items"]
    assert len(items) == 1, items
    return items[0]


def test_ui_migrate_lands_on_the_chosen_node_and_status_follows(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, extension: Server
):
    cluster, ns = kubevirt_cluster, vm_namespace
    grant(cluster.plane, ns, "alice")
    alice = cluster.plane.token("alice")
    source = cluster.start_vm(harvester_vm(ns, "ui-vm"))["status"]["nodeName"]

    offered = extension.action(alice, ns, "ui-vm", "findMigratableNodes")
    assert offered.status_code == 200, offered.text
    nodes = offered.json()["nodes"]
    assert source not in nodes and len(nodes) == len(cluster.nodes) - 1
    chosen = nodes[-1]

    started = extension.action(alice, ns, "ui-vm", "migrate", json={"nodeName": chosen})
    assert started.status_code == 201, started.text
    vmim = _only_vmim(cluster, ns)
    assert vmim["metadata"]["annotations"]["migration-guard.io/requested-by"] == "alice"
    name = vmim["metadata"]["name"]
    cluster.wait_for(
        "the UI's migration Succeeded", lambda: cluster.vmim_phase(ns, name) == "Succeeded"
    )
    pods = [
        p
        for p in cluster.pods_of(cluster.vmi(ns, "ui-vm"))
        if p["metadata"]["labels"].get("kubevirt.io/migrationJobUID") == vmim["metadata"]["uid"]
    ]
    assert [p["spec"]["nodeName"] for p in pods] == [chosen]  # kube-scheduler's binding

    def status():
        body = extension.migration(alice, ns, "ui-vm").json()["migration"]
        return body if body["phase"] == "Succeeded" else None

    shown = cluster.wait_for("the status endpoint showing Succeeded", status)
    assert (shown["sourceNode"], shown["targetNode"]) == (source, chosen)
    assert shown["name"] == name and shown["requestedBy"] == "alice"
    assert shown["final"] is True and shown["why"] is None


def test_ui_abort_goes_through_kubevirts_abort_and_the_vm_stays(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, extension: Server
):
    cluster, ns = kubevirt_cluster, vm_namespace
    grant(cluster.plane, ns, "alice")
    alice = cluster.plane.token("alice")
    cluster.handler.set_scenario(ns, "long-vm", Scenario.overrun(would_take=600.0))
    source = cluster.start_vm(harvester_vm(ns, "long-vm"))["status"]["nodeName"]

    started = extension.action(alice, ns, "long-vm", "migrate", json={"nodeName": ""})
    assert started.status_code == 201, started.text
    name = _only_vmim(cluster, ns)["metadata"]["name"]
    cluster.wait_for("the migration Running", lambda: cluster.vmim_phase(ns, name) == "Running")

    aborted = extension.action(alice, ns, "long-vm", "abortMigration")
    assert aborted.status_code == 200, aborted.text

    def gone():
        return not cluster.get(kubevirt_path(ns, "virtualmachineinstancemigrations"))["items"]

    cluster.wait_for("virt-controller to finish the abort (VMIM gone)", gone)
    state = cluster.vmi(ns, "long-vm")["status"]
    assert state["nodeName"] == source
    assert state["migrationState"]["abortRequested"] is True
    assert state["migrationState"]["abortStatus"] == "Succeeded"
    # the VMIM is gone; the status still tells what happened, from the VMI
    shown = extension.migration(alice, ns, "long-vm").json()["migration"]
    assert shown["abortStatus"] == "Succeeded" and shown["sourceNode"] == source
    again = extension.action(alice, ns, "long-vm", "abortMigration")
    assert again.status_code == 409
