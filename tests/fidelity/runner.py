"""Run generated clusters on the real stack and compare migration-guard with what really happens.

For each (VM, node) pair: migration-guard decides on a VMIM targeting the node (the CLI's live
state, `load_live_state`, and the engine every caller uses), then the VMIM is created for real, and
virt-controller's target pod is watched until kube-scheduler binds it (to that node: the migration
could run) or marks it Unschedulable (with the scheduler's message), or virt-api or virt-controller
refuse it first. The VMIM is then deleted and its target pod gone before the VM's next pair.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tests.fidelity.generator import Cluster, generate
from tests.harness.kubevirt import DEFAULT_CONFIGURATION
from tests.harness.kubevirt_cluster import KubeVirtCluster
from webhook.cli import load_live_state
from webhook.cluster.kubeapi import KubeError, call, kubevirt_path
from webhook.rules import evaluate_migration

HOSTNAME = "kubernetes.io/hostname"
JOB_LABEL = "kubevirt.io/migrationJobUID"
# Harvester's rules that refuse on purpose what the scheduler allows (docs/internals.md).
DELIBERATE = frozenset({"NodeNotReady", "NodeCordoned", "NodeInMaintenance", "WitnessNode",
                        "NetworkUnavailable"})  # fmt: skip
CONFIGURATION = {
    **DEFAULT_CONFIGURATION,
    "migrations": {"parallelMigrationsPerCluster": 50, "parallelOutboundMigrationsPerNode": 50},
}
DECIDE_TIMEOUT_S = 45.0
CLEAN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Pair:
    seed: int
    vm: str
    node: str
    guard_allowed: bool
    guard_codes: tuple[str, ...]
    real_allowed: bool | None  # None: neither bound nor refused in time
    real_message: str

    @property
    def verdict(self) -> str:
        if self.real_allowed is None:
            return "undecided"
        if self.guard_allowed == self.real_allowed:
            return "agree"
        if not self.guard_allowed and set(self.guard_codes) <= DELIBERATE:
            return "deliberate"
        return "disagree"


def _vmim(namespace: str, name: str, vmi: str, node: str) -> dict:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"vmiName": vmi, "addedNodeSelector": {HOSTNAME: node}},
    }


def _target_codes(report) -> tuple[str, ...]:
    verdict = report.target_verdict()
    codes = [b.code for b in report.blockers]
    codes += [r.code for r in verdict.reasons] if verdict is not None else ["TargetNotFound"]
    return tuple(codes)


class Round:
    """One generated cluster in its own namespace on a running KubeVirt profile."""

    def __init__(self, kv: KubeVirtCluster, seed: int, nodes: int, vms: int):
        self.kv, self.seed = kv, seed
        self.namespace = f"fidelity-{seed}"
        self.cluster: Cluster = generate(seed, self.namespace, nodes, vms)
        self.api = kv.plane.api_client()

    def setup(self) -> list[str]:
        """Create everything; the names of the VMs that run (the others are deleted)."""
        call(self.api, "POST", "/api/v1/namespaces", {"metadata": {"name": self.namespace}})
        for node in self.cluster.nodes:
            call(self.api, "POST", "/api/v1/nodes", node)
        for node in self.cluster.nodes:
            name = node["metadata"]["name"]
            self.kv.wait_for(f"node {name} Ready", lambda n=name: self._ready(n), 90)
        for hog in self.cluster.hogs:
            call(self.api, "POST", f"/api/v1/namespaces/{self.namespace}/pods", hog)
        for vm in self.cluster.vms:
            call(self.api, "POST", kubevirt_path(self.namespace, "virtualmachines"), vm)
        # Every VM, or once 20 s have passed the ones that run (a VM no node fits never does).
        deadline = time.monotonic() + 60
        running: list[str] = []
        names = [vm["metadata"]["name"] for vm in self.cluster.vms]
        while time.monotonic() < deadline:
            running = [n for n in names if self._phase(n) == "Running"]
            if len(running) == len(names) or (running and time.monotonic() > deadline - 40):
                break
            time.sleep(0.5)
        for name in set(names) - set(running):
            call(self.api, "DELETE", kubevirt_path(self.namespace, f"virtualmachines/{name}"))
        return running

    def _ready(self, node: str) -> bool:
        status = call(self.api, "GET", f"/api/v1/nodes/{node}").get("status") or {}
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        )

    def _phase(self, vmi: str) -> str:
        try:
            got = call(
                self.api, "GET", kubevirt_path(self.namespace, f"virtualmachineinstances/{vmi}")
            )
        except KubeError:
            return ""
        return (got.get("status") or {}).get("phase", "")

    def run(self, running: list[str], workers: int = 8) -> list[Pair]:
        groups: dict[str, list[str]] = {}
        for vm in running:
            groups.setdefault(self.cluster.groups.get(vm, vm), []).append(vm)
        nodes = [n["metadata"]["name"] for n in self.cluster.nodes]
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(
                lambda vms: [self.pair(vm, node, i) for vm in vms for i, node in enumerate(nodes)],
                groups.values(),
            )
            return [p for batch in done for p in batch]

    def pair(self, vm: str, node: str, index: int) -> Pair:
        name = f"{vm}-to-{index}"
        body = _vmim(self.namespace, name, vm, node)
        state = load_live_state(str(self.kv.plane.kubeconfig))
        report = evaluate_migration(state, self.namespace, vm, vmim=body)
        allowed, message = self._really(body)
        return Pair(self.seed, vm, node, report.allowed, _target_codes(report), allowed, message)

    def _really(self, body: dict) -> tuple[bool | None, str]:
        collection = kubevirt_path(self.namespace, "virtualmachineinstancemigrations")
        name = body["metadata"]["name"]
        try:
            created = call(self.api, "POST", collection, body)
        except KubeError as err:
            return False, f"refused at admission: {err}"
        uid = created["metadata"]["uid"]
        pods = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={JOB_LABEL}={uid}"
        outcome: tuple[bool | None, str] = (None, "no decision in time")
        deadline = time.monotonic() + DECIDE_TIMEOUT_S
        while time.monotonic() < deadline:
            items = call(self.api, "GET", pods).get("items") or []
            decided = next((d for d in map(_pod_outcome, items) if d is not None), None)
            if decided is not None:
                outcome = decided
                break
            phase = (call(self.api, "GET", f"{collection}/{name}").get("status") or {}).get("phase")
            if phase == "Failed":
                outcome = (False, "the migration failed before its target pod was scheduled")
                break
            time.sleep(0.2)
        self._clean(f"{collection}/{name}", pods)
        return outcome

    def _clean(self, vmim: str, pods: str) -> None:
        with contextlib.suppress(KubeError):
            call(self.api, "DELETE", vmim)
        deadline = time.monotonic() + CLEAN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                call(self.api, "GET", vmim)
                gone = False
            except KubeError as err:
                gone = err.status == 404
            items = call(self.api, "GET", pods).get("items") or []
            live = [
                p
                for p in items
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            if gone and not live:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{vmim} or its target pod still there after {CLEAN_TIMEOUT_S:.0f}s")

    def teardown(self) -> None:
        call(self.api, "DELETE", f"/api/v1/namespaces/{self.namespace}")
        for node in self.cluster.nodes:
            with contextlib.suppress(KubeError):
                call(self.api, "DELETE", f"/api/v1/nodes/{node['metadata']['name']}")


def _pod_outcome(pod: dict) -> tuple[bool, str] | None:
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        return True, f"bound to {node}"
    for cond in (pod.get("status") or {}).get("conditions") or []:
        scheduled = cond.get("type") == "PodScheduled" and cond.get("status") == "False"
        if scheduled and cond.get("reason") == "Unschedulable":
            return False, cond.get("message", "")
    return None


def run_rounds(kv: KubeVirtCluster, seeds: list[int], nodes: int, vms: int) -> list[Pair]:
    kv.plane.stack.configure(CONFIGURATION)
    out: list[Pair] = []
    for seed in seeds:
        r = Round(kv, seed, nodes, vms)
        try:
            out += r.run(r.setup())
        finally:
            r.teardown()
    return out


def summary(pairs: list[Pair]) -> dict:
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for p in pairs:
        counts[p.verdict] = counts.get(p.verdict, 0) + 1
        for code in set(p.guard_codes):
            reasons[code] = reasons.get(code, 0) + 1
    return {
        "pairs": len(pairs),
        "clusters": len({p.seed for p in pairs}),
        "vms": len({(p.seed, p.vm) for p in pairs}),
        "bound": sum(1 for p in pairs if p.real_allowed),
        **{k: counts.get(k, 0) for k in ("agree", "deliberate", "disagree", "undecided")},
        "reasons": dict(sorted(reasons.items())),
        "disagreements": [asdict(p) for p in pairs if p.verdict in ("disagree", "undecided")],
    }
