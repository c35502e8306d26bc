"""webhook.cluster.decode: what the informers decode is what the state would keep of full JSON;
pods share their equal parts and their requests."""

from __future__ import annotations

import json

import pytest

from bench import objects as bo
from tests import webhook_objects as wo
from webhook.cluster.decode import decode_event, decode_page
from webhook.cluster.state import NODE, POD, VMI, ClusterState, slim
from webhook.errors import InputError


def _page(items: list[dict], kind: str) -> bytes:
    listed = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return json.dumps(
        {"apiVersion": "v1", "kind": f"{kind}List", "metadata": {"continue": "x"}, "items": listed}
    ).encode()


def _slimmed(body: dict, kind: str) -> list[dict]:
    return [slim({**item, "kind": kind, "apiVersion": "v1"}) for item in body["items"]]


OBJECTS = {
    POD: [bo.pod(0, 10, 5), bo.pod(7, 10, 5), wo.launcher_pod("ns", "vm", "node-1")],
    NODE: [bo.node(1), wo.node("n2")],
    VMI: [bo.vmi(3, 10), wo.vmi("ns", "vm", "node-1", cdrom=True)],
}


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_page_decodes_to_what_the_state_keeps(kind):
    page = _page(OBJECTS[kind], kind)
    body = decode_page(kind, page)
    assert body["metadata"] == {"continue": "x"}
    assert _slimmed(body, kind) == _slimmed(json.loads(page), kind)
    for item in body["items"]:
        assert "managedFields" not in item["metadata"]
    if kind == NODE:
        assert all(set(i["status"]) <= {"allocatable", "conditions"} for i in body["items"])


def test_unexpected_shapes_are_decoded_in_full_for_slim_to_judge():
    pod = bo.pod(0, 10, 5)
    pod["spec"]["containers"] = ["not a map"]
    page = _page([pod], POD)
    body = decode_page(POD, page)
    assert body == json.loads(page)
    with pytest.raises(InputError, match=r"spec\.containers\[0\] must be a map"):
        slim({**body["items"][0], "kind": POD})
    with pytest.raises(ValueError):
        decode_page(POD, b'{"items": [')


def test_events():
    pod = bo.pod(1, 10, 5)
    event = decode_event(POD, json.dumps({"type": "MODIFIED", "object": pod}).encode())
    assert event["type"] == "MODIFIED" and slim(event["object"]) == slim(pod)
    assert "managedFields" not in event["object"]["metadata"]
    status = {"kind": "Status", "code": 410, "message": "too old resource version"}
    error = decode_event(POD, json.dumps({"type": "ERROR", "object": status}).encode())
    assert error["object"] == status  # a Status, not a pod: decoded in full
    bookmark = {"kind": "Pod", "metadata": {"resourceVersion": "7"}}
    assert decode_event(NODE, json.dumps({"type": "BOOKMARK", "object": bookmark}).encode()) == {
        "type": "BOOKMARK",
        "object": bookmark,
    }
    with pytest.raises(ValueError):
        decode_event(POD, b"not json")


def test_pods_share_equal_parts_and_requests():
    state = ClusterState()
    for i in range(5, 9):  # workload pods of one shape on different nodes
        state.apply(bo.pod(i, 10, 5))
    pods = [state.pod(bo.NAMESPACE, f"app-{i}") for i in range(5, 9)]
    # a part is kept once seen twice: the first pod of a shape may keep its own copy
    for part in (lambda p: p["spec"]["containers"], lambda p: p["status"]):
        assert len({id(part(p)) for p in pods[1:]}) == 1
    assert pods[2]["metadata"]["labels"] is not pods[3]["metadata"]["labels"]  # app-7, app-8
    assert {p["spec"]["nodeName"] for p in pods} == {f"node-{i}" for i in range(5, 9)}
    assert state.node_requested("node-5") == {"cpu": 125, "memory": 256 << 20}
    state.remove(POD, bo.NAMESPACE, "app-5")
    assert state.node_requested("node-5") == {}
    assert state.node_requested("node-6") == {"cpu": 125, "memory": 256 << 20}


def test_vmis_of_one_template_share_their_spec_parts():
    state = ClusterState()
    for i in range(20, 24):
        state.apply(bo.vmi(i, 10))
    vmis = [state.vmi(bo.NAMESPACE, f"vm-{i}") for i in range(20, 24)]
    devices = {id(v["spec"]["domain"]["devices"]) for v in vmis[1:]}
    assert len(devices) == 1  # a part is kept once seen twice
    firmware = {v["spec"]["domain"]["firmware"]["uuid"] for v in vmis}
    assert len(firmware) == 4  # what differs stays each VMI's own
    assert vmis[0]["spec"] == {**bo.vmi(20, 10)["spec"]}
    evaluate = state.vmi_with_facts(bo.NAMESPACE, "vm-23")
    assert evaluate[1] is not None
