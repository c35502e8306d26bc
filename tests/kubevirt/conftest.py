"""Fixtures of the KubeVirt profile: one control plane with the real KubeVirt and kube-scheduler
for the whole session, four Harvester-like KWOK nodes, the virt-handler stand-in, and
migration-guard's webhook registered beside virt-api's."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.controlplane import ControlPlane, running_controlplane
from tests.harness.nodes import harvester_node
from tests.harness.prometheus import Prometheus, running_prometheus
from tests.harness.virt_handler import VirtHandler
from tests.webhook_process import WebhookProcess, running_webhook
from webhook.kubeapi import KubeError, call

NODES = tuple(f"harvester-node-{i}" for i in range(4))
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

    def pods_of(self, vmi: dict) -> list[dict]:
        meta = vmi["metadata"]
        return self.get(
            f"/api/v1/namespaces/{meta['namespace']}/pods?labelSelector=kubevirt.io/created-by={meta['uid']}"
        ).get("items", [])


def _node_ready(node: dict) -> bool:
    conditions = {
        c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []
    }
    return conditions.get("Ready") == "True" and not (node.get("spec") or {}).get("taints")


@pytest.fixture(scope="session")
def kubevirt_cluster() -> Iterator[KubeVirtCluster]:
    with running_controlplane(kubevirt_profile=True) as plane:
        api = plane.api_client()
        for name in NODES:
            call(api, "POST", "/api/v1/nodes", harvester_node(name))
        handler = VirtHandler(plane).start()
        cluster = KubeVirtCluster(plane, handler, NODES)
        for name in NODES:
            cluster.wait_for(
                f"node {name} Ready without taints",
                lambda n=name: _node_ready(cluster.get(f"/api/v1/nodes/{n}")),
                READY_TIMEOUT_S,
            )
        try:
            yield cluster
        finally:
            handler.stop()


@pytest.fixture(scope="session")
def prometheus(kubevirt_cluster: KubeVirtCluster) -> Iterator[Prometheus]:
    """A real Prometheus scraping the stand-in's virt-handler metrics."""
    with running_prometheus([kubevirt_cluster.handler.metrics_url]) as prom:
        yield prom


@pytest.fixture(scope="session")
def guard(kubevirt_cluster: KubeVirtCluster) -> Iterator[WebhookProcess]:
    """migration-guard's webhook, registered beside virt-api's for labelled namespaces."""
    with running_webhook(kubevirt_cluster.plane) as hook:
        yield hook


@pytest.fixture
def vm_namespace(kubevirt_cluster: KubeVirtCluster, guard: WebhookProcess) -> Iterator[str]:
    """A fresh namespace that migration-guard guards; deleted afterwards (the namespace
    controller runs in this profile)."""
    name = f"kv-{uuid.uuid4().hex[:8]}"
    kubevirt_cluster.kubectl_ok("create", "namespace", name)
    guard.label_namespace(kubevirt_cluster.plane, name)
    yield name
    kubevirt_cluster.plane.kubectl("delete", "namespace", name, "--wait=false")
