"""A retry storm (issue 18): KubeVirt's workload updater retrying migrations migration-guard denies.

The measurement of tests/reliability/test_retry_storm.py, on the same stack (the KubeVirt
profile: kube-apiserver, kube-scheduler, virt-api and virt-controller v1.8.2, the virt-handler
stand-in) and through the same code (tests/harness/retry_storm.py): 20 VMs with a CD-ROM on an
outdated virt-launcher, LiveMigrate workload updates on for 20 s (10 s with --quick), a user's
VMIM admissions of a clean VM timed before and during the storm, through kube-apiserver (a
dry-run create, virt-api's webhooks too) and posted to migration-guard directly.
"""

from __future__ import annotations

from bench.results import Figure
from tests.harness.kubevirt_cluster import running_kubevirt_cluster
from tests.harness.retry_storm import (
    OUTDATED,
    STORM_SECONDS,
    USER_REQUESTS,
    Latencies,
    Storm,
    p50,
    p99,
    run_storm,
    start_outdated_vms,
    storm_namespace,
)
from tests.webhook_process import running_webhook

# what the reliability test asserts: the user's p99 during the storm
DIRECT_P99_BUDGET_MS = 250.0
THROUGH_API_P99_BUDGET_MS = 2000.0
MEMO_SHARE_BUDGET = 0.5
# the webhook's CPU during the storm, % of one core
CPU_BUDGET_PCT = 25.0


def _latency_figures(before: Latencies, during: Latencies) -> list[Figure]:
    """p50 and p99 before and during the storm (budgets: during), and p99 during / before."""
    out = []
    for where, ahead, inside, budget in (
        ("api", before.through_api, during.through_api, THROUGH_API_P99_BUDGET_MS),
        ("direct", before.direct, during.direct, DIRECT_P99_BUDGET_MS),
    ):
        pre = f"retrystorm.user.{where}"
        out += [
            Figure(f"{pre}.before.p50", p50(ahead) * 1e3, "ms"),
            Figure(f"{pre}.before.p99", p99(ahead) * 1e3, "ms"),
            Figure(f"{pre}.during.p50", p50(inside) * 1e3, "ms", baseline=f"{pre}.before.p50"),
            Figure(
                f"{pre}.during.p99",
                p99(inside) * 1e3,
                "ms",
                budget=budget,
                baseline=f"{pre}.before.p99",
            ),
            Figure(f"{pre}.p99_ratio", p99(inside) / p99(ahead), "x before"),
        ]
    return out


def bench_retrystorm(quick: bool, log) -> list[Figure]:
    """The storm's request rate and CPU at the webhook, its memo share, and a user's latencies."""
    seconds, users = (
        (STORM_SECONDS / 2, USER_REQUESTS // 2) if quick else (STORM_SECONDS, USER_REQUESTS)
    )
    with (
        running_kubevirt_cluster() as cluster,
        running_webhook(cluster.plane) as hook,
        storm_namespace(cluster, hook) as ns,
    ):
        log(f"  {OUTDATED} outdated VMs with a CD-ROM starting ...")
        start_outdated_vms(cluster, ns, OUTDATED)
        log(f"  the storm: LiveMigrate workload updates for {seconds:.0f} s ...")
        storm = run_storm(cluster, hook, ns, seconds, users)
    log(
        f"  {storm.requests:.0f} denials in {storm.seconds:.1f} s, webhook CPU "
        f"{storm.cpu_share * 100:.1f} % of a core, {storm.memo_share * 100:.0f} % from the memo"
    )
    return storm_figures(storm)


def storm_figures(storm: Storm) -> list[Figure]:
    """The figures of one storm, with their budgets."""
    figures = [
        Figure(
            "retrystorm.requests", storm.requests, "requests", budget=2 * OUTDATED, better="higher"
        ),
        Figure("retrystorm.request_rate", storm.rate, "req/s", better="higher"),
        Figure(
            "retrystorm.webhook_cpu", storm.cpu_share * 100, "% of a core", budget=CPU_BUDGET_PCT
        ),
        Figure("retrystorm.cpu_per_answer", storm.cpu_seconds / storm.answered * 1e3, "ms CPU"),
        Figure(
            "retrystorm.memo_share",
            storm.memo_share,
            "of answers",
            budget=MEMO_SHARE_BUDGET,
            better="higher",
        ),
    ]
    return figures + _latency_figures(storm.before, storm.during)
