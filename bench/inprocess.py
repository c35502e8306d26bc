"""In-process benchmarks: target lookup, one enforcer pass, and the cache's memory.

They call the product's own functions on a ClusterState filled through `apply` (as the informers
fill it), so what is measured is the rule engine and the state, without HTTP in the way.
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bench import objects as o
from bench.results import Figure
from webhook.cluster.state import ClusterState, freeze_cached
from webhook.rules.engine import evaluate_migration

LOOKUP_SIZES = (100, 500, 1000, 2000, 5000)
# p99 budgets of an untargeted lookup in process (issue 8: 1,000 nodes; issue 18: 5,000 nodes)
LOOKUP_P99_BUDGETS = {1000: 10.0, 5000: 30.0}
LOOKUP_VMIS = 2000
ENFORCER_MIGRATIONS = 10_000


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def timed_runs(fn: Callable[[], object], *, min_runs: int, max_seconds: float) -> list[float]:
    """Seconds per call of `fn`: at least `min_runs` calls, more while time allows."""
    fn()  # warm up
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 2000):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def lookup_state(nodes: int, vmis: int = LOOKUP_VMIS) -> ClusterState:
    """`nodes` Harvester nodes, `vmis` running VMIs with their launcher pods, one VM."""
    objs: list[dict] = [o.node(i) for i in range(nodes)]
    objs += [o.vmi(i, nodes) for i in range(vmis)]
    objs += [o.pod(i, nodes, vmis) for i in range(vmis)]
    objs.append(o.vm(0))
    state = ClusterState.from_objects(objs)
    del objs
    freeze_cached()  # as the informers do after their first list
    return state


def bench_lookup(quick: bool = False) -> list[Figure]:
    """evaluate_migration with no target at each size: p50, p99, and p50 cost per node."""
    figures: list[Figure] = []
    for nodes in LOOKUP_SIZES:
        state = lookup_state(nodes)
        report = evaluate_migration(state, o.NAMESPACE, "vm-0")
        assert len(report.nodes) == nodes and report.allowed, "the lookup subject must be movable"
        times = timed_runs(
            lambda s=state: evaluate_migration(s, o.NAMESPACE, "vm-0"),
            min_runs=20 if nodes >= 5000 else 100,
            max_seconds=1.0 if quick else 3.0,
        )
        p50, p99 = statistics.median(times) * 1e3, percentile(times, 99) * 1e3
        figures += [
            Figure(f"lookup.inprocess.{nodes}.p50", p50, "ms"),
            Figure(
                f"lookup.inprocess.{nodes}.p99",
                p99,
                "ms",
                budget=LOOKUP_P99_BUDGETS.get(nodes),
            ),
            Figure(
                f"lookup.inprocess.{nodes}.per_node",
                p50 * 1e3 / nodes,
                "us/node",
                baseline=f"lookup.inprocess.{LOOKUP_SIZES[0]}.per_node",
            ),
        ]
        del state
        gc.collect()
    first, last = LOOKUP_SIZES[0], LOOKUP_SIZES[-1]
    per_node = {f.name: f.value for f in figures if f.name.endswith(".per_node")}
    figures.append(
        Figure(
            f"lookup.inprocess.per_node_growth_{first}_to_{last}",
            per_node[f"lookup.inprocess.{last}.per_node"]
            / per_node[f"lookup.inprocess.{first}.per_node"],
            f"x {first} nodes",
        )
    )
    return figures


DRAIN_NODES, DRAIN_VMS = 1000, 100


def bench_drain_plan(quick: bool = False) -> list[Figure]:
    """The drain plan of a node running 100 VMs on a 1,000-node cluster (2,000 VMIs in all),
    beside one target lookup on the same cluster: a plan is about one lookup per VM (plus one
    for the wave order of every second one)."""
    from webhook.rules.drain import MIGRATES, drain_plan

    objs: list[dict] = [o.node(i) for i in range(DRAIN_NODES)]
    for i in range(LOOKUP_VMIS):
        vmi, pod = o.vmi(i, DRAIN_NODES), o.pod(i, DRAIN_NODES, LOOKUP_VMIS)
        node = "node-0" if i < DRAIN_VMS else f"node-{i % (DRAIN_NODES - 1) + 1}"
        vmi["status"]["nodeName"] = pod["spec"]["nodeName"] = node  # node-0 runs vm-0 .. vm-99
        vmi["spec"]["evictionStrategy"] = "LiveMigrate"
        objs += [vmi, pod]
    state = ClusterState.from_objects(objs)
    del objs
    freeze_cached()
    plan = drain_plan(state, "node-0")
    outcomes = {p.outcome for p in plan.vms}
    assert len(plan.vms) == DRAIN_VMS and outcomes == {MIGRATES}, (len(plan.vms), outcomes)
    runs = 3 if quick else 7
    plans = timed_runs(lambda: drain_plan(state, "node-0"), min_runs=runs, max_seconds=0)
    lookups = timed_runs(
        lambda: evaluate_migration(state, o.NAMESPACE, "vm-0"), min_runs=30, max_seconds=1.0
    )
    return [
        Figure(
            f"drain.plan.{DRAIN_NODES}_nodes_{DRAIN_VMS}_vms.p50",
            statistics.median(plans) * 1e3,
            "ms",
            baseline=f"drain.lookup.{DRAIN_NODES}_nodes.p50",
        ),
        Figure(f"drain.lookup.{DRAIN_NODES}_nodes.p50", statistics.median(lookups) * 1e3, "ms"),
    ]


class StaticProgress:
    """A progress source answering from a dict (the shape Prometheus' answer is parsed into)."""

    description = "bench: fixed data-remaining values"

    def __init__(self, values: dict[tuple[str, str], int]) -> None:
        self.values = values

    def fetch(self) -> dict[tuple[str, str], int]:
        return self.values


def enforcer_state(count: int, now: datetime) -> ClusterState:
    """`count` running migrations, each started on its VMI a minute ago."""
    objs: list[dict] = []
    start = (now - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i in range(count):
        vmi = o.vmi(i, 1000)
        vmim = o.vmim(i, i, None)
        uid = f"{i:08d}-mig"
        vmim["metadata"]["uid"] = uid
        vmim["status"] = {"phase": "Running"}
        vmi["status"]["migrationState"] = {
            "migrationUid": uid,
            "startTimestamp": start,
            "sourceNode": vmi["status"]["nodeName"],
            "targetNode": "node-999",
        }
        objs += [vmi, vmim, o.vm(i)]
    state = ClusterState.from_objects(objs)
    del objs
    freeze_cached()  # as the informers do after their first list
    return state


def bench_enforcer(quick: bool = False) -> list[Figure]:
    """Enforcer.check_once over 10,000 running migrations (no abort is due), beside a bare walk."""
    from webhook.enforcer.decisions import WATCH
    from webhook.enforcer.runner import Enforcer
    from webhook.enforcer.settings import EnforcerSettings

    now = datetime.now(UTC)
    state = enforcer_state(ENFORCER_MIGRATIONS, now)
    values = {(o.NAMESPACE, f"vm-{i}"): 4 << 30 for i in range(ENFORCER_MIGRATIONS)}
    enforcer = Enforcer(
        EnforcerSettings(),
        None,  # type: ignore[arg-type]  # the API is only used to abort, and nothing is due
        state,
        lambda: True,
        StaticProgress(values),
        None,
    )
    result = enforcer.check_once()
    assert len(result.decisions) == ENFORCER_MIGRATIONS and not result.aborted
    assert all(d.action == WATCH for _, d in result.decisions)

    def walk() -> int:  # what any pass must do: read every migration and its VMI and VM
        n = 0
        for vmim in state.vmims():
            name = vmim["spec"]["vmiName"]
            n += state.vmi(o.NAMESPACE, name) is not None and state.vm(o.NAMESPACE, name) is None
        return n

    runs = 3 if quick else 7
    passes = timed_runs(enforcer.check_once, min_runs=runs, max_seconds=0)
    walks = timed_runs(walk, min_runs=runs, max_seconds=0)
    return [
        Figure("enforcer.walk_10000", statistics.median(walks) * 1e3, "ms"),
        Figure(
            "enforcer.pass_10000",
            statistics.median(passes) * 1e3,
            "ms",
            budget=200.0,
            baseline="enforcer.walk_10000",
        ),
        Figure("enforcer.pass_10000.max", max(passes) * 1e3, "ms"),
    ]


def bench_memory(quick: bool = False) -> list[Figure]:
    """RSS of a fresh process holding the server app and a filled cache (see bench.memory_child)."""
    sizes = {"nodes": 5000, "vmis": 20_000, "pods": 100_000}
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory_child", json.dumps(sizes)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return [
        Figure("memory.rss_empty", data["rss_empty_mb"], "MB"),
        Figure(
            "memory.rss_5000n_20000vmi_100000pods",
            data["rss_full_mb"],
            "MB",
            budget=500.0,
            baseline="memory.rss_empty",
        ),
        Figure("memory.cache_bytes_per_pod", data["bytes_per_pod"], "B"),
        Figure("memory.cache_bytes_per_node", data["bytes_per_node"], "B"),
        Figure("memory.cache_bytes_per_vmi", data["bytes_per_vmi"], "B"),
        Figure("memory.fill_seconds", data["fill_seconds"], "s"),
    ]


def bench_retry(quick: bool = False) -> list[Figure]:
    """A denied evacuation asked again (KubeVirt's retries) through the app, at 1,000 nodes:
    decided afresh (the same review from a person) beside answered from the memo."""
    from webhook.admission.server import create_app
    from webhook.admission.settings import Settings
    from webhook.cluster.cache import StaticCache
    from webhook.rules.origin import DEFAULT_CONTROLLER_USERS, EVACUATION_ANNOTATION

    state = lookup_state(1000)
    cdrom = o.wo.vmi(o.NAMESPACE, "vm-cdrom", "node-1", cdrom=True)
    state.apply(cdrom)
    client = create_app(Settings(), StaticCache(state)).test_client()
    vmim = o.wo.vmim(o.NAMESPACE, "kubevirt-evacuation-x", "vm-cdrom")
    vmim["metadata"]["annotations"] = {EVACUATION_ANNOTATION: "node-1"}
    bodies = {}
    for who, user in (("person", "alice"), ("kubevirt", DEFAULT_CONTROLLER_USERS[0])):
        review = o.review(vmim, uid=f"retry-{who}")
        review["request"]["userInfo"] = {"username": user}
        bodies[who] = json.dumps(review).encode()

    def post(who: str) -> None:
        answer = client.post("/validate", data=bodies[who], content_type="application/json")
        assert answer.get_json()["response"]["allowed"] is False

    figures = []
    for who in ("person", "kubevirt"):
        times = timed_runs(lambda w=who: post(w), min_runs=50, max_seconds=1.0 if quick else 3.0)
        figures.append(
            Figure(
                f"admission.retry.{'decided' if who == 'person' else 'memo'}_1000_nodes.p50",
                statistics.median(times) * 1e3,
                "ms",
                baseline=None if who == "person" else "admission.retry.decided_1000_nodes.p50",
            )
        )
    return figures


ADMISSION_NODES, ADMISSION_VMIS, ADMISSION_REVIEWS = 1000, 10_000, 2000
# What a request's own work does to the CPU's caches between two decisions, imitated: writing
# one byte per 64-byte line of this many bytes (more than the L2 cache, a share of the L3).
EVICT_BYTES = 8 << 20


def bench_decision(quick: bool = False) -> list[Figure]:
    """The webhook's `decide` on the admission benchmark's cluster (1,000 nodes, 10,000 VMIs
    without launcher pods) and reviews (2,000 VMIM creates with a target): per decision in a
    loop, where each finds the last one's code and objects in the CPU's caches, and with
    EVICT_BYTES written between two decisions, as a request's own work (TLS, HTTP, Flask)
    does live. The second is what the admission throughput pays; their ratio says how much of
    a decision's cost is refilling the caches, not running instructions."""
    from webhook.admission import review
    from webhook.admission.server import decide
    from webhook.admission.settings import Settings
    from webhook.cluster.cache import StaticCache

    objs = [o.node(i) for i in range(ADMISSION_NODES)]
    objs += [o.vmi(i, ADMISSION_NODES, api_shape=True) for i in range(ADMISSION_VMIS)]
    cache = StaticCache(ClusterState.from_objects(objs))
    del objs
    freeze_cached()
    settings = Settings()
    bodies = o.review_bodies(
        ADMISSION_REVIEWS, range(ADMISSION_VMIS), ADMISSION_NODES, targeted=True, seed=1
    )
    reviews = [review.read_review(body) for body in bodies]
    for req in reviews[:20]:  # the real decision, not an error path
        assert decide(cache, settings, req)["response"]["allowed"] is True
    junk = bytearray(EVICT_BYTES)
    line = b"\x01" * (EVICT_BYTES // 64)

    def per_decision(evict: bool) -> float:
        spent = 0
        for req in reviews:
            if evict:
                junk[::64] = line
            started = time.perf_counter_ns()
            decide(cache, settings, req)
            spent += time.perf_counter_ns() - started
        return spent / len(reviews) / 1e3

    passes = 3 if quick else 7
    warm = min(per_decision(False) for _ in range(passes))
    cold = min(per_decision(True) for _ in range(passes))
    return [
        Figure("admission.decide.warm_us", warm, "us"),
        Figure(
            "admission.decide.caches_flushed_us", cold, "us", baseline="admission.decide.warm_us"
        ),
    ]
