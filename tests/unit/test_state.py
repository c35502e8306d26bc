"""ClusterState: indexes kept right across apply / remove / replace_all, slimming, threads."""

import copy
import threading

import pytest

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState, slim
from webhook.errors import InputError

GIB = 2**30


def test_lookups_and_slimming():
    s = ClusterState.from_objects(o.cluster())
    assert s.node("node-1")["metadata"]["name"] == "node-1"
    assert s.vmi("default", "vm1") and s.vm("default", "vm1") and s.nad("default", "vlan100")
    pod = s.launcher_pod("default", "vm1")
    assert pod["metadata"]["name"] == "virt-launcher-vm1-abcde"
    assert "managedFields" not in pod["metadata"]
    assert "volumes" not in pod["spec"] and "podIP" not in pod["status"]
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "125m"
    assert pod["spec"]["nodeSelector"]["kubevirt.io/schedulable"] == "true"


def test_apply_does_not_modify_the_callers_object():
    pod = o.launcher()
    ClusterState.from_objects([pod])
    assert pod["metadata"]["managedFields"] and pod["status"]["podIP"]


def test_managed_fields_and_last_applied_dropped_everywhere():
    node = o.node("node-1")
    node["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    node["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    s = ClusterState.from_objects([node])
    meta = s.node("node-1")["metadata"]
    assert "managedFields" not in meta
    assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]


def test_what_the_schedulers_scores_count_is_incremental():
    """NonZeroRequested: a container without a cpu or memory request counts 100m / 200 MiB."""
    s = ClusterState()
    besteffort = o.pod("a", "n1")
    besteffort["spec"]["containers"] = [{"name": "c"}, {"name": "d", "resources": {}}]
    s.apply(besteffort)
    half = o.pod("b", "n1")  # a memory limit stands in for the request; no cpu
    half["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gi"}}
    s.apply(half)
    s.apply(o.pod("c", "n1", cpu="1", memory="1Gi"))
    assert s.node_requested("n1") == {"cpu": 1000, "memory": 2 * GIB}
    assert s.node_nonzero_requested("n1") == {
        "cpu": 1000 + 3 * 100,
        "memory": 2 * GIB + 2 * 200 * 2**20,
    }
    s.remove("Pod", "kube-system", "a")
    s.apply(o.pod("b", "n1", phase="Succeeded"))
    assert s.node_nonzero_requested("n1") == {"cpu": 1000, "memory": GIB}
    assert s.node_nonzero_requested("n2") == {"cpu": 0, "memory": 0}


def test_node_requested_is_incremental():
    s = ClusterState()
    s.apply(o.pod("a", "n1", cpu="1", memory="1Gi"))
    s.apply(o.pod("b", "n1", cpu="500m", memory="1Gi"))
    assert s.node_requested("n1") == {"cpu": 1500, "memory": 2 * GIB}
    s.apply(o.pod("a", "n2", cpu="1", memory="1Gi"))  # moved
    assert s.node_requested("n1") == {"cpu": 500, "memory": GIB} and s.node_requested("n2") == {
        "cpu": 1000,
        "memory": GIB,
    }
    s.apply(o.pod("b", "n1", phase="Failed"))  # terminated: reserves nothing
    assert s.node_requested("n1") == {}
    s.remove("Pod", "kube-system", "a")
    assert s.node_requested("n2") == {}
    s.remove("Pod", "kube-system", "unknown")  # no error
    s.replace_all("Pod", [o.pod("c", "n3", cpu="2", memory="2Gi")])
    assert s.node_requested("n1") == {} and s.node_requested("n3") == {
        "cpu": 2000,
        "memory": 2 * GIB,
    }
    assert s.pod("kube-system", "b") is None


def test_launcher_pod_index_prefers_source_node_and_skips_terminated():
    s = ClusterState.from_objects([o.vmi()])
    s.apply(o.launcher(node_name="node-2", name="virt-launcher-vm1-target"))
    s.apply(o.launcher(node_name="node-1", name="virt-launcher-vm1-source"))
    assert s.launcher_pod("default", "vm1")["metadata"]["name"] == "virt-launcher-vm1-source"
    s.apply(o.launcher(node_name="node-1", name="virt-launcher-vm1-source", phase="Succeeded"))
    assert s.launcher_pod("default", "vm1")["metadata"]["name"] == "virt-launcher-vm1-target"
    s.remove("Pod", "default", "virt-launcher-vm1-target")
    assert s.launcher_pod("default", "vm1") is None
    plain = o.pod("other", "node-1", ns="default")
    s.apply(plain)
    assert s.launcher_pod("default", "other") is None


def test_vmims_by_vmi_follow_changes():
    s = ClusterState()
    s.apply(o.vmim("m1", "vm1"))
    s.apply(o.vmim("m2", "vm1"))
    s.apply(o.vmim("m3", "vm2"))
    assert sorted(m["metadata"]["name"] for m in s.vmi_view("default", "vm1").vmims) == ["m1", "m2"]
    s.apply(o.vmim("m2", "vm2"))
    assert [m["metadata"]["name"] for m in s.vmi_view("default", "vm1").vmims] == ["m1"]
    s.remove("VirtualMachineInstanceMigration", "default", "m1")
    assert s.vmi_view("default", "vm1").vmims == []
    assert len(s.vmims()) == 2 and s.vmim("default", "m3")
    s.replace_all("VirtualMachineInstanceMigration", [])
    assert s.vmims() == [] and s.vmi_view("default", "vm2").vmims == []


def test_unknown_kinds_ignored_and_lists_expanded():
    s = ClusterState.from_objects(
        [
            {"kind": "Service", "metadata": {"name": "x"}},
            {"kind": "List", "items": [o.node("node-1"), o.node("node-2")]},
        ]
    )
    assert [n["metadata"]["name"] for n in s.nodes()] == ["node-1", "node-2"]


def test_namespace_defaults_for_namespaced_objects():
    vmi = o.vmi()
    del vmi["metadata"]["namespace"]
    assert ClusterState.from_objects([vmi]).vmi("default", "vm1")


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ("not a map", "must be a map"),
        ({"metadata": {"name": "x"}}, "kind"),
        ({"kind": "Node", "metadata": {}}, "metadata.name"),
        ({"kind": "Node", "metadata": "x"}, "metadata must be a map"),
        (
            {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "c"}},
            "spec.containers",
        ),
        (
            {
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"resources": {"requests": {"cpu": "lots"}}}]},
            },
            "spec.containers[0].resources.requests.cpu",
        ),
        (
            {
                "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": "m"},
                "spec": {"vmiName": 3},
            },
            "spec.vmiName",
        ),
    ],
)
def test_malformed_objects_are_input_errors(obj, text):
    s = ClusterState()
    with pytest.raises(InputError) as exc:
        s.apply(obj)
    assert text in str(exc.value)


def test_replace_all_is_all_or_nothing():
    s = ClusterState.from_objects([o.pod("a", "n1")])
    with pytest.raises(InputError):
        s.replace_all("Pod", [o.pod("b", "n1"), o.pod("c", "n1", cpu="x")])
    assert s.pod("kube-system", "a") and s.node_requested("n1") == {"cpu": 1000, "memory": GIB}


def test_concurrent_writers_keep_sums_consistent():
    s = ClusterState()

    def worker(k):
        for i in range(200):
            s.apply(o.pod(f"p{k}-{i}", "n1", cpu="10m", memory="1Mi"))
        for i in range(0, 200, 2):
            s.remove("Pod", "kube-system", f"p{k}-{i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.node_requested("n1") == {"cpu": 4 * 100 * 10, "memory": 4 * 100 * 2**20}
    assert s.count("Pod") == 400


def test_slim_is_idempotent_and_stored_without_a_second_copy():
    pod = slim(o.launcher())
    assert slim(pod) is pod
    s = ClusterState()
    s.replace_all("Pod", [pod])
    assert s.launcher_pod("default", "vm1") is pod
    node = slim(o.node("node-1"))
    s.apply(node)
    assert s.node("node-1") is node
    changed = copy.deepcopy(pod)  # a copy is a plain map again: slimmed and checked on apply
    changed["metadata"]["managedFields"] = [{"manager": "x"}]
    s.apply(changed)
    assert "managedFields" not in s.launcher_pod("default", "vm1")["metadata"]
