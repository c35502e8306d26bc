"""Does a node have room for the VM's virt-launcher pod?

Requests of a pod are counted as kube-scheduler counts them: the larger of (sum of the app
containers plus sidecar init containers) and each regular init container (plus the sidecars
started before it), plus `spec.overhead`. Without a launcher pod the VMI's
`spec.domain.resources.requests` stand in (memory defaults to `spec.domain.memory.guest`; a
missing CPU request counts as 0). A node whose `status.allocatable` lacks cpu or memory is not
checked for that resource: its capacity is unknown, not zero.
"""

from __future__ import annotations

from webhook.quantity import format_bytes, format_millis
from webhook.rules import access as a
from webhook.rules.model import Problem

TERMINATED_PHASES = ("Succeeded", "Failed")


def _container_requests(c: dict, ctx: str, path: str) -> tuple[int, int]:
    req = a.get(c, "resources.requests", dict, ctx, {}, path)
    cpu = a.cpu(req["cpu"], ctx, f"{path}.resources.requests.cpu") if "cpu" in req else 0
    mem = a.mem(req["memory"], ctx, f"{path}.resources.requests.memory") if "memory" in req else 0
    return cpu, mem


def pod_requests(pod: dict) -> tuple[int, int]:
    """(cpu millis, memory bytes) the scheduler reserves for `pod`."""
    ctx = a.describe(pod, "Pod")
    cpu = mem = 0
    for i, c in a.dicts(pod, "spec.containers", ctx):
        dc, dm = _container_requests(c, ctx, f"spec.containers[{i}]")
        cpu, mem = cpu + dc, mem + dm
    side_cpu = side_mem = 0
    init_cpu = init_mem = 0
    for i, c in a.dicts(pod, "spec.initContainers", ctx):
        dc, dm = _container_requests(c, ctx, f"spec.initContainers[{i}]")
        if a.get(c, "restartPolicy", str, ctx, None, f"spec.initContainers[{i}]") == "Always":
            side_cpu, side_mem = side_cpu + dc, side_mem + dm
        else:
            init_cpu, init_mem = max(init_cpu, side_cpu + dc), max(init_mem, side_mem + dm)
    cpu, mem = max(cpu + side_cpu, init_cpu), max(mem + side_mem, init_mem)
    overhead = a.get(pod, "spec.overhead", dict, ctx, {})
    if "cpu" in overhead:
        cpu += a.cpu(overhead["cpu"], ctx, "spec.overhead.cpu")
    if "memory" in overhead:
        mem += a.mem(overhead["memory"], ctx, "spec.overhead.memory")
    return cpu, mem


def vmi_requests(vmi: dict) -> tuple[int, int]:
    """(cpu millis, memory bytes) from the VMI spec, for when no launcher pod is known."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    req = a.get(vmi, "spec.domain.resources.requests", dict, ctx, {})
    cpu = a.cpu(req["cpu"], ctx, "spec.domain.resources.requests.cpu") if "cpu" in req else 0
    if "memory" in req:
        mem = a.mem(req["memory"], ctx, "spec.domain.resources.requests.memory")
    else:
        guest = a.get(vmi, "spec.domain.memory.guest", object, ctx)
        mem = a.mem(guest, ctx, "spec.domain.memory.guest") if guest is not None else 0
    return cpu, mem


def is_terminated(pod: dict) -> bool:
    return a.get(pod, "status.phase", str, a.describe(pod, "Pod")) in TERMINATED_PHASES


def allocatable(node: dict) -> tuple[int | None, int | None]:
    """(cpu millis, memory bytes) of status.allocatable; None where the node does not say."""
    ctx = a.describe(node, "Node")
    alloc = a.get(node, "status.allocatable", dict, ctx, {})
    cpu = a.cpu(alloc["cpu"], ctx, "status.allocatable.cpu") if "cpu" in alloc else None
    mem = a.mem(alloc["memory"], ctx, "status.allocatable.memory") if "memory" in alloc else None
    return cpu, mem


def capacity_problem(
    node: dict | tuple[int | None, int | None],
    node_name: str,
    requested: tuple[int, int],
    needed: tuple[int, int],
) -> Problem | None:
    """InsufficientResources when allocatable minus `requested` cannot hold `needed`.

    `node`: the Node, or its `allocatable(node)` already parsed.
    """
    alloc_cpu, alloc_mem = allocatable(node) if isinstance(node, dict) else node
    short: list[str] = []
    if alloc_cpu is not None and needed[0] > alloc_cpu - requested[0]:
        free = alloc_cpu - requested[0]
        short.append(
            f"CPU: needs {format_millis(needed[0])}, {format_millis(max(free, 0))} free "
            f"of {format_millis(alloc_cpu)} allocatable"
        )
    if alloc_mem is not None and needed[1] > alloc_mem - requested[1]:
        free = alloc_mem - requested[1]
        short.append(
            f"memory: needs {format_bytes(needed[1])}, {format_bytes(max(free, 0))} free "
            f"of {format_bytes(alloc_mem)} allocatable"
        )
    if not short:
        return None
    return Problem(
        "InsufficientResources",
        f"node '{node_name}' lacks room for the virt-launcher pod ({'; '.join(short)}): "
        "free resources on it or choose another node",
    )
