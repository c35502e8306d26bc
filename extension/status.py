"""The current or last migration of one VM, as `GET .../migration` shows it (pure, no I/O).

KubeVirt spreads a migration over three objects: the VMIM (phase, conditions, name and uid), the
VMI's `status.migrationState` (source and target node, start and end, failure and abort status;
kept after the VMIM is gone), and the VM, where the enforcer records why it aborted
(`migration-guard.io/abort`). This module folds them into one answer, with the deadlines of
DESIGN's timeout contract computed from the same start timestamp the enforcer uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.annotations import ABORT as ABORT_ANNOTATION
from webhook.annotations import REQUESTED_BY as REQUESTED_BY_ANNOTATION
from webhook.rules.model import Timeouts
from webhook.rules.target import HOSTNAME_LABEL

FINAL_PHASES = frozenset({"Succeeded", "Failed"})
# Phases in which deleting the VMIM aborts the migration (KubeVirt and Harvester abort that way).
ABORTABLE_PHASES = (
    "Pending",
    "Scheduling",
    "Scheduled",
    "PreparingTarget",
    "TargetReady",
    "Running",
)


def _map(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def phase_of(vmim: dict) -> str:
    """The VMIM's phase; a VMIM KubeVirt has not touched yet counts as Pending."""
    return _str(_map(vmim.get("status")).get("phase")) or "Pending"


def is_final(vmim: dict) -> bool:
    return phase_of(vmim) in FINAL_PHASES


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamp as the API server writes it; None when missing or unreadable."""
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(obj: dict) -> str:
    return _str(_map(obj.get("metadata")).get("creationTimestamp")) or ""


def _name(obj: dict) -> str:
    return _str(_map(obj.get("metadata")).get("name")) or ""


def current_or_last(vmims: list[dict]) -> dict | None:
    """The newest VMIM that is not final, else the newest one (ties broken by name)."""
    if not vmims:
        return None
    ordered = sorted(vmims, key=lambda m: (_created(m), _name(m)))
    running = [m for m in ordered if not is_final(m)]
    return (running or ordered)[-1]


def abort_record(vm: dict | None) -> dict | None:
    """The enforcer's annotation on the VM, parsed; an unreadable one is shown as its raw text."""
    annotations = _map(_map((vm or {}).get("metadata")).get("annotations"))
    raw = annotations.get(ABORT_ANNOTATION)
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"message": raw}
    return parsed if isinstance(parsed, dict) else {"message": raw}


def _state_for(vmim: dict | None, vmi: dict | None) -> dict:
    """The migrationState that describes `vmim`: the VMI's when its migrationUid matches (or
    names none), else the copy newer KubeVirt keeps in the VMIM status."""
    vmi_state = _map(_map((vmi or {}).get("status")).get("migrationState"))
    if vmim is None:
        return vmi_state
    uid = _str(_map(vmim.get("metadata")).get("uid"))
    vmi_uid = _str(vmi_state.get("migrationUid"))
    if vmi_state and (vmi_uid is None or vmi_uid == uid):
        return vmi_state
    return _map(_map(vmim.get("status")).get("migrationState"))


def _data_remaining(vmim: dict | None, state: dict, known: int | None) -> int | None:
    if known is not None:
        return known
    for source in (state, _map(_map((vmim or {}).get("status")).get("migrationState"))):
        value = source.get("dataRemainingBytes")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _why(phase: str | None, state: dict, abort: dict | None, conditions: list[dict]) -> str | None:
    """One sentence saying why the migration failed or was aborted, None when it did not."""
    parts: list[str] = []
    if abort is not None:
        reason = _str(abort.get("reason"))
        message = _str(abort.get("message"))
        parts.append(
            "aborted by migration-guard"
            + (f" ({reason})" if reason else "")
            + (f": {message}" if message else "")
        )
    abort_status = _str(state.get("abortStatus"))
    if abort_status and abort is None:
        parts.append(f"abort requested (abort status {abort_status})")
    failure = _str(state.get("failureReason"))
    if failure:
        parts.append(f"failure reason: {failure}")
    if phase == "Failed" or state.get("failed") is True:
        for cond in conditions:
            if cond.get("status") == "True" and (
                _str(cond.get("message")) or _str(cond.get("reason"))
            ):
                detail = _str(cond.get("message")) or _str(cond.get("reason"))
                parts.append(f"{cond.get('type', 'condition')}: {detail}")
        if not parts:
            parts.append("the migration failed; KubeVirt gave no reason")
    return "; ".join(parts) or None


def subject_uid(vmims: list[dict], vmi: dict | None) -> str | None:
    """The UID of the migration `migration_status` describes (KubeVirt's limits are its own)."""
    vmim = current_or_last(vmims)
    if vmim is not None:
        return _str(_map(vmim.get("metadata")).get("uid"))
    return _str(_state_for(None, vmi).get("migrationUid"))


def migration_status(
    vmims: list[dict],
    vmi: dict | None,
    vm: dict | None,
    timeouts: Timeouts | None,
    now: datetime,
    data_remaining_bytes: int | None = None,
) -> dict | None:
    """The current or last migration of a VM, or None when it never migrated.

    `vmims` are the VMIMs of the VM's VMI; `timeouts` from `compute_timeouts`, with KubeVirt's
    limits for this migration (`engine.migration_timeouts`) when known; `now` aware UTC.
    """
    vmim = current_or_last(vmims)
    state = _state_for(vmim, vmi)
    if vmim is None and not state:
        return None
    meta = _map((vmim or {}).get("metadata"))
    status = _map((vmim or {}).get("status"))
    uid = _str(meta.get("uid")) or _str(state.get("migrationUid"))
    phase = phase_of(vmim) if vmim is not None else _phase_from_state(state)
    abort = abort_record(vm)
    if abort is not None and not _abort_matches(abort, _str(meta.get("name")), uid):
        abort = None
    start = parse_time(state.get("startTimestamp"))
    end = parse_time(state.get("endTimestamp"))
    elapsed = None
    if start is not None:
        elapsed = max(0, int(((end or now) - start).total_seconds()))
    completion = timeouts.completion_timeout_seconds if timeouts else None
    deadline = None
    if start is not None and completion is not None:
        deadline = start + timedelta(seconds=completion)
    kv = timeouts.kubevirt if timeouts else None
    kv_deadline = None
    if start is not None and kv is not None and kv.completion_timeout_seconds:
        kv_deadline = start + timedelta(seconds=kv.completion_timeout_seconds)
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    annotations = _map(meta.get("annotations"))
    return {
        "name": _str(meta.get("name")) or (abort or {}).get("migration"),
        "uid": uid,
        "phase": phase,
        "final": phase in FINAL_PHASES if phase else None,
        "sourceNode": _str(state.get("sourceNode")),
        "targetNode": _str(state.get("targetNode")) or _added_hostname(vmim),
        "startTimestamp": format_time(start),
        "endTimestamp": format_time(end),
        "elapsedSeconds": elapsed,
        "completionDeadline": format_time(deadline),
        "completionTimeoutSeconds": completion,
        "progressTimeoutSeconds": timeouts.progress_timeout_seconds if timeouts else None,
        # KubeVirt's own limits (its launcher aborts by them) and who acts first
        "kubevirt": kv.to_dict() if kv else None,
        "kubevirtCompletionDeadline": format_time(kv_deadline),
        "firesFirst": kv.fires_first() if kv else None,
        "dataRemainingBytes": _data_remaining(vmim, state, data_remaining_bytes),
        "requestedBy": _str(annotations.get(REQUESTED_BY_ANNOTATION)),
        "failureReason": _str(state.get("failureReason")),
        "abortStatus": _str(state.get("abortStatus")),
        "abort": abort,
        "conditions": conditions,
        "why": _why(phase, state, abort, conditions),
    }


def _phase_from_state(state: dict) -> str | None:
    """Phase of a migration whose VMIM is gone, from what the VMI still says about it."""
    if state.get("failed") is True or _str(state.get("abortStatus")) == "Succeeded":
        return "Failed"
    if state.get("completed") is True:
        return "Succeeded"
    return None


def _abort_matches(abort: dict, name: str | None, uid: str | None) -> bool:
    """The annotation is about this migration (by uid, else by name)."""
    if uid and _str(abort.get("migrationUID")):
        return abort.get("migrationUID") == uid
    if name and _str(abort.get("migration")):
        return abort.get("migration") == name
    return False


def _added_hostname(vmim: dict | None) -> str | None:
    selector = _map(_map((vmim or {}).get("spec")).get("addedNodeSelector"))
    return _str(selector.get(HOSTNAME_LABEL))
