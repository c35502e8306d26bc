"""Informer and ClusterCache against the real API server: list, watch, 410 relist, stop, fetch."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kubernetes import client as k8s

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from webhook.cluster.cache import ClusterCache
from webhook.cluster.informer import Informer
from webhook.cluster.state import ClusterState

pytestmark = pytest.mark.controlplane


def wait(cond, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_informer_follows_add_modify_delete_and_stops_promptly(controlplane: ControlPlane):
    tag = uuid.uuid4().hex[:6]
    name = f"inf-{tag}"
    state = ClusterState()
    events: list[str] = []
    informer = Informer(
        state,
        "Node",
        k8s.CoreV1Api(controlplane.api_client()).list_node,
        api_version="v1",
        label_selector=f"inf-test={tag}",
        on_event=lambda etype, obj: events.append(etype),
    ).start()
    try:
        assert informer.wait_synced(10) and state.nodes() == []
        assert informer.age_seconds() < 5
        node = o.node(name, labels={"inf-test": tag})
        created = controlplane.kubectl("create", "-f", "-", input=json.dumps(node))
        assert created.returncode == 0, created.stderr
        wait(lambda: state.node(name) is not None)
        assert state.node(name)["apiVersion"] == "v1"
        assert controlplane.kubectl("cordon", name).returncode == 0
        wait(lambda: (state.node(name) or {}).get("spec", {}).get("unschedulable") is True)
        assert controlplane.kubectl("delete", "node", name).returncode == 0
        wait(lambda: state.node(name) is None)
        assert events[0] == "ADDED" and "MODIFIED" in events and events[-1] == "DELETED"
    finally:
        started = time.monotonic()
        informer.stop()
        stopped_in = time.monotonic() - started
    assert not informer._thread.is_alive()
    assert stopped_in < 2.0, f"stop took {stopped_in:.2f}s"


def test_missing_vmi_is_read_once_from_the_api(controlplane: ControlPlane, namespace: str):
    cache = ClusterCache(controlplane.api_client())  # informers not started: cache is empty
    vmi = o.vmi(namespace, "late", "some-node")
    body = {k: v for k, v in vmi.items() if k != "status"}
    assert controlplane.kubectl("create", "-f", "-", input=json.dumps(body)).returncode == 0
    found = cache.get_vmi_or_fetch(namespace, "late")
    assert found is not None and found["metadata"]["name"] == "late"
    assert cache.fetches == 1
    assert cache.get_vmi_or_fetch(namespace, "late") is not None and cache.fetches == 1
    assert cache.get_vmi_or_fetch(namespace, "absent") is None and cache.fetches == 2


def test_cluster_cache_syncs_every_kind(controlplane: ControlPlane):
    cache = ClusterCache(controlplane.api_client()).start()
    try:
        assert cache.wait_synced(15), cache.status()
        assert set(cache.status()) == {
            "Node",
            "Pod",
            "VirtualMachineInstance",
            "VirtualMachineInstanceMigration",
            "VirtualMachine",
            "NetworkAttachmentDefinition",
            "KubeVirt",
            "MigrationPolicy",
            "Namespace",
            "Setting",
        }
        assert cache.status()["MigrationPolicy"]["served"] is True  # the CRD is installed here
        assert cache.status()["Setting"]["served"] is True  # Harvester's, installed here too
        assert cache.age_seconds() < 5
    finally:
        cache.stop()


def test_optional_kind_without_its_crd_is_synced_and_empty(controlplane: ControlPlane):
    """A cluster without the MigrationPolicy CRD still gets a ready cache (404 = none)."""
    api = controlplane.api_client()
    state = ClusterState()
    state.apply({"kind": "MigrationPolicy", "metadata": {"name": "stale"}, "spec": {}})
    list_fn = k8s.CustomObjectsApi(api).list_cluster_custom_object
    missing = Informer(
        state,
        "MigrationPolicy",
        lambda **kw: list_fn("nope.migration-guard.io", "v1", "migrationpolicies", **kw),
        optional=True,
        missing_recheck_seconds=0.2,
    ).start()
    required = Informer(
        ClusterState(),
        "MigrationPolicy",
        lambda **kw: list_fn("nope.migration-guard.io", "v1", "migrationpolicies", **kw),
        backoff_initial=0.05,
    ).start()
    try:
        assert wait(lambda: missing.synced and missing.lists >= 3)
        assert missing.missing and state.migration_policies() == []
        assert missing.age_seconds() < 1.0 and missing.errors == 0
        assert wait(lambda: required.errors >= 1) and not required.synced
    finally:
        missing.stop()
        required.stop()
