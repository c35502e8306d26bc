"""A real Prometheus server for tests: Debian's `prometheus` binary scraping given targets.

`hack/install-debian-tool.sh prometheus` installs it (apt). The server listens on 127.0.0.1 only, keeps its TSDB in
a temp dir, and scrapes fast (the tests scale timeouts down to seconds).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness.controlplane import free_port, set_parent_death_signal
from tests.harness.processes import stop_process

READY_TIMEOUT_S = 30.0


class PrometheusError(RuntimeError):
    """Prometheus is missing or did not start; the message says which and where the log is."""


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise PrometheusError(
            "no `prometheus` binary: run `bash hack/install-debian-tool.sh prometheus` (root)"
        )
    return found


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    workdir: Path

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector."""
        qs = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
            return json.loads(resp.read())["data"]["result"]

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(targets: list[str], scrape_interval: str = "500ms") -> Prometheus:
    """Start Prometheus scraping `targets` (URLs like http://127.0.0.1:PORT/metrics)."""
    binary = prometheus_binary()
    workdir = Path(tempfile.mkdtemp(prefix="mg-prometheus-"))
    static = []
    for target in targets:
        parsed = urllib.parse.urlparse(target)
        static.append((parsed.netloc, parsed.path or "/metrics"))
    jobs = [
        {
            "job_name": f"virt-handler-{i}",
            "metrics_path": path,
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "static_configs": [{"targets": [netloc]}],
        }
        for i, (netloc, path) in enumerate(static)
    ]
    config = {"global": {"scrape_interval": scrape_interval}, "scrape_configs": jobs}
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=set_parent_death_signal,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, workdir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            prom.stop()
            raise PrometheusError(f"prometheus exited with {process.returncode}:\n{text}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1) as resp,
        ):
            if resp.status == 200:
                return prom
        time.sleep(0.1)
    prom.stop()
    raise PrometheusError(f"prometheus not ready after {READY_TIMEOUT_S} s")


@contextlib.contextmanager
def running_prometheus(targets: list[str], scrape_interval: str = "500ms") -> Iterator[Prometheus]:
    prom = start_prometheus(targets, scrape_interval)
    try:
        yield prom
    finally:
        prom.stop()
