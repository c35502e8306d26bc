"""A retry storm: KubeVirt's workload updater asking again and again for what migration-guard denies.

After a KubeVirt upgrade, virt-controller's workload updater migrates every VMI whose virt-launcher
image is outdated; what the webhook denies it asks again almost at once (its re-queue interval is
30 ns), for as long as the VMI is outdated. Here, on the real stack, 20 VMs with a CD-ROM run an
older launcher image than virt-controller's, and the KubeVirt CR turns on LiveMigrate workload
updates. While virt-controller retries, a user creates VMIMs (dry runs through kube-apiserver, so
virt-api's webhooks answer too) and asks migration-guard directly (its own share of that time).
Measured: the rate of the storm's requests at the webhook, the webhook's CPU, the share of its
answers taken from the memo, and the user's latencies before and during the storm.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.kubevirt import KUBEVIRT_PATH
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.metrics import sample
from tests.harness.vms import harvester_vm, iso_cdrom, vmim
from tests.reliability.support import FIGURES, post_json
from tests.webhook_objects import review
from tests.webhook_process import WebhookProcess, running_webhook
from webhook.cluster.kubeapi import call, kubevirt_path

pytestmark = pytest.mark.kubevirt

OUTDATED = 20
OLD_LAUNCHER = "quay.io/kubevirt/virt-launcher:v1.8.1"
OUTDATED_LABEL = "kubevirt.io/outdatedLauncherImage"
STORM_SECONDS = 20.0
USER_REQUESTS = 40
DENIED = (
    "migration_guard_kubevirt_migrations_total",
    {"origin": "workload-update", "result": "denied"},
)
MEMO_HITS = ("migration_guard_admission_memo_hits_total", {})
ANSWERED = [
    (
        "migration_guard_admission_requests_total",
        {"kind": "VirtualMachineInstanceMigration", "operation": "CREATE", "result": result},
    )
    for result in ("allowed", "denied")
]


def metric(hook: WebhookProcess, which: tuple[str, dict[str, str]]) -> float:
    status, text = hook.get("/metrics")
    assert status == 200
    name, labels = which
    return sample(text, name, **labels) or 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (gunicorn's master and worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        stat = Path(f"/proc/{current}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        for task in Path(f"/proc/{current}/task").iterdir():
            todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def user_latencies(
    cluster: KubeVirtCluster, hook: WebhookProcess, ns: str, count: int
) -> tuple[list[float], list[float]]:
    """Seconds per user VMIM admission of the clean VM, each one admitted: a dry-run create
    through kube-apiserver (both webhooks), and the same review posted to migration-guard."""
    api, path = cluster.plane.api_client(), kubevirt_path(ns, "virtualmachineinstancemigrations")
    through_api, direct = [], []
    for i in range(count):
        body = vmim(ns, f"user-{uuid.uuid4().hex[:6]}-{i}", "clean")
        started = time.perf_counter()
        created = call(api, "POST", path, body, query=[("dryRun", "All")])
        through_api.append(time.perf_counter() - started)
        assert created["metadata"]["name"] == body["metadata"]["name"]
        started = time.perf_counter()
        status, answer = post_json(f"{hook.url}/validate", hook.ca_file, review(body, uid=f"u{i}"))
        direct.append(time.perf_counter() - started)
        assert status == 200 and answer["response"]["allowed"] is True, answer
        time.sleep(0.1)
    return through_api, direct


def answered(hook: WebhookProcess) -> float:
    return sum(metric(hook, which) for which in ANSWERED)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]


def set_workload_updates(cluster: KubeVirtCluster, methods: list[str]) -> None:
    call(
        cluster.plane.api_client(),
        "PATCH",
        f"{KUBEVIRT_PATH}/kubevirt",
        {"spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": methods}}},
        content_type="application/merge-patch+json",
    )


def test_a_workload_update_retry_storm_is_answered_cheaply_and_users_keep_their_latency(
    kubevirt_cluster: KubeVirtCluster,
):
    cluster = kubevirt_cluster
    api = cluster.plane.api_client()
    with running_webhook(cluster.plane) as hook:
        ns = f"kv-storm-{uuid.uuid4().hex[:8]}"
        cluster.kubectl_ok("create", "namespace", ns)
        hook.label_namespace(cluster.plane, ns)
        disk, volume = iso_cdrom(api, ns)
        try:
            names = [f"iso-{i:02d}" for i in range(OUTDATED)]
            for name in names:
                vm = harvester_vm(ns, name, memory="256Mi", disks=[disk], volumes=[volume])
                call(api, "POST", kubevirt_path(ns, "virtualmachines"), vm)
            cluster.start_vm(harvester_vm(ns, "clean", memory="256Mi"))
            # they run the launcher of the KubeVirt before the upgrade
            for name in names:
                (pod,) = cluster.pods_of(cluster.running_vmi(ns, name))
                call(
                    api,
                    "PATCH",
                    f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}",
                    {"spec": {"containers": [{"name": "compute", "image": OLD_LAUNCHER}]}},
                    content_type="application/strategic-merge-patch+json",
                )
            for name in names:
                cluster.wait_for(
                    f"virt-controller to mark {name} outdated",
                    lambda n=name: OUTDATED_LABEL in cluster.vmi(ns, n)["metadata"]["labels"],
                )
            before = user_latencies(cluster, hook, ns, USER_REQUESTS)

            denied0, hits0, answered0 = (
                metric(hook, DENIED),
                metric(hook, MEMO_HITS),
                answered(hook),
            )
            cpu0, started = cpu_seconds(hook.proc.pid), time.monotonic()
            set_workload_updates(cluster, ["LiveMigrate"])
            try:
                cluster.wait_for(
                    "the workload updater's first denied migration",
                    lambda: metric(hook, DENIED) > denied0,
                    timeout=30,
                )
                during = user_latencies(cluster, hook, ns, USER_REQUESTS)
                time.sleep(max(0.0, STORM_SECONDS - (time.monotonic() - started)))
                denied1, hits1, answered1 = (
                    metric(hook, DENIED),
                    metric(hook, MEMO_HITS),
                    answered(hook),
                )
                cpu1, elapsed = cpu_seconds(hook.proc.pid), time.monotonic() - started
            finally:
                set_workload_updates(cluster, [])

            storm = denied1 - denied0
            rate, cpu = storm / elapsed, (cpu1 - cpu0) / elapsed
            hits = (hits1 - hits0) / (answered1 - answered0)
            FIGURES.measure("retry storm: outdated VMIs denied", str(OUTDATED))
            FIGURES.measure("retry storm: webhook requests", f"{storm:.0f} in {elapsed:.1f} s")
            FIGURES.measure("retry storm: request rate", f"{rate:.1f} req/s")
            FIGURES.measure("retry storm: webhook CPU", f"{cpu * 100:.1f} % of a core")
            FIGURES.measure("retry storm: answered from the memo", f"{hits * 100:.0f} %")
            for label, (api_times, direct_times) in (("before", before), ("during", during)):
                for where, values in (("kubectl create", api_times), ("webhook", direct_times)):
                    FIGURES.measure(
                        f"retry storm: user VMIM admission {label}, {where}, p50 / p99",
                        f"{statistics.median(values) * 1e3:.0f} / {p99(values) * 1e3:.0f} ms",
                    )
            FIGURES.add("requests served (retry storm)", int(storm) + 4 * USER_REQUESTS)

            # it was a storm: virt-controller asked for each VMI many times over
            assert storm >= 2 * OUTDATED, storm
            # repeats were answered from the memo, not decided again
            assert hits >= 0.5, (hits1 - hits0, answered1 - answered0)
            # and the user was not starved (every request was admitted, above): migration-guard's
            # own answer stays fast, and the whole admission within the webhook timeout
            assert p99(during[1]) < 0.25, during[1]
            assert p99(during[0]) < 2.0, during[0]
            # KubeVirt's Event on a VMI names migration-guard's reason
            events = call(api, "GET", f"/api/v1/namespaces/{ns}/events")["items"]
            failed = [e for e in events if e["reason"] == "FailedCreate"]
            assert failed and all("CDROMVolume" in e["message"] for e in failed)
        finally:
            cluster.plane.kubectl("delete", "namespace", ns, "--wait=false")
            cluster.plane.kubectl("delete", "pv", f"{ns}-iso", "--wait=false")
