"""API server outage: kube-apiserver is killed while the webhook serves and the enforcer runs.

A KubeVirt-profile control plane of this module's own (the session's is shared by other tests):
its kube-apiserver is killed and started again on the same port and etcd, under KubeVirt,
kube-controller-manager, kube-scheduler and KWOK as well. The webhook keeps answering from its cache
while the cache is younger than --max-cache-age, then denies with the reason (policy deny) and says
so in /readyz; when the API server returns, the watches resume and a change made right after is
seen. The enforcer aborts nothing while it cannot confirm state, and aborts the overdue migration
after.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane, start_controlplane
from tests.harness.enforcers import (
    Enforcers,
    events_for,
    get_or_none,
    vm_path,
    vmi_path,
    vmim_path,
    wait_for,
)
from tests.harness.kubevirt_cluster import KubeVirtCluster, node_ready
from tests.harness.nodes import harvester_node
from tests.harness.virt_handler import Scenario, VirtHandler
from tests.harness.vms import create_migration, harvester_vm
from tests.reliability.support import FIGURES, post_json, start_apiserver, stop_apiserver
from tests.webhook_process import running_webhook
from webhook.annotations import ABORT as ABORT_ANNOTATION
from webhook.cluster.kubeapi import call

pytestmark = pytest.mark.kubevirt

N1, N2 = "out-node-1", "out-node-2"
MAX_AGE_S = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A KubeVirt profile this module may break, with two Harvester nodes."""
    cp = start_controlplane(tmp_path_factory.mktemp("outage-plane"), kubevirt_profile=True)
    handler = VirtHandler(cp)
    try:
        for name in (N1, N2):
            call(cp.api_client(), "POST", "/api/v1/nodes", harvester_node(name))
        handler.start()
        kv = KubeVirtCluster(cp, handler, (N1, N2))
        for name in (N1, N2):
            kv.wait_for(f"{name} Ready", lambda n=name: node_ready(kv.get(f"/api/v1/nodes/{n}")))
        yield kv
    finally:
        handler.stop()
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)


def _ns(plane: ControlPlane, name: str) -> str:
    assert plane.kubectl("create", "namespace", name).returncode == 0
    return name


def _decide(hook, ns: str, target: str, uid: str) -> dict:
    review = o.review(o.vmim(ns, f"m-{uid}", "clean", target), uid=uid, dry_run=True)
    status, body = post_json(hook.url + "/validate", hook.ca_file, review)
    FIGURES.add("requests served (outage)")
    assert status == 200, body
    assert body["response"]["uid"] == uid
    return body["response"]


def _readyz(hook) -> dict:
    return json.loads(hook.get("/readyz")[1])


def test_webhook_and_enforcer_ride_out_an_api_server_outage(
    cluster: KubeVirtCluster, tmp_path
) -> None:
    plane = cluster.plane
    api = plane.api_client()
    ns = _ns(plane, "outage-vms")
    source = cluster.start_vm(harvester_vm(ns, "clean"))["status"]["nodeName"]
    target = N2 if source == N1 else N1

    # The enforcer side: one overrun migration whose 5 s deadline falls inside the outage.
    ens = _ns(plane, "outage-enf")
    enforcers = Enforcers(plane, tmp_path)
    args = ("--watch-timeout", "2", "--max-cache-age", f"{MAX_AGE_S}s")
    try:
        with running_webhook(plane, *args) as hook:
            hook.label_namespace(plane, ns)
            cluster.handler.set_scenario(ens, "vm-over", Scenario.overrun(600))
            cluster.start_vm(harvester_vm(ens, "vm-over"))
            enforcer = enforcers.start("solo", ens)
            enforcers.wait_ready(enforcer)
            create_migration(api, ens, "vm-over")
            wait_for(
                lambda: (
                    ((get_or_none(api, vmi_path(ens, "vm-over")) or {}).get("status") or {})
                    .get("migrationState", {})
                    .get("startTimestamp")
                ),
                20,
                "the migration to start",
            )
            assert _decide(hook, ns, target, "before")["allowed"] is True
            lists_before = _readyz(hook)["informers"]["Node"]["lists"]

            stop_apiserver(plane)
            FIGURES.add("faults injected")
            down_at = time.monotonic()
            # 1. still answering from the cache while it is young enough
            answer = _decide(hook, ns, target, "during-fresh")
            assert time.monotonic() - down_at < MAX_AGE_S
            assert answer["allowed"] is True, answer
            # 2. then stale: denied with the reason, /readyz says so, /healthz still fine
            stale = wait_for(
                lambda: _readyz(hook)["cacheStale"], MAX_AGE_S + 10, "the cache to go stale"
            )
            assert "lost its watch on the API server" in stale
            denied = _decide(hook, ns, target, "during-stale")
            assert denied["allowed"] is False
            assert [c["reason"] for c in denied["status"]["details"]["causes"]] == ["CacheNotReady"]
            assert "cluster cache is" in denied["status"]["message"]
            assert hook.get("/healthz")[0] == 200
            # 3. the enforcer: the deadline (5 s after start) passes while it cannot confirm
            while time.monotonic() - down_at < 8:
                assert enforcer.process.poll() is None
                time.sleep(0.5)
            assert enforcer.readyz()["leader"] is False  # it could not renew its Lease
            assert (
                enforcer.metric(
                    "migration_guard_enforcer_aborts_total",
                    reason="MigrationTimedOut",
                    dry_run="false",
                )
                or 0
            ) == 0

            start_apiserver(plane)
            back_at = time.monotonic()
            # a change made right after the API server returns is seen: cordon the target
            assert plane.kubectl("cordon", target).returncode == 0
            wait_for(
                lambda: (
                    "is cordoned"
                    in (
                        _decide(hook, ns, target, f"after-{time.monotonic_ns()}").get("status")
                        or {}
                    ).get("message", "")
                ),
                30,
                "the cordon to reach the webhook",
                every=0.3,
            )
            resumed = time.monotonic() - back_at
            answer = _decide(hook, ns, target, "after")
            assert "TargetNotEligible" in answer["status"]["message"]
            assert "is cordoned" in answer["status"]["message"]
            ready = _readyz(hook)
            assert ready["cacheStale"] is None and ready["ready"] is True
            assert ready["informers"]["Node"]["lists"] > lists_before  # relisted after the outage
            # the enforcer resumes: the overdue migration is aborted, once
            record = wait_for(
                lambda: (
                    ((get_or_none(api, vm_path(ens, "vm-over")) or {}).get("metadata") or {})
                    .get("annotations", {})
                    .get(ABORT_ANNOTATION)
                ),
                30,
                "the abort after the outage",
            )
            assert json.loads(record)["reason"] == "MigrationTimedOut"
            wait_for(
                lambda: get_or_none(api, vmim_path(ens, "vm-over-migration")) is None, 20, "gone"
            )
            reasons = sorted(
                e["involvedObject"]["kind"]
                for e in events_for(plane, ens, "vm-over")
                if e["reason"] == "MigrationTimedOut"
            )
            assert reasons == ["VirtualMachine", "VirtualMachineInstance"]
            print(f"outage: watches resumed and the cordon was seen {resumed:.1f}s after restart")
            FIGURES.add("decisions wrong or lost", 0)
    finally:
        enforcers.stop_all()
