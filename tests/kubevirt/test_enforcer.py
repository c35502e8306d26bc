"""The timeout enforcer on the KubeVirt profile: migrations run by the real virt-controller and
the virt-handler stand-in, progress from a real Prometheus scraping the stand-in's metrics, aborts
carried out by virt-controller's abort path.

Timeouts are scaled down through settings only (5 s per GiB, 4 s without progress, checks every
0.5 s); a 1 GiB VM gets a 5 s completion deadline. Enforcers are real `migration-guard enforcer`
subprocesses, each confined to its test's namespace (and Lease) so tests cannot disturb each other.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.enforcers import (
    Enforcers,
    events_for,
    get_or_none,
    lease_holder,
    vm_path,
    vmi_path,
    vmim_path,
    wait_for,
)
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.prometheus import Prometheus
from tests.harness.virt_handler import Scenario, VirtHandler
from tests.harness.vms import create_migration, harvester_vm
from webhook.enforcer.decisions import parse_time

pytestmark = pytest.mark.kubevirt
ABORT_ANNOTATION = "migration-guard.io/abort"
PER_GIB_OVERRIDE = "migration-guard.io/completion-timeout-per-gib"
# KubeVirt's VMIM phases up to the transfer, as virt-controller records them
PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running")


@pytest.fixture(scope="module")
def controlplane(kubevirt_cluster: KubeVirtCluster) -> ControlPlane:
    return kubevirt_cluster.plane


@pytest.fixture(scope="module")
def sim(kubevirt_cluster: KubeVirtCluster) -> VirtHandler:
    return kubevirt_cluster.handler


@pytest.fixture(scope="module")
def prom(prometheus: Prometheus) -> Prometheus:
    return prometheus


def _new_namespace(controlplane: ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{time.time_ns() % 10**9}"
    result = controlplane.kubectl("create", "namespace", name)
    assert result.returncode == 0, result.stderr
    return name


def _remove(controlplane: ControlPlane, namespace: str) -> None:
    """Its VMs and migrations go with it: a migration left running would hold one of KubeVirt's
    5 cluster-wide migration slots (parallelMigrationsPerCluster) from later tests."""
    controlplane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def new_namespace(controlplane: ControlPlane):
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(_new_namespace(controlplane, prefix))
        return made[-1]

    yield make
    for name in made:
        _remove(controlplane, name)


def _start_vms(cluster: KubeVirtCluster, namespace: str, vms: dict[str, dict]) -> dict[str, str]:
    """Start 1 GiB VMs (name -> VM annotations) through KubeVirt; name -> the node each runs on."""
    for name, vm_annotations in vms.items():
        body = harvester_vm(namespace, name, memory="1Gi", annotations=vm_annotations)
        cluster.kubectl_ok("create", "-f", "-", input=json.dumps(body))
    return {name: cluster.running_vmi(namespace, name)["status"]["nodeName"] for name in vms}


# ----------------------------------------------------------------------------------------------
# The four scenarios, run side by side in one namespace under one enforcer.
SCENARIOS = {
    "vm-succeed": (Scenario.succeed(1.5), {}),
    "vm-overrun": (Scenario.overrun(600), {}),
    # Per-VM override: 20 s per GiB, so the stall (after 1 s, 4 s limit) comes well first.
    "vm-stall": (Scenario.stall(after=1.0), {PER_GIB_OVERRIDE: "20"}),
    "vm-just-before": (Scenario.complete_at(3.0), {}),
}


@pytest.fixture(scope="module")
def scenario_run(
    kubevirt_cluster: KubeVirtCluster, sim: VirtHandler, prom: Prometheus, tmp_path_factory
):
    controlplane = kubevirt_cluster.plane
    api = controlplane.api_client()
    namespace = _new_namespace(controlplane, "enf-scn")
    for name, (scenario, _) in SCENARIOS.items():
        sim.set_scenario(namespace, name, scenario)
    sources = _start_vms(kubevirt_cluster, namespace, {n: e for n, (_, e) in SCENARIOS.items()})
    group = Enforcers(controlplane, tmp_path_factory.mktemp("enforcer"))
    try:
        enforcer = group.start("solo", namespace, "--prometheus-url", prom.url)
        group.wait_ready(enforcer)
        for name in SCENARIOS:
            create_migration(api, namespace, name)
        # Watch every VMIM: when it first shows a deletionTimestamp or disappears.
        gone_at: dict[str, float] = {}
        starts: dict[str, float] = {}

        def settled() -> bool:
            now = time.time()
            for name in SCENARIOS:
                vmi = get_or_none(api, vmi_path(namespace, name)) or {}
                start = ((vmi.get("status") or {}).get("migrationState") or {}).get(
                    "startTimestamp"
                )
                if start:
                    starts[name] = parse_time(start)
                vmim = get_or_none(api, vmim_path(namespace, f"{name}-migration"))
                if (
                    vmim is None or vmim["metadata"].get("deletionTimestamp")
                ) and name not in gone_at:
                    gone_at[name] = now
            done = {"vm-overrun", "vm-stall"} <= set(gone_at)
            # Completed ones are watched past their deadline: they must never be touched.
            late_enough = all(name in starts and now > starts[name] + 6.5 for name in SCENARIOS)
            return done and late_enough

        wait_for(settled, 40, "overrun and stall aborted, others past their deadline", every=0.1)
        time.sleep(1.0)  # one more check interval on the completed ones
        yield {
            "namespace": namespace,
            "api": api,
            "gone_at": gone_at,
            "starts": starts,
            "enforcer": enforcer,
            "metrics": enforcer.get("/metrics")[1],
            "readyz": enforcer.readyz(),
            "sources": sources,
        }
    finally:
        group.stop_all()
        _remove(controlplane, namespace)


def _abort_record(api, namespace: str, name: str) -> dict | None:
    vm = get_or_none(api, vm_path(namespace, name)) or {}
    text = ((vm.get("metadata") or {}).get("annotations") or {}).get(ABORT_ANNOTATION)
    return json.loads(text) if text else None


def _reasons(controlplane: ControlPlane, namespace: str, name: str) -> list[tuple[str, str, int]]:
    return sorted(
        (e["involvedObject"]["kind"], e["reason"], e.get("count", 1))
        for e in events_for(controlplane, namespace, name)
        if e["reason"] in ("MigrationTimedOut", "MigrationStalled")
    )


@pytest.mark.parametrize("name", ["vm-succeed", "vm-just-before"])
def test_completed_migrations_are_never_touched(scenario_run, controlplane, name) -> None:
    api, namespace = scenario_run["api"], scenario_run["namespace"]
    vmim = get_or_none(api, vmim_path(namespace, f"{name}-migration"))
    assert vmim is not None and vmim["status"]["phase"] == "Succeeded"
    assert "deletionTimestamp" not in vmim["metadata"]
    phases = [t["phase"] for t in vmim["status"]["phaseTransitionTimestamps"]]
    assert phases == [*PHASES, "Succeeded"]
    vmi = get_or_none(api, vmi_path(namespace, name))
    state = vmi["status"]["migrationState"]
    assert state["completed"] is True and state["migrationUid"] == vmim["metadata"]["uid"]
    assert state["sourceNode"] == scenario_run["sources"][name] != state["targetNode"]
    assert vmi["status"]["nodeName"] == state["targetNode"]
    assert _abort_record(api, namespace, name) is None
    assert _reasons(controlplane, namespace, name) == []


def test_overrun_is_aborted_within_one_interval_of_its_deadline(scenario_run, controlplane) -> None:
    api, namespace = scenario_run["api"], scenario_run["namespace"]
    deadline = scenario_run["starts"]["vm-overrun"] + 5  # 1 GiB x 5 s
    late_by = scenario_run["gone_at"]["vm-overrun"] - deadline
    assert 0 <= late_by <= 0.5 + 1.0, f"aborted {late_by:.2f} s after the deadline"
    record = _abort_record(api, namespace, "vm-overrun")
    assert record["reason"] == "MigrationTimedOut"
    assert record["migration"] == "vm-overrun-migration"
    assert "1 GiB of data, limit 5 s" in record["message"]
    assert (
        "data remaining" in record["message"] and "GiB" in record["message"].split("remaining")[1]
    )
    # The VMIM went the way KubeVirt takes it: abort on the VMI, then the finalizer let it go.
    wait_for(
        lambda: get_or_none(api, vmim_path(namespace, "vm-overrun-migration")) is None,
        10,
        "VMIM gone",
    )
    state = get_or_none(api, vmi_path(namespace, "vm-overrun"))["status"]
    assert state["nodeName"] == scenario_run["sources"]["vm-overrun"]
    assert state["migrationState"]["abortRequested"] is True
    assert state["migrationState"]["abortStatus"] == "Succeeded"
    assert state["migrationState"]["failed"] is True
    assert _reasons(controlplane, namespace, "vm-overrun") == [
        ("VirtualMachine", "MigrationTimedOut", 1),
        ("VirtualMachineInstance", "MigrationTimedOut", 1),
    ]


def test_stall_is_aborted_from_prometheus_progress(scenario_run, controlplane) -> None:
    api, namespace = scenario_run["api"], scenario_run["namespace"]
    start = scenario_run["starts"]["vm-stall"]
    took = scenario_run["gone_at"]["vm-stall"] - start
    # Data stops going down after 1 s; 4 s later it is stalled; its completion deadline is 20 s.
    assert 4 <= took < 15, f"stall abort after {took:.1f} s"
    record = _abort_record(api, namespace, "vm-stall")
    assert record["reason"] == "MigrationStalled"
    assert "no progress for" in record["message"] and "limit 4 s" in record["message"]
    assert "completion limit 20 s" in record["message"]
    assert _reasons(controlplane, namespace, "vm-stall") == [
        ("VirtualMachine", "MigrationStalled", 1),
        ("VirtualMachineInstance", "MigrationStalled", 1),
    ]


def test_events_and_annotation_readable_with_kubectl(scenario_run, controlplane) -> None:
    namespace = scenario_run["namespace"]
    shown = controlplane.kubectl(
        "get",
        "vm",
        "vm-overrun",
        "-n",
        namespace,
        "-o",
        r"jsonpath={.metadata.annotations.migration-guard\.io/abort}",
    )
    assert shown.returncode == 0 and json.loads(shown.stdout)["reason"] == "MigrationTimedOut"
    described = controlplane.kubectl("describe", "vmi", "vm-stall", "-n", namespace)
    assert described.returncode == 0, described.stderr
    assert "MigrationStalled" in described.stdout and "no progress for" in described.stdout


def test_metrics_and_readiness_after_the_run(scenario_run) -> None:
    text = scenario_run["metrics"]
    assert (
        'migration_guard_enforcer_aborts_total{dry_run="false",reason="MigrationTimedOut"} 1.0'
        in text
    )
    assert (
        'migration_guard_enforcer_aborts_total{dry_run="false",reason="MigrationStalled"} 1.0'
        in text
    )
    assert "migration_guard_enforcer_progress_source_up 1.0" in text
    assert "migration_guard_enforcer_migrations_watched 0.0" in text
    ready = scenario_run["readyz"]
    assert ready["ready"] and ready["leader"] and ready["informersSynced"]
    assert ready["progressSource"]["up"] is True
    assert ready["progressSource"]["enforced"] == ["completion", "progress"]


# ----------------------------------------------------------------------------------------------
def test_dry_run_and_progress_source_outage(
    kubevirt_cluster, controlplane, sim, enforcers, new_namespace
) -> None:
    """Dry-run only reports; with no progress source only completion is judged, said once."""
    api = controlplane.api_client()
    namespace = new_namespace("enf-dry")
    sim.set_scenario(namespace, "vm-over", Scenario.overrun(600))
    sim.set_scenario(namespace, "vm-flat", Scenario.stall(after=0.5))
    _start_vms(kubevirt_cluster, namespace, {"vm-over": {}, "vm-flat": {PER_GIB_OVERRIDE: "30"}})
    port = free_port()  # a virt-handler endpoint that is down at first
    enforcer = enforcers.start(
        "dry", namespace, "--dry-run", "--virt-handler-urls", f"http://127.0.0.1:{port}/metrics"
    )
    status = enforcers.wait_ready(enforcer)
    assert status["dryRun"] is True and status["progressSource"]["up"] is False
    assert status["progressSource"]["enforced"] == ["completion"]
    assert enforcer.metric("migration_guard_enforcer_progress_source_up") == 0
    create_migration(api, namespace, "vm-over")
    create_migration(api, namespace, "vm-flat")
    wait_for(lambda: "would abort" in enforcer.log(), 15, "dry-run report")
    time.sleep(1.5)  # several more checks: still counted once
    dry = {"reason": "MigrationTimedOut", "dry_run": "true"}
    assert enforcer.metric("migration_guard_enforcer_aborts_total", **dry) == 1
    stalled = {"reason": "MigrationStalled", "dry_run": "true"}
    assert enforcer.metric("migration_guard_enforcer_aborts_total", **stalled) == 0
    vmim = get_or_none(api, vmim_path(namespace, "vm-over-migration"))
    assert vmim["status"]["phase"] == "Running" and "deletionTimestamp" not in vmim["metadata"]
    assert _abort_record(api, namespace, "vm-over") is None
    assert _reasons(controlplane, namespace, "vm-over") == []

    # The virt-handler endpoint comes up (serving the stand-in's metrics): said once, used.
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = sim.metrics_text().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_for(lambda: enforcer.readyz()["progressSource"]["up"], 10, "progress source up")
        assert enforcer.metric("migration_guard_enforcer_progress_source_up") == 1
        log = enforcer.log()
        assert log.count("unreachable") == 1, log
        assert log.count("reachable: progress timeouts are enforced") == 1, log
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------------------------
def test_leader_failover_without_double_abort(
    kubevirt_cluster, controlplane, sim, prom, enforcers, new_namespace
) -> None:
    api = controlplane.api_client()
    namespace = new_namespace("enf-ha")
    # Stall (aborted while both replicas run) and overrun (aborted after the leader dies).
    sim.set_scenario(namespace, "vm-stall", Scenario.stall(after=0.5))
    sim.set_scenario(namespace, "vm-over", Scenario.overrun(600))
    _start_vms(
        kubevirt_cluster,
        namespace,
        # the overrun's deadline (30 s) well after the stall's abort, even on a loaded machine
        {"vm-stall": {PER_GIB_OVERRIDE: "60"}, "vm-over": {PER_GIB_OVERRIDE: "30"}},
    )
    a = enforcers.start("replica-a", namespace, "--prometheus-url", prom.url)
    b = enforcers.start("replica-b", namespace, "--prometheus-url", prom.url)
    enforcers.wait_ready(a)
    enforcers.wait_ready(b)
    holder = wait_for(lambda: lease_holder(api, namespace).get("holderIdentity"), 10, "a leader")
    leader, standby = (a, b) if holder == "replica-a" else (b, a)
    assert lease_holder(api, namespace)["leaseDurationSeconds"] == 3
    create_migration(api, namespace, "vm-stall")
    create_migration(api, namespace, "vm-over")

    wait_for(lambda: _abort_record(api, namespace, "vm-stall"), 30, "stall abort by the leader")
    time.sleep(1.0)  # the standby keeps checking: it must not act
    timed = {"reason": "MigrationStalled", "dry_run": "false"}
    assert leader.metric("migration_guard_enforcer_aborts_total", **timed) == 1
    assert standby.metric("migration_guard_enforcer_aborts_total", **timed) == 0
    assert standby.readyz()["leader"] is False
    vm_over = get_or_none(api, vmim_path(namespace, "vm-over-migration"))
    assert vm_over is not None and "deletionTimestamp" not in vm_over["metadata"]

    transitions = lease_holder(api, namespace).get("leaseTransitions", 0)
    leader.kill(signal.SIGKILL)  # dies without releasing the Lease
    killed_at = time.monotonic()
    wait_for(
        lambda: lease_holder(api, namespace).get("holderIdentity") == standby.identity,
        6,
        "standby takes the Lease",
        every=0.05,
    )
    took_over = time.monotonic() - killed_at
    assert took_over <= 3 + 1.5, f"takeover took {took_over:.1f} s (lease duration 3 s)"
    assert lease_holder(api, namespace)["leaseTransitions"] == transitions + 1

    record = wait_for(lambda: _abort_record(api, namespace, "vm-over"), 45, "overrun abort")
    assert record["reason"] == "MigrationTimedOut"
    time.sleep(1.0)
    assert (
        standby.metric(
            "migration_guard_enforcer_aborts_total", reason="MigrationTimedOut", dry_run="false"
        )
        == 1
    )
    for name, reason in (("vm-stall", "MigrationStalled"), ("vm-over", "MigrationTimedOut")):
        assert _reasons(controlplane, namespace, name) == [
            ("VirtualMachine", reason, 1),
            ("VirtualMachineInstance", reason, 1),
        ], name
