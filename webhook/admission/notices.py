"""What operators are told when migration-guard stops, or would stop, a migration KubeVirt started.

Pure: which Events to record for one decision. Why these:
- An evacuation migration-guard denies holds the node's drain. KubeVirt's evacuation controller
  records a Warning `FailedCreate` Event on the VMI with the denial's text, but nothing on the
  Node, where an operator draining it looks (`kubectl describe node`): the Node gets a Warning
  `EvacuationBlocked` naming the VM and every reason.
- A problem let through by a `warn` setting leaves no trace in KubeVirt (it does not record
  admission warnings): the VMI gets a Warning `MigrationWarned` naming the problems. The same
  for any migration the policy lets through with warnings (a rule set to warn, audit mode).
- A denied workload update is already on the VMI (KubeVirt's `FailedCreate`, with the reasons).
"""

from __future__ import annotations

from webhook.admission.events import Involved, Record
from webhook.rules.model import Problem
from webhook.rules.origin import EVACUATION, Origin

EVACUATION_BLOCKED = "EvacuationBlocked"
MIGRATION_WARNED = "MigrationWarned"


def _involved(obj: dict, api_version: str, kind: str) -> Involved:
    meta = obj.get("metadata") or {}
    return Involved(api_version, kind, meta.get("name", ""), meta.get("namespace"), meta.get("uid"))


def _reasons(problems: list[Problem]) -> str:
    return "; ".join(f"{p.code}: {p.message}" for p in problems)


def notices(
    origin: Origin,
    vm: str,
    problems: list[Problem],
    warn_only: str | None,
    vmi: dict | None,
    node: dict | None,
) -> list[Record]:
    """The Events for one decision on a migration from `origin` (none for a person's)."""
    if not origin.by_kubevirt or not problems:
        return []
    if warn_only is not None:
        if vmi is None:
            return []
        message = (
            f"migration-guard let the {origin.describe()} of VM {vm} through "
            f"({warn_only}) despite: {_reasons(problems)}"
        )
        vmi_ref = _involved(vmi, "kubevirt.io/v1", "VirtualMachineInstance")
        return [Record(vmi_ref, "Warning", MIGRATION_WARNED, message)]
    if origin.kind == EVACUATION and node is not None:
        message = f"VM {vm} cannot leave this node, migration-guard denies it: {_reasons(problems)}"
        return [Record(_involved(node, "v1", "Node"), "Warning", EVACUATION_BLOCKED, message)]
    return []


def policy_notices(vm: str, warned: list[Problem], why: str, vmi: dict | None) -> list[Record]:
    """The Event for a migration admitted with problems the policy only warns about."""
    if not warned or vmi is None:
        return []
    message = f"migration-guard let the migration of VM {vm} through ({why}) despite: "
    vmi_ref = _involved(vmi, "kubevirt.io/v1", "VirtualMachineInstance")
    return [Record(vmi_ref, "Warning", MIGRATION_WARNED, message + _reasons(warned))]
