"""Migrations KubeVirt starts itself: who started it, what each setting answers, what is recorded,
and repeated decisions answered from the memo."""

from __future__ import annotations

import pytest

from tests.unit import rules_objects as o
from webhook.admission.memo import ReportMemo, memo_key
from webhook.admission.notices import EVACUATION_BLOCKED, MIGRATION_WARNED, notices
from webhook.admission.server import create_app
from webhook.admission.settings import Settings, parse_settings
from webhook.cluster.cache import StaticCache
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules import evaluate_migration
from webhook.rules.model import Problem
from webhook.rules.origin import (
    DEFAULT_CONTROLLER_USERS,
    EVACUATION,
    EVACUATION_ANNOTATION,
    USER,
    WORKLOAD_UPDATE,
    WORKLOAD_UPDATE_ANNOTATION,
    Origin,
    migration_origin,
)

CONTROLLER = DEFAULT_CONTROLLER_USERS[0]
PROBLEM = Problem("CDROMVolume", "CD-ROM 'cd' has PVC 'iso' inserted: eject the CD-ROM")


def vmim_with(annotations: dict[str, str]) -> dict:
    vmim = o.vmim()
    vmim["metadata"]["annotations"] = annotations
    return vmim


# ---- origin --------------------------------------------------------------------------------
def test_only_virt_controllers_vmims_count_as_kubevirts():
    evacuation = vmim_with({EVACUATION_ANNOTATION: "node-1"})
    assert migration_origin(evacuation, CONTROLLER, DEFAULT_CONTROLLER_USERS) == Origin(
        EVACUATION, "node-1"
    )
    update = vmim_with({WORKLOAD_UPDATE_ANNOTATION: ""})
    assert migration_origin(update, CONTROLLER, DEFAULT_CONTROLLER_USERS).kind == WORKLOAD_UPDATE
    # the annotations alone, written by anyone else, change nothing
    for user in ("alice", "system:serviceaccount:tenant:kubevirt-controller", ""):
        assert migration_origin(evacuation, user, DEFAULT_CONTROLLER_USERS).kind == USER
    # virt-controller's own VMIM without either annotation is treated as a person's
    assert migration_origin(o.vmim(), CONTROLLER, DEFAULT_CONTROLLER_USERS).kind == USER


def test_a_malformed_annotation_map_is_named():
    vmim = o.vmim()
    vmim["metadata"]["annotations"] = {EVACUATION_ANNOTATION: 5}
    with pytest.raises(InputError, match="annotations"):
        migration_origin(vmim, CONTROLLER, DEFAULT_CONTROLLER_USERS)


def test_settings_choose_enforce_or_warn_per_kind():
    default = Settings()
    assert default.warn_only(Origin(EVACUATION, "n")) is None
    assert default.warn_only(Origin(WORKLOAD_UPDATE)) is None
    s = parse_settings(["--workload-update-migrations", "warn"], env={})
    assert (
        s.warn_only(Origin(WORKLOAD_UPDATE)) == "--workload-update-migrations=warn lets it through"
    )
    assert s.warn_only(Origin(EVACUATION, "n")) is None
    assert s.warn_only(Origin(USER)) is None
    env = {"MIGRATION_GUARD_EVACUATION_MIGRATIONS": "warn"}
    assert parse_settings([], env=env).warn_only(Origin(EVACUATION)) is not None
    with pytest.raises(InputError, match="--evacuation-migrations: must be one of enforce, warn"):
        parse_settings(["--evacuation-migrations", "off"], env={})
    users = parse_settings(["--kubevirt-controller-users", "a, b"], env={})
    assert users.kubevirt_controller_users == ("a", "b")


# ---- notices -------------------------------------------------------------------------------
def test_a_blocked_evacuation_is_told_on_the_node():
    out = notices(
        Origin(EVACUATION, "node-1"), "default/vm1", [PROBLEM], None, o.vmi(), o.node("node-1")
    )
    assert len(out) == 1
    (n,) = out
    assert (n.involved.kind, n.involved.name, n.involved.namespace) == ("Node", "node-1", None)
    assert n.involved.event_namespace == "default"
    assert (n.type, n.reason) == ("Warning", EVACUATION_BLOCKED)
    assert "VM default/vm1 cannot leave this node" in n.message
    assert "CDROMVolume: CD-ROM 'cd'" in n.message


def test_a_warned_problem_is_told_on_the_vmi_and_a_persons_migration_on_neither():
    why = "--evacuation-migrations=warn lets it through"
    (n,) = notices(Origin(EVACUATION, "node-1"), "default/vm1", [PROBLEM], why, o.vmi(), o.node())
    assert (n.involved.kind, n.involved.name, n.involved.uid) == (
        "VirtualMachineInstance",
        "vm1",
        "uid-vm1",
    )
    assert n.reason == MIGRATION_WARNED and why in n.message and "CDROMVolume" in n.message
    assert notices(Origin(USER), "default/vm1", [PROBLEM], None, o.vmi(), o.node()) == []
    assert notices(Origin(EVACUATION, "node-1"), "default/vm1", [], None, o.vmi(), o.node()) == []
    # a denied workload update: KubeVirt's FailedCreate on the VMI already names the reasons
    assert notices(Origin(WORKLOAD_UPDATE), "default/vm1", [PROBLEM], None, o.vmi(), None) == []


# ---- the webhook's answer --------------------------------------------------------------------
def review(vmim: dict, username: str, dry_run: bool = False) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachineInstanceMigration"},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachineinstancemigrations"},
            "operation": "CREATE",
            "namespace": o.NS,
            "userInfo": {"username": username, "groups": ["system:serviceaccounts"]},
            "object": vmim,
            "dryRun": dry_run,
        },
    }  # fmt: skip


class Recorded:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def record(self, involved, type_, reason, message) -> None:
        self.events.append((involved, type_, reason, message))


def blocked_state() -> ClusterState:
    """vm1 on node-1 with a container disk: every migration of it is denied."""
    vmi = o.vmi()
    vmi["spec"]["volumes"].append({"name": "boot", "containerDisk": {"image": "img"}})
    return ClusterState.from_objects(
        [o.node("node-1"), o.node("node-2"), vmi, o.nad(), o.launcher()]
    )


def answer(settings: Settings, body: dict, events: Recorded | None = None) -> dict:
    app = create_app(settings, StaticCache(blocked_state()), events=events)  # type: ignore[arg-type]
    resp = app.test_client().post("/validate", json=body)
    assert resp.status_code == 200
    return resp.get_json()["response"]


def test_warn_lets_kubevirts_evacuation_through_with_every_problem_as_a_warning():
    events = Recorded()
    settings = parse_settings(["--evacuation-migrations", "warn"], env={})
    evacuation = vmim_with({EVACUATION_ANNOTATION: "node-1"})
    response = answer(settings, review(evacuation, CONTROLLER), events)
    assert response["allowed"] is True
    warnings = response["warnings"]
    assert "would deny this migration of VM default/vm1" in warnings[0]
    assert "--evacuation-migrations=warn" in warnings[0]
    assert any(w.startswith("migration-guard: ContainerDiskVolume:") for w in warnings)
    assert [e[2] for e in events.events] == [MIGRATION_WARNED]
    # the same VMIM from a person is denied, and nothing is recorded
    events.events.clear()
    person = answer(settings, review(evacuation, "alice"), events)
    assert person["allowed"] is False and events.events == []


def test_enforce_denies_kubevirts_evacuation_and_tells_the_node_but_not_on_a_dry_run():
    events = Recorded()
    evacuation = vmim_with({EVACUATION_ANNOTATION: "node-1"})
    response = answer(Settings(), review(evacuation, CONTROLLER), events)
    assert response["allowed"] is False
    assert "ContainerDiskVolume" in response["status"]["message"]
    ((involved, type_, reason, message),) = events.events
    assert (involved.kind, involved.name, reason, type_) == (
        "Node",
        "node-1",
        EVACUATION_BLOCKED,
        "Warning",
    )
    assert "ContainerDiskVolume" in message
    events.events.clear()
    assert (
        answer(Settings(), review(evacuation, CONTROLLER, dry_run=True), events)["allowed"] is False
    )
    assert events.events == []


# ---- repeated decisions ----------------------------------------------------------------------
def test_a_repeated_question_on_an_unchanged_cluster_reuses_the_report():
    state = ClusterState.from_objects(o.cluster())
    memo = ReportMemo(size=2)
    computed = []

    def compute():
        computed.append(1)
        return evaluate_migration(state, o.NS, "vm1", vmim=o.vmim())

    key = memo_key(o.NS, "vm1", o.vmim())
    renamed = o.vmim("kubevirt-workload-update-x7k2p")  # each retry gets a name of its own
    first, reused = memo.report(key, state.generation, compute)
    assert not reused
    again, reused = memo.report(memo_key(o.NS, "vm1", renamed), state.generation, compute)
    assert reused and again is first and len(computed) == 1
    # another target is another question
    other = memo_key(o.NS, "vm1", o.vmim(target="node-2"))
    assert other != key
    # a change the rules read makes it stale
    state.apply(o.node("node-2", spec={"unschedulable": True}))
    changed, reused = memo.report(key, state.generation, compute)
    assert not reused and changed.allowed is False and len(computed) == 2
    assert (memo.hits, memo.misses) == (1, 2)


def test_the_memo_holds_at_most_its_size():
    memo = ReportMemo(size=2)
    report = evaluate_migration(ClusterState(), o.NS, "vm1")
    for name in ("a", "b", "c"):
        memo.report(memo_key(o.NS, name, None), 0, lambda: report)
    assert memo.report(memo_key(o.NS, "a", None), 0, lambda: report)[1] is False  # dropped
    assert memo.report(memo_key(o.NS, "c", None), 0, lambda: report)[1] is True


def test_the_generation_grows_with_content_not_with_resource_versions():
    state = ClusterState.from_objects(o.cluster())
    start = state.generation
    node = o.node("node-2")
    node["metadata"]["resourceVersion"] = "2"
    state.apply(node)  # same content, new resourceVersion: a heartbeat
    assert state.generation == start
    assert state.node("node-2")["metadata"]["resourceVersion"] == "2"  # still stored
    launcher = o.launcher()
    launcher["status"]["conditions"] = [{"type": "Ready", "status": "True"}]  # slimmed away
    state.apply(launcher)
    assert state.generation == start
    state.apply(o.node("node-2", labels={"zone": "b"}))
    assert state.generation == start + 1
    state.remove("Node", None, "node-2")
    assert state.generation == start + 2
    state.remove("Node", None, "node-2")  # already gone
    assert state.generation == start + 2


def test_the_webhook_answers_a_retry_from_the_memo_with_the_new_uid():
    app = create_app(Settings(), StaticCache(blocked_state()))
    client = app.test_client()
    update = vmim_with({WORKLOAD_UPDATE_ANNOTATION: ""})
    for uid in ("u-1", "u-2", "u-3"):
        update["metadata"]["name"] = f"kubevirt-workload-update-{uid}"  # named by generateName
        body = review(update, CONTROLLER)
        body["request"]["uid"] = uid
        response = client.post("/validate", json=body).get_json()["response"]
        assert response["uid"] == uid and response["allowed"] is False
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "migration_guard_admission_memo_hits_total 2.0" in metrics
    assert (
        'migration_guard_kubevirt_migrations_total{origin="workload-update",result="denied"} 3.0'
        in metrics
    )
