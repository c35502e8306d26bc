"""The benchmark's cluster: the test harness's real kube-apiserver, filled with parallel requests,
and the benchmark server registered with it as the validating webhook.

Objects are created through the API (no seam in the server): nodes with their status, VMIs then
their status through the status subresource, as KubeVirt writes them. Requests run on a small
thread pool over keep-alive connections, loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import objects as o
from bench.server import ECHO_PATH
from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.processes import stop_process
from tests.harness.registration import local_webhook_configuration

REPO = Path(__file__).resolve().parent.parent
WEBHOOK_CONFIG = "migration-guard-bench"
SERVER_NAMESPACE = "migration-guard"


def vmi_path(namespace: str) -> str:
    return f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances"


class Api:
    """Thread-safe bulk writer: one keep-alive session per thread."""

    def __init__(self, plane: ControlPlane, threads: int = 12, user: str = "admin") -> None:
        self.base = plane.url
        self.headers = {
            "Authorization": f"Bearer {plane.token(user)}",
            "Content-Type": "application/json",
        }
        self.verify = str(plane.ca_file)
        self.threads = threads
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers)
            session.verify = self.verify
        return session

    def request(self, method: str, path: str, body: dict | None = None, ctype: str = "") -> dict:
        headers = {"Content-Type": ctype} if ctype else None
        resp = self._session().request(
            method,
            self.base + path,
            data=json.dumps(body) if body else None,
            headers=headers,
            verify=self.verify,  # explicit: REQUESTS_CA_BUNDLE would win over session.verify
        )
        if resp.status_code == 409 and method == "POST":
            return {}
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def parallel(self, fn, items: Iterable) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            for _ in pool.map(fn, items):
                pass


def _create_node(api: Api, i: int) -> None:
    api.request("POST", "/api/v1/nodes", o.node(i, api_shape=True))
    # kube-apiserver's TaintNodesByCondition admission taints new nodes not-ready; the node
    # lifecycle controller that lifts it once the node is Ready does not run here.
    api.request(
        "PATCH",
        f"/api/v1/nodes/node-{i}",
        {"spec": {"taints": None}},
        "application/merge-patch+json",
    )


def create_nodes(api: Api, start: int, stop: int) -> float:
    """Nodes node-start..node-(stop-1), status included (kubelet registers nodes that way)."""
    began = time.perf_counter()
    api.parallel(lambda i: _create_node(api, i), range(start, stop))
    return time.perf_counter() - began


def _create_vmi(api: Api, vmi: dict) -> None:
    body = {k: v for k, v in vmi.items() if k != "status"}
    path = vmi_path(vmi["metadata"]["namespace"])
    api.request("POST", path, body)
    api.request(
        "PATCH",
        f"{path}/{vmi['metadata']['name']}",  # the VMI CRD has no status subresource
        {"status": vmi["status"]},
        "application/merge-patch+json",
    )


def create_workload(api: Api, vmis: int, nodes: int) -> float:
    """Namespace `bench`, VM vm-0, VMIs vm-0..vm-(vmis-1) Running, and vm-cdrom (a blocker)."""
    began = time.perf_counter()
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.NAMESPACE}}
    api.request("POST", "/api/v1/namespaces", ns)
    api.request("POST", f"/apis/kubevirt.io/v1/namespaces/{o.NAMESPACE}/virtualmachines", o.vm(0))
    cdrom = o.wo.vmi(o.NAMESPACE, "vm-cdrom", "node-1", cdrom=True)
    _create_vmi(api, cdrom)
    api.parallel(lambda i: _create_vmi(api, o.vmi(i, nodes, api_shape=True)), range(vmis))
    return time.perf_counter() - began


@contextlib.contextmanager
def checkout(ref: str | None) -> Iterator[Path | None]:
    """A detached worktree of `ref` (the code a before/after compares with), removed after."""
    if not ref:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="mg-bench-baseline-"))
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(folder), ref], check=True)
    try:
        yield folder
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(folder)], check=False)


@dataclass
class BenchServer:
    proc: subprocess.Popen
    port: int
    ca_file: Path
    log: Path
    token: str
    started: float = 0.0  # time.perf_counter() when the process was started
    ready_seconds: float = 0.0  # from start to the first /readyz 200

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def get_json(self, path: str, auth: bool = False) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def worker_rss_mb(self) -> float:
        """RSS of the gunicorn worker (the process that holds the cache)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        total = 0.0
        for pid in children or [str(self.proc.pid)]:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = max(total, int(line.split()[1]) / 1024)
        return total


@contextlib.contextmanager
def running_server(
    plane: ControlPlane,
    api: Api,
    namespace_labels: dict[str, str] | None = None,
    ready_timeout: float = 180,
    poll: float = 0.5,
    repo: Path = REPO,
    env: dict[str, str] | None = None,
) -> Iterator[BenchServer]:
    """The bench server registered as the VMIM webhook; stopped and unregistered at the end.

    `namespace_labels` limits the webhook to namespaces with those labels (kube-apiserver calls
    it for no other). `ready_seconds` is measured from the process start to the first /readyz
    200, polled every `poll` seconds. `repo`: the checkout whose code runs (another commit's
    worktree, for a before/after in the same run); `env`: more environment for its process."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    api.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SERVER_NAMESPACE}},
    )
    api.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        local_webhook_configuration(WEBHOOK_CONFIG, port, namespace_labels),
    )
    log = workdir / "server.log"
    args = [
        sys.executable, "-m", "bench.server",
        "--bind", f"127.0.0.1:{port}",
        "--kubeconfig", str(plane.kubeconfig),
        "--namespace", SERVER_NAMESPACE,
        "--webhook-config-name", WEBHOOK_CONFIG,
        "--cert-hosts", "127.0.0.1,localhost",
        "--cert-dir", str(workdir / "certs"),
        "--log-level", "warning",
    ]  # fmt: skip
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=repo,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    server = BenchServer(proc, port, workdir / "ca.crt", log, plane.token("admin"), started)
    try:
        _wait_ready(server, api, timeout=ready_timeout, poll=poll)
        server.ready_seconds = time.perf_counter() - started
        yield server
    finally:
        stop_process(proc, timeout=15)
        with contextlib.suppress(RuntimeError):
            api.request(
                "DELETE",
                f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{WEBHOOK_CONFIG}",
            )


def _wait_ready(server: BenchServer, api: Api, timeout: float, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"bench server exited:\n{server.log.read_text()[-3000:]}")
        if not server.ca_file.exists():
            config = api.request(
                "GET",
                f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{WEBHOOK_CONFIG}",
            )
            bundle = config["webhooks"][0]["clientConfig"].get("caBundle")
            if bundle:
                server.ca_file.write_bytes(base64.b64decode(bundle))
        if server.ca_file.exists():
            try:
                status, body = server.get_json("/readyz")
                if status == 200:
                    return
                last = json.dumps(body)[:300]
            except OSError as e:
                last = str(e)
        time.sleep(poll)
    raise RuntimeError(f"bench server not ready in {timeout:.0f}s ({last})")


def wait_for_nodes(server: BenchServer, count: int, timeout: float = 120) -> None:
    """Until the server's target report lists `count` nodes (its cache has caught up)."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        status, report = server.get_json(targets_path("vm-0"), auth=True)
        seen = len(report.get("nodes") or []) if status == 200 else -1
        if seen == count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the server's cache has {seen} nodes, expected {count}")


def targets_path(vm: str) -> str:
    return f"/v1/namespaces/{o.NAMESPACE}/virtualmachines/{vm}/migration-targets"


__all__ = ["ECHO_PATH", "Api", "BenchServer", "create_nodes", "create_workload", "running_server"]
