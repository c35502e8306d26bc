"""Give the server under test a core of its own while load is measured.

On a 2-core machine the load generator, the latency client, kube-apiserver and etcd otherwise
share the server's core, and the tail latency measured is theirs. In production the webhook pod
has its own CPU; pinning the server's process tree to one core and everything else to the others
is the closest this machine gets. Echo and validate run on the same pinned server, so their ratio
stays fair. `isolated` restores the affinities it changed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _tree(pid: int) -> list[int]:
    """`pid` and every descendant process."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def _pin(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # a thread may end meanwhile
                os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def isolated(server_pid: int, log=print) -> Iterator[bool]:
    """Server tree on the last CPU, this process and its other children on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    server = _tree(server_pid)
    others = [p for p in _tree(os.getpid()) if p not in server]
    _pin(server, {cpus[-1]})
    _pin(others, set(cpus[:-1]))
    log(f"  server pinned to CPU {cpus[-1]}, load and control plane to {cpus[:-1]}")
    try:
        yield True
    finally:
        _pin(_tree(os.getpid()), set(cpus))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by each of `pids` and its descendants (threads
    included: /proc/<pid>/stat counts every thread of the process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in {p for root in pids for p in _tree(root)}:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick
