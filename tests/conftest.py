"""Fixtures shared by all tests: the real control plane (once per session) and fresh namespaces;
the KubeVirt profile (once per session, when a test asks for it) with its nodes, the virt-handler
stand-in, a Prometheus scraping it, and migration-guard's webhook beside virt-api's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness.controlplane import ControlPlane, running_controlplane
from tests.harness.enforcers import Enforcers
from tests.harness.kubevirt_cluster import KubeVirtCluster, running_kubevirt_cluster
from tests.harness.prometheus import Prometheus, running_prometheus
from tests.webhook_process import WebhookProcess, running_webhook


@pytest.fixture(scope="session")
def controlplane() -> ControlPlane:
    with running_controlplane() as plane:
        yield plane


@pytest.fixture
def namespace(controlplane: ControlPlane) -> str:
    """A new namespace for one test (namespaces never finish deleting here: no controllers run)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    result = controlplane.kubectl("create", "namespace", name)
    assert result.returncode == 0, result.stderr
    return name


@pytest.fixture(scope="session")
def kubevirt_cluster() -> Iterator[KubeVirtCluster]:
    with running_kubevirt_cluster() as cluster:
        yield cluster


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


@pytest.fixture
def enforcers(kubevirt_cluster: KubeVirtCluster, tmp_path) -> Iterator[Enforcers]:
    """`migration-guard enforcer` processes on the KubeVirt profile, all stopped afterwards."""
    started = Enforcers(kubevirt_cluster.plane, tmp_path)
    yield started
    started.stop_all()
