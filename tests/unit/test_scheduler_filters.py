"""The target pod against kube-scheduler's Filter plugins: one regression test per way
migration-guard and the real virt-controller + kube-scheduler were found to disagree."""

import copy

from tests.unit import rules_objects as o
from tests.unit.test_node_eligibility import reason_codes, verdict
from webhook.cluster.state import ClusterState
from webhook.rules import evaluate_migration
from webhook.rules.target_pod import render_target_pod


def with_limits(pod: dict, **limits: str) -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["resources"]["limits"] = limits
    return pod


def test_a_node_without_the_kvm_device_plugin_has_none_to_give():
    pod = with_limits(o.launcher(), **{"devices.kubevirt.io/kvm": "1"})
    node = o.node("node-2", allocatable={"cpu": "16", "memory": "64Gi", "pods": "110"})
    v, _ = verdict(node, pod=pod)
    assert reason_codes(v) == ["InsufficientResources"]
    assert "devices.kubevirt.io/kvm: needs 1, the node has none" in v.reasons[0].message


def test_a_node_at_its_pod_limit():
    alloc = {**o.ALLOCATABLE, "pods": "2"}
    fillers = [o.pod(f"p{i}", "node-2", cpu="1m", memory="1Mi") for i in range(2)]
    v, _ = verdict(o.node("node-2", allocatable=alloc), extra=fillers)
    assert reason_codes(v) == ["InsufficientResources"]
    assert "pods: runs 2 of 2 pods" in v.reasons[0].message
    v, _ = verdict(o.node("node-2", allocatable=alloc), extra=fillers[:1])
    assert v.eligible


def test_hugepages_are_a_resource_like_any_other():
    pod = with_limits(o.launcher(), **{"hugepages-2Mi": "2Gi"})
    v, _ = verdict(o.node("node-2", allocatable={**o.ALLOCATABLE, "hugepages-2Mi": "0"}), pod=pod)
    assert "hugepages-2Mi: needs 2Gi, the node has none" in v.reasons[0].message
    v, _ = verdict(o.node("node-2", allocatable={**o.ALLOCATABLE, "hugepages-2Mi": "4Gi"}), pod=pod)
    assert v.eligible


def test_a_node_without_allocatable_cpu_has_none():
    v, _ = verdict(o.node("node-2", allocatable={"memory": "64Gi", "pods": "110"}))
    assert "CPU: needs 125m, the node has none" in v.reasons[0].message


def test_the_previous_migrations_hostname_in_the_launcher_selector_is_not_carried_over():
    pod = o.launcher()
    pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] = "node-1"
    v, _ = verdict(o.node("node-2"), pod=pod)
    assert v.eligible


def test_added_node_selector_never_overrides_the_vms_own():
    vmi = o.vmi()
    vmi["spec"]["nodeSelector"] = {"zone": "a"}
    vmim = {
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {
            "vmiName": "vm1",
            "addedNodeSelector": {"zone": "b", "kubernetes.io/hostname": "node-2"},
        },
    }
    pod = render_target_pod(vmi, vmim, o.launcher(), o.node("node-1")["metadata"]["labels"])
    assert pod.node_selector["zone"] == "a" and pod.origin["zone"] == "vm"
    assert pod.node_selector["kubernetes.io/hostname"] == "node-2"


def test_a_vendor_or_host_model_key_the_migration_adds_is_resolved_as_kubevirt_orders_them():
    """KubeVirt adds addedNodeSelector before the host-model and vendor entries: a host-model key
    keeps the source's value, and a vendor the migration selects means no source vendor."""
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    source = o.node("node-1")["metadata"]["labels"]
    host_key = "cpu-model-migration.node.kubevirt.io/Cascadelake-Server"
    added = {host_key: "false", "cpu-vendor.node.kubevirt.io/AMD": "true"}
    vmim = {"metadata": {"name": "m"}, "spec": {"vmiName": "vm1", "addedNodeSelector": added}}
    pod = render_target_pod(vmi, vmim, o.launcher(selector={}), source)
    assert pod.node_selector[host_key] == "true" and pod.origin[host_key] == "host-model"
    assert pod.node_selector["cpu-vendor.node.kubevirt.io/AMD"] == "true"
    assert "cpu-vendor.node.kubevirt.io/Intel" not in pod.node_selector  # the source's vendor
    plain = render_target_pod(vmi, None, o.launcher(selector={}), source)
    assert plain.origin["cpu-vendor.node.kubevirt.io/Intel"] == "vendor"


def test_not_ready_and_unreachable_no_execute_taints_are_tolerated_by_default():
    taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    v, _ = verdict(o.node("node-2", spec={"taints": taints}))
    assert v.eligible
    taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    assert reason_codes(verdict(o.node("node-2", spec={"taints": taints}))[0]) == [
        "TaintNotTolerated"
    ]


def anti_affinity(labels: dict) -> dict:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }


def test_the_vms_pod_anti_affinity_keeps_it_away_from_matching_pods():
    vmi = o.vmi()
    vmi["spec"]["affinity"] = anti_affinity({"app": "db"})
    db = o.pod("db-0", "node-2", cpu="1m", memory="1Mi", ns="default")
    db["metadata"]["labels"] = {"app": "db"}
    v, _ = verdict(o.node("node-2"), vmi=vmi, extra=[db])
    assert reason_codes(v) == ["PodAntiAffinityConflict"]
    assert "runs pod default/db-0, which the VM's pod anti-affinity" in v.reasons[0].message
    db["metadata"]["namespace"] = "other"  # the term's namespace is the VM's
    assert verdict(o.node("node-2"), vmi=vmi, extra=[db])[0].eligible


def test_another_pods_anti_affinity_keeps_the_vm_away():
    other = o.launcher("vm9", "node-2", name="virt-launcher-vm9-x")
    other["metadata"]["labels"]["app"] = "db"
    other["spec"]["affinity"] = anti_affinity({"app": "db"})
    pod = o.launcher()
    pod["metadata"]["labels"]["app"] = "db"
    v, _ = verdict(o.node("node-2"), pod=pod, extra=[other])
    assert reason_codes(v) == ["PodAntiAffinityConflict"]
    assert "whose pod anti-affinity keeps the VM away" in v.reasons[0].message
    del pod["metadata"]["labels"]["app"]
    assert verdict(o.node("node-2"), pod=pod, extra=[other])[0].eligible


def test_a_stale_target_pod_of_the_same_vmi_repels_the_new_one():
    stale = o.launcher(name="virt-launcher-vm1-old", node_name="node-2")
    stale["metadata"]["labels"]["kubevirt.io/created-by"] = "uid-vm1"
    v, _ = verdict(o.node("node-2"), extra=[stale])
    assert reason_codes(v) == ["PodAntiAffinityConflict"]


def test_another_scheduler_is_reported_not_guessed():
    vmi = o.vmi()
    vmi["spec"]["schedulerName"] = "my-scheduler"
    v, report = verdict(o.node("node-2", labels={"kubevirt.io/schedulable": None}), vmi=vmi)
    assert v.eligible
    assert any("scheduler 'my-scheduler'" in n for n in report.notes)


def test_a_term_with_a_namespace_selector_is_not_judged_and_says_so():
    vmi = o.vmi()
    vmi["spec"]["affinity"] = anti_affinity({"app": "db"})
    term = vmi["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ][0]
    term["namespaceSelector"] = {"matchLabels": {"team": "a"}}
    db = o.pod("db-0", "node-2", cpu="1m", memory="1Mi", ns="default")
    db["metadata"]["labels"] = {"app": "db"}
    v, report = verdict(o.node("node-2"), vmi=vmi, extra=[db])
    assert v.eligible
    assert any("namespaceSelector is not judged" in n for n in report.notes)


def test_without_a_launcher_pod_the_target_pod_is_rendered_and_the_report_says_so():
    state = ClusterState.from_objects([o.node("node-1"), o.node("node-2"), o.vmi(), o.nad()])
    report = evaluate_migration(state, "default", "vm1", target="node-2")
    assert report.allowed
    assert any("rendered from the VMI" in n for n in report.notes)
    assert report.to_dict()["notes"] == list(report.notes)


def test_host_model_without_a_host_model_label_on_the_source_cannot_be_rendered():
    vmi = o.vmi()
    vmi["spec"]["domain"]["cpu"]["model"] = "host-model"
    source = o.node("node-1", labels={"host-model-cpu.node.kubevirt.io/Cascadelake-Server": None})
    state = ClusterState.from_objects([source, o.node("node-2"), vmi, o.nad(), o.launcher()])
    report = evaluate_migration(state, "default", "vm1", target="node-2")
    assert [b.code for b in report.blockers] == ["CPUModelUnsupported"]
    assert "KubeVirt cannot render the target pod" in report.blockers[0].message
