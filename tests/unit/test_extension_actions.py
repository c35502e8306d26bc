"""Pure parts of the Harvester actions: bodies, the VMIM to create, and what may be aborted."""

from __future__ import annotations

import pytest

from extension.actions import (
    BadRequest,
    Conflict,
    abort_target,
    build_vmim,
    check_action,
    delete_options,
    migrate_target,
    parse_json_body,
    vmims_for,
)
from extension.status import ABORTABLE_PHASES


def vmim(name, phase=None, created="2025-01-01T11:00:00Z", vmi="vm1"):
    obj = {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": created,
        },
        "spec": {"vmiName": vmi},
    }
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def test_unknown_and_missing_actions_are_named():
    assert check_action("migrate") == "migrate"
    with pytest.raises(BadRequest, match="unknown action 'fly'"):
        check_action("fly")
    with pytest.raises(BadRequest, match="missing query parameter 'action'"):
        check_action(None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        (b"[1]", "must be a JSON object, got list"),
        (b"\xff\xfe", "not"),
    ],
)
def test_malformed_bodies_are_named(raw, message):
    with pytest.raises(BadRequest, match=message):
        parse_json_body(raw)


def test_empty_body_is_an_empty_object():
    assert parse_json_body(b"  ") == {}


def test_node_name_empty_or_missing_means_any_node():
    assert migrate_target({}) is None
    assert migrate_target({"nodeName": ""}) is None
    assert migrate_target({"nodeName": None}) is None
    assert migrate_target({"nodeName": "node-2"}) == "node-2"


@pytest.mark.parametrize("bad", [5, ["n"], "has space", "x" * 300])
def test_bad_node_names_are_refused(bad):
    with pytest.raises(BadRequest, match="nodeName"):
        migrate_target({"nodeName": bad})


def test_vmim_for_a_chosen_node_is_what_harvester_creates_plus_who_asked():
    body = build_vmim("ns1", "vm1", "node-2", "alice")
    assert body["metadata"]["generateName"] == "vm1-"
    assert body["metadata"]["namespace"] == "ns1"
    assert body["metadata"]["labels"] == {"kubevirt.io/vmi-name": "vm1"}
    assert body["metadata"]["annotations"] == {"migration-guard.io/requested-by": "alice"}
    assert body["spec"] == {
        "vmiName": "vm1",
        "addedNodeSelector": {"kubernetes.io/hostname": "node-2"},
    }


def test_vmim_for_any_node_has_no_added_selector():
    assert build_vmim("ns1", "vm1", None, "alice")["spec"] == {"vmiName": "vm1"}


def test_vmims_are_matched_by_vmi_name():
    items = [vmim("a"), vmim("b", vmi="other")]
    assert [m["metadata"]["name"] for m in vmims_for(items, "vm1")] == ["a"]


@pytest.mark.parametrize("phase", ABORTABLE_PHASES)
def test_every_phase_up_to_running_can_be_aborted(phase):
    target = abort_target([vmim("a", phase)], "ns/vm1")
    assert (target.name, target.uid, target.phase) == ("a", "uid-a", phase)
    options = delete_options(target)
    assert options["preconditions"] == {"uid": "uid-a", "resourceVersion": "7"}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_final_phases_conflict_naming_the_phase(phase):
    with pytest.raises(Conflict, match=f"already {phase}"):
        abort_target([vmim("a", phase)], "ns/vm1")


def test_unknown_non_final_phase_conflicts_naming_it():
    with pytest.raises(Conflict, match="phase Synchronizing, which cannot be aborted"):
        abort_target([vmim("a", "Synchronizing")], "ns/vm1")


def test_no_migration_conflicts():
    with pytest.raises(Conflict, match="no migration in progress for VM ns/vm1"):
        abort_target([], "ns/vm1")


def test_the_running_one_is_aborted_even_when_a_newer_one_finished():
    items = [vmim("old", "Running", "2025-01-01T10:00:00Z"), vmim("new", "Failed")]
    assert abort_target(items, "ns/vm1").name == "old"
