"""A lookup's grouped verdicts (rules.node_groups) are evaluate_node's, node for node.

Random scenes of plain dicts: nodes of a few label sets (so groups form, each node with its own
hostname), taints (also of odd value types), allocatable, pods on them, maintenance and
readiness; a VM with node selectors, node affinity (also matchFields and the hostname label),
tolerations, pod anti-affinity, a CPU model. The lookup is compared with the lookup of each node
as the target, which calls evaluate_node for that node alone.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import pytest

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.rules import engine, evaluate_migration
from webhook.rules.node_eligibility import evaluate_node, read_node
from webhook.rules.node_groups import evaluate_nodes

LABELS: dict[str, list[str | None]] = {
    "kubevirt.io/schedulable": ["true", "true", "true", "false", None],
    "cpu-model.node.kubevirt.io/Cascadelake-Server": ["true", "true", None],
    "host-model-cpu.node.kubevirt.io/Cascadelake-Server": ["true", "true", None],
    "cpu-model-migration.node.kubevirt.io/Cascadelake-Server": ["true", "true", None],
    "cpu-vendor.node.kubevirt.io/Intel": ["true", "true", None],
    "cpu-vendor.node.kubevirt.io/AMD": [None, None, "true"],
    "cpu-feature.node.kubevirt.io/avx2": ["true", None],
    "host-model-required-features.node.kubevirt.io/avx2": [None, "true"],
    "network.harvesterhci.io/data": ["true", "true", None, "false"],
    "node-role.harvesterhci.io/witness": [None, None, None, "true"],
    "node-labeller.kubevirt.io/obsolete-host-model": [None, None, None, "true"],
    "machine-type.node.kubevirt.io/q35": ["true", None],
    "disk": ["ssd", "hdd", None],
    "topology.kubernetes.io/zone": ["a", "b"],
    "rank": ["1", "5", "x", None],
}
TAINTS: list[list[dict]] = [
    [],
    [],
    [],
    [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule", "timeAdded": "2025-01-01"}],
    [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
    [{"key": "k", "value": 1, "effect": "NoExecute"}],
    [{"key": "k", "value": "1", "effect": "NoExecute"}],
    [{"key": "k", "value": True, "effect": "NoExecute"}],
    [{"key": "k", "value": ["not", "hashable"], "effect": "NoSchedule"}],
    [{"key": "soft", "effect": "PreferNoSchedule"}, {"key": "hard", "effect": "NoExecute"}],
]
ALLOCATABLE = [o.ALLOCATABLE, o.ALLOCATABLE, {**o.ALLOCATABLE, "cpu": "200m"}]
ALLOCATABLE += [{**o.ALLOCATABLE, "pods": "1"}, {"cpu": "4", "memory": "4Gi", "pods": "10"}]
AFFINITY: list[Any] = [
    None,
    [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}],
    [
        {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["2"]}]},
        {
            "matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["a"]}
            ]
        },
    ],
    [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-3"]}]}],
    [
        {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/hostname",
                    "operator": "In",
                    "values": ["node-2", "node-4", "node-5"],
                }
            ]
        }
    ],
    [{"matchExpressions": "not a list"}, {"matchExpressions": [{"key": ["odd"]}]}],
]
TOLERATIONS: list[list[dict]] = [
    [],
    [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
    [{"key": "k", "operator": "Exists"}],
]


def _labels(rng: random.Random) -> dict[str, str | None]:
    return {k: rng.choice(v) for k, v in LABELS.items()}


def _node(rng: random.Random, name: str, profiles: list[dict]) -> dict:
    labels = rng.choice(profiles) if rng.random() < 0.9 else _labels(rng)
    spec: dict = {"taints": copy.deepcopy(rng.choice(TAINTS))}
    if rng.random() < 0.1:
        spec["unschedulable"] = True
    annotations = {"harvesterhci.io/maintain-status": "running"} if rng.random() < 0.1 else {}
    conditions = [{"type": "Ready", "status": "True" if rng.random() < 0.9 else "False"}]
    return o.node(
        name,
        labels=labels,
        spec=spec,
        annotations=annotations,
        conditions=conditions,
        allocatable=rng.choice(ALLOCATABLE),
    )


def _scene(seed: int) -> tuple[list[dict], dict | None]:
    rng = random.Random(seed)
    profiles = [_labels(rng) for _ in range(rng.randint(1, 4))]  # nodes of a few kinds
    nodes = [_node(rng, f"node-{i}", profiles) for i in range(1, rng.randint(2, 40))]
    vmi = o.vmi()
    spec = vmi["spec"]
    if rng.random() < 0.5:
        spec["nodeSelector"] = rng.choice(
            [{"disk": "ssd"}, {"disk": "hdd"}, {"kubernetes.io/hostname": "node-2"}]
        )
    affinity = rng.choice(AFFINITY)
    if affinity is not None:
        required = {"nodeSelectorTerms": affinity}
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
    if rng.random() < 0.3:
        anti = [
            {
                "labelSelector": {"matchLabels": {"app": "db"}},
                "topologyKey": rng.choice(
                    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
                ),
            }
        ]
        spec.setdefault("affinity", {})["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": anti
        }
    spec["tolerations"] = rng.choice(TOLERATIONS)
    cpu = rng.choice([None, "host-model", "Cascadelake-Server", "host-passthrough"])
    if cpu is not None:
        spec["domain"]["cpu"]["model"] = cpu
    if rng.random() < 0.3:
        spec["domain"]["cpu"]["features"] = [{"name": "avx2", "policy": "forbid"}]
    if rng.random() < 0.3:
        spec["domain"]["machine"] = {"type": "q35"}
    selector = {"kubevirt.io/schedulable": "true"}
    if rng.random() < 0.7:
        selector["host-model-cpu.node.kubevirt.io/Cascadelake-Server"] = "true"
    objs = [*nodes, vmi, o.vm(), o.nad(), o.launcher(selector=selector)]
    for i in range(rng.randint(0, 30)):
        pod = o.pod(f"p{i}", rng.choice(nodes)["metadata"]["name"], cpu=rng.choice(["1", "3"]))
        if rng.random() < 0.3:
            pod["metadata"].update(namespace=o.NS, labels={"app": "db"})
        objs.append(pod)
    vmim = None
    if rng.random() < 0.3:  # a migration that adds a selector and names no node
        vmim = o.vmim(selector={"disk": "ssd"})
    return objs, vmim


@pytest.mark.parametrize("seed", range(60))
def test_a_lookup_equals_each_node_judged_alone(seed: int) -> None:
    objs, vmim = _scene(seed)
    state = ClusterState.from_objects(objs)
    lookup = evaluate_migration(state, o.NS, "vm1", vmim=vmim)
    assert [v.name for v in lookup.nodes] == sorted(n["metadata"]["name"] for n in state.nodes())
    for verdict in lookup.nodes:
        alone = evaluate_migration(state, o.NS, "vm1", vmim=vmim, target=verdict.name)
        assert alone.nodes == (verdict,), verdict.name


def test_the_scenes_group_nodes_and_give_every_kind_of_reason() -> None:
    codes: set[str] = set()
    shared = 0
    for seed in range(60):
        objs, vmim = _scene(seed)
        state = ClusterState.from_objects(objs)
        facts = [f for _, f in state.nodes_with_facts() if f is not None]
        shared += len(facts) - len({id(f.common) for f in facts})
        report = evaluate_migration(state, o.NS, "vm1", vmim=vmim)
        codes |= {r.code for v in report.nodes for r in v.reasons}
    assert shared > 100  # nodes of equal labels but their hostnames share one `common` map
    assert codes >= {
        "SourceNode",
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
        "MachineTypeUnsupported",
        "InsufficientResources",
        "PodAntiAffinityConflict",
    }


@pytest.mark.parametrize("seed", range(10))
def test_nodes_without_facts_or_with_fresh_ones(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Facts read during the lookup (none stored, or read anew: ids of freed maps come back)."""
    objs, vmim = _scene(seed)
    state = ClusterState.from_objects(objs)
    contexts = []
    grouped = engine.evaluate_nodes

    def capture(nodes: Any, c: Any) -> Any:
        contexts.append(c)
        return grouped(nodes, c)

    monkeypatch.setattr(engine, "evaluate_nodes", capture)
    evaluate_migration(state, o.NS, "vm1", vmim=vmim)
    (c,) = contexts
    nodes = state.nodes()
    alone = [evaluate_node(n, c) for n in nodes]
    assert evaluate_nodes([(n, None) for n in nodes], c) == alone
    assert evaluate_nodes(((n, read_node(n)) for n in nodes), c) == alone
    # nodes no state holds, of more label sets: a `common` map no other node holds is freed
    # after its node unless the lookup keeps it, and a later one may get its id (it may: how
    # memory is reused decides)
    c = dataclasses.replace(c, usage=lambda _name: ({}, 0), usage_maps=None)
    del state, contexts[:]
    for i, node in enumerate(nodes := copy.deepcopy(nodes)):
        node["metadata"]["labels"]["kubevirt.io/schedulable"] = ("true", "false", "no")[i % 3]
    alone = [evaluate_node(n, c) for n in nodes]
    assert evaluate_nodes(((n, read_node(n)) for n in nodes), c) == alone
