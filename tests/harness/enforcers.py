"""Helpers for the enforcer's integration tests: enforcer subprocesses, polling, reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client import ApiClient

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.metrics import sample
from webhook.cluster.kubeapi import Kube, kubevirt_path

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "migration-guard"

# Timeouts scaled down through settings only: 5 s per GiB, 4 s without progress, 0.5 s checks.
FAST = [
    "--completion-timeout-per-gib",
    "5",
    "--progress-timeout",
    "4",
    "--check-interval",
    "0.5s",
    "--lease-duration",
    "3",
]


@dataclass
class EnforcerProcess:
    identity: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def readyz(self) -> dict:
        return json.loads(self.get("/readyz")[1])

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the enforcer's /metrics, by name and labels."""
        return sample(self.get("/metrics")[1], name, **labels)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Enforcers:
    """Starts `migration-guard enforcer` subprocesses; `stop_all` kills every one of them."""

    def __init__(self, controlplane: ControlPlane, workdir: Path) -> None:
        self.controlplane = controlplane
        self.workdir = workdir
        self.started: list[EnforcerProcess] = []

    def start(self, identity: str, namespace: str, *extra: str) -> EnforcerProcess:
        port = free_port()
        log_path = self.workdir / f"enforcer-{identity}.log"
        args = [
            str(CLI),
            "enforcer",
            "--kubeconfig",
            str(self.controlplane.kubeconfig),
            "--identity",
            identity,
            "--watch-namespace",
            namespace,
            "--lease-namespace",
            namespace,
            "--bind",
            f"127.0.0.1:{port}",
            *FAST,
            *extra,
        ]
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        enforcer = EnforcerProcess(identity, process, port, log_path)
        self.started.append(enforcer)
        return enforcer

    def wait_ready(self, enforcer: EnforcerProcess, timeout: float = 30.0) -> dict:
        def ready() -> dict | None:
            assert enforcer.process.poll() is None, f"enforcer exited:\n{enforcer.log()}"
            try:
                status = enforcer.readyz()
            except (OSError, ValueError):
                return None
            return status if status.get("ready") else None

        return wait_for(ready, timeout, f"enforcer {enforcer.identity} ready")

    def stop_all(self) -> None:
        for enforcer in self.started:
            enforcer.kill(signal.SIGTERM)


def wait_for(fn: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Poll `fn` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def get_or_none(api: ApiClient, path: str) -> dict | None:
    return Kube(api).get_or_none(path)


def vmim_path(namespace: str, name: str) -> str:
    return kubevirt_path(namespace, "virtualmachineinstancemigrations", name)


def vmi_path(namespace: str, name: str) -> str:
    return kubevirt_path(namespace, "virtualmachineinstances", name)


def vm_path(namespace: str, name: str) -> str:
    return kubevirt_path(namespace, "virtualmachines", name)


def events_for(controlplane: ControlPlane, namespace: str, name: str) -> list[dict]:
    """Events about object `name` in `namespace`, read with kubectl."""
    result = controlplane.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["items"]


def lease_holder(api: ApiClient, namespace: str, name: str = "migration-guard-enforcer") -> dict:
    lease = get_or_none(api, f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    return (lease or {}).get("spec") or {}
