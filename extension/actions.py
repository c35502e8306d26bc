"""Decisions behind the Harvester actions, pure: request bodies, the VMIM to create, what to abort.

Kept apart from the HTTP layer so each rule of the contract (which phases can be aborted, what a
VMIM created for the UI looks like, what a bad body is) is one small function with unit tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from extension.status import (
    ABORTABLE_PHASES,
    REQUESTED_BY_ANNOTATION,
    current_or_last,
    is_final,
    phase_of,
)
from webhook.rules.model import Problem
from webhook.rules.target import HOSTNAME_LABEL

ACTIONS = ("findMigratableNodes", "migrate", "abortMigration")
VMI_NAME_LABEL = "kubevirt.io/vmi-name"
MAX_NODE_NAME = 253


class BadRequest(ValueError):
    """The request itself is wrong (HTTP 400); the message names what and how to fix it."""


class Conflict(ValueError):
    """The action does not fit the migration's current state (HTTP 409)."""


def check_action(action: str | None) -> str:
    if not action:
        raise BadRequest("missing query parameter 'action': use one of " + ", ".join(ACTIONS))
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}: use one of " + ", ".join(ACTIONS))
    return action


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_names(namespace: str, name: str) -> None:
    """BadRequest unless `namespace` and `name` are valid Kubernetes names.

    Why: they become parts of API paths; a name like '..' must never reach another URL.
    """
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise BadRequest(
            f"namespace {namespace!r} is not a valid namespace name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise BadRequest(
            f"name {name!r} is not a valid VirtualMachine name "
            "(lowercase letters, digits, '-' and '.', at most 253 characters)"
        )


def parse_json_body(raw: bytes) -> dict:
    """The request body as a JSON object; an empty body is {}."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest("request body is JSON nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def migrate_target(body: dict) -> str | None:
    """`nodeName` of a migrate body: a node name, or None (empty or missing) for any node."""
    node = body.get("nodeName")
    if node is None or node == "":
        return None
    if not isinstance(node, str):
        raise BadRequest(f"nodeName must be a string (a node name), got {type(node).__name__}")
    node = node.strip()
    if not node or len(node) > MAX_NODE_NAME or any(c.isspace() for c in node):
        raise BadRequest(f"nodeName {body.get('nodeName')!r} is not a valid node name")
    return node


def build_vmim(namespace: str, vm_name: str, node: str | None, username: str) -> dict:
    """The VMIM the migrate action creates: what Harvester 1.7 creates, plus who asked."""
    spec: dict = {"vmiName": vm_name}
    if node:
        spec["addedNodeSelector"] = {HOSTNAME_LABEL: node}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {
            "generateName": f"{vm_name}-",
            "namespace": namespace,
            "labels": {VMI_NAME_LABEL: vm_name},
            "annotations": {REQUESTED_BY_ANNOTATION: username},
        },
        "spec": spec,
    }


def causes(problems: Iterable[Problem]) -> list[dict]:
    """Problems as the API's causes: {code, message, field} (field null when none)."""
    return [{"code": p.code, "message": p.message, "field": p.field} for p in problems]


@dataclass(frozen=True)
class AbortTarget:
    name: str
    uid: str
    resource_version: str
    phase: str


def vmims_for(vmims: Iterable[dict], vmi_name: str) -> list[dict]:
    """The VMIMs (of one namespace) whose spec.vmiName is `vmi_name`."""
    out = []
    for vmim in vmims:
        spec = vmim.get("spec") if isinstance(vmim, dict) else None
        if isinstance(spec, dict) and spec.get("vmiName") == vmi_name:
            out.append(vmim)
    return out


def abort_target(vmims: list[dict], vm: str) -> AbortTarget:
    """The migration to abort, or Conflict naming why there is none to abort."""
    current = current_or_last(vmims)
    if current is None:
        raise Conflict(f"no migration in progress for VM {vm}")
    meta = current.get("metadata") or {}
    name = meta.get("name", "?")
    phase = phase_of(current)
    if is_final(current):
        raise Conflict(
            f"no migration in progress for VM {vm}: the last one, {name}, is already {phase}"
        )
    if phase not in ABORTABLE_PHASES:
        raise Conflict(
            f"migration {name} of VM {vm} is in phase {phase}, which cannot be aborted "
            f"(abortable phases: {', '.join(ABORTABLE_PHASES)})"
        )
    return AbortTarget(name, meta.get("uid", ""), meta.get("resourceVersion", ""), phase)


def delete_options(target: AbortTarget) -> dict:
    """Delete exactly the VMIM that was judged abortable: same uid, same resourceVersion."""
    preconditions = {"uid": target.uid}
    if target.resource_version:
        preconditions["resourceVersion"] = target.resource_version
    return {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": preconditions,
        "propagationPolicy": "Background",
    }
