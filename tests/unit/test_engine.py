"""Targets, the report, timeouts and pod requests."""

import dataclasses
import json
import re

import pytest

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules import TimeoutSettings, compute_timeouts, evaluate_migration, migration_target
from webhook.rules.filters.resources import pod_requests
from webhook.rules.model import MAX_NODES_IN_MESSAGE, NodeVerdict, Problem, Report

GIB = 2**30


def state(*extra, nodes=None):
    return ClusterState.from_objects(o.cluster(*extra, nodes=nodes))


# ---- target ------------------------------------------------------------------------------
def test_migration_target_sources():
    vmi = o.vmi(annotations={"harvesterhci.io/migrationTargetNodeName": "node-3"})
    assert migration_target(o.vmim(target="node-2"), vmi) == "node-2"
    assert migration_target(o.vmim(), vmi) == "node-3"
    assert migration_target(None, vmi) == "node-3"
    assert migration_target(o.vmim(), o.vmi()) is None
    assert migration_target(None, None) is None


def test_vmim_target_is_evaluated_alone():
    s = state(nodes=[o.node("node-1"), o.node("node-2"), o.node("node-3")])
    report = evaluate_migration(s, "default", "vm1", vmim=o.vmim(target="node-3"))
    assert report.target == "node-3" and [n.name for n in report.nodes] == ["node-3"]
    assert report.allowed


def test_explicit_target_wins_and_vmi_annotation_needs_a_vmim():
    s = ClusterState.from_objects(
        [
            o.node("node-1"),
            o.node("node-2"),
            o.node("node-3"),
            o.nad(),
            o.launcher(),
            o.vmi(annotations={"harvesterhci.io/migrationTargetNodeName": "node-3"}),
        ]
    )
    assert evaluate_migration(s, "default", "vm1", target="node-2").target == "node-2"
    assert evaluate_migration(s, "default", "vm1").target is None  # target lookup: all nodes
    assert len(evaluate_migration(s, "default", "vm1").nodes) == 3
    assert evaluate_migration(s, "default", "vm1", vmim=o.vmim()).target == "node-3"


def test_target_not_found():
    report = evaluate_migration(state(), "default", "vm1", target="node-9")
    assert report.nodes == () and not report.allowed
    (p,) = report.problems()
    assert p.code == "TargetNotFound" and "'node-9'" in p.message


def test_no_eligible_target_lists_each_node():
    nodes = [o.node("node-1"), o.node("node-2", spec={"unschedulable": True})]
    report = evaluate_migration(state(nodes=nodes), "default", "vm1")
    assert report.eligible_nodes == []
    (p,) = report.problems()
    assert p.code == "NoEligibleTarget"
    assert "node-1: " in p.message and "node-2: " in p.message and "cordoned" in p.message


def test_no_eligible_target_message_is_bounded():
    nodes = [NodeVerdict(f"n{i}", (Problem("NodeCordoned", "cordoned"),)) for i in range(80)]
    report = Report("ns/vm", "n0", None, (), tuple(nodes), None)
    (p,) = report.problems()
    assert f"n{MAX_NODES_IN_MESSAGE - 1}:" in p.message
    assert f"n{MAX_NODES_IN_MESSAGE}:" not in p.message
    assert f"and {80 - MAX_NODES_IN_MESSAGE} more nodes" in p.message


def test_nodes_sorted_and_report_json_matches_design():
    nodes = [o.node("node-3"), o.node("node-1"), o.node("node-2")]
    report = evaluate_migration(state(nodes=nodes), "default", "vm1")
    d = json.loads(json.dumps(report.to_dict()))
    assert d["vm"] == "default/vm1" and d["sourceNode"] == "node-1" and d["target"] is None
    assert d["allowed"] is True and d["blockers"] == [] and d["problems"] == []
    assert [n["name"] for n in d["nodes"]] == ["node-1", "node-2", "node-3"]
    assert d["nodes"][0] == {
        "name": "node-1",
        "eligible": False,
        "reasons": [{"code": "SourceNode", "message": d["nodes"][0]["reasons"][0]["message"]}],
    }
    assert d["eligibleNodes"] == ["node-2", "node-3"]
    kubevirt = d["timeouts"].pop("kubevirt")
    assert d["timeouts"] == {
        "dataBytes": 8 * GIB,
        "dataGiB": 8,
        "completionTimeoutSeconds": 6400,
        "progressTimeoutSeconds": 150,
        # no KubeVirt CR in the state: KubeVirt's defaults, 150 s per GB of 8.59 GB -> 9 GB
        "firesFirst": {"completion": "kubevirt", "progress": "same"},
    }
    assert kubevirt["source"] == "default" and kubevirt["dataGB"] == 9
    assert kubevirt["completionTimeoutSeconds"] == 1350


def test_settings_flow_into_the_report():
    report = evaluate_migration(
        state(),
        "default",
        "vm1",
        settings=TimeoutSettings(completion_timeout_per_gib=10, progress_timeout_seconds=30),
    )
    assert report.timeouts.completion_timeout_seconds == 80
    assert report.timeouts.progress_timeout_seconds == 30


# ---- timeouts ----------------------------------------------------------------------------
def test_timeouts_8gib_is_6400s():
    t = compute_timeouts(o.vmi(memory="8Gi"), TimeoutSettings())
    assert (t.data_bytes, t.data_gib, t.completion_timeout_seconds) == (8 * GIB, 8, 6400)


def test_timeouts_round_up_and_fall_back_to_requests():
    assert compute_timeouts(o.vmi(memory="8193Mi"), TimeoutSettings()).data_gib == 9
    vmi = o.vmi()
    del vmi["spec"]["domain"]["memory"]
    vmi["spec"]["domain"]["resources"]["requests"]["memory"] = "3G"
    t = compute_timeouts(vmi, TimeoutSettings())
    assert t.data_bytes == 3 * 10**9 and t.data_gib == 3
    del vmi["spec"]["domain"]["resources"]["requests"]["memory"]
    assert compute_timeouts(vmi, TimeoutSettings()).data_gib == 1  # never a 0 s deadline


def test_block_migration_adds_copied_volumes():
    vmi = o.vmi(memory="4Gi")
    vmi["status"]["migrationMethod"] = "BlockMigration"
    vmi["status"]["volumeStatus"] = [
        {
            "name": "disk-0",
            "persistentVolumeClaimInfo": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "10Gi"},
            },
        },
        {
            "name": "shared",
            "persistentVolumeClaimInfo": {
                "accessModes": ["ReadWriteMany"],
                "capacity": {"storage": "100Gi"},
            },
        },
        {"name": "cloudinit"},
    ]
    vmi["spec"]["volumes"].append({"name": "scratch", "emptyDisk": {"capacity": "2Gi"}})
    t = compute_timeouts(vmi, TimeoutSettings())
    assert t.data_gib == 16 and t.completion_timeout_seconds == 12800
    vmi["status"]["migrationMethod"] = "LiveMigration"
    assert compute_timeouts(vmi, TimeoutSettings()).data_gib == 4


def test_override_annotations_vmi_wins_over_vm():
    vm = o.vm(
        annotations={
            "migration-guard.io/completion-timeout-per-gib": "100",
            "migration-guard.io/progress-timeout-seconds": "60",
        }
    )
    vmi = o.vmi(annotations={"migration-guard.io/completion-timeout-per-gib": "50"})
    t = compute_timeouts(vmi, TimeoutSettings(), vm)
    assert t.completion_timeout_seconds == 400 and t.progress_timeout_seconds == 60
    s = ClusterState.from_objects(o.cluster(vm))
    s.apply(vmi)
    assert dataclasses.replace(evaluate_migration(s, "default", "vm1").timeouts, kubevirt=None) == t


@pytest.mark.parametrize("bad", ["abc", "-5", "0", "1.5", ""])
def test_malformed_override_is_ignored_unless_strict(bad):
    vmi = o.vmi(annotations={"migration-guard.io/progress-timeout-seconds": bad})
    assert compute_timeouts(vmi, TimeoutSettings()).progress_timeout_seconds == 150
    with pytest.raises(InputError, match=re.escape("migration-guard.io/progress-timeout-seconds")):
        compute_timeouts(vmi, TimeoutSettings(), strict=True)


def test_malformed_memory_is_an_input_error_naming_the_field():
    with pytest.raises(InputError, match=r"spec.domain.memory.guest.*'8 GB'"):
        compute_timeouts(o.vmi(memory="8 GB"), TimeoutSettings())


# ---- pod requests ------------------------------------------------------------------------
def test_pod_requests_like_the_scheduler():
    pod = o.launcher(cpu="250m", memory="1Gi")
    pod["spec"]["containers"].append({"name": "sidecar", "resources": {"requests": {"cpu": "50m"}}})
    assert pod_requests(pod) == {"cpu": 300, "memory": GIB}
    pod["spec"]["initContainers"] = [
        {"name": "big-init", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}},
        {
            "name": "native-sidecar",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "100m", "memory": "10Mi"}},
        },
    ]
    assert pod_requests(pod) == {"cpu": 2000, "memory": GIB + 10 * 2**20}
    pod["spec"]["overhead"] = {"cpu": "10m", "memory": "1Mi"}
    assert pod_requests(pod) == {"cpu": 2010, "memory": GIB + 11 * 2**20}


def test_pod_requests_default_from_limits_and_count_every_resource():
    pod = o.launcher(cpu="250m", memory="1Gi")
    pod["spec"]["containers"][0]["resources"]["limits"] = {
        "cpu": "1",
        "devices.kubevirt.io/kvm": "1",
        "hugepages-2Mi": "1Gi",
    }
    assert pod_requests(pod) == {
        "cpu": 250,  # requests win over limits
        "memory": GIB,
        "devices.kubevirt.io/kvm": 1,
        "hugepages-2Mi": GIB,
    }


def test_report_json_reads_back_as_the_same_report():
    """What the kubectl plugin relies on: it prints `Report.from_dict` of the API's answer."""
    nodes = [o.node("node-1"), o.node("node-2")]
    reports = [
        evaluate_migration(state(nodes=nodes), "default", "vm1"),
        evaluate_migration(state(nodes=nodes), "default", "vm1", target="node-1"),
        evaluate_migration(state(nodes=nodes), "default", "missing-vm"),
        evaluate_migration(state(nodes=nodes), "default", "vm1", target="node-9"),
    ]
    assert {r.allowed for r in reports} == {True, False}
    assert not reports[2].nodes_evaluated
    for report in reports:
        assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report
