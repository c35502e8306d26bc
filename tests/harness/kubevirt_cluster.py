"""A running KubeVirt profile as tests use it: the control plane, the virt-handler stand-in, the
Harvester-like nodes, and the waits and reads its tests share."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.controlplane import ControlPlane, running_controlplane
from tests.harness.nodes import harvester_node
from tests.harness.virt_handler import VirtHandler
from webhook.cluster.kubeapi import KubeError, call

NODES = tuple(f"harvester-node-{i}" for i in range(4))
NODE_MEMORY = "256Gi"  # room for the reliability tests' 200 VMs and their targets
READY_TIMEOUT_S = 90.0


@dataclass
class KubeVirtCluster:
    plane: ControlPlane
    handler: VirtHandler
    nodes: tuple[str, ...]

    def kubectl_ok(self, *args: str, input: str | None = None, user: str = "admin") -> str:
        result = self.plane.kubectl(*args, input=input, user=user)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def get(self, path: str) -> dict:
        return call(self.plane.api_client(), "GET", path)

    def wait_for(self, what: str, check, timeout: float = 60.0, interval: float = 0.25):
        """Poll `check()` until it returns something truthy; fail naming `what` with every
        component's log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except KubeError as err:
                last = err
            if last and not isinstance(last, KubeError):
                return last
            time.sleep(interval)
        stack = self.plane.stack.diagnostics() if self.plane.stack else ""
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}); "
            f"stand-in errors: {self.handler.errors[-5:]}\n{stack}"
        )

    def settled(self, timeout: float = 120.0) -> None:
        """Until what earlier tests removed is gone: no namespace terminating (their fixtures
        delete them without waiting) and no pod being deleted, so the pods on the nodes are
        the ones that stay (a plan made now still holds when the scheduler acts on it)."""

        def quiet() -> bool:
            namespaces = self.get("/api/v1/namespaces")["items"]
            pods = self.get("/api/v1/pods")["items"]
            return not any(
                (n.get("status") or {}).get("phase") == "Terminating" for n in namespaces
            ) and not any(p["metadata"].get("deletionTimestamp") for p in pods)

        self.wait_for("earlier tests' namespaces and pods to be gone", quiet, timeout, 0.5)

    def vmim_phase(self, namespace: str, name: str) -> str:
        path = (
            f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstancemigrations/{name}"
        )
        return (self.get(path).get("status") or {}).get("phase", "")

    def vmi(self, namespace: str, name: str) -> dict:
        return self.get(
            f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{name}"
        )

    def start_vm(self, vm: dict) -> dict:
        """Create the VM with kubectl and wait until its VMI runs; the VMI."""
        self.kubectl_ok("create", "-f", "-", input=json.dumps(vm))
        return self.running_vmi(vm["metadata"]["namespace"], vm["metadata"]["name"])

    def running_vmi(self, namespace: str, name: str) -> dict:
        """The VMI once virt-controller has started it and the stand-in runs it."""

        def running():
            vmi = self.vmi(namespace, name)
            return vmi if (vmi.get("status") or {}).get("phase") == "Running" else None

        return self.wait_for(f"VMI {namespace}/{name} Running", running, 90)

    @contextlib.contextmanager
    def only_schedulable(self, node: str) -> Iterator[None]:
        """Every other node cordoned while the body runs, so new VMs start on `node`."""
        others = [n for n in self.nodes if n != node]
        for other in others:
            self.kubectl_ok("cordon", other)
        try:
            yield
        finally:
            for other in others:
                self.kubectl_ok("uncordon", other)

    def pods_of(self, vmi: dict) -> list[dict]:
        meta = vmi["metadata"]
        return self.get(
            f"/api/v1/namespaces/{meta['namespace']}/pods?labelSelector=kubevirt.io/created-by={meta['uid']}"
        ).get("items", [])


@contextlib.contextmanager
def running_kubevirt_cluster() -> Iterator[KubeVirtCluster]:
    """The KubeVirt profile with the Harvester-like `NODES` Ready and the stand-in running;
    stopped on exit."""
    with running_controlplane(kubevirt_profile=True) as plane:
        api = plane.api_client()
        for name in NODES:
            call(api, "POST", "/api/v1/nodes", harvester_node(name, memory=NODE_MEMORY))
        handler = VirtHandler(plane).start()
        cluster = KubeVirtCluster(plane, handler, NODES)
        try:
            for name in NODES:
                cluster.wait_for(
                    f"node {name} Ready without taints",
                    lambda n=name: node_ready(cluster.get(f"/api/v1/nodes/{n}")),
                    READY_TIMEOUT_S,
                )
            yield cluster
        finally:
            handler.stop()


def node_ready(node: dict) -> bool:
    conditions = {
        c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []
    }
    return conditions.get("Ready") == "True" and not (node.get("spec") or {}).get("taints")
