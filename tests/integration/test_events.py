"""The webhook's EventRecorder against the real API server: repeats become one Event's count,
written at most once per interval; a restarted recorder starts an Event of its own (client-go's way)."""

from __future__ import annotations

import time

import pytest

from webhook.admission.events import EventRecorder, Involved
from webhook.cluster.kubeapi import call

pytestmark = pytest.mark.controlplane


def events_of(api, namespace: str, name: str) -> list[dict]:
    found = call(api, "GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in found if e["involvedObject"]["name"] == name]


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {check.__doc__}")


def test_repeats_are_counted_on_one_event_and_a_restart_continues_it(controlplane, namespace):
    api = controlplane.api_client()
    node = Involved("v1", "Node", f"node-{namespace}", uid="uid-1")
    vmi = Involved("kubevirt.io/v1", "VirtualMachineInstance", "vm1", namespace, "uid-2")
    written: list[int] = []
    recorder = EventRecorder(api, instance="test", interval=0.5, on_write=lambda: written.append(1))
    recorder.start()
    try:
        for _ in range(200):
            recorder.record(node, "Warning", "EvacuationBlocked", "VM a/b cannot leave this node")
        recorder.record(vmi, "Warning", "MigrationWarned", "let through despite: CDROMVolume")

        def counted():
            """the Node's Event counting all 200"""
            found = events_of(api, "default", node.name)
            return found if found and found[0]["count"] == 200 else None

        (event,) = wait_for(counted)
        assert event["reason"] == "EvacuationBlocked" and event["type"] == "Warning"
        assert event["involvedObject"] == {
            "apiVersion": "v1", "kind": "Node", "name": node.name, "uid": "uid-1"
        }  # fmt: skip
        assert event["source"]["component"] == "migration-guard-webhook"
        (other,) = wait_for(lambda: events_of(api, namespace, "vm1"))
        assert other["message"] == "let through despite: CDROMVolume"
        # 201 records, at most a handful of writes (one per Event per interval)
        assert len(written) <= 4, len(written)
    finally:
        recorder.stop()

    again = EventRecorder(api, instance="restarted", interval=0.5)
    again.start()
    try:
        again.record(node, "Warning", "EvacuationBlocked", "VM a/b cannot leave this node")

        def anew():
            """a second Event, counting from 1, beside the first"""
            found = sorted(events_of(api, "default", node.name), key=lambda e: e["count"])
            return found if [e["count"] for e in found] == [1, 200] else None

        for found in wait_for(anew):
            call(api, "DELETE", f"/api/v1/namespaces/default/events/{found['metadata']['name']}")
        # an Event deleted (or expired) under it is written again
        again.record(node, "Warning", "EvacuationBlocked", "VM a/b cannot leave this node")
        wait_for(lambda: [e["count"] for e in events_of(api, "default", node.name)] == [1])
    finally:
        again.stop()


def test_a_full_queue_drops_and_counts_instead_of_blocking(controlplane):
    dropped: list[int] = []
    recorder = EventRecorder(
        controlplane.api_client(), max_pending=3, on_drop=lambda: dropped.append(1)
    )  # not started: nothing drains the queue
    started = time.monotonic()
    for i in range(10):
        recorder.record(Involved("v1", "Node", "n"), "Warning", "R", f"m{i}")
    assert time.monotonic() - started < 0.5
    assert len(dropped) == 7
