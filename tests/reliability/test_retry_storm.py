"""A retry storm: KubeVirt's workload updater asking again and again for what migration-guard denies.

On the real stack, 20 VMs with a CD-ROM run an older launcher image than virt-controller's, and
the KubeVirt CR turns on LiveMigrate workload updates; while virt-controller retries, a user
creates VMIMs through kube-apiserver and asks migration-guard directly (tests/harness/retry_storm.py
drives and measures it; `python -m bench --only retrystorm` reports the same figures).
"""

from __future__ import annotations

import pytest

from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.retry_storm import (
    OUTDATED,
    USER_REQUESTS,
    p50,
    p99,
    run_storm,
    start_outdated_vms,
    storm_namespace,
)
from tests.reliability.support import FIGURES
from tests.webhook_process import running_webhook
from webhook.cluster.kubeapi import call

pytestmark = pytest.mark.kubevirt


def test_a_workload_update_retry_storm_is_answered_cheaply_and_users_keep_their_latency(
    kubevirt_cluster: KubeVirtCluster,
):
    cluster = kubevirt_cluster
    with running_webhook(cluster.plane) as hook, storm_namespace(cluster, hook) as ns:
        start_outdated_vms(cluster, ns, OUTDATED)
        storm = run_storm(cluster, hook, ns)

        FIGURES.measure("retry storm: outdated VMIs denied", str(OUTDATED))
        FIGURES.measure(
            "retry storm: webhook requests", f"{storm.requests:.0f} in {storm.seconds:.1f} s"
        )
        FIGURES.measure("retry storm: request rate", f"{storm.rate:.1f} req/s")
        FIGURES.measure("retry storm: webhook CPU", f"{storm.cpu_share * 100:.1f} % of a core")
        FIGURES.measure("retry storm: answered from the memo", f"{storm.memo_share * 100:.0f} %")
        for label, times in (("before", storm.before), ("during", storm.during)):
            for where, values in (("kubectl create", times.through_api), ("webhook", times.direct)):
                FIGURES.measure(
                    f"retry storm: user VMIM admission {label}, {where}, p50 / p99",
                    f"{p50(values) * 1e3:.0f} / {p99(values) * 1e3:.0f} ms",
                )
        FIGURES.add("requests served (retry storm)", int(storm.requests) + 4 * USER_REQUESTS)

        # it was a storm: virt-controller asked for each VMI many times over
        assert storm.requests >= 2 * OUTDATED, storm.requests
        # repeats were answered from the memo, not decided again
        assert storm.memo_share >= 0.5, (storm.memo_hits, storm.answered)
        # and the user was not starved (every request was admitted, in run_storm): migration-guard's
        # own answer stays fast, and the whole admission within the webhook timeout
        assert p99(storm.during.direct) < 0.25, storm.during.direct
        assert p99(storm.during.through_api) < 2.0, storm.during.through_api
        # KubeVirt's Event on a VMI names migration-guard's reason
        events = call(cluster.plane.api_client(), "GET", f"/api/v1/namespaces/{ns}/events")["items"]
        failed = [e for e in events if e["reason"] == "FailedCreate"]
        assert failed and all("CDROMVolume" in e["message"] for e in failed)
