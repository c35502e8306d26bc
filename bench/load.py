"""Load on the benchmark server: wrk for throughput, a fixed-rate client for latency.

wrk (Debian's package) drives the server as hard as it can over keep-alive TLS connections and
reports throughput. wrk has no constant-rate mode (that is wrk2), so latency at 200 requests/s
comes from `fixed_rate`: requests are scheduled every 1/rate s, a few worker threads with one
keep-alive TLS connection each send them, and each latency is counted from the request's
scheduled time (so a slow answer delays the count of those queued behind it, no coordinated
omission). The client is Python on the same 2 cores: its own cost is inside the figures.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("post.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def bodies_file(bodies: list[bytes]) -> Path:
    """The bodies as `wrk`'s Lua script reads them: one per line, in a new temporary file."""
    path = Path(tempfile.mkdtemp(prefix="mg-bench-load-")) / "bodies.jsonl"
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path


def wrk(url: str, path: str, bodies: Path, seconds: int, connections: int = 8) -> WrkResult:
    """One wrk run (1 thread: the other core serves) posting the bodies round robin."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError(
            "wrk is not installed: run `bash hack/install-debian-tool.sh wrk` (make bench does)"
        )
    out = subprocess.run(
        [
            exe,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(LUA),
            url,
            "--",
            path,
            str(bodies),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return WrkResult(
        data["requests"],
        data["duration_us"] / 1e6,
        data["socket_errors"] + data["non2xx"],
        data["p50_us"] / 1e3,
        data["p99_us"] / 1e3,
    )


def fixed_rate(
    host: str,
    port: int,
    context: ssl.SSLContext,
    path: str,
    bodies: list[bytes],
    rate: float,
    seconds: float,
    workers: int = 4,
) -> tuple[list[float], int]:
    """(latencies in ms counted from each scheduled send time, failed requests)."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def work() -> None:
        nonlocal failures
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
                ok = False
            done = time.perf_counter()
            with lock:
                latencies.append((done - due) * 1e3)
                failures += not ok
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures
