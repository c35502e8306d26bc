"""Carrying out an abort: record why (Events, VM annotation), then delete the VMIM by UID; and
recording why a migration that is overdue was left alone (`record_not_aborted`).

Order matters (DESIGN): the reason is written before the VMIM goes away, so the UI and
`GET .../migration` can always say why a migration ended. The VMIM is re-read from the API first:
the cache may be behind, and a migration that just became final or is already being deleted must not
be touched. The delete carries a UID precondition, so a new VMIM with the same name is never hit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass

from kubernetes.client import ApiClient

from webhook.annotations import ABORT as ABORT_ANNOTATION
from webhook.cluster.kubeapi import KubeError, call
from webhook.enforcer.decisions import FINAL_PHASES, REASON_NOT_ABORTED, Decision
from webhook.enforcer.leader import micro_time

log = logging.getLogger("migration_guard.enforcer.actions")

COMPONENT = "migration-guard-enforcer"
KUBEVIRT = "/apis/kubevirt.io/v1"


@dataclass(frozen=True)
class Outcome:
    """What happened: `aborted` only when the delete was accepted."""

    aborted: bool
    detail: str


def rfc3339(ts: float) -> str:
    """Unix seconds -> RFC3339 with seconds precision, as metav1.Time is written."""
    return micro_time(ts)[:19] + "Z"


def abort_annotation(decision: Decision, vmim: dict, now: float) -> str:
    """The JSON of `migration-guard.io/abort` (docs/internals.md)."""
    meta = vmim.get("metadata") or {}
    return json.dumps(
        {
            "reason": decision.reason,
            "message": decision.message,
            "migration": meta.get("name"),
            "migrationUID": meta.get("uid"),
            "time": rfc3339(now),
        },
        sort_keys=True,
    )


def event_name(obj_name: str, kind: str, migration_uid: str | None, topic: str = "") -> str:
    """One name per (object, migration, topic): a replica taking over mid-abort, or a restarted
    one, cannot record the same thing twice (the API answers 409). `topic` "" is the abort."""
    if not migration_uid:
        return f"{obj_name}.{uuid.uuid4().hex[:16]}"
    key = f"{kind}/{migration_uid}" + (f"/{topic}" if topic else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{obj_name[:236]}.{digest}"


def event_body(
    obj: dict,
    kind: str,
    decision: Decision,
    now: float,
    instance: str,
    migration_uid: str | None = None,
    *,
    reason: str | None = None,
    type_: str = "Warning",
    action: str = "AbortMigration",
) -> dict:
    """A core/v1 Event about `obj` (kubectl describe and get events show it): by default the
    Warning of an abort, with `decision.reason`; `reason` set names another record of its own."""
    meta = obj.get("metadata") or {}
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(str(meta.get("name")), kind, migration_uid, reason or ""),
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": "kubevirt.io/v1",
            "kind": kind,
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
        "reason": reason or decision.reason,
        "message": decision.message,
        "type": type_,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "action": action,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": micro_time(now),
        "count": 1,
    }


def _post_event(
    api: ApiClient,
    obj: dict,
    kind: str,
    decision: Decision,
    now: float,
    who: str,
    uid: str,
    **how: str,
) -> bool:
    """POST the Event (`how`: event_body's keywords); False when it exists already."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    try:
        call(
            api,
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            event_body(obj, kind, decision, now, who, uid, **how),
        )
    except KubeError as err:
        if err.status != 409:  # 409: recorded already, by a replica that died before the delete
            raise
        return False
    return True


def record_not_aborted(
    api: ApiClient, vmi: dict, migration_uid: str, decision: Decision, now: float, identity: str
) -> bool:
    """A Normal Event on the VMI: why an overdue migration (`decision.held`) was left alone.

    Named per migration, so a restarted or new leader finds it there (409) and records nothing
    twice. True when this call created it. KubeError on API failure.
    """
    return _post_event(
        api,
        vmi,
        "VirtualMachineInstance",
        decision,
        now,
        identity,
        migration_uid,
        reason=REASON_NOT_ABORTED,
        type_="Normal",
        action="LeaveMigrationRunning",
    )


def reread_vmim(api: ApiClient, namespace: str, name: str, uid: str) -> tuple[dict | None, str]:
    """The VMIM as the API has it now, or None with why it must not be aborted."""
    try:
        current = call(
            api, "GET", f"{KUBEVIRT}/namespaces/{namespace}/virtualmachineinstancemigrations/{name}"
        )
    except KubeError as err:
        if err.status == 404:
            return None, "migration no longer exists"
        raise
    meta = current.get("metadata") or {}
    if meta.get("uid") != uid:
        return None, "a different migration now has this name"
    if meta.get("deletionTimestamp"):
        return None, "migration is already being deleted"
    phase = (current.get("status") or {}).get("phase")
    if phase in FINAL_PHASES:
        return None, f"migration became final ({phase})"
    return current, ""


def abort(
    api: ApiClient,
    vmim: dict,
    vmi: dict | None,
    vm: dict | None,
    decision: Decision,
    now: float,
    identity: str,
) -> Outcome:
    """Record why, then delete the VMIM with a UID precondition. KubeError on API failure."""
    meta = vmim.get("metadata") or {}
    namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid") or ""
    current, why_not = reread_vmim(api, namespace, name, uid)
    if current is None:
        return Outcome(False, why_not)
    if vmi is not None:
        _post_event(api, vmi, "VirtualMachineInstance", decision, now, identity, uid)
    if vm is not None:
        vm_name = (vm.get("metadata") or {}).get("name")
        _post_event(api, vm, "VirtualMachine", decision, now, identity, uid)
        patch = {
            "metadata": {"annotations": {ABORT_ANNOTATION: abort_annotation(decision, vmim, now)}}
        }
        call(
            api,
            "PATCH",
            f"{KUBEVIRT}/namespaces/{namespace}/virtualmachines/{vm_name}",
            patch,
            content_type="application/merge-patch+json",
        )
    body = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": uid},
        "propagationPolicy": "Background",
    }
    try:
        call(
            api,
            "DELETE",
            f"{KUBEVIRT}/namespaces/{namespace}/virtualmachineinstancemigrations/{name}",
            body,
        )
    except KubeError as err:
        if err.status in (404, 409):
            return Outcome(False, f"migration changed before the delete: {err}")
        raise
    return Outcome(True, "deleted")
