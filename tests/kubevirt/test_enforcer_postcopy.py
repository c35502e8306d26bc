"""What the enforcer never aborts, on the KubeVirt profile: a migration in post-copy (aborting it
would lose the VM) and one KubeVirt is already aborting. It records once why it left an overdue
one alone (a Normal `MigrationNotAborted` Event on the VMI), also across a restart.

Migrations are run by the real virt-controller; the virt-handler stand-in reports `mode:
PostCopy` as the source handler does when libvirt switched, and holds `abortStatus: Aborting`
while an abort virt-controller requested is under way. Enforcers are real subprocesses with the
scaled settings of tests/harness/enforcers.py (5 s per GiB: a 1 GiB VM's deadline is 5 s).
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.harness.enforcers import EnforcerProcess, Enforcers, events_for
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario
from tests.harness.vms import harvester_vm, vmim

pytestmark = pytest.mark.kubevirt
NOT_ABORTED = "MigrationNotAborted"
ABORT_REASONS = ("MigrationTimedOut", "MigrationStalled")
ABORT_ANNOTATION = "migration-guard.io/abort"


def _events(cluster: KubeVirtCluster, ns: str, name: str, reasons: tuple[str, ...]) -> list[dict]:
    return [e for e in events_for(cluster.plane, ns, name) if e["reason"] in reasons]


def _vmim_path(ns: str, name: str) -> str:
    return f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations/{name}"


def _start(cluster: KubeVirtCluster, ns: str, name: str, scenario: Scenario, **vm: object) -> str:
    """The VM running with `scenario` for its migrations; its source node."""
    cluster.handler.set_scenario(ns, name, scenario)
    return cluster.start_vm(harvester_vm(ns, name, **vm))["status"]["nodeName"]


def _enforcer(cluster: KubeVirtCluster, enforcers: Enforcers, identity: str, ns: str):
    enforcer = enforcers.start(identity, ns, "--virt-handler-urls", cluster.handler.metrics_url)
    enforcers.wait_ready(enforcer)
    return enforcer


def _held(enforcer: EnforcerProcess, key: str) -> dict | None:
    return enforcer.readyz().get("held", {}).get(key)


def _never_aborted(cluster: KubeVirtCluster, ns: str, vm: str, *enforcers: EnforcerProcess):
    """No abort record of any kind: no Warning Events, no VM annotation, no abort counted."""
    assert _events(cluster, ns, vm, ABORT_REASONS) == []
    annotations = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines/{vm}")[
        "metadata"
    ].get("annotations", {})
    assert ABORT_ANNOTATION not in annotations
    for enforcer in enforcers:
        for reason in ABORT_REASONS:
            labels = {"reason": reason, "dry_run": "false"}
            assert enforcer.metric("migration_guard_enforcer_aborts_total", **labels) == 0
        assert "enforcer: aborted " not in enforcer.log()  # the runner's line for an abort


def _completed_on_target(cluster: KubeVirtCluster, ns: str, vm: str, m: str, source: str) -> None:
    cluster.wait_for(f"{m} Succeeded", lambda: cluster.vmim_phase(ns, m) == "Succeeded", 60)
    assert "deletionTimestamp" not in cluster.get(_vmim_path(ns, m))["metadata"]

    def on_target() -> dict | None:
        status = cluster.vmi(ns, vm)["status"]
        return status if status["nodeName"] == status["migrationState"]["targetNode"] else None

    status = cluster.wait_for(f"{vm} handed to its target node", on_target, 30)
    assert status["nodeName"] != source
    assert status["migrationState"]["mode"] == "PostCopy"
    assert status["migrationState"]["completed"] is True
    assert "failed" not in status["migrationState"]


def test_post_copy_past_its_completion_deadline_is_not_aborted(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, enforcers: Enforcers
) -> None:
    cluster, ns = kubevirt_cluster, vm_namespace
    # post-copy 1 s in, done 12 s in: well past its 5 s completion deadline
    source = _start(cluster, ns, "pc", Scenario.post_copy(after=1.0, seconds=12.0))
    enforcer = _enforcer(cluster, enforcers, "kv-postcopy", ns)
    cluster.kubectl_ok("create", "-f", "-", input=json.dumps(vmim(ns, "m-pc", "pc")))

    # In post-copy before its deadline: held, and /readyz says why.
    key = f"{ns}/m-pc"
    held = cluster.wait_for("held in post-copy", lambda: _held(enforcer, key), 30, 0.1)
    assert held["reason"] == "PostCopy" and held["overdue"] is None
    assert "post-copy" in held["why"]

    def recorded() -> list[dict]:
        return _events(cluster, ns, "pc", (NOT_ABORTED,))

    [event] = cluster.wait_for("the MigrationNotAborted Event", recorded, 30)
    vmi = cluster.vmi(ns, "pc")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["kind"] == "VirtualMachineInstance"
    assert event["involvedObject"]["uid"] == vmi["metadata"]["uid"]
    assert event["source"]["component"] == "migration-guard-enforcer"
    assert "completion deadline passed" in event["message"]
    assert "(mode PostCopy)" in event["message"] and "completion limit 5 s" in event["message"]
    assert _held(enforcer, key)["overdue"] == "MigrationTimedOut"
    assert vmi["status"]["migrationState"]["mode"] == "PostCopy"

    _completed_on_target(cluster, ns, "pc", "m-pc", source)
    [event] = recorded()  # once, however many checks saw it overdue
    assert event.get("count", 1) == 1
    _never_aborted(cluster, ns, "pc", enforcer)
    assert enforcer.metric("migration_guard_enforcer_not_aborted_total", reason="PostCopy") == 1
    assert enforcer.log().count(f"not aborting {key} (PostCopy)") == 1


def test_a_migration_kubevirt_is_aborting_is_left_to_kubevirt(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, enforcers: Enforcers
) -> None:
    cluster, ns = kubevirt_cluster, vm_namespace
    # 8 s per GiB: the user's delete lands well before the deadline; the abort takes 12 s
    source = _start(
        cluster,
        ns,
        "ab",
        Scenario.overrun(600, abort_seconds=12.0),
        annotations={"migration-guard.io/completion-timeout-per-gib": "8"},
    )
    enforcer = _enforcer(cluster, enforcers, "kv-aborting", ns)
    cluster.kubectl_ok("create", "-f", "-", input=json.dumps(vmim(ns, "m-ab", "ab")))
    uid = cluster.get(_vmim_path(ns, "m-ab"))["metadata"]["uid"]
    cluster.wait_for("the migration Running", lambda: cluster.vmim_phase(ns, "m-ab") == "Running")
    # the user aborts it (what Harvester's abortMigration does): virt-controller asks the source
    cluster.kubectl_ok("delete", "vmim", "m-ab", "-n", ns, "--wait=false")

    def aborting() -> bool:
        state = cluster.vmi(ns, "ab")["status"]["migrationState"]
        return state.get("abortRequested") is True and state.get("abortStatus") == "Aborting"

    cluster.wait_for("KubeVirt aborting (abortStatus Aborting)", aborting, 30)
    [event] = cluster.wait_for(
        "the MigrationNotAborted Event",
        lambda: _events(cluster, ns, "ab", (NOT_ABORTED,)),
        30,
    )
    assert event["type"] == "Normal"
    assert "KubeVirt is already aborting it (abortStatus Aborting)" in event["message"]
    held = _held(enforcer, f"{ns}/m-ab")
    assert held["reason"] == "AbortInProgress"
    # data stops moving while the abort runs: the progress deadline (4 s) may pass first
    passed = {"MigrationTimedOut": "completion", "MigrationStalled": "progress"}[held["overdue"]]
    assert f"{passed} deadline passed" in event["message"]
    # still KubeVirt's abort in progress: the VMIM waits on its finalizer, untouched
    current = cluster.get(_vmim_path(ns, "m-ab"))
    assert current["metadata"]["uid"] == uid and current["status"]["phase"] == "Running"

    def gone() -> bool:
        found = cluster.plane.kubectl("get", "vmim", "m-ab", "-n", ns)
        return found.returncode == 1 and "NotFound" in found.stderr

    cluster.wait_for("KubeVirt's abort to finish (VMIM gone)", gone, 60)
    status = cluster.vmi(ns, "ab")["status"]
    assert status["migrationState"]["migrationUid"] == uid
    assert status["migrationState"]["abortStatus"] == "Succeeded"
    assert status["nodeName"] == source and status["phase"] == "Running"
    _never_aborted(cluster, ns, "ab", enforcer)
    assert len(_events(cluster, ns, "ab", (NOT_ABORTED,))) == 1
    labels = {"reason": "AbortInProgress"}
    assert enforcer.metric("migration_guard_enforcer_not_aborted_total", **labels) == 1


def test_a_restarted_enforcer_still_leaves_a_post_copy_migration_alone(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, enforcers: Enforcers
) -> None:
    cluster, ns = kubevirt_cluster, vm_namespace
    source = _start(cluster, ns, "pcr", Scenario.post_copy(after=1.0, seconds=25.0))
    first = _enforcer(cluster, enforcers, "kv-first", ns)
    cluster.kubectl_ok("create", "-f", "-", input=json.dumps(vmim(ns, "m-pcr", "pcr")))

    def recorded() -> list[dict]:
        return _events(cluster, ns, "pcr", (NOT_ABORTED,))

    cluster.wait_for("the first enforcer's MigrationNotAborted Event", recorded, 30)
    first.kill(signal.SIGKILL)  # mid-migration, past its deadline, without handing the Lease back

    second = _enforcer(cluster, enforcers, "kv-second", ns)
    key = f"{ns}/m-pcr"

    def leader_sees_it_overdue() -> bool:
        status = second.readyz()
        overdue = (status.get("held", {}).get(key) or {}).get("overdue")
        return status["leader"] and overdue == "MigrationTimedOut"

    cluster.wait_for("the new leader holding the overdue migration", leader_sees_it_overdue, 30)
    cluster.wait_for(
        "the new leader finding the record", lambda: "recorded before" in second.log(), 10
    )
    # still mid-migration, in post-copy, past its deadline, and not aborted by either
    state = cluster.vmi(ns, "pcr")["status"]["migrationState"]
    assert state["mode"] == "PostCopy" and not state.get("completed")
    assert "deletionTimestamp" not in cluster.get(_vmim_path(ns, "m-pcr"))["metadata"]
    [event] = recorded()
    assert event["reportingInstance"] == "kv-first" and event.get("count", 1) == 1
    labels = {"reason": "PostCopy"}
    assert second.metric("migration_guard_enforcer_not_aborted_total", **labels) == 0

    _completed_on_target(cluster, ns, "pcr", "m-pcr", source)
    assert len(recorded()) == 1
    _never_aborted(cluster, ns, "pcr", second)
    assert "enforcer: aborted " not in first.log()
