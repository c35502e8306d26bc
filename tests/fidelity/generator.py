"""Seeded random Harvester-like clusters for the differential tests (plain dicts, no I/O).

Heterogeneous CPUs (vendors, host models and their required features, supported and obsolete
models), machine types, allocatable with and without KubeVirt's device plugins and hugepages, nodes
whose pod slots or memory are used up, taints of every effect, and VMs of every CPU mode with
required and forbidden features, hugepages, tolerations, nodeSelectors, required node affinity
(In, NotIn, Exists, DoesNotExist, Gt, Lt, matchFields, several terms) and pod anti-affinity.

Capacity is extreme on purpose (a node is full or roomy), so migrations of other VMs running at
the same time never change a verdict; VMs in one anti-affinity group are run one after another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.harness.nodes import MACHINE_TYPE, cpu_labels, harvester_node
from tests.harness.vms import harvester_vm

INTEL = {
    "Skylake-Client-IBRS": ("ibpb", "md-clear", "ssbd", "stibp"),
    "Cascadelake-Server": ("ibpb", "md-clear", "ssbd", "stibp", "pku"),
    "Icelake-Server": ("ibpb", "md-clear", "ssbd", "pku", "avx512f"),
}
AMD = {"EPYC-Rome": ("ibpb", "ssbd", "svm"), "EPYC-Milan": ("ibpb", "ssbd", "svm", "pku")}
INTEL_MODELS = ("Penryn", "Nehalem", "Haswell-noTSX", "Skylake-Client-IBRS", "Cascadelake-Server")
AMD_MODELS = ("Opteron_G3", "EPYC", "EPYC-Rome")
FEATURES = ("aes", "avx", "avx2", "ibpb", "md-clear", "pcid", "pku", "ssbd", "stibp", "svm", "vmx")
TAINTS = (
    {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    {"key": "maintenance-window", "effect": "NoExecute"},
    {"key": "soft", "effect": "PreferNoSchedule"},
)
GPU_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


@dataclass
class Cluster:
    nodes: list[dict]
    vms: list[dict]
    hogs: list[dict] = field(default_factory=list)  # pods bound by name that fill a node
    groups: dict[str, str] = field(default_factory=dict)  # VM name -> anti-affinity group


def _node(rng: random.Random, name: str) -> tuple[dict, list[dict]]:
    intel = rng.random() < 0.85
    vendor = "Intel" if intel else "AMD"
    hosts = INTEL if intel else AMD
    host = rng.choice(list(hosts)) if rng.random() < 0.5 else next(iter(hosts))
    models = [m for m in (INTEL_MODELS if intel else AMD_MODELS) if rng.random() < 0.85] + [host]
    features = {f for f in FEATURES if rng.random() < 0.8} | set(hosts[host])
    labels = cpu_labels(host, vendor, models, features, hosts[host])
    if rng.random() >= 0.85:
        del labels[f"machine-type.node.kubevirt.io/{MACHINE_TYPE}"]
    if rng.random() < 0.1:
        labels["node-labeller.kubevirt.io/obsolete-host-model"] = "true"
    labels["zone"] = rng.choice(("zone-a", "zone-b"))
    labels["rack"] = str(rng.randint(1, 4))
    if rng.random() < 0.4:
        labels["ssd"] = "true"
    allocatable = {"hugepages-2Mi": rng.choice(("0", "8Gi"))}
    hogs: list[dict] = []
    if rng.random() < 0.15:
        allocatable["devices.kubevirt.io/kvm"] = "0"
    fill = rng.random()
    if fill < 0.1:
        allocatable["pods"] = "2"
        hogs = [_hog(name, f"{name}-hog-{i}", "10m", "16Mi") for i in range(2)]
    elif fill < 0.2:
        hogs = [_hog(name, f"{name}-hog", "100m", "63Gi")]
    node = harvester_node(name, memory="64Gi", allocatable=allocatable)
    meta = node["metadata"]
    # this host's labeller labels instead of harvester_node's defaults
    meta["labels"] = {k: v for k, v in meta["labels"].items() if ".node.kubevirt.io/" not in k}
    meta["labels"] |= labels
    if rng.random() < 0.2:
        node["spec"]["taints"] = [dict(rng.choice(TAINTS))]
    return node, hogs


def _hog(node: str, name: str, cpu: str, memory: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "hog",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
        },
    }


def _expression(rng: random.Random) -> dict:
    return rng.choice(
        (
            {"key": "zone", "operator": "In", "values": ["zone-a"]},
            {"key": "zone", "operator": "NotIn", "values": ["zone-b"]},
            {"key": "rack", "operator": "Gt", "values": ["1"]},
            {"key": "rack", "operator": "Lt", "values": ["4"]},
            {"key": "ssd", "operator": "Exists"},
            {"key": "ssd", "operator": "DoesNotExist"},
        )
    )


def _vm(rng: random.Random, namespace: str, name: str, node_names: list[str]) -> dict:
    vm = harvester_vm(namespace, name, memory=rng.choice(("1Gi", "2Gi")))
    spec = vm["spec"]["template"]["spec"]
    cpu = spec["domain"]["cpu"]
    mode = rng.random()
    if mode < 0.5:
        cpu["model"] = "host-model"
    elif mode < 0.7:
        cpu["model"] = "host-passthrough"
    else:
        cpu["model"] = rng.choice(INTEL_MODELS + AMD_MODELS)
    features = []
    if rng.random() < 0.3:
        features.append({"name": rng.choice(FEATURES), "policy": "require"})
    if rng.random() < 0.15:
        features.append({"name": rng.choice(("svm", "avx512f", "pku")), "policy": "forbid"})
    if features:
        cpu["features"] = features
    if rng.random() < 0.2:
        spec["domain"]["memory"]["hugepages"] = {"pageSize": "2Mi"}
    tolerations = []
    if rng.random() < 0.3:
        tolerations.append(dict(GPU_TOLERATION))
    if rng.random() < 0.1:
        tolerations.append({"operator": "Exists"})
    if tolerations:
        spec["tolerations"] = tolerations
    if rng.random() < 0.15:
        spec["nodeSelector"] = {"zone": rng.choice(("zone-a", "zone-b"))}
    if rng.random() < 0.3:
        terms = []
        for _ in range(rng.randint(1, 2)):
            term: dict = {"matchExpressions": [_expression(rng) for _ in range(rng.randint(1, 2))]}
            if rng.random() < 0.2:
                term["matchFields"] = [
                    {
                        "key": "metadata.name",
                        "operator": "NotIn",
                        "values": [rng.choice(node_names)],
                    }
                ]
            terms.append(term)
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    return vm


def generate(seed: int, namespace: str, nodes: int = 6, vms: int = 8) -> Cluster:
    """A cluster of `nodes` nodes and `vms` VMs named after `seed`."""
    rng = random.Random(seed)
    names = [f"fid{seed}-node-{i}" for i in range(nodes)]
    built = [_node(rng, n) for n in names]
    cluster = Cluster([n for n, _ in built], [], [h for _, hs in built for h in hs])
    for i in range(vms):
        vm = _vm(rng, namespace, f"vm-{i}", names)
        if rng.random() < 0.25:  # a group whose VMs keep apart, per host
            group = "db"
            template = vm["spec"]["template"]
            template["metadata"]["labels"]["app"] = group
            template["spec"].setdefault("affinity", {})["podAntiAffinity"] = {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": group}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
            cluster.groups[vm["metadata"]["name"]] = group
        cluster.vms.append(vm)
    return cluster
