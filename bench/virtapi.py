"""migration-guard beside KubeVirt's own virt-api, on one control plane, in one run.

virt-api v1.8.2 (built by hack/build-kubevirt.sh) runs off-cluster against the test
kube-apiserver, its webhook configurations registered as virt-operator registers them (by URL and
caBundle: tests/harness/kubevirt.py); migration-guard's webhook (`bench.server`, the real
`migration-guard webhook` stack) runs beside it. Two measurements:

- admission: the same VMIM AdmissionReviews (with a target, `spec.addedNodeSelector:
  {kubernetes.io/hostname: <node>}`, as Harvester sends them) posted to virt-api's
  `/migration-validate-create` (KubeVirt's `components.MigrationCreateValidatePath`; its admitter
  GETs the VMI and LISTs the VMI's migrations from kube-apiserver on every request) and to
  migration-guard's `/validate` (answers from its watch-fed cache). The same clients as the
  admission benchmark (wrk + bench/post.lua for throughput, `bench.load.fixed_rate` at 200 req/s
  for latency), both servers' TLS, the server under test pinned to a core of its own while it is
  measured (bench/cpus.py), the two servers alternated in short rounds so a change in the
  machine's load hits both.
- kubectl: `kubectl create` of an admitted VMIM through kube-apiserver, which calls virt-api's
  VMIM mutator and validator, and, in the namespace migration-guard's webhook selects, also
  migration-guard. The two namespaces hold the same VMIs, and the creates alternate between them
  one by one (one registration, its namespaceSelector deciding whether kube-apiserver calls
  migration-guard), so the added latency is measured against a baseline of the same seconds.

virt-controller is not run: it would mark every VMI without a virt-launcher pod Failed, and
neither webhook needs it. The VMIs are created through the API (Running, on the benchmark's
nodes) before virt-api starts. virt-api's client to kube-apiserver is rate-limited by KubeVirt's
defaults to 200 requests/s (burst 400), so at most ~100 reviews/s (each costs two calls); the
KubeVirt CR raises that limit here, so what is measured is virt-api's work and not its throttle.
"""

from __future__ import annotations

import json
import os
import ssl
import statistics
import time
from pathlib import Path

from bench import cluster as c
from bench import objects as o
from bench.cpus import cpu_seconds, isolated
from bench.inprocess import percentile
from bench.live import VMIS, _kubectl_create
from bench.load import bodies_file, fixed_rate, wrk
from bench.results import Figure
from tests.harness import kubevirt
from tests.harness.controlplane import ControlPlane, running_controlplane

NODES = 1000
RATE = 200.0
VIRT_API_PATH = (
    "/migration-validate-create"  # KubeVirt v1.8.2 components.MigrationCreateValidatePath
)
# migration-guard's webhook is called for namespaces with this label: `bench` has it,
# `bench-off` (the kubectl baseline) does not.
SELECTOR = {"bench.migration-guard.io/webhook": "on"}
OFF_NAMESPACE = "bench-off"
# What the KubeVirt CR sets: Harvester's migration limits (the harness's), and a rate limit on
# virt-api's own client well above what the benchmark asks for.
CONFIGURATION = {
    **kubevirt.DEFAULT_CONFIGURATION,
    "apiConfiguration": {
        "restClient": {"rateLimiter": {"tokenBucketRateLimiter": {"qps": 10000, "burst": 20000}}}
    },
}


class VirtApi:
    """virt-api as tests/harness/kubevirt.py starts it, without virt-controller."""

    def __init__(self, plane: ControlPlane) -> None:
        self.stack = kubevirt.KubeVirtStack(plane, kubevirt.kubevirt_root())
        plane.stack = self.stack  # plane.stop() stops it
        self.plane = plane

    def start(self, configuration: dict) -> VirtApi:
        self.stack.start_kubevirt(configuration, with_controller=False)
        return self

    @property
    def port(self) -> int:
        return self.stack.virt_api_port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.stack.processes["virt-api"]._proc.pid  # type: ignore[union-attr]

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def _post(url: str, path: str, body: bytes, ctx) -> dict:
    import urllib.request

    req = urllib.request.Request(
        url + path, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def _admission(
    server: c.BenchServer, virt_api: VirtApi, plane: ControlPlane, vmis: range, quick: bool, log
) -> list[Figure]:
    reviews = o.review_bodies(2000, vmis, NODES, targeted=True, seed=3, uid="virtapi")
    bodies = bodies_file(reviews)
    virt_ctx = ssl.create_default_context(cafile=str(plane.ca_file))
    sides = {
        # name: (url, path, pid, TLS context trusting its certificate)
        "virt_api": (virt_api.url, VIRT_API_PATH, virt_api.pid, virt_ctx),
        "validate": (server.url, "/validate", server.proc.pid, server.ssl_context()),
    }
    for name, (url, path, _, ctx) in sides.items():
        for body in reviews[:20]:  # both admit them: the load measures the allowing path
            answer = _post(url, path, body, ctx)["response"]
            assert answer["allowed"] is True, (name, answer)

    quiet = lambda *_: None  # noqa: E731
    # Throughput: wrk, the two servers alternating, each pinned to its own core while measured.
    seconds = 3 if quick else 5
    runs: dict[str, list] = {name: [] for name in sides}
    # CPU seconds used during the wrk runs by the server, kube-apiserver and etcd
    etcd, apiserver = (p.pid for p in plane.processes)
    cpu: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in sides}
    for _ in range(2):
        for name, (url, path, pid, _) in sides.items():
            with isolated(pid, quiet):
                before = [cpu_seconds([p]) for p in (pid, apiserver, etcd)]
                result = wrk(url, path, bodies, seconds)
                after = [cpu_seconds([p]) for p in (pid, apiserver, etcd)]
            assert result.errors == 0, f"wrk saw {result.errors} errors against {name}"
            runs[name].append(result)
            cpu[name] = [t + a - b for t, a, b in zip(cpu[name], after, before, strict=True)]
    requests = {n: sum(r.requests for r in rs) for n, rs in runs.items()}
    rps = {n: requests[n] / sum(r.seconds for r in rs) for n, rs in runs.items()}
    # milliseconds of CPU per review: (server, kube-apiserver, etcd)
    per = {n: [1e3 * t / requests[n] for t in cpu[n]] for n in sides}
    for name, who in (("virt_api", "virt-api"), ("validate", "migration-guard")):
        log(
            f"  wrk: {who} {rps[name]:.0f} req/s; CPU per review: server {per[name][0]:.2f} ms, "
            f"kube-apiserver {per[name][1]:.2f} ms, etcd {per[name][2]:.2f} ms"
        )

    # Latency at a constant 200 req/s: rounds of a few seconds, alternating.
    rounds, round_seconds = (2, 3) if quick else (4, 3)
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (url, path, pid, ctx) in sides.items():
            port = int(url.rsplit(":", 1)[1])
            with isolated(pid, quiet):
                lat, failed = fixed_rate("127.0.0.1", port, ctx, path, reviews, RATE, round_seconds)
            assert failed == 0, f"{failed} requests to {name} failed"
            latencies[name] += lat
    p50 = {n: statistics.median(v) for n, v in latencies.items()}
    p99 = {n: percentile(v, 99) for n, v in latencies.items()}
    log(
        f"  at 200 req/s: virt-api p50 {p50['virt_api']:.2f} p99 {p99['virt_api']:.2f} ms, "
        f"migration-guard p50 {p50['validate']:.2f} p99 {p99['validate']:.2f} ms"
    )
    pre = "virtapi.admission"
    return [
        Figure(f"{pre}.virt_api.throughput", rps["virt_api"], "req/s", better="higher"),
        Figure(
            f"{pre}.validate.throughput",
            rps["validate"],
            "req/s",
            better="higher",
            baseline=f"{pre}.virt_api.throughput",
        ),
        Figure(
            f"{pre}.throughput_ratio",
            rps["validate"] / rps["virt_api"],
            "x virt-api",
            better="higher",
        ),
        Figure(f"{pre}.virt_api.cpu_per_review", per["virt_api"][0], "ms CPU"),
        Figure(f"{pre}.virt_api.apiserver_cpu_per_review", per["virt_api"][1], "ms CPU"),
        Figure(f"{pre}.virt_api.etcd_cpu_per_review", per["virt_api"][2], "ms CPU"),
        Figure(
            f"{pre}.validate.cpu_per_review",
            per["validate"][0],
            "ms CPU",
            baseline=f"{pre}.virt_api.cpu_per_review",
        ),
        Figure(
            f"{pre}.validate.apiserver_cpu_per_review",
            per["validate"][1],
            "ms CPU",
            baseline=f"{pre}.virt_api.apiserver_cpu_per_review",
        ),
        Figure(f"{pre}.virt_api.p50_at_200rps", p50["virt_api"], "ms"),
        Figure(f"{pre}.virt_api.p99_at_200rps", p99["virt_api"], "ms"),
        Figure(
            f"{pre}.validate.p50_at_200rps",
            p50["validate"],
            "ms",
            baseline=f"{pre}.virt_api.p50_at_200rps",
        ),
        Figure(
            f"{pre}.validate.p99_at_200rps",
            p99["validate"],
            "ms",
            baseline=f"{pre}.virt_api.p99_at_200rps",
        ),
        Figure(f"{pre}.p99_ratio", p99["validate"] / p99["virt_api"], "x virt-api", budget=1.0),
        Figure(f"{pre}.p50_ratio", p50["validate"] / p50["virt_api"], "x virt-api"),
    ]


def _kubectl_manifest(namespace: str, vmi: int) -> str:
    vmim = o.wo.vmim(namespace, "unused", f"vm-{vmi}", f"node-{(vmi + 1) % NODES}")
    del vmim["metadata"]["name"]
    vmim["metadata"]["generateName"] = "bench-"
    return json.dumps(vmim)


def _kubectl(plane: ControlPlane, vmis: range, log) -> list[Figure]:
    """Admitted creates, alternating: in `bench-off` (virt-api's webhooks only) and in `bench`
    (virt-api's and migration-guard's); each create is for a VMI without a migration."""
    times: dict[str, list[float]] = {"virt_api": [], "with_mg": []}
    for vmi in vmis:
        for side, ns in (("virt_api", OFF_NAMESPACE), ("with_mg", o.NAMESPACE)):
            times[side].append(_kubectl_create(plane, _kubectl_manifest(ns, vmi), denied=False))
    base, mg = times["virt_api"], times["with_mg"]
    added_median = statistics.median(mg) - statistics.median(base)
    added_p99 = percentile(mg, 99) - percentile(base, 99)
    log(
        f"  kubectl create: virt-api only median {statistics.median(base):.0f} ms, with "
        f"migration-guard {statistics.median(mg):.0f} ms ({added_median:+.1f} ms)"
    )
    pre = "virtapi.kubectl"
    return [
        Figure(f"{pre}.virt_api.median", statistics.median(base), "ms"),
        Figure(f"{pre}.virt_api.p99", percentile(base, 99), "ms"),
        Figure(
            f"{pre}.with_mg.median",
            statistics.median(mg),
            "ms",
            baseline=f"{pre}.virt_api.median",
        ),
        Figure(f"{pre}.with_mg.p99", percentile(mg, 99), "ms", baseline=f"{pre}.virt_api.p99"),
        Figure(f"{pre}.added_median", added_median, "ms"),
        Figure(f"{pre}.added_p99", added_p99, "ms"),
        Figure(
            f"{pre}.added_median_pct",
            100 * added_median / statistics.median(base),
            "% of median",
            budget=10.0,
        ),
    ]


def _create_kubectl_vmis(api: c.Api, vmis: range) -> None:
    """The kubectl creates' VMIs in the baseline namespace (`bench` has them already)."""
    api.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OFF_NAMESPACE}},
    )

    def create(i: int) -> None:
        vmi = o.vmi(i, NODES, api_shape=True)
        vmi["metadata"]["namespace"] = OFF_NAMESPACE
        c._create_vmi(api, vmi)

    api.parallel(create, vmis)


def bench_virtapi(quick: bool, log) -> list[Figure]:
    """virt-api beside migration-guard: admission (throughput, latency at 200 req/s), kubectl."""
    vmis = int(os.environ.get("MG_BENCH_VIRTAPI_VMIS", str(VMIS)))
    kubectl_count = 50 if quick else 200
    kubectl_vmis = range(vmis - kubectl_count, vmis)  # never in the admission reviews
    figures: list[Figure] = []
    with running_controlplane() as plane:
        api = c.Api(plane)
        started = time.perf_counter()
        c.create_nodes(api, 0, NODES)
        c.create_workload(api, vmis, NODES)
        _create_kubectl_vmis(api, kubectl_vmis)
        api.request(
            "PATCH",
            f"/api/v1/namespaces/{o.NAMESPACE}",
            {"metadata": {"labels": SELECTOR}},
            "application/merge-patch+json",
        )
        log(
            f"  created {NODES} nodes and {vmis + kubectl_count} VMIs in "
            f"{time.perf_counter() - started:.0f} s"
        )
        virt_api = VirtApi(plane).start(CONFIGURATION)
        with c.running_server(plane, api, namespace_labels=SELECTOR) as server:
            c.wait_for_nodes(server, NODES)
            figures += _admission(server, virt_api, plane, range(vmis - kubectl_count), quick, log)
            figures += _kubectl(plane, kubectl_vmis, log)
            figures += [
                Figure("virtapi.memory.virt_api_rss", virt_api.rss_mb(), "MB"),
                Figure(
                    "virtapi.memory.mg_rss",
                    server.worker_rss_mb(),
                    "MB",
                    baseline="virtapi.memory.virt_api_rss",
                ),
            ]
    return figures
