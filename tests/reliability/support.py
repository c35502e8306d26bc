"""Helpers of the reliability tests: an API server that can be stopped and started again, TLS
calls to a running server, and the figures the README's Reliability section reports.

The restartable control plane is the harness's own (`start_controlplane`) in a workdir of the test;
only its kube-apiserver process is killed and started again, with the same arguments, port and
etcd, so every object written before the outage is still there after it.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from tests.harness import controlplane as harness
from tests.harness.controlplane import ControlPlane


class Figures:
    """Thread-safe counters (inputs tried, requests served, faults injected, decisions wrong/lost)
    and measurements (the retry storm's rates and latencies, as text with their units)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.measured: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def measure(self, key: str, value: str) -> None:
        with self._lock:
            self.measured[key] = value

    def as_dict(self) -> dict[str, int | str]:
        with self._lock:
            return {**dict(sorted(self.counts.items())), **dict(sorted(self.measured.items()))}


FIGURES = Figures()


def apiserver(plane: ControlPlane) -> subprocess.Popen:
    """The kube-apiserver process of `plane` (the harness starts etcd first, then the API server)."""
    process = plane.processes[-1]
    assert "kube-apiserver" in str(process.args[0]), process.args
    return process


def stop_apiserver(plane: ControlPlane) -> None:
    """Kill kube-apiserver at once (as a crashed or partitioned API server); etcd keeps running."""
    process = apiserver(plane)
    process.kill()
    process.wait(timeout=10)


def start_apiserver(plane: ControlPlane, timeout: float = 60.0) -> None:
    """Start kube-apiserver again with its old arguments (same port, same etcd) and wait for it."""
    old = apiserver(plane)
    assert old.poll() is not None, "kube-apiserver is still running"
    log = plane.workdir / f"kube-apiserver-restart-{len(plane.processes)}.log"
    plane.processes[-1] = harness._spawn(list(old.args), log, die_with_parent=True)
    harness._wait_ready(plane, timeout)


def tls_context(ca_file: Path | str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def https(
    url: str,
    ca_file: Path | str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTPS request on a new connection; (status, body) also for 4xx/5xx answers."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=tls_context(ca_file), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_json(
    url: str, ca_file: Path | str, doc: object, timeout: float = 10.0
) -> tuple[int, dict]:
    status, raw = https(
        url,
        ca_file,
        "POST",
        json.dumps(doc).encode(),
        {"Content-Type": "application/json"},
        timeout,
    )
    return status, json.loads(raw)
