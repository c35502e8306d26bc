"""The drain plan, pure: who leaves, in which wave, to which node, and who holds the drain."""

from __future__ import annotations

import json

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.rules.drain import HOLDS, LEFT, MIGRATES, SHUT_DOWN, contenders, drain_plan
from webhook.rules.scoring import balanced_allocation, best_nodes, least_allocated, node_score

GI = 2**30


def vm_on_node_1(
    name: str, strategy: str | None = "LiveMigrate", memory: str = "8Gi", **kw
) -> list[dict]:
    vmi = o.vmi(name, **kw)
    if strategy is not None:
        vmi["spec"]["evictionStrategy"] = strategy
    vmi["spec"]["domain"]["resources"]["requests"]["memory"] = memory
    return [vmi, o.vm(name), o.launcher(name, memory=memory)]


def node(name: str, memory: str) -> dict:
    return o.node(name, allocatable={**o.ALLOCATABLE, "memory": memory})


def test_scores_are_kube_schedulers_least_allocated_plus_balanced_allocation():
    alloc = {"cpu": 16000, "memory": 64 * GI}
    assert least_allocated(alloc, {"cpu": 8000, "memory": 16 * GI}) == (50 + 75) // 2
    assert balanced_allocation(alloc, {"cpu": 8000, "memory": 16 * GI}) == 87  # 1 - |0.5-0.25|/2
    # a pod without requests: LeastAllocated counts it as 100m / 200 MiB, and
    # BalancedAllocation skips it (0 on every node)
    nonzero = {"cpu": 100, "memory": 200 * 2**20}
    assert node_score(alloc, {}, {}, {}, nonzero) == 99
    # LeastAllocated counts the node's pods as NonZeroRequested, BalancedAllocation as written
    used, counted = {"cpu": 8000, "memory": 16 * GI}, {"cpu": 8000, "memory": 32 * GI}
    pod = {"cpu": 1000, "memory": GI}
    assert node_score(alloc, used, counted, pod) == least_allocated(
        alloc, {"cpu": 9000, "memory": 33 * GI}
    ) + balanced_allocation(alloc, {"cpu": 9000, "memory": 17 * GI})
    assert best_nodes([("b", 150), ("a", 150), ("c", 120)]) == (["a", "b"], 150)


def test_every_vm_of_the_node_and_what_the_drain_does_to_it():
    objs = [node("node-1", "64Gi"), node("node-2", "20Gi"), node("node-3", "40Gi"), o.nad()]
    objs += vm_on_node_1("a-big", memory="16Gi")  # goes where most room is left
    objs += vm_on_node_1("b-big", memory="16Gi")  # then the other node has more room
    objs += vm_on_node_1("c-huge", memory="30Gi")  # fits node-3 alone, not after a-big
    objs += vm_on_node_1("d-none", strategy=None)
    objs += vm_on_node_1("e-external", strategy="External")
    not_migratable = [
        {"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable"}
    ]
    objs += vm_on_node_1("f-maybe", strategy="LiveMigrateIfPossible", conditions=not_migratable)
    plan = drain_plan(ClusterState.from_objects(objs), "node-1")
    by_vm = {p.vm.split("/")[1]: p for p in plan.vms}
    assert [p.vm for p in plan.vms] == sorted(p.vm for p in plan.vms)

    assert (by_vm["a-big"].outcome, by_vm["a-big"].target, by_vm["a-big"].wave) == (
        MIGRATES,
        "node-3",
        1,
    )
    assert (by_vm["b-big"].outcome, by_vm["b-big"].target, by_vm["b-big"].wave) == (
        MIGRATES,
        "node-2",
        1,
    )
    huge = by_vm["c-huge"]
    assert huge.outcome == HOLDS
    assert huge.reasons[0].code == "NoRoomAfterPlacements"
    assert "NoEligibleTarget" in [r.code for r in huge.reasons]
    assert by_vm["d-none"].outcome == SHUT_DOWN
    assert "evictionStrategy None" in by_vm["d-none"].reasons[0].message
    assert by_vm["e-external"].outcome == LEFT
    assert by_vm["f-maybe"].outcome == SHUT_DOWN
    assert not plan.drainable
    assert json.loads(json.dumps(plan.to_dict()))["vms"][0]["target"] == "node-3"


def test_waves_follow_kubevirts_parallel_outbound_migrations_per_node():
    objs = [node("node-1", "64Gi"), node("node-2", "256Gi"), o.nad()]
    for i in range(5):
        objs += vm_on_node_1(f"vm-{i}", memory="1Gi")
    kubevirt = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {"configuration": {"migrations": {"parallelOutboundMigrationsPerNode": 3}}},
        "status": {"phase": "Deployed"},
    }
    plan = drain_plan(ClusterState.from_objects([*objs, kubevirt]), "node-1")
    assert plan.parallel_per_node == 3 and plan.parallel_per_cluster == 5
    assert [p.wave for p in plan.vms] == [1, 1, 1, 2, 2]
    assert plan.drainable


def test_a_blocked_vm_holds_the_drain_with_its_reasons_and_the_cluster_strategy_applies():
    objs = [node("node-1", "64Gi"), node("node-2", "64Gi"), o.nad()]
    boxed = vm_on_node_1("boxed", strategy=None)
    boxed[0]["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    kubevirt = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {"configuration": {"evictionStrategy": "LiveMigrate"}},
        "status": {"phase": "Deployed"},
    }
    plan = drain_plan(ClusterState.from_objects([*objs, *boxed, kubevirt]), "node-1")
    (held,) = plan.vms
    assert (held.eviction_strategy, held.outcome) == ("LiveMigrate", HOLDS)
    assert [r.code for r in held.reasons] == ["ManagementNetworkBridge"]


def test_migratability_gauges_name_the_blockers_and_count_who_holds_each_drain():
    from prometheus_client import CollectorRegistry, generate_latest

    from tests.harness.metrics import sample
    from webhook.admission.migratability import MigratabilityGauges
    from webhook.rules.policy import ALL_DENY

    objs = [node("node-1", "64Gi"), node("node-2", "64Gi"), o.nad()]
    boxed = vm_on_node_1("boxed")
    boxed[0]["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    objs += boxed + vm_on_node_1("clean") + vm_on_node_1("stops", strategy=None)
    stops = vm_on_node_1("stops-boxed", strategy=None)
    stops[0]["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    state = ClusterState.from_objects(objs + stops)
    gauges = MigratabilityGauges(state, lambda: ALL_DENY, lambda: True)
    assert gauges.refresh() and not gauges.refresh()  # again only when the cluster changed
    registry = CollectorRegistry()
    registry.register(gauges)
    text = generate_latest(registry).decode()
    on = {"namespace": "default", "node": "node-1"}
    bridge = "ManagementNetworkBridge"
    assert sample(text, "migration_guard_vm_migratable", vm="boxed", blockers=bridge, **on) == 0
    assert sample(text, "migration_guard_vm_migratable", vm="clean", blockers="", **on) == 1
    assert (
        sample(text, "migration_guard_vm_migratable", vm="stops-boxed", blockers=bridge, **on) == 0
    )
    # boxed holds the drain; stops-boxed does not (evictionStrategy None: it is shut down)
    assert sample(text, "migration_guard_node_drain_blockers", node="node-1") == 1


def test_policy_reports_have_a_result_per_vm_and_a_summary():
    from webhook.admission.policyreports import by_namespace
    from webhook.rules.drain import Migratability
    from webhook.rules.model import Problem

    bridge = Problem("ManagementNetworkBridge", "interface 'default' uses bridge binding")
    cd = Problem("CDROMVolume", "CD-ROM 'cd' is inserted")
    results = [
        Migratability("a/clean", "n1", (), False),
        Migratability("a/boxed", "n1", ("ManagementNetworkBridge",), True, (bridge,)),
        Migratability("a/cd", "n2", (), False, (), (cd,)),
        Migratability(
            "b/left", "n1", (), False, exemption="namespace 'b' is in --exempt-namespaces"
        ),
    ]
    reports = by_namespace(results)
    assert sorted(reports) == ["a", "b"]
    a = reports["a"]
    assert a["kind"] == "PolicyReport" and a["metadata"]["name"] == "migration-guard"
    assert a["summary"] == {"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0}
    by_vm = {r["resources"][0]["name"]: r for r in a["results"]}
    assert by_vm["boxed"]["result"] == "fail"
    assert (
        by_vm["boxed"]["message"]
        == "ManagementNetworkBridge: interface 'default' uses bridge binding"
    )
    assert by_vm["boxed"]["properties"] == {"node": "n1", "blockers": "ManagementNetworkBridge"}
    assert by_vm["cd"]["result"] == "warn" and "CDROMVolume" in by_vm["cd"]["message"]
    assert reports["b"]["results"][0]["result"] == "skip"
    assert by_namespace(reversed(results)) == reports  # stable: equal input writes nothing


def test_contenders_are_the_nodes_a_pod_may_get_when_its_peers_go_first():
    scores = [("a", 190), ("b", 180), ("c", 180), ("d", 170), ("e", 150)]
    assert contenders(scores, 0) == {"a"}
    assert contenders(scores, 1) == {"a", "b", "c"}  # a taken: b or c, at random
    assert contenders(scores, 2) == {"a", "b", "c"}  # a and b taken: c
    assert contenders(scores, 3) == {"a", "b", "c", "d"}
    assert contenders([], 3) == set()


def test_a_wave_lists_every_node_its_peers_may_leave_to_each_vm():
    """Regression (the real stack, after other tests): the first VM of a wave took an
    alternative, the second landed on a node the plan listed for neither order. Each VM of a
    wave of two may land on the node ranked second for it, whichever goes first."""
    objs = [node("node-1", "64Gi"), node("node-2", "40Gi"), node("node-3", "30Gi")]
    objs += [node("node-4", "20Gi"), o.nad()]
    objs += vm_on_node_1("a", memory="2Gi") + vm_on_node_1("b", memory="2Gi")
    plan = drain_plan(ClusterState.from_objects(objs), "node-1")
    a, b = plan.vms
    assert (a.target, a.wave, b.wave) == ("node-2", 1, 1)
    assert b.target == "node-3"  # after a took node-2
    assert set(a.alternatives) == {"node-3"} and set(b.alternatives) == {"node-2"}


def test_least_allocated_counts_containers_without_requests_as_the_scheduler_does():
    """A node full of pods without requests looks empty to the filters, not to the scores."""
    objs = [node("node-1", "64Gi"), node("node-2", "32Gi"), node("node-3", "32Gi"), o.nad()]
    objs += vm_on_node_1("a", memory="1Gi")
    for i in range(40):  # 40 x (100m, 200 MiB) as LeastAllocated counts them
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"besteffort-{i}", "namespace": "kube-system"},
                "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "x"}]},
                "status": {"phase": "Running"},
            }
        )
    state = ClusterState.from_objects(objs)
    assert state.node_requested("node-2") == {}
    assert state.node_nonzero_requested("node-2") == {"cpu": 4000, "memory": 8000 * 2**20}
    (a,) = drain_plan(state, "node-1").vms
    assert a.target == "node-3"
