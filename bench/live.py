"""Benchmarks against the real server stack: admission, lookup over HTTP, kubectl end to end.

One run of the test harness's kube-apiserver, grown in steps so each figure sees its cluster size:
100 nodes (lookup), 1,000 nodes + 10,000 VMIs (lookup, admission, kubectl), 5,000 nodes (lookup).
The `kubectl create` baseline runs first, before any webhook is registered. With
MG_BENCH_ADMISSION_BASELINE=<git ref>, that commit's server is measured on the same 1,000 nodes
right after this one (throughput and CPU per review), for a before/after in one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import cluster as c
from bench import objects as o
from bench.cpus import cpu_seconds, isolated
from bench.inprocess import percentile
from bench.load import bodies_file, fixed_rate, wrk
from bench.results import Figure
from bench.server import DECISIONS_PATH, REPLAY
from tests.harness.controlplane import ControlPlane, running_controlplane

NODES = 1000
VMIS = int(os.environ.get("MG_BENCH_VMIS", "10000"))  # smaller only to debug the benchmark
RATE = 200.0


def _reviews(count: int, *, targeted: bool, seed: int) -> list[bytes]:
    """`objects.review_bodies` on this cluster."""
    return o.review_bodies(count, range(VMIS), NODES, targeted=targeted, seed=seed)


def _post(server: c.BenchServer, path: str, body: bytes) -> dict:
    req = urllib.request.Request(
        server.url + path, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=30) as resp:
        return json.loads(resp.read())


def _http_lookup(server: c.BenchServer, nodes: int, runs: int) -> list[Figure]:
    c.wait_for_nodes(server, nodes)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        status, report = server.get_json(c.targets_path("vm-0"), auth=True)
        times.append((time.perf_counter() - started) * 1e3)
        assert status == 200 and len(report["nodes"]) == nodes, status
    return [
        Figure(
            f"lookup.http.{nodes}.p50",
            statistics.median(times),
            "ms",
            baseline=f"lookup.inprocess.{nodes}.p50",
        ),
        Figure(f"lookup.http.{nodes}.p99", percentile(times, 99), "ms"),
    ]


def _kubectl_create(plane: ControlPlane, manifest: Path | str, denied: bool) -> float:
    """Milliseconds of one `kubectl create -f` of a manifest file, or of JSON on stdin."""
    started = time.perf_counter()
    if isinstance(manifest, Path):
        result = plane.kubectl("create", "-f", str(manifest))
    else:
        result = plane.kubectl("create", "-f", "-", input=manifest)
    took = (time.perf_counter() - started) * 1e3
    if denied:
        assert result.returncode != 0 and "denied the request" in result.stderr, result
    else:
        assert result.returncode == 0, result.stderr
    return took


def _kubectl_creates(plane: ControlPlane, manifest: Path, count: int, denied: bool) -> list[float]:
    return [_kubectl_create(plane, manifest, denied) for _ in range(count)]


def _kubectl_figures(prefix: str, times: list[float], baseline: str | None) -> list[Figure]:
    return [
        Figure(
            f"{prefix}.median",
            statistics.median(times),
            "ms",
            baseline=f"{baseline}.median" if baseline else None,
        ),
        Figure(
            f"{prefix}.p99",
            percentile(times, 99),
            "ms",
            baseline=f"{baseline}.p99" if baseline else None,
        ),
    ]


def _admission(
    server: c.BenchServer, targeted: list[bytes], bodies: Path, quick: bool, log
) -> list[Figure]:
    """`targeted`: the reviews the load posts; `bodies`: their `bodies_file`."""
    untargeted = _reviews(200, targeted=False, seed=2)
    for body in targeted[:20]:  # the load exercises the real decision, not an error path
        answer = _post(server, "/validate", body)["response"]
        assert answer["allowed"] is True and answer.get("warnings"), answer
    answer = _post(server, c.ECHO_PATH, targeted[0])["response"]
    assert answer["allowed"] is True

    with isolated(server.proc.pid, log):
        t = _throughput(server, bodies, quick)
        echo_rps, validate_rps, cpu = t.echo_rps, t.validate_rps, t.cpu
        log(
            f"  wrk: echo {echo_rps:.0f} req/s, validate {validate_rps:.0f} req/s; server CPU "
            f"per review {cpu['echo']:.0f} / {cpu['validate']:.0f} us; {t.pairs_text()}"
        )

        # Latency at a fixed 200 requests/s.
        ctx = server.ssl_context()
        rate_seconds = 4 if quick else 8
        echo_lat, echo_fail = fixed_rate(
            "127.0.0.1", server.port, ctx, c.ECHO_PATH, targeted, RATE, rate_seconds
        )
        val_lat, val_fail = fixed_rate(
            "127.0.0.1", server.port, ctx, "/validate", targeted, RATE, rate_seconds
        )
        untargeted_lat, un_fail = fixed_rate(
            "127.0.0.1",
            server.port,
            ctx,
            "/validate",
            untargeted,
            10.0,
            3 if quick else 6,
            workers=2,
        )
    assert echo_fail == val_fail == un_fail == 0, (echo_fail, val_fail, un_fail)
    return [
        Figure("admission.echo.throughput", echo_rps, "req/s", better="higher"),
        Figure("admission.echo.cpu_per_review", cpu["echo"], "us"),
        Figure(
            "admission.validate.cpu_per_review",
            cpu["validate"],
            "us",
            baseline="admission.echo.cpu_per_review",
        ),
        Figure(
            "admission.validate.cpu_beyond_echo",
            cpu["validate"] - cpu["echo"],
            "us",
        ),
        Figure(
            "admission.validate.throughput",
            validate_rps,
            "req/s",
            better="higher",
            baseline="admission.echo.throughput",
        ),
        Figure(
            "admission.validate.throughput_ratio",
            statistics.median(t.ratios),
            "x echo",
            budget=0.8,
            better="higher",
        ),
        Figure("admission.validate.throughput_ratio_min", min(t.ratios), "x echo", better="higher"),
        Figure("admission.validate.throughput_ratio_max", max(t.ratios), "x echo", better="higher"),
        Figure("admission.echo.p50_at_200rps", statistics.median(echo_lat), "ms"),
        Figure("admission.echo.p99_at_200rps", percentile(echo_lat, 99), "ms"),
        Figure(
            "admission.validate.p50_at_200rps",
            statistics.median(val_lat),
            "ms",
            baseline="admission.echo.p50_at_200rps",
        ),
        Figure(
            "admission.validate.p99_at_200rps",
            percentile(val_lat, 99),
            "ms",
            budget=5.0,
            baseline="admission.echo.p99_at_200rps",
        ),
        Figure(
            "admission.untargeted.p50_1000_nodes",
            statistics.median(untargeted_lat),
            "ms",
            baseline="admission.validate.p50_at_200rps",
        ),
        Figure("admission.untargeted.p99_1000_nodes", percentile(untargeted_lat, 99), "ms"),
    ]


@dataclass(frozen=True)
class Throughput:
    echo_rps: float
    validate_rps: float
    cpu: dict[str, float]  # the server's CPU microseconds per review: "echo", "validate"
    ratios: list[float]  # validate / echo of each pair of neighbouring runs

    def pairs_text(self) -> str:
        return "pair ratios " + " ".join(f"{r:.2f}" for r in self.ratios)


PAIRS = 6


def _throughput(server: c.BenchServer, bodies: Path, quick: bool) -> Throughput:
    """Requests per second of echo and validate under wrk, in PAIRS pairs of short runs whose
    order alternates, so a change in machine load hits both alike; the ratio of each pair (their
    median is the figure: on this shared machine the load drifts within a minute), and the
    server's CPU microseconds per review on each."""
    seconds = 1 if quick else 2
    paths = (c.ECHO_PATH, "/validate")
    runs: dict[str, list] = {path: [] for path in paths}
    cpu = {path: 0.0 for path in runs}
    for i in range(PAIRS):
        for path in paths if i % 2 == 0 else paths[::-1]:
            before = cpu_seconds([server.proc.pid])
            runs[path].append(wrk(server.url, path, bodies, seconds))
            cpu[path] += cpu_seconds([server.proc.pid]) - before
    for r in runs[c.ECHO_PATH] + runs["/validate"]:
        assert r.errors == 0, f"wrk saw {r.errors} errors"
    rps = {path: sum(r.requests for r in d) / sum(r.seconds for r in d) for path, d in runs.items()}
    per_review = {
        "echo" if path == c.ECHO_PATH else "validate": cpu[path] / sum(r.requests for r in d) * 1e6
        for path, d in runs.items()
    }
    ratios = [
        (v.requests / v.seconds) / (e.requests / e.seconds)
        for e, v in zip(runs[c.ECHO_PATH], runs["/validate"], strict=True)
    ]
    return Throughput(rps[c.ECHO_PATH], rps["/validate"], per_review, ratios)


@contextlib.contextmanager
def _server_alone(
    plane: ControlPlane, api: c.Api, *, ref: str | None = None, env: dict[str, str] | None = None
) -> Iterator[c.BenchServer]:
    """Another server on the same cluster, once it sees every node, to measure as the main one
    right after it: commit `ref`'s (a before/after), or this one's with `env`."""
    with (
        c.checkout(ref) as repo,
        c.running_server(plane, api, repo=repo or c.REPO, env=env) as server,
    ):
        c.wait_for_nodes(server, NODES)
        yield server


def _throughput_alone(server: c.BenchServer, bodies: Path, quick: bool, log) -> Throughput:
    """`_throughput` of a `_server_alone`, pinned as the main server's is."""
    with isolated(server.proc.pid, log):
        return _throughput(server, bodies, quick)


def _baseline_figures(t: Throughput, ref: str, log) -> list[Figure]:
    """MG_BENCH_ADMISSION_BASELINE=<git ref>: that commit's server beside this one."""
    log(
        f"  baseline {ref}: echo {t.echo_rps:.0f} req/s, validate {t.validate_rps:.0f} req/s; "
        + t.pairs_text()
    )
    return [
        Figure(
            "admission.baseline.validate.throughput",
            t.validate_rps,
            "req/s",
            better="higher",
            baseline="admission.validate.throughput",
        ),
        Figure(
            "admission.baseline.validate.throughput_ratio",
            statistics.median(t.ratios),
            "x echo",
            better="higher",
            baseline="admission.validate.throughput_ratio",
        ),
        Figure(
            "admission.baseline.validate.cpu_per_review",
            t.cpu["validate"],
            "us",
            baseline="admission.validate.cpu_per_review",
        ),
        Figure(
            "admission.baseline.echo.cpu_per_review",
            t.cpu["echo"],
            "us",
            baseline="admission.echo.cpu_per_review",
        ),
    ]


def _replay_figures(t: Throughput, decisions: dict, beyond_echo: float, log) -> list[Figure]:
    """This server with each review's decision made once and replayed after
    (bench.server.replay_decisions): the ratio validate reaches when its decision costs nothing;
    the decision's live CPU, what validate costs beyond the echo less what the replaying
    server costs beyond its own (a difference of two servers' figures: noisy); and what the
    decisions took on their own thread, measured where they ran (`decisions`: the server's
    DECISIONS_PATH)."""
    replay_beyond = t.cpu["validate"] - t.cpu["echo"]
    own = decisions["threadCpuMedianUs"]
    log(
        f"  decisions replayed: echo {t.echo_rps:.0f} req/s, validate {t.validate_rps:.0f} "
        f"req/s; {t.pairs_text()}; {decisions['decided']} decided, {own:.0f} us each on "
        "their thread"
    )
    return [
        Figure(
            "admission.replay.validate.throughput_ratio",
            statistics.median(t.ratios),
            "x echo",
            better="higher",
            baseline="admission.validate.throughput_ratio",
        ),
        Figure(
            "admission.replay.cpu_beyond_echo",
            replay_beyond,
            "us",
            baseline="admission.validate.cpu_beyond_echo",
        ),
        Figure(
            "admission.decide.live_us",
            beyond_echo - replay_beyond,
            "us",
            baseline="admission.decide.caches_flushed_us",
        ),
        Figure(
            "admission.decide.live_thread_cpu_us",
            own,
            "us",
            baseline="admission.decide.caches_flushed_us",
        ),
    ]


def bench_live(selected: set[str], quick: bool, log) -> list[Figure]:
    """Everything that needs the real control plane, in one run of it."""
    figures: list[Figure] = []
    kubectl_count = 50 if quick else 200
    lookup_runs = 20 if quick else 50
    targeted = _reviews(2000, targeted=True, seed=1)  # what the admission load posts
    bodies = bodies_file(targeted)
    with running_controlplane() as plane:
        api = c.Api(plane)
        took = c.create_nodes(api, 0, 100)
        took += c.create_workload(api, VMIS, NODES)
        log(f"  created 100 nodes and {VMIS} VMIs through the API server in {took:.0f} s")
        manifest = Path(tempfile.mkdtemp(prefix="mg-bench-kubectl-")) / "vmim.yaml"
        vmim = o.wo.vmim(o.NAMESPACE, "unused", "vm-cdrom")
        del vmim["metadata"]["name"]
        vmim["metadata"]["generateName"] = "bench-"
        manifest.write_text(json.dumps(vmim))
        if "kubectl" in selected:
            base = _kubectl_creates(plane, manifest, kubectl_count, denied=False)
            figures += _kubectl_figures("kubectl.create_no_webhook", base, None)
            log(f"  kubectl create without webhook: median {statistics.median(base):.0f} ms")
        with c.running_server(plane, api) as server:
            if "lookup" in selected:
                figures += _http_lookup(server, 100, lookup_runs)
            took = c.create_nodes(api, 100, NODES)
            log(f"  grew to {NODES} nodes in {took:.0f} s")
            c.wait_for_nodes(server, NODES)
            if "lookup" in selected:
                figures += _http_lookup(server, NODES, lookup_runs)
            if "admission" in selected:
                figures += _admission(server, targeted, bodies, quick, log)
            if "memory" in selected:
                figures.append(
                    Figure("memory.server_rss_1000n_10000vmi", server.worker_rss_mb(), "MB")
                )
        if "admission" in selected:  # on the same 1,000 nodes, each server alone
            beyond = next(
                f.value for f in figures if f.name == "admission.validate.cpu_beyond_echo"
            )
            with _server_alone(plane, api, env={REPLAY: "1"}) as server:
                replayed = _throughput_alone(server, bodies, quick, log)
                status, decisions = server.get_json(DECISIONS_PATH)
                assert status == 200, (status, decisions)
            figures += _replay_figures(replayed, decisions, beyond, log)
            baseline = os.environ.get("MG_BENCH_ADMISSION_BASELINE")
            if baseline:
                with _server_alone(plane, api, ref=baseline) as server:
                    t = _throughput_alone(server, bodies, quick, log)
                figures += _baseline_figures(t, baseline, log)
        with c.running_server(plane, api) as server:
            c.wait_for_nodes(server, NODES)
            if "kubectl" in selected:
                denied = _kubectl_creates(plane, manifest, kubectl_count, denied=True)
                figures += _kubectl_figures(
                    "kubectl.create_denied", denied, "kubectl.create_no_webhook"
                )
            if "lookup" in selected:
                took = c.create_nodes(api, NODES, 5000)
                log(f"  grew to 5000 nodes in {took:.0f} s")
                figures += _http_lookup(server, 5000, max(10, lookup_runs // 3))
    return figures
