"""Data size and migration deadlines (DESIGN "Timeout enforcer contract").

Data size = guest memory (`spec.domain.memory.guest`, else `spec.domain.resources.requests.memory`)
plus, when `status.migrationMethod` is `BlockMigration`, the disks KubeVirt copies. What a VMI
tells about those disks: `status.volumeStatus[].persistentVolumeClaimInfo.capacity.storage` of
claims that are not ReadWriteMany (RWX claims are shared, not copied), and the `capacity` of
`emptyDisk` volumes. ContainerDisk sizes are not knowable from the VMI and are not counted.
Whole GiB, rounded up, at least 1 (a VM always has memory; a 0 s deadline would abort at once).

Per-VM override: annotations `migration-guard.io/completion-timeout-per-gib` and
`migration-guard.io/progress-timeout-seconds` (positive integers) on the VMI, else on the VM.
A malformed override is ignored (the setting applies) so the enforcer never stops on one bad VM;
`strict=True` raises InputError naming it instead (the CLI and the webhook use it to warn).
"""

from __future__ import annotations

from webhook.annotations import COMPLETION_TIMEOUT_PER_GIB as COMPLETION_ANNOTATION
from webhook.annotations import PROGRESS_TIMEOUT_SECONDS as PROGRESS_ANNOTATION
from webhook.errors import InputError
from webhook.rules import access as a
from webhook.rules.identity_memo import IdentityMemo
from webhook.rules.model import Timeouts, TimeoutSettings

GIB = 2**30


def memory_data_bytes(vmi: dict) -> int:
    ctx = a.describe(vmi, "VirtualMachineInstance")
    guest = a.get(vmi, "spec.domain.memory.guest", object, ctx)
    if guest is not None:
        return a.mem(guest, ctx, "spec.domain.memory.guest")
    req = a.get(vmi, "spec.domain.resources.requests.memory", object, ctx)
    if req is not None:
        return a.mem(req, ctx, "spec.domain.resources.requests.memory")
    return 0


def block_migration_bytes(vmi: dict) -> int:
    """Bytes of the disks a BlockMigration copies (0 for any other method)."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    if a.get(vmi, "status.migrationMethod", str, ctx) != "BlockMigration":
        return 0
    total = 0
    for i, vs in a.dicts(vmi, "status.volumeStatus", ctx):
        base = f"status.volumeStatus[{i}]"
        info = a.get(vs, "persistentVolumeClaimInfo", dict, ctx, None, base)
        if info is None:
            continue
        base += ".persistentVolumeClaimInfo"
        modes = a.get(info, "accessModes", list, ctx, [], base)
        if "ReadWriteMany" in modes:
            continue
        storage = a.get(info, "capacity.storage", object, ctx, None, base)
        if storage is not None:
            field = f"status.volumeStatus[{i}].persistentVolumeClaimInfo.capacity.storage"
            total += a.mem(storage, ctx, field)
    for i, vol in a.dicts(vmi, "spec.volumes", ctx):
        cap = a.get(vol, "emptyDisk.capacity", object, ctx, None, f"spec.volumes[{i}]")
        if cap is not None:
            total += a.mem(cap, ctx, f"spec.volumes[{i}].emptyDisk.capacity")
    return total


def _override(objs: list[tuple[str, dict | None]], key: str, strict: bool) -> int | None:
    for what, obj in objs:
        if obj is None:
            continue
        annotations = a.str_map(obj, "metadata.annotations", what)
        if key not in annotations:
            continue
        text = annotations[key].strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
        if strict:
            raise InputError(
                f"{what}: annotation {key}={annotations[key]!r} must be a positive integer"
            )
    return None


Overrides = tuple[int | None, int | None]  # (completion per GiB, progress seconds); None: not set


def vmi_overrides(vmi: dict) -> Overrides:
    """The VMI's own override annotations as the engine reads them (malformed: ignored)."""
    source = [(a.describe(vmi, "VirtualMachineInstance"), vmi)]
    return _override(source, COMPLETION_ANNOTATION, False), _override(
        source, PROGRESS_ANNOTATION, False
    )


def data_bytes(vmi: dict) -> int:
    """What a migration of `vmi` copies: guest memory, plus the disks of a BlockMigration."""
    return memory_data_bytes(vmi) + block_migration_bytes(vmi)


def compute_timeouts(
    vmi: dict,
    settings: TimeoutSettings,
    vm: dict | None = None,
    *,
    strict: bool = False,
    data: int | None = None,
    overrides: Overrides | None = None,
) -> Timeouts:
    """The deadlines for `vmi`; annotations on the VMI win over the VM's, both over `settings`.

    `data` and `overrides`: `data_bytes(vmi)` and `vmi_overrides(vmi)` when the caller has them
    (VMIFacts; not with `strict`, which names a malformed VMI annotation).
    """
    if data is None:
        data = data_bytes(vmi)
    gib = max(1, -(-data // GIB))
    if overrides is None or strict:
        sources = [
            (a.describe(vmi, "VirtualMachineInstance"), vmi),
            (a.describe(vm, "VirtualMachine"), vm),
        ]
        per_gib = _override(sources, COMPLETION_ANNOTATION, strict)
        progress = _override(sources, PROGRESS_ANNOTATION, strict)
    else:
        per_gib, progress = overrides
        if vm is not None and (per_gib is None or progress is None):
            from_vm = [(a.describe(vm, "VirtualMachine"), vm)]
            per_gib = per_gib or _override(from_vm, COMPLETION_ANNOTATION, False)
            progress = progress or _override(from_vm, PROGRESS_ANNOTATION, False)
    # VMs come in a few sizes: the Timeouts of equal inputs are made once and shared (frozen).
    inputs = (data, per_gib, progress)
    found = _SHARED.get((settings,), inputs)
    if found is not None:
        return found
    out = Timeouts(
        data_bytes=data,
        data_gib=gib,
        completion_timeout_seconds=(per_gib or settings.completion_timeout_per_gib) * gib,
        progress_timeout_seconds=progress or settings.progress_timeout_seconds,
    )
    return _SHARED.put((settings,), inputs, out)


_SHARED: IdentityMemo[Timeouts] = IdentityMemo()
