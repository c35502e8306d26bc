"""Every node reason of DESIGN, each on node-2 of an otherwise clean scene."""

import pytest

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.rules import evaluate_migration


def verdict(node2, *, vmi=None, pod=None, extra=(), vmim=None):
    objs = [o.node("node-1"), node2, vmi or o.vmi(), o.vm(), o.nad()]
    objs.append(pod if pod is not None else o.launcher())
    objs += list(extra)
    state = ClusterState.from_objects(objs)
    report = evaluate_migration(state, "default", "vm1", target="node-2", vmim=vmim)
    (v,) = report.nodes
    assert v.name == "node-2"
    return v, report


def reason_codes(v):
    return [r.code for r in v.reasons]


def test_clean_node_is_eligible():
    v, report = verdict(o.node("node-2"))
    assert v.eligible and report.allowed and report.problems() == []


def test_source_node():
    state = ClusterState.from_objects(o.cluster())
    report = evaluate_migration(state, "default", "vm1", target="node-1")
    (v,) = report.nodes
    assert reason_codes(v) == ["SourceNode"]
    assert "'node-1'" in v.reasons[0].message
    (p,) = report.problems()
    assert p.code == "TargetNotEligible" and "'node-1'" in p.message and "runs now" in p.message


@pytest.mark.parametrize(
    "conditions",
    [
        [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}],
        [{"type": "Ready", "status": "Unknown"}],
        [],
    ],
)
def test_node_not_ready(conditions):
    v, _ = verdict(o.node("node-2", conditions=conditions))
    assert reason_codes(v) == ["NodeNotReady"]


def test_cordoned_by_flag_or_taint_reported_once():
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    for spec in (
        {"unschedulable": True},
        {"taints": [taint]},
        {"unschedulable": True, "taints": [taint]},
    ):
        v, _ = verdict(o.node("node-2", spec=spec))
        assert reason_codes(v) == ["NodeCordoned"], spec
    # even a VM that tolerates everything may not go to a cordoned node
    vmi = o.vmi()
    vmi["spec"]["tolerations"] = [{"operator": "Exists"}]
    v, _ = verdict(o.node("node-2", spec={"taints": [taint]}), vmi=vmi)
    assert reason_codes(v) == ["NodeCordoned"]


@pytest.mark.parametrize(
    "annotation", ["harvesterhci.io/maintain-status", "harvesterhci.io/drain-requested"]
)
def test_node_in_maintenance(annotation):
    v, _ = verdict(o.node("node-2", annotations={annotation: "running"}))
    assert reason_codes(v) == ["NodeInMaintenance"]
    assert annotation in v.reasons[0].message


def test_witness_node():
    v, _ = verdict(o.node("node-2", labels={"node-role.harvesterhci.io/witness": "true"}))
    assert reason_codes(v) == ["WitnessNode"]


@pytest.mark.parametrize("value", [None, "false"])
def test_not_schedulable(value):
    v, _ = verdict(o.node("node-2", labels={"kubevirt.io/schedulable": value}))
    assert reason_codes(v) == ["NotSchedulable"]


def test_node_selector_mismatch_from_vmi_and_vmim():
    vmi = o.vmi()
    vmi["spec"]["nodeSelector"] = {"disktype": "ssd"}
    v, _ = verdict(o.node("node-2"), vmi=vmi)
    assert reason_codes(v) == ["NodeSelectorMismatch"]
    assert v.reasons[0].field == "spec.nodeSelector" and "disktype=ssd" in v.reasons[0].message
    v, _ = verdict(o.node("node-2", labels={"disktype": "ssd"}), vmi=vmi)
    assert v.eligible
    vmim = o.vmim(selector={"kubernetes.io/hostname": "node-2", "rack": "r1"})
    v, report = verdict(o.node("node-2"), vmim=vmim)
    assert reason_codes(v) == ["NodeSelectorMismatch"]
    assert v.reasons[0].field == "spec.addedNodeSelector" and "rack=r1" in v.reasons[0].message
    assert report.target == "node-2"


def test_node_affinity_mismatch():
    vmi = o.vmi()
    vmi["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]},
                ]
            }
        }
    }
    v, _ = verdict(o.node("node-2", labels={"zone": "b"}), vmi=vmi)
    assert reason_codes(v) == ["NodeAffinityMismatch"]
    v, _ = verdict(o.node("node-2", labels={"zone": "a"}), vmi=vmi)
    assert v.eligible
    # preferred affinity never excludes
    vmi["spec"]["affinity"] = {
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}
    }
    v, _ = verdict(o.node("node-2", labels={"zone": "b"}), vmi=vmi)
    assert v.eligible


def test_taint_not_tolerated():
    taints = [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "soft", "effect": "PreferNoSchedule"},
    ]
    v, _ = verdict(o.node("node-2", spec={"taints": taints}))
    assert reason_codes(v) == ["TaintNotTolerated"]
    assert "dedicated=gpu:NoSchedule" in v.reasons[0].message and "soft" not in v.reasons[0].message
    vmi = o.vmi()
    vmi["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]
    v, _ = verdict(o.node("node-2", spec={"taints": taints}), vmi=vmi)
    assert v.eligible


def test_network_unavailable_names_cluster_network():
    v, _ = verdict(o.node("node-2", labels={"network.harvesterhci.io/data": None}))
    assert reason_codes(v) == ["NetworkUnavailable"]
    assert "lacks cluster network 'data'" in v.reasons[0].message
    assert v.reasons[0].field == "spec.networks[1]"


def test_nad_without_cluster_network_needs_nothing():
    objs_nad = o.nad(cluster_network=None)
    state = ClusterState.from_objects(
        [
            o.node("node-1"),
            o.node("node-2", labels={"network.harvesterhci.io/data": None}),
            o.vmi(),
            objs_nad,
            o.launcher(),
        ]
    )
    report = evaluate_migration(state, "default", "vm1", target="node-2")
    assert report.allowed


def test_cpu_model_from_vmi_spec():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "Skylake-Server"
    v, _ = verdict(o.node("node-2"), vmi=vmi)
    assert reason_codes(v) == ["CPUModelUnsupported"]
    assert "Skylake-Server" in v.reasons[0].message
    v, _ = verdict(
        o.node("node-2", labels={"cpu-model.node.kubevirt.io/Skylake-Server": "true"}), vmi=vmi
    )
    assert v.eligible
    for model in ("host-passthrough", "host-model"):
        vmi["spec"]["domain"]["cpu"]["model"] = model
        v, _ = verdict(o.node("node-2"), vmi=vmi)
        assert v.eligible, model


def test_host_model_needs_the_source_nodes_host_model_on_the_target():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    older = o.node(
        "node-2", labels={"cpu-model-migration.node.kubevirt.io/Cascadelake-Server": None}
    )
    v, _ = verdict(older, vmi=vmi)
    assert reason_codes(v) == ["CPUModelUnsupported"]
    assert "host-model CPU 'Cascadelake-Server'" in v.reasons[0].message
    assert "cpu-model-migration.node.kubevirt.io/Cascadelake-Server=true" in v.reasons[0].message


def test_host_model_required_features_of_the_source_node_become_cpu_features():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    source = o.node("node-1", labels={"host-model-required-features.node.kubevirt.io/vmx": "true"})
    v, _ = verdict(o.node("node-2"), vmi=vmi, extra=[source])
    assert reason_codes(v) == ["CPUModelUnsupported"]
    assert "cpu-feature.node.kubevirt.io/vmx=true" in v.reasons[0].message
    ok = o.node("node-2", labels={"cpu-feature.node.kubevirt.io/vmx": "true"})
    v, _ = verdict(ok, vmi=vmi, extra=[source])
    assert v.eligible


def test_cpu_vendor_of_the_source_node_for_every_cpu_mode():
    amd = o.node(
        "node-2",
        labels={
            "cpu-vendor.node.kubevirt.io/Intel": None,
            "cpu-vendor.node.kubevirt.io/AMD": "true",
        },
    )
    for model in ("host-passthrough", "Cascadelake-Server", "host-model"):
        vmi = o.vmi()
        vmi["spec"]["domain"]["cpu"]["model"] = model
        v, _ = verdict(amd, vmi=vmi)
        assert reason_codes(v) == ["CPUModelUnsupported"], model
        assert (
            "has CPU vendor AMD, the VM runs on a Intel node (cpu-vendor.node.kubevirt.io/Intel)"
            in v.reasons[0].message
        )


def test_machine_type_from_status_before_spec():
    vmi = o.vmi()
    vmi["spec"]["domain"]["machine"] = {"type": "q35"}
    vmi["status"]["machine"] = {"type": "pc-q35-rhel9.6.0"}
    q35_only = o.node("node-2", labels={"machine-type.node.kubevirt.io/q35": "true"})
    v, _ = verdict(q35_only, vmi=vmi)
    assert reason_codes(v) == ["MachineTypeUnsupported"]
    assert "'pc-q35-rhel9.6.0'" in v.reasons[0].message
    both = o.node("node-2", labels={"machine-type.node.kubevirt.io/pc-q35-rhel9.6.0": "true"})
    assert verdict(both, vmi=vmi)[0].eligible


def test_obsolete_host_model_and_forbidden_features_reject_nodes():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    vmi["spec"]["domain"]["cpu"]["features"] = [{"name": "svm", "policy": "forbid"}]
    node = o.node(
        "node-2",
        labels={
            "node-labeller.kubevirt.io/obsolete-host-model": "true",
            "cpu-feature.node.kubevirt.io/svm": "true",
        },
    )
    v, _ = verdict(node, vmi=vmi)
    assert reason_codes(v) == ["CPUModelUnsupported"]
    assert (
        "obsolete" in v.reasons[0].message and "'svm', which the VM forbids" in v.reasons[0].message
    )


def test_cpu_feature_required():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-passthrough"
    vmi["spec"]["domain"]["cpu"]["features"] = [
        {"name": "avx512f"},
        {"name": "pcid", "policy": "optional"},
    ]
    v, _ = verdict(o.node("node-2"), vmi=vmi)
    assert reason_codes(v) == ["CPUModelUnsupported"] and "avx512f" in v.reasons[0].message
    assert "pcid" not in v.reasons[0].message


def test_cpu_features_without_a_cpu_model_are_not_selected_as_kubevirt_does():
    # CPUModelLabelFromCPUModel fails without a model, and KubeVirt then adds no feature label
    # (virt-api's mutator always sets a model, so only hand-written state lacks one).
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["features"] = [{"name": "avx512f"}]
    v, _ = verdict(o.node("node-2"), vmi=vmi)
    assert v.eligible


def test_host_model_labels_of_a_vm_that_migrated_before_come_from_its_launcher_pod():
    selector = {
        "kubevirt.io/schedulable": "true",
        "cpu-model-migration.node.kubevirt.io/Icelake-Server": "true",
        "cpu-feature.node.kubevirt.io/vmx": "true",
        "kubernetes.io/hostname": "node-1",  # the previous migration's addedNodeSelector
        "unrelated.example.com/x": "y",  # not rendered by KubeVirt: not carried over
    }
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    v, _ = verdict(o.node("node-2"), vmi=vmi, pod=o.launcher(selector=selector))
    assert reason_codes(v) == ["CPUModelUnsupported"]
    msg = v.reasons[0].message
    assert "cpu-model-migration.node.kubevirt.io/Icelake-Server" in msg
    assert "cpu-feature.node.kubevirt.io/vmx" in msg
    assert "unrelated" not in msg and "hostname" not in msg


def test_insufficient_resources_from_launcher_pod():
    hog = o.pod("hog", "node-2", cpu="15", memory="60Gi")
    v, _ = verdict(o.node("node-2"), extra=[hog], pod=o.launcher(cpu="2", memory="8Gi"))
    assert reason_codes(v) == ["InsufficientResources"]
    msg = v.reasons[0].message
    assert "CPU: needs 2 CPU, 1 CPU free" in msg and "memory: needs 8Gi, 4Gi free" in msg


def test_terminated_pods_do_not_count():
    done = o.pod("job", "node-2", cpu="15", memory="60Gi", phase="Succeeded")
    v, _ = verdict(o.node("node-2"), extra=[done], pod=o.launcher(cpu="2", memory="8Gi"))
    assert v.eligible


def test_capacity_from_vmi_without_pod():
    vmi = o.vmi(memory="100Gi")
    del vmi["spec"]["domain"]["resources"]["requests"]["memory"]  # falls back to guest memory
    state = ClusterState.from_objects([o.node("node-1"), o.node("node-2"), vmi, o.nad()])
    (v,) = evaluate_migration(state, "default", "vm1", target="node-2").nodes
    assert reason_codes(v) == ["InsufficientResources"]
    assert "needs 100Gi" in v.reasons[0].message


def test_all_reasons_at_once_in_design_order():
    node2 = o.node(
        "node-2",
        labels={
            "node-role.harvesterhci.io/witness": "true",
            "kubevirt.io/schedulable": None,
            "network.harvesterhci.io/data": None,
            "host-model-cpu.node.kubevirt.io/Cascadelake-Server": None,
        },
        annotations={"harvesterhci.io/drain-requested": "true"},
        spec={"unschedulable": True, "taints": [{"key": "x", "effect": "NoExecute"}]},
        conditions=[{"type": "Ready", "status": "False"}],
        allocatable={"cpu": "100m", "memory": "1Gi"},
    )
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "Skylake-Server"
    vmi["spec"]["nodeSelector"] = {"disk": "ssd"}
    vmi["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]
            }
        }
    }
    v, _ = verdict(node2, vmi=vmi)
    assert reason_codes(v) == [
        "NodeNotReady",
        "NodeCordoned",
        "NodeInMaintenance",
        "WitnessNode",
        "NotSchedulable",
        "NodeSelectorMismatch",
        "NodeAffinityMismatch",
        "TaintNotTolerated",
        "NetworkUnavailable",
        "CPUModelUnsupported",
        "InsufficientResources",
    ]
    assert all("'node-2'" in r.message for r in v.reasons)
