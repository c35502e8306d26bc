"""Child process of the memory benchmark: the server's app and cache, filled, then its RSS.

Run as `python -m bench.memory_child '{"nodes": N, "vmis": V, "pods": P}'`; prints one JSON line.
The objects take the informer's list path (JSON pages of 500 decoded and slimmed page by page,
then `ClusterState.replace_all`); what stays is what the cache keeps. Bytes per object come from
tracemalloc on a small sample of each kind, applied one by one as watch events are.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc

from bench import objects as o
from webhook.admission.settings import Settings
from webhook.cluster.state import ClusterState, slim


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class _FilledCache:
    """What the server's app reads from the watch-fed cache, here filled directly."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.synced = True

    def age_seconds(self) -> float:
        return 0.0

    def status(self) -> dict:
        return {}

    def get_vmi_or_fetch(self, namespace: str, name: str) -> dict | None:
        return self.state.vmi(namespace, name)


def as_received(obj: dict) -> dict:
    """The object as an informer gets it: decoded from JSON, so no string is shared."""
    return json.loads(json.dumps(obj))


def listed(make, count: int, page: int = 500) -> list[dict]:
    """What webhook.cluster.informer's list hands to replace_all: pages decoded from JSON, slimmed."""
    items: list[dict] = []
    for start in range(0, count, page):
        body = json.dumps({"items": [make(i) for i in range(start, min(count, start + page))]})
        items += [slim(item) for item in json.loads(body)["items"]]
    return items


def bytes_per_object(make, n: int = 200) -> float:
    state = ClusterState()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        state.apply(as_received(make(i)))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main() -> None:
    sizes = json.loads(sys.argv[1])
    nodes, vmis, pods = sizes["nodes"], sizes["vmis"], sizes["pods"]
    from webhook.admission.server import create_app

    state = ClusterState()
    create_app(Settings(), _FilledCache(state))
    gc.collect()
    empty = rss_mb()
    started = time.perf_counter()
    state.replace_all("Node", listed(o.node, nodes))
    state.replace_all("VirtualMachineInstance", listed(lambda i: o.vmi(i, nodes), vmis))
    state.replace_all("Pod", listed(lambda i: o.pod(i, nodes, vmis), pods))
    fill = time.perf_counter() - started
    gc.collect()
    full = rss_mb()
    assert state.count("Pod") == pods and state.count("Node") == nodes
    print(
        json.dumps(
            {
                "rss_empty_mb": empty,
                "rss_full_mb": full,
                "fill_seconds": fill,
                "bytes_per_node": bytes_per_object(o.node),
                "bytes_per_vmi": bytes_per_object(lambda i: o.vmi(i, 100)),
                "bytes_per_pod": bytes_per_object(lambda i: o.pod(i, 100, 50)),
            }
        )
    )


if __name__ == "__main__":
    main()
