"""Start-up at scale: from process start to ready (first full sync, /readyz 200) with 5,000 nodes,
20,000 VMIs and 100,000 pods served by the real kube-apiserver.

The objects are made first, in bulk: one object of each shape (a node, a VMI, a launcher pod, a
workload pod) is created through the API and read back, and the others are written straight
into etcd the way kube-apiserver stores them (JSON: `--storage-media-type=application/json`),
with the defaults the server added to their template, a uid and a creation time. kube-apiserver
sees them through its etcd watch and serves them like any other (creating 125,000 objects
through the API takes 10 minutes here: about 250 pods and 130 VMIs a second; through etcd's txn
gateway, 128 per transaction, about a minute). Nodes carry their status and no taint
(TaintNodesByCondition is off: no node lifecycle controller runs here to lift its not-ready
taint); VMIs are Running with their status; pods are bound to their nodes and Pending, as
kube-apiserver stores a new pod (pending pods count on their node as running ones do). How long
that takes is a figure; it is bounded by `CREATE_TIMEOUT_S`.

Then `migration-guard webhook` (the benchmark's server, the real stack) is started `RUNS` times,
each time from a new process, and timed from `Popen` to the first /readyz 200 (polled every
250 ms: each poll is a new TLS connection the server answers while it lists); the gunicorn
worker's RSS, and the CPU time the server, kube-apiserver and etcd used, are read at that
moment. Before the first start, `fetch_pages` and `fill_steps` list the same objects in process,
one kind after another, the way the informers do, and time each step of the informer's list
path on its own (fetching the pages, decoding them, slimming, storing with the indexes, the GC
freeze): where start-up goes. With MG_BENCH_STARTUP_PAGES=<folder> the pages are saved there,
for `python -m bench.profile fill --pages <folder>` (a profile of the same fill).
"""

from __future__ import annotations

import base64
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench import cluster as c
from bench import objects as o
from bench.cpus import cpu_seconds
from bench.results import Figure
from tests.harness.controlplane import ControlPlane, running_controlplane

SIZES = {"nodes": 5000, "vmis": 20_000, "pods": 100_000}
QUICK_SIZES = {"nodes": 1000, "vmis": 4000, "pods": 20_000}
RUNS = int(os.environ.get("MG_BENCH_STARTUP_RUNS", "2"))
CREATE_TIMEOUT_S = 900.0
# objects written straight to etcd are stored as JSON, as CRs always are; and a new node keeps
# the taints it was created with (no node lifecycle controller runs to lift the not-ready one)
APISERVER_ARGS = (
    "--storage-media-type=application/json",
    "--disable-admission-plugins=TaintNodesByCondition",
)


class Etcd:
    """Puts objects straight into the control plane's etcd (its v3 JSON gateway), 128 per txn."""

    def __init__(self, plane: ControlPlane, threads: int = 4) -> None:
        flag = "--listen-client-urls="
        url = next(a for a in plane.processes[0].args if a.startswith(flag))[len(flag) :]
        self.url = url.split(",")[0].rstrip("/")
        self.threads = threads

    def put_all(self, items: Iterable[tuple[str, bytes]], max_ops: int = 128) -> None:
        """Put every (key, value): transactions of at most `max_ops` puts and ~1 MB (etcd's
        request limit is 1.5 MiB), a few in flight at once, made as they are sent."""
        local = threading.local()

        def put(chunk: list[tuple[str, bytes]]) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            ops = [
                {"requestPut": {"key": _b64(key.encode()), "value": _b64(value)}}
                for key, value in chunk
            ]
            resp = session.post(f"{self.url}/v3/kv/txn", json={"success": ops}, timeout=60)
            if resp.status_code != 200:
                raise RuntimeError(f"etcd txn: {resp.status_code} {resp.text[:300]}")

        def chunks() -> Iterator[list[tuple[str, bytes]]]:
            chunk: list[tuple[str, bytes]] = []
            size = 0
            for key, value in items:
                if chunk and (len(chunk) == max_ops or size + len(value) > 700_000):
                    yield chunk
                    chunk, size = [], 0
                chunk.append((key, value))
                size += len(value)
            if chunk:
                yield chunk

        with ThreadPoolExecutor(self.threads) as pool:
            pending: list[Future] = []
            for chunk in chunks():
                pending.append(pool.submit(put, chunk))
                if len(pending) >= 2 * self.threads:
                    pending.pop(0).result()
            for future in pending:
                future.result()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _with_defaults(generated: Any, served: Any) -> Any:
    """`generated` with what kube-apiserver added to the same object when it was created through
    the API (`served`): its defaults, the containers' and the pod's."""
    if isinstance(generated, dict) and isinstance(served, dict):
        out = dict(generated)
        for k, v in served.items():
            out[k] = _with_defaults(generated[k], v) if k in generated else v
        return out
    if isinstance(generated, list) and isinstance(served, list) and len(generated) == len(served):
        return [_with_defaults(g, v) for g, v in zip(generated, served, strict=True)]
    return generated


class Kind:
    """One kind to fill: how to make object i, where the API keeps it, and the etcd key."""

    def __init__(self, name: str, path: str, key: str, make: Callable[[int], dict]) -> None:
        self.name, self.path, self.key, self.make = name, path, key, make
        self.template: dict = {}

    def learn(self, api: c.Api, i: int) -> None:
        """Create object i through the API and remember what the server added (its defaults)."""
        obj = self.make(i)
        api.request("POST", self.path, obj)
        served = api.request("GET", f"{self.path}/{obj['metadata']['name']}")
        served["metadata"] = {}  # our own metadata (name, labels, managedFields) is kept
        self.template = served

    def stored(self, i: int, now: str) -> tuple[str, bytes]:
        obj = _with_defaults(self.make(i), self.template)
        if "status" in self.template and self.name == "pods":
            obj["status"] = self.template["status"]  # a new pod is Pending, whatever was sent
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)  # etcd's revision is the resourceVersion
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if self.name == "vmis":
            meta["generation"] = 1
        name = meta["name"]
        key = (
            f"{self.key}/{meta['namespace']}/{name}"
            if "namespace" in meta
            else f"{self.key}/{name}"
        )
        return key, json.dumps(obj, separators=(",", ":")).encode()


def fill(plane: ControlPlane, sizes: dict[str, int], log) -> dict[str, float]:
    """Create the objects: one of each kind through the API, the rest written to etcd as
    kube-apiserver would store them (it stores JSON here: APISERVER_ARGS). Seconds per kind."""
    api = c.Api(plane)
    etcd = Etcd(plane)
    nodes, vmis, pods = sizes["nodes"], sizes["vmis"], sizes["pods"]
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": o.NAMESPACE}})
    api.request("POST", f"/apis/kubevirt.io/v1/namespaces/{o.NAMESPACE}/virtualmachines", o.vm(0))
    ns_pods = f"/api/v1/namespaces/{o.NAMESPACE}/pods"
    kinds = [
        Kind("nodes", "/api/v1/nodes", "/registry/minions", lambda i: o.node(i, api_shape=True)),
        Kind(
            "vmis",
            c.vmi_path(o.NAMESPACE),
            "/registry/kubevirt.io/virtualmachineinstances",
            lambda i: o.vmi(i, nodes, api_shape=True),
        ),
        Kind("pods", ns_pods, "/registry/pods", lambda i: o.pod(i, nodes, vmis)),
    ]
    counts = {"nodes": nodes, "vmis": vmis, "pods": pods}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    took: dict[str, float] = {}
    for kind in kinds:
        began = time.perf_counter()
        kind.learn(api, 0)
        app_pod = None
        if kind.name == "pods" and pods > vmis:  # a workload pod is shaped otherwise
            app_pod = Kind(kind.name, kind.path, kind.key, kind.make)
            app_pod.learn(api, vmis)
        count = counts[kind.name]

        def stored(i: int, kind: Kind = kind, app_pod: Kind | None = app_pod) -> tuple[str, bytes]:
            return (app_pod if app_pod is not None and i >= vmis else kind).stored(i, now)

        skip = {0, vmis} if kind.name == "pods" else {0}
        etcd.put_all(stored(i) for i in range(count) if i not in skip)
        took[kind.name] = time.perf_counter() - began
        log(f"  created {count} {kind.name} in {took[kind.name]:.1f} s")
        if time.monotonic() > deadline:
            raise RuntimeError(f"creating the objects took over {CREATE_TIMEOUT_S:.0f} s")
    return took


def _wait_served(plane: ControlPlane, sizes: dict[str, int], timeout: float = 120) -> float:
    """Until kube-apiserver serves every object (its watch of etcd has caught up); seconds."""
    api = c.Api(plane)
    began = time.perf_counter()
    for kind, path in (
        ("nodes", "/api/v1/nodes"),
        ("vmis", c.vmi_path(o.NAMESPACE)),
        ("pods", f"/api/v1/namespaces/{o.NAMESPACE}/pods"),
    ):
        served = -1
        while served < sizes[kind]:
            page = api.request("GET", f"{path}?limit=1")
            served = len(page["items"]) + int(page["metadata"].get("remainingItemCount") or 0)
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"{kind}: {served} served, {sizes[kind]} created")
            time.sleep(0.2)
    return time.perf_counter() - began


# --------------------------------------------------------------------------- the profile
_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def _continue_token(page: bytes) -> str | None:
    """The list's continue token, read without decoding the page: its metadata comes first
    (built-in kinds) or last (custom resources, whose keys are sorted)."""
    match = _CONTINUE.search(page, 0, 4096) or _CONTINUE.search(page, max(0, len(page) - 4096))
    return match.group(1).decode() if match and match.group(1) else None


def fetch_pages(plane: ControlPlane) -> dict[str, list[bytes]]:
    """Every kind the webhook lists, as the raw pages its informers get (same page size and
    selectors); {} for an optional kind the API server does not serve."""
    from webhook.cluster.informer import Informer
    from webhook.cluster.resources import RESOURCES
    from webhook.cluster.state import ClusterState

    api = plane.api_client()
    out: dict[str, list[bytes]] = {}
    for resource in RESOURCES.values():
        informer = Informer(
            ClusterState(),
            resource.kind,
            resource.list_fn(api),
            field_selector=resource.field_selector,
            optional=resource.optional,
        )
        pages: list[bytes] = []
        token = None
        try:
            while True:
                kwargs = {"limit": informer.page_size, "_request_timeout": 60}
                if token:
                    kwargs["_continue"] = token
                data = _list_page(informer, kwargs)
                pages.append(data)
                token = _continue_token(data)
                if not token:
                    break
        except Exception:  # an optional kind the API server does not serve
            if not resource.optional:
                raise
        out[resource.kind] = pages
    return out


def _list_page(informer: Any, kwargs: dict, attempts: int = 30) -> bytes:
    """One list page; a 504 (kube-apiserver's watch cache still behind etcd after the bulk
    fill: "Too large resource version") is asked again a second later, as its Retry-After says."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(attempts - 1):
        try:
            return informer._call(**kwargs).data
        except ApiException as e:
            if e.status != 504:
                raise
            time.sleep(1)
    return informer._call(**kwargs).data


def save_pages(pages: dict[str, list[bytes]], folder: Path) -> None:
    """One file per page, `<kind>-<n>.json`, for `python -m bench.profile fill --pages`."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, kind_pages in pages.items():
        for n, page in enumerate(kind_pages):
            (folder / f"{kind}-{n:05d}.json").write_bytes(page)


def load_pages(folder: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for path in sorted(folder.glob("*-*.json")):
        out.setdefault(path.stem.rsplit("-", 1)[0], []).append(path.read_bytes())
    return out


def fill_steps(pages: dict[str, list[bytes]], decode: Callable[[str, bytes], Any] | None = None):
    """Fill a ClusterState from the pages as the informers' list path does, one kind after
    another, timing each step on its own (CPU time of this process: the steps run in this
    thread alone, and CPU time holds better than wall time on a shared machine): decoding (as the informer decodes, unless `decode`
    is given: `lambda kind, page: json.loads(page)`), slimming, storing (facts and indexes: the
    state's replace_all), freezing (gc.collect + gc.freeze). (seconds per step, the state)."""
    from webhook.cluster.resources import RESOURCES
    from webhook.cluster.state import ClusterState, slim

    if decode is None:
        from webhook.cluster.decode import decode_page as decode
    state = ClusterState()
    steps = {"decode": 0.0, "slim": 0.0, "store": 0.0, "freeze": 0.0}
    for kind, kind_pages in pages.items():
        api_version = RESOURCES[kind].api_version
        began = time.process_time()
        bodies = [decode(kind, p) for p in kind_pages]
        steps["decode"] += time.process_time() - began
        began = time.process_time()
        items = []
        for body in bodies:
            for item in body.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                items.append(slim(item))
            body.clear()
        del bodies
        steps["slim"] += time.process_time() - began
        began = time.process_time()
        state.replace_all(kind, items)
        del items
        steps["store"] += time.process_time() - began
        began = time.process_time()
        gc.collect()
        gc.freeze()
        steps["freeze"] += time.process_time() - began
    gc.unfreeze()
    return steps, state


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


_BASELINE_FILL = """
import json, sys
sys.path.insert(0, ".")
import webhook.cluster.state  # the baseline's code, imported before this checkout's bench
sys.path.insert(0, sys.argv[2])  # this checkout: bench (webhook stays the baseline's)
from bench.startup import fill_steps, load_pages
try:
    import webhook.cluster.decode  # noqa: F401
    decode = None
except ImportError:  # before webhook/cluster/decode.py: the informer's json.loads
    decode = lambda kind, page: json.loads(page)
steps, _ = fill_steps(load_pages(__import__("pathlib").Path(sys.argv[1])), decode)
print(json.dumps(steps))
"""


def _baseline_steps(baseline: Path, folder: Path) -> dict[str, float]:
    """`fill_steps` of the saved pages with the baseline checkout's webhook code (a process of
    its own, in that checkout); {} when it cannot run."""
    out = subprocess.run(
        [sys.executable, "-c", _BASELINE_FILL, str(folder), str(c.REPO)],
        cwd=baseline,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_startup(quick: bool, log) -> list[Figure]:
    """Ready time and RSS of the real server at scale; with MG_BENCH_STARTUP_BASELINE=<git ref>
    that commit's server is started too, alternating with this one, on the same objects."""
    sizes = QUICK_SIZES if quick else SIZES
    scale = float(os.environ.get("MG_BENCH_STARTUP_SCALE", "1"))  # smaller only to debug
    sizes = {k: max(1, int(v * scale)) for k, v in sizes.items()}
    tag = f"{sizes['nodes']}n_{sizes['vmis']}vmi_{sizes['pods']}pods"
    figures: list[Figure] = []
    baseline_ref = os.environ.get("MG_BENCH_STARTUP_BASELINE")
    with (
        c.checkout(baseline_ref) as baseline,
        running_controlplane(apiserver_args=APISERVER_ARGS) as plane,
    ):
        took = fill(plane, sizes, log)
        took["served"] = _wait_served(plane, sizes)
        figures += [Figure(f"startup.create.{k}_seconds", v, "s") for k, v in took.items()]
        api = c.Api(plane)
        sides = {"current": c.REPO, **({"baseline": baseline} if baseline else {})}
        ready: dict[str, list[float]] = {side: [] for side in sides}
        rss: dict[str, list[float]] = {side: [] for side in sides}
        # CPU seconds from start to ready: the server's processes, etcd, kube-apiserver
        cpu: dict[str, list[list[float]]] = {side: [] for side in sides}
        plane_pids = [p.pid for p in plane.processes]
        # The in-process steps first: their fetch is the API server's first full list of
        # everything, which costs it more than the lists after it (a server started first
        # would pay for it otherwise).
        began = time.perf_counter()
        pages = fetch_pages(plane)
        fetch = time.perf_counter() - began
        folder = os.environ.get("MG_BENCH_STARTUP_PAGES")
        if folder or baseline:
            folder = folder or tempfile.mkdtemp(prefix="mg-bench-pages-")
            save_pages(pages, Path(folder))
        steps, state = fill_steps(pages)
        steps = {"fetch": fetch, **steps}
        del pages, state
        gc.collect()
        log(
            "  in-process fill, one kind after another: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
        )
        base_steps = _baseline_steps(baseline, Path(folder)) if baseline and folder else {}
        if base_steps:
            log(
                "  the same with the baseline's code: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in base_steps.items())
            )
        if folder and not os.environ.get("MG_BENCH_STARTUP_PAGES"):
            shutil.rmtree(folder, ignore_errors=True)
        for run in range(RUNS):
            # each side first in turn: the first start after the fill meets a busier API server
            order = list(sides.items())
            for side, repo in order if run % 2 == 0 else order[::-1]:
                before = [cpu_seconds([p]) for p in plane_pids]
                with c.running_server(
                    plane, api, ready_timeout=600, poll=0.25, repo=repo
                ) as server:
                    ready[side].append(server.ready_seconds)
                    rss[side].append(server.worker_rss_mb())
                    used = [cpu_seconds([server.proc.pid])] + [
                        cpu_seconds([p]) - b for p, b in zip(plane_pids, before, strict=True)
                    ]
                cpu[side].append(used)
                log(
                    f"  run {run + 1} ({side}): ready in {ready[side][-1]:.1f} s, "
                    f"worker RSS {rss[side][-1]:.0f} MB; CPU until ready: server "
                    f"{used[0]:.1f} s, kube-apiserver {used[2]:.1f} s, etcd {used[1]:.1f} s"
                )
    figures += [
        Figure(f"startup.ready_seconds_{tag}", _median(ready["current"]), "s", budget=15.0),
        Figure(f"startup.ready_seconds_{tag}.max", max(ready["current"]), "s"),
        Figure(f"startup.rss_at_ready_{tag}", _median(rss["current"]), "MB", budget=400.0),
    ]
    for i, who in enumerate(("server", "etcd", "apiserver")):
        figures.append(
            Figure(
                f"startup.cpu_until_ready.{who}_seconds",
                _median(run[i] for run in cpu["current"]),
                "s CPU",
                baseline=f"startup.ready_seconds_{tag}",
            )
        )
    if baseline:
        figures.append(
            Figure(
                "startup.baseline.cpu_until_ready.server_seconds",
                _median(run[0] for run in cpu["baseline"]),
                "s CPU",
                baseline="startup.cpu_until_ready.server_seconds",
            )
        )
        figures += [
            Figure(
                f"startup.baseline.ready_seconds_{tag}",
                _median(ready["baseline"]),
                "s",
                baseline=f"startup.ready_seconds_{tag}",
            ),
            Figure(
                f"startup.baseline.rss_at_ready_{tag}",
                _median(rss["baseline"]),
                "MB",
                baseline=f"startup.rss_at_ready_{tag}",
            ),
        ]
    total = sum(steps.values())
    figures += [
        Figure(
            f"startup.fill_inprocess.{k}_seconds",
            v,
            "s CPU" if k != "fetch" else "s",
            baseline="startup.fill_inprocess.total_seconds",
        )
        for k, v in steps.items()
    ]
    figures.append(Figure("startup.fill_inprocess.total_seconds", total, "s"))  # fetch: wall
    figures += [
        Figure(
            f"startup.baseline.fill_inprocess.{k}_seconds",
            v,
            "s CPU",
            baseline=f"startup.fill_inprocess.{k}_seconds",
        )
        for k, v in base_steps.items()
    ]
    return figures
