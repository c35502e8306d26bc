"""NodeResourcesFit: does the node have a pod slot and room for every resource the pod requests?

As kube-scheduler counts (pkg/scheduler/framework/plugins/noderesources/fit.go, v1.35):
- A pod's request per resource is the larger of (the app containers plus the sidecar init
  containers) and each regular init container (plus the sidecars started before it), plus
  `spec.overhead`. A container's limits stand in for requests it does not set, as kube-apiserver
  defaults them.
- The node must have one pod slot left (`allocatable.pods` minus the pods bound to it) and, for
  every resource the pod requests a non-zero amount of, allocatable minus what the node's pods
  request must hold it. A resource the node does not list in `allocatable` counts as zero.
CPU is counted in millicores, every other resource in whole units (Quantity.Value(): bytes for
memory, ephemeral-storage and hugepages; devices for `devices.kubevirt.io/*` and GPUs).
"""

from __future__ import annotations

from webhook.quantity import format_bytes, format_millis
from webhook.rules import access as a
from webhook.rules.model import Problem

TERMINATED_PHASES = ("Succeeded", "Failed")
CPU, MEMORY, PODS = "cpu", "memory", "pods"
_BYTES = ("memory", "ephemeral-storage")
_ORDER = {CPU: 0, MEMORY: 1, "ephemeral-storage": 2}

Resources = dict[str, int]
# What kube-scheduler's scores count for a container without a request (schedutil.DefaultMilliCPURequest,
# DefaultMemoryRequest); its filters count nothing.
NONZERO_DEFAULTS: Resources = {CPU: 100, MEMORY: 200 * 1024 * 1024}


def amount(resource: str, value: object, ctx: str, path: str) -> int:
    """One quantity in the scheduler's unit for `resource` (millicores for CPU)."""
    return a.cpu(value, ctx, path) if resource == CPU else a.mem(value, ctx, path)


def _add(total: Resources, more: Resources) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _max(total: Resources, other: Resources) -> None:
    for k, v in other.items():
        if v > total.get(k, 0):
            total[k] = v


def container_requests(c: dict, ctx: str, path: str) -> Resources:
    """A container's requests, defaulted from its limits as kube-apiserver does."""
    out: Resources = {}
    for part in ("requests", "limits"):  # a limit counts only where no request is set
        for name, value in a.get(c, f"resources.{part}", dict, ctx, {}, path).items():
            if name not in out:
                out[name] = amount(name, value, ctx, f"{path}.resources.{part}.{name}")
    return out


def pod_requests(pod: dict, missing: Resources | None = None) -> Resources:
    """What the scheduler reserves for `pod`, per resource; with `missing`, each container that
    sets no request for one of its resources counts that much of it (the scheduler's
    NonMissingContainerRequests, see `nonzero_requests`)."""
    ctx = a.describe(pod, "Pod")

    def requests(c: dict, path: str) -> Resources:
        req = container_requests(c, ctx, path)
        for name, value in (missing or {}).items():
            req.setdefault(name, value)
        return req

    total: Resources = {}
    for i, c in a.dicts(pod, "spec.containers", ctx):
        _add(total, requests(c, f"spec.containers[{i}]"))
    sidecars: Resources = {}
    init: Resources = {}
    for i, c in a.dicts(pod, "spec.initContainers", ctx):
        path = f"spec.initContainers[{i}]"
        req = requests(c, path)
        if a.get(c, "restartPolicy", str, ctx, None, path) == "Always":
            _add(sidecars, req)
        else:
            started = dict(sidecars)
            _add(started, req)
            _max(init, started)
    _add(total, sidecars)
    _max(total, init)
    for name, value in a.get(pod, "spec.overhead", dict, ctx, {}).items():
        _add(total, {name: amount(name, value, ctx, f"spec.overhead.{name}")})
    return total


def nonzero_requests(pod: dict, requests: Resources) -> Resources | None:
    """The pod's cpu and memory as kube-scheduler's LeastAllocated score counts them
    (framework.PodInfo.CalculateResource, Non0CPU/Non0Mem): a container without a cpu request
    asks 100m, one without a memory request 200 MiB. None when that is `requests` already."""
    if _every_container_requests_cpu_and_memory(pod):
        return None
    counted = pod_requests(pod, NONZERO_DEFAULTS)
    nonzero = {r: counted.get(r, 0) for r in NONZERO_DEFAULTS}
    if all(nonzero[r] == requests.get(r, 0) for r in NONZERO_DEFAULTS):
        return None
    return nonzero


def _every_container_requests_cpu_and_memory(pod: dict) -> bool:
    """The common case, cheaply (the pod was read by `pod_requests` already)."""
    spec = pod.get("spec") or {}
    for c in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ())):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if not all(r in req or r in lim for r in NONZERO_DEFAULTS):
            return False
    return True


def is_terminated(pod: dict) -> bool:
    return a.get(pod, "status.phase", str, a.describe(pod, "Pod")) in TERMINATED_PHASES


def allocatable(node: dict) -> Resources:
    """`status.allocatable` in the scheduler's units."""
    ctx = a.describe(node, "Node")
    alloc = a.get(node, "status.allocatable", dict, ctx, {})
    return {k: amount(k, v, ctx, f"status.allocatable.{k}") for k, v in alloc.items()}


def _format(resource: str, n: int) -> str:
    if resource == CPU:
        return format_millis(n)
    if resource in _BYTES or resource.startswith("hugepages-"):
        return format_bytes(n)
    return str(n)


def fit_problem(
    node_name: str, alloc: Resources, used: Resources, pods_on_node: int, needed: Resources
) -> Problem | None:
    """InsufficientResources naming every resource the node cannot hold, or None if it fits."""
    allowed = alloc.get(PODS, 0)
    if pods_on_node < allowed:  # the usual case, for every node: no message to build
        for res, need in needed.items():
            if need > 0 and res != PODS and need > alloc.get(res, 0) - used.get(res, 0):
                break
        else:
            return None
    short: list[str] = []
    if pods_on_node + 1 > allowed:
        short.append(f"pods: runs {pods_on_node} of {allowed} pods")
    for res in sorted(needed, key=lambda r: (_ORDER.get(r, 3), r)):
        need = needed[res]
        if res == PODS or need <= 0:
            continue
        have = alloc.get(res, 0)
        free = have - used.get(res, 0)
        if need <= free:
            continue
        label = "CPU" if res == CPU else res
        if have == 0:
            short.append(f"{label}: needs {_format(res, need)}, the node has none")
        else:
            short.append(
                f"{label}: needs {_format(res, need)}, {_format(res, max(free, 0))} free "
                f"of {_format(res, have)} allocatable"
            )
    if not short:
        return None
    return Problem(
        "InsufficientResources",
        f"node '{node_name}' lacks room for the virt-launcher pod ({'; '.join(short)}): "
        "free resources on it or choose another node",
    )
