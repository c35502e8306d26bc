"""AdmissionReview in, AdmissionReview out (DESIGN "Admission webhook contract").

Pure: no I/O, no clock. The server parses with `parse_review`, asks the rule engine for a Report,
and turns it into a response with `respond`. Every rule lives in webhook.rules; this module only
formats what the engine decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from webhook.errors import InputError
from webhook.rules.identity_memo import IdentityMemo
from webhook.rules.model import KUBEVIRT, SAME, Problem, Report, Timeouts

REVIEW_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
VMIM_GROUP = "kubevirt.io"
VMIM_KIND = "VirtualMachineInstanceMigration"
VMIM_RESOURCE = "virtualmachineinstancemigrations"
# Kubernetes truncates longer warnings; keep ours readable in full.
MAX_WARNING_CHARS = 240


class MalformedReview(InputError):
    """The body is not an AdmissionReview this webhook can answer; the server replies 400."""


@dataclass(frozen=True)
class ReviewRequest:
    """What the decision needs from an AdmissionReview request."""

    api_version: str
    uid: str
    group: str
    kind: str
    resource: str
    operation: str
    namespace: str | None
    name: str | None
    object: dict | None
    dry_run: bool
    username: str = ""  # request.userInfo.username: who creates the object

    @property
    def is_migration_create(self) -> bool:
        """Only CREATE of a VMIM is checked; everything else is allowed (and counted)."""
        is_vmim = self.group == VMIM_GROUP and (
            self.kind == VMIM_KIND or self.resource == VMIM_RESOURCE
        )
        return is_vmim and self.operation == "CREATE"


def _field(obj: dict, key: str, typ: type | tuple[type, ...], where: str, required: bool) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise MalformedReview(f"{where}.{key} is missing")
        return None
    if not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise MalformedReview(f"{where}.{key} must be a {names}, got {type(value).__name__}")
    return value


def parse_review(body: Any) -> ReviewRequest:
    """Validate an AdmissionReview dict; MalformedReview names the first thing that is wrong."""
    if not isinstance(body, dict):
        raise MalformedReview(f"the body must be a JSON object, got {type(body).__name__}")
    api_version = _field(body, "apiVersion", str, "review", True)
    if api_version not in REVIEW_VERSIONS:
        raise MalformedReview(
            f"review.apiVersion must be one of {', '.join(REVIEW_VERSIONS)}, got {api_version!r}"
        )
    kind = _field(body, "kind", str, "review", True)
    if kind != "AdmissionReview":
        raise MalformedReview(f"review.kind must be 'AdmissionReview', got {kind!r}")
    req = _field(body, "request", dict, "review", True)
    uid = _field(req, "uid", str, "request", True)
    if not uid:
        raise MalformedReview("request.uid is empty")
    operation = _field(req, "operation", str, "request", True)
    gvk = _field(req, "kind", dict, "request", True)
    resource = _field(req, "resource", dict, "request", False) or {}
    group = _field(gvk, "group", str, "request.kind", False) or ""
    kind_name = _field(gvk, "kind", str, "request.kind", True)
    resource_name = _field(resource, "resource", str, "request.resource", False) or ""
    obj = _field(req, "object", dict, "request", False)
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise MalformedReview(f"request.object is missing for operation {operation}")
    user = _field(req, "userInfo", dict, "request", False) or {}
    return ReviewRequest(
        api_version=api_version,
        uid=uid,
        group=group,
        kind=kind_name,
        resource=resource_name,
        operation=operation,
        namespace=_field(req, "namespace", str, "request", False),
        name=_field(req, "name", str, "request", False),
        object=obj,
        dry_run=bool(_field(req, "dryRun", bool, "request", False)),
        username=_field(user, "username", str, "request.userInfo", False) or "",
    )


class _Kind(msgspec.Struct):
    kind: str
    group: str = ""


class _Resource(msgspec.Struct):
    resource: str = ""


class _User(msgspec.Struct):
    username: str = ""


class _Request(msgspec.Struct):
    uid: str
    operation: str
    kind: _Kind
    resource: _Resource | None = None
    namespace: str | None = None
    name: str | None = None
    object: dict | None = None
    dryRun: bool | None = None
    userInfo: _User | None = None


class _Review(msgspec.Struct):
    apiVersion: str
    kind: str
    request: _Request


_REVIEW = msgspec.json.Decoder(_Review)


def read_review(raw: bytes) -> ReviewRequest | None:
    """`parse_review(json.loads(raw))` of a well-formed review, in one step: msgspec decodes
    only the fields a review needs (not oldObject, options) and checks their types on the way.
    None for anything else (not JSON, a field of another type or null, a value parse_review
    refuses): `parse_review` then reads it and names what is wrong."""
    try:
        review = _REVIEW.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError too; JSON nested too deeply
        return None
    r = review.request
    if (
        review.apiVersion not in REVIEW_VERSIONS
        or review.kind != "AdmissionReview"
        or not r.uid
        or (r.object is None and r.operation in ("CREATE", "UPDATE"))
    ):
        return None
    return ReviewRequest(
        api_version=review.apiVersion,
        uid=r.uid,
        group=r.kind.group,
        kind=r.kind.kind,
        resource=r.resource.resource if r.resource is not None else "",
        operation=r.operation,
        namespace=r.namespace,
        name=r.name,
        object=r.object,
        dry_run=bool(r.dryRun),
        username=r.userInfo.username if r.userInfo is not None else "",
    )


def migration_subject(req: ReviewRequest) -> tuple[str, str | None]:
    """(namespace, VMI name) of the VMIM under review; the name is None when spec.vmiName is bad."""
    obj = req.object or {}
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = req.namespace or meta.get("namespace") or "default"
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    vmi_name = spec.get("vmiName")
    return namespace, vmi_name if isinstance(vmi_name, str) and vmi_name else None


def missing_vmi_name() -> Problem:
    return Problem(
        "InvalidMigration",
        "spec.vmiName is missing or empty: set it to the name of the running VM to migrate",
        "spec.vmiName",
    )


def _envelope(req: ReviewRequest, response: dict) -> dict:
    return {
        "apiVersion": req.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": req.uid, **response},
    }


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _normal(text: str) -> bool:
    """Whether `text` is its own normal form: printable, single inner spaces, none at the ends.

    isprintable() is False for every whitespace but the ASCII space. An ASCII text is checked
    by deleting its printable bytes (in C, twice as fast as isprintable)."""
    if text.isascii():
        printable = not text.encode().translate(None, _PRINTABLE_ASCII)
    else:
        printable = text.isprintable()
    return printable and "  " not in text and text[:1] != " " and text[-1:] != " "


def _clip(text: str) -> str:
    if not _normal(text):
        text = " ".join(text.split())
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 3] + "..."


def allow(req: ReviewRequest, warnings: Iterable[str] = (), ready: Iterable[str] = ()) -> dict:
    """An allowed review, with warnings kubectl prints as `Warning: ...`; `ready`: more of
    them, clipped already (`report_warnings`)."""
    response: dict = {"allowed": True}
    clipped = [*(_clip(w) for w in warnings if w), *ready]
    if clipped:
        response["warnings"] = clipped
    return _envelope(req, response)


def denial_message(vm: str, problems: list[Problem]) -> str:
    """One header, then one problem per line, so it reads well after kubectl's prefix."""
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    header = f"live migration of VM {vm} is not allowed ({count}):"
    return "\n".join([header, *(f"- {p.code}: {p.message}" for p in problems)])


def deny(req: ReviewRequest, vm: str, problems: list[Problem]) -> dict:
    """403 Forbidden listing every problem, with one `details.causes` entry each."""
    causes = []
    for p in problems:
        cause = {"reason": p.code, "message": p.message}
        if p.field:
            cause["field"] = p.field
        causes.append(cause)
    status = {
        "code": 403,
        "reason": "Forbidden",
        "message": denial_message(vm, problems),
        "details": {"causes": causes},
    }
    if req.name:
        status["details"]["name"] = req.name
    status["details"]["group"] = VMIM_GROUP
    status["details"]["kind"] = VMIM_RESOURCE
    return _envelope(req, {"allowed": False, "status": status})


def report_warnings(report: Report) -> list[str]:
    """What an allowed migration should know: its deadlines, and a single possible target;
    clipped as `allow` clips warnings (the deadlines' texts are checked once for each)."""
    out = []
    ready = True
    t = report.timeouts
    if t is not None:
        deadlines, kubevirt, ready = _deadline_texts(t)
        out.append(f"migration-guard: VM {report.vm} {deadlines}")
        if kubevirt is not None:
            out.append(f"migration-guard: KubeVirt's limits for VM {report.vm}: {kubevirt}")
    if report.target is None and len(report.eligible_nodes) == 1:
        ready = False
        out.append(
            f"migration-guard: only one node can receive VM {report.vm}: {report.eligible_nodes[0]}"
        )
    if ready and _normal(report.vm) and all(len(w) <= MAX_WARNING_CHARS for w in out):
        return out
    return [_clip(w) for w in out]


_SOURCES = {"default": "KubeVirt's default", "kubevirt": "KubeVirt CR", "migrationState": "the VMI"}


def _deadline_texts(t: Timeouts) -> tuple[str, str | None, bool]:
    """The deadline warnings' text after the VM's name, and whether both are in normal form
    (`_normal`): the same for every VM whose Timeouts are the same object
    (engine.migration_timeouts shares them), so made once for each."""
    found = _TEXTS.get((t,))
    if found is not None:
        return found
    deadlines = (
        f"must finish migrating within {t.completion_timeout_seconds}s ({t.data_gib} GiB of "
        f"data) and make progress at least every {t.progress_timeout_seconds}s, or the "
        "migration is aborted"
    )
    kubevirt = _kubevirt_text(t) if t.kubevirt is not None else None
    texts = (deadlines, kubevirt, _normal(deadlines) and (kubevirt is None or _normal(kubevirt)))
    return _TEXTS.put((t,), (), texts)


_TEXTS: IdentityMemo[tuple[str, str | None, bool]] = IdentityMemo()


def _kubevirt_text(t: Timeouts) -> str:
    """KubeVirt's own limits next to migration-guard's, and which fires first (the warning fits
    240 chars)."""
    kv = t.kubevirt
    assert kv is not None
    source = f"MigrationPolicy {kv.policy}" if kv.source == "policy" else _SOURCES[kv.source]
    completion = f"{kv.completion_timeout_seconds}s" if kv.completion_timeout_seconds else "none"
    progress = f"{kv.progress_timeout_seconds}s" if kv.progress_timeout_seconds else "none"
    actions = {"completion": kv.completion_action, "progress": "abort"}
    firsts = (("completion", kv.completion_first), ("progress", kv.progress_first))
    parts = [
        f"KubeVirt's {w} limit fires first ({actions[w]})" for w, who in firsts if who == KUBEVIRT
    ]
    parts += [f"both {w} limits fire together" for w, who in firsts if who == SAME]
    tail = "; ".join(parts) if parts else "migration-guard's limits fire first"
    return (
        f"completion {completion} ({kv.completion_timeout_per_gib}s/GB x {kv.data_gb} GB, "
        f"{source}), progress {progress}; {tail}"
    )


def respond(req: ReviewRequest, report: Report, warn_only: str | None = None) -> dict:
    """The answer for a VMIM CREATE given the rule engine's Report (dry-run answered the same).

    `warn_only`: why problems are let through this time (a setting names it); they become
    warnings instead of a denial. What the policy warns about is always a warning; an exempt VM
    gets one warning saying it was not checked.
    """
    if report.exemption is not None:
        return allow(req, [f"migration-guard did not check VM {report.vm}: {report.exemption}"])
    problems = report.problems()
    if problems and warn_only is None:
        return deny(req, report.vm, problems)
    warned = [f"migration-guard: {p.code} (warn): {p.message}" for p in report.all_warnings()]
    if problems:
        would = [f"migration-guard would deny this migration of VM {report.vm}; {warn_only}"]
        denied = [f"migration-guard: {p.code}: {p.message}" for p in problems]
        return allow(req, would + denied + warned)
    return allow(req, warned, report_warnings(report))


def unchecked(req: ReviewRequest, why: str, policy: str) -> dict:
    """The answer when the cache cannot be trusted: deny (default) or allow with a warning."""
    if policy == "allow":
        return allow(req, [f"migration-guard did not check this migration: {why}"])
    ns, vmi = migration_subject(req)
    problem = Problem("CacheNotReady", f"{why}; retry in a few seconds")
    return deny(req, f"{ns}/{vmi or '?'}", [problem])
