"""A retry storm on the KubeVirt profile: KubeVirt's workload updater asking again and again for
what migration-guard denies; used by tests/reliability/test_retry_storm.py and `python -m bench
--only retrystorm` alike.

After a KubeVirt upgrade, virt-controller's workload updater migrates every VMI whose virt-launcher
image is outdated; what the webhook denies it asks again almost at once (its re-queue interval is
30 ns), for as long as the VMI is outdated. `start_outdated_vms` runs VMs with a CD-ROM (which
migration-guard denies) on an older launcher image than virt-controller's, and a clean VM;
`run_storm` turns on LiveMigrate workload updates in the KubeVirt CR and, while virt-controller
retries, times a user's VMIM admissions of the clean VM (dry-run creates through kube-apiserver,
so virt-api's webhooks answer too, and the same review posted to migration-guard directly),
before and during the storm. Measured: the storm's requests at the webhook, the webhook's CPU,
and the share of its answers taken from the memo.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from bench.cpus import cpu_seconds
from bench.inprocess import percentile
from tests.harness.kubevirt import KUBEVIRT_PATH
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.metrics import sample
from tests.harness.vms import harvester_vm, iso_cdrom, vmim
from tests.reliability.support import post_json
from tests.webhook_objects import review
from tests.webhook_process import WebhookProcess
from webhook.cluster.kubeapi import call, kubevirt_path

OUTDATED = 20
CLEAN_VM = "clean"
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


@dataclass(frozen=True)
class Latencies:
    """Seconds per user admission: through kube-apiserver (both webhooks), and direct."""

    through_api: list[float]
    direct: list[float]


@dataclass(frozen=True)
class Storm:
    requests: float  # the workload updater's denied migrations at the webhook
    seconds: float
    cpu_seconds: float  # the webhook's (gunicorn's master and worker)
    memo_hits: float
    answered: float  # VMIM creates the webhook answered meanwhile (the storm's and the user's)
    before: Latencies
    during: Latencies

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_share(self) -> float:
        """CPU of the webhook during the storm, as a share of one core."""
        return self.cpu_seconds / self.seconds

    @property
    def memo_share(self) -> float:
        return self.memo_hits / self.answered


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return percentile(values, 99)


def metric(hook: WebhookProcess, which: tuple[str, dict[str, str]]) -> float:
    status, text = hook.get("/metrics")
    assert status == 200, status
    name, labels = which
    return sample(text, name, **labels) or 0.0


def answered(hook: WebhookProcess) -> float:
    return sum(metric(hook, which) for which in ANSWERED)


@contextlib.contextmanager
def storm_namespace(cluster: KubeVirtCluster, hook: WebhookProcess) -> Iterator[str]:
    """A new namespace that `hook` guards; deleted afterwards with the CD-ROM's PV."""
    ns = f"kv-storm-{uuid.uuid4().hex[:8]}"
    cluster.kubectl_ok("create", "namespace", ns)
    hook.label_namespace(cluster.plane, ns)
    try:
        yield ns
    finally:
        cluster.plane.kubectl("delete", "namespace", ns, "--wait=false")
        cluster.plane.kubectl("delete", "pv", f"{ns}-iso", "--wait=false")


def start_outdated_vms(cluster: KubeVirtCluster, ns: str, count: int = OUTDATED) -> None:
    """`count` running VMs with a CD-ROM on the launcher before the upgrade, marked outdated by
    virt-controller, and the clean VM the user migrates."""
    api = cluster.plane.api_client()
    disk, volume = iso_cdrom(api, ns)
    names = [f"iso-{i:02d}" for i in range(count)]
    for name in names:
        vm = harvester_vm(ns, name, memory="256Mi", disks=[disk], volumes=[volume])
        call(api, "POST", kubevirt_path(ns, "virtualmachines"), vm)
    cluster.start_vm(harvester_vm(ns, CLEAN_VM, memory="256Mi"))
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


def user_latencies(
    cluster: KubeVirtCluster, hook: WebhookProcess, ns: str, count: int
) -> Latencies:
    """`count` user VMIM admissions of the clean VM, each one admitted, 0.1 s apart."""
    api, path = cluster.plane.api_client(), kubevirt_path(ns, "virtualmachineinstancemigrations")
    times = Latencies([], [])
    for i in range(count):
        body = vmim(ns, f"user-{uuid.uuid4().hex[:6]}-{i}", CLEAN_VM)
        started = time.perf_counter()
        created = call(api, "POST", path, body, query=[("dryRun", "All")])
        times.through_api.append(time.perf_counter() - started)
        assert created["metadata"]["name"] == body["metadata"]["name"]
        started = time.perf_counter()
        status, answer = post_json(f"{hook.url}/validate", hook.ca_file, review(body, uid=f"u{i}"))
        times.direct.append(time.perf_counter() - started)
        assert status == 200 and answer["response"]["allowed"] is True, answer
        time.sleep(0.1)
    return times


def set_workload_updates(cluster: KubeVirtCluster, methods: list[str]) -> None:
    call(
        cluster.plane.api_client(),
        "PATCH",
        f"{KUBEVIRT_PATH}/kubevirt",
        {"spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": methods}}},
        content_type="application/merge-patch+json",
    )


def run_storm(
    cluster: KubeVirtCluster,
    hook: WebhookProcess,
    ns: str,
    seconds: float = STORM_SECONDS,
    user_requests: int = USER_REQUESTS,
) -> Storm:
    """The user's latencies, then LiveMigrate workload updates on for at least `seconds` (from
    the CR's change) while the user's requests are timed again; turned off at the end."""
    before = user_latencies(cluster, hook, ns, user_requests)
    denied0, hits0, answered0 = metric(hook, DENIED), metric(hook, MEMO_HITS), answered(hook)
    cpu0, started = cpu_seconds([hook.proc.pid]), time.monotonic()
    set_workload_updates(cluster, ["LiveMigrate"])
    try:
        cluster.wait_for(
            "the workload updater's first denied migration",
            lambda: metric(hook, DENIED) > denied0,
            timeout=30,
        )
        during = user_latencies(cluster, hook, ns, user_requests)
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        denied1, hits1, answered1 = metric(hook, DENIED), metric(hook, MEMO_HITS), answered(hook)
        cpu1, elapsed = cpu_seconds([hook.proc.pid]), time.monotonic() - started
    finally:
        set_workload_updates(cluster, [])
    return Storm(
        requests=denied1 - denied0,
        seconds=elapsed,
        cpu_seconds=cpu1 - cpu0,
        memo_hits=hits1 - hits0,
        answered=answered1 - answered0,
        before=before,
        during=during,
    )
