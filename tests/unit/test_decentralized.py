"""Decentralized migrations (spec.sendTo / spec.receive): what each side judges, and what not."""

from __future__ import annotations

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.rules import evaluate_migration
from webhook.rules.decentralized import SOURCE, TARGET, decentralized_side

SEND = {"migrationID": "m-1", "connectURL": "sync.other-cluster:9185"}
RECEIVE = {"migrationID": "m-1"}


def vmim(**spec) -> dict:
    obj = o.vmim()
    obj["spec"].update(spec)
    return obj


def codes(report) -> list[str]:
    return [p.code for p in report.problems()]


def test_the_side_is_kubevirts_is_decentralized():
    assert decentralized_side(vmim(sendTo=SEND)) == SOURCE
    assert decentralized_side(vmim(receive=RECEIVE)) == TARGET
    assert decentralized_side(vmim(sendTo=SEND, receive=RECEIVE)) is None  # both: not decentralized
    assert decentralized_side(o.vmim()) is None
    assert decentralized_side(None) is None


def test_the_sending_side_judges_the_vm_but_no_node_of_this_cluster():
    # every node here would refuse it (cordoned, or the source), and it is pinned to node-1
    vmi = o.vmi()
    vmi["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-1"}
    nodes = [o.node("node-1"), o.node("node-2", spec={"unschedulable": True})]
    state = ClusterState.from_objects(o.cluster(vmi, nodes=nodes))
    report = evaluate_migration(state, o.NS, "vm1", vmim=vmim(sendTo=SEND))
    assert report.allowed and report.nodes == () and not report.nodes_evaluated
    assert report.timeouts is not None and "spec.sendTo" in report.notes[0]
    # the same VMIM without sendTo is refused for the pin and the nodes
    local = evaluate_migration(state, o.NS, "vm1", vmim=o.vmim())
    assert codes(local) == ["NodePinned", "NoEligibleTarget"]


def test_the_sending_side_still_refuses_the_vms_own_restrictions():
    vmi = o.vmi(phase="Succeeded")
    vmi["spec"]["volumes"].append({"name": "boot", "containerDisk": {"image": "img"}})
    state = ClusterState.from_objects(o.cluster(vmi, o.vmim("other", phase="Running")))
    report = evaluate_migration(state, o.NS, "vm1", vmim=vmim(sendTo=SEND))
    assert codes(report) == ["ContainerDiskVolume", "VMINotRunning", "MigrationInProgress"]


def test_the_receiving_side_does_not_judge_the_phase_or_the_nodes():
    vmi = o.vmi(phase="WaitingForSync", node_name=None, conditions=[])
    del vmi["status"]["nodeName"]
    state = ClusterState.from_objects(o.cluster(vmi, nodes=[]))  # not even a node
    report = evaluate_migration(state, o.NS, "vm1", vmim=vmim(receive=RECEIVE))
    assert report.allowed, report.problems()
    assert report.source_node is None and "spec.receive" in report.notes[0]
    vmi["spec"]["domain"]["devices"]["disks"].append({"name": "cd", "cdrom": {"bus": "sata"}})
    vmi["spec"]["volumes"].append({"name": "cd", "persistentVolumeClaim": {"claimName": "iso"}})
    state = ClusterState.from_objects(o.cluster(vmi, nodes=[]))
    assert codes(evaluate_migration(state, o.NS, "vm1", vmim=vmim(receive=RECEIVE))) == [
        "CDROMVolume"
    ]


def test_disks_not_migratable_stops_only_a_local_migration_as_in_virt_api():
    not_migratable = [
        {"type": "LiveMigratable", "status": "False", "reason": "DisksNotMigratable",
         "message": "cannot migrate VMI: PVC disk-0 is not shared"},
    ]  # fmt: skip
    state = ClusterState.from_objects(o.cluster(o.vmi(conditions=not_migratable)))
    assert codes(evaluate_migration(state, o.NS, "vm1", vmim=vmim(sendTo=SEND))) == []
    assert codes(evaluate_migration(state, o.NS, "vm1", vmim=o.vmim(target="node-2"))) == [
        "NotLiveMigratable"
    ]
    other = [{"type": "LiveMigratable", "status": "False", "reason": "HostDeviceNotMigratable"}]
    state = ClusterState.from_objects(o.cluster(o.vmi(conditions=other)))
    assert codes(evaluate_migration(state, o.NS, "vm1", vmim=vmim(sendTo=SEND))) == [
        "NotLiveMigratable"
    ]


def test_a_missing_receiving_vmi_is_still_refused():
    state = ClusterState.from_objects([o.node("node-1")])
    assert codes(evaluate_migration(state, o.NS, "vm1", vmim=vmim(receive=RECEIVE))) == [
        "VMINotRunning"
    ]
