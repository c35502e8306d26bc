"""The informer relists when its resourceVersion has expired (410 Gone), as after an etcd compaction.

A control plane of its own, with the watch cache off and etcd compacted every second, makes the
real API server expire an old resourceVersion: the informer's next watch from it gets 410 Gone
(on open or as an ERROR event), and the informer must list again and go on seeing changes.
"""

from __future__ import annotations

import time

from kubernetes import client

from tests.harness.controlplane import running_controlplane
from webhook.cluster.informer import Informer
from webhook.cluster.state import ClusterState


def _node(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}}


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_expired_resource_version_makes_the_informer_relist_and_keep_following(tmp_path):
    with running_controlplane(
        tmp_path / "plane", apiserver_args=["--watch-cache=false", "--etcd-compaction-interval=1s"]
    ) as plane:
        api = plane.api_client()
        core = client.CoreV1Api(api)
        core.create_node(_node("n1"))
        state = ClusterState()
        informer = Informer(state, "Node", core.list_node, watch_timeout_seconds=1).start()
        try:
            assert informer.wait_synced(10)
            assert informer.lists == 1 and state.node("n1") is not None
            stale_version = informer.resource_version

            # Move etcd's revision on with objects the informer does not watch, so the node
            # informer's resourceVersion falls behind the compaction point.
            for i in range(30):
                core.create_namespaced_config_map(
                    "default", {"metadata": {"name": f"filler-{i}"}, "data": {"i": str(i)}}
                )
            assert _wait(lambda: informer.lists >= 2, 20), (
                f"no relist after compaction (resourceVersion {stale_version}, "
                f"lists {informer.lists}, errors {informer.errors})"
            )
            assert informer.resource_version != stale_version
            assert informer.errors == 0  # a relist for the expiry, not a failure and backoff

            core.patch_node("n1", {"metadata": {"labels": {"seen": "after-relist"}}})
            assert _wait(
                lambda: (
                    (state.node("n1") or {}).get("metadata", {}).get("labels", {}).get("seen")
                    == "after-relist"
                ),
                5,
            )
        finally:
            informer.stop()
