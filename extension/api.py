"""The extension's HTTP API: Harvester's VM actions, the target report and the migration status.

Thin layer: each view authenticates, authorizes in the VM's namespace (before saying whether the
VM exists), then calls the rule engine or the pure helpers of `extension.actions` and
`extension.status`. Every answer is JSON; every failure is `{"error": ...}` (also a Kubernetes
Status, for kubectl) with a 4xx/5xx code chosen here, never a traceback. Decisions use the same
watch-fed cache as the webhook, so the nodes offered here are the nodes the webhook admits.
The same views serve the direct paths (Bearer tokens) and the aggregated API's subresources
(extension.aggregated: through kube-apiserver, as the user it authenticated).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, jsonify, request

from extension import actions, aggregated
from extension.auth import (
    CREATE_VMIMS,
    DELETE_VMIMS,
    GET_VMS,
    LIST_VMIS,
    Authenticator,
    Credentials,
)
from extension.openapi import build_spec
from extension.status import migration_status, subject_uid
from extension.user import AuthError, User
from webhook.admission import connection
from webhook.cluster.kubeapi import Kube, KubeError, kubevirt_path
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.progress import PrometheusSource
from webhook.rules.drain import drain_plan
from webhook.rules.engine import evaluate_migration, migration_timeouts
from webhook.rules.model import Report, TimeoutSettings
from webhook.rules.policy import ALL_DENY, Policy

log = logging.getLogger("migration_guard.extension")

HARVESTER_PREFIX = "/v1/harvester/kubevirt.io.virtualmachines"
NAMESPACED_PREFIX = "/v1/namespaces"
MAX_BODY_BYTES = 64 * 1024
# A status call waits at most this long for Prometheus; without an answer progress shows null.
PROGRESS_QUERY_TIMEOUT_S = 2.0


class StateSource(Protocol):
    """What the extension needs from the webhook's ClusterCache (webhook.cluster.cache.ClusterCache)."""

    state: ClusterState

    @property
    def synced(self) -> bool: ...

    def get_vmi_or_fetch(self, namespace: str, name: str) -> dict | None: ...


@dataclass
class ExtensionContext:
    """Everything the views use; built once per process (see `extension.serve`)."""

    cache: StateSource
    kube: Kube
    authenticator: Authenticator
    timeout_settings: TimeoutSettings = field(default_factory=TimeoutSettings)
    # the webhook's policy in force (rules.policy), so the UI offers what the webhook admits
    policy: Callable[[], Policy] = lambda: ALL_DENY
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # (namespace, vmi name) -> bytes still to copy, when a progress source is known
    data_remaining: Callable[[str, str], int | None] | None = None


class ApiError(Exception):
    """An answer other than success: HTTP `status` with `{"error": message, **extra}`."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# metav1.Status reasons, so kubectl prints our message through the aggregated API.
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    422: "Invalid",
    502: "InternalError",
    503: "ServiceUnavailable",
}


def error_response(status: int, message: str, **extra: Any) -> Response:
    """`{"error": message, **extra}`, which is also a Kubernetes Status (kind, code, reason,
    message): the UI reads `error`, kubectl and client-go read the Status."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": status,
        "reason": _STATUS_REASONS.get(status, "Unknown"),
        "message": message,
        "error": message,
        **extra,
    }
    response = jsonify(body)
    response.status_code = status
    return response


def create_blueprint(ctx: ExtensionContext) -> Blueprint:
    """The extension's routes; `/openapi.json` describes exactly these (tested)."""
    bp = Blueprint("extension", __name__)
    views = _Views(ctx)

    bp.add_url_rule(
        f"{HARVESTER_PREFIX}/<namespace>/<name>",
        "vm_action",
        views.vm_action,
        methods=["POST"],
    )
    bp.add_url_rule(
        f"{NAMESPACED_PREFIX}/<namespace>/virtualmachines/<name>/migration-targets",
        "migration_targets",
        views.migration_targets,
        methods=["GET"],
    )
    bp.add_url_rule(
        f"{NAMESPACED_PREFIX}/<namespace>/virtualmachines/<name>/migration",
        "migration",
        views.migration,
        methods=["GET"],
    )
    bp.add_url_rule("/v1/nodes/<name>/drain-plan", "drain_plan", views.drain_plan, methods=["GET"])
    bp.add_url_rule("/openapi.json", "openapi", views.openapi, methods=["GET"])
    # The same views as an aggregated API, reached through kube-apiserver (extension.aggregated).
    bp.add_url_rule(aggregated.PREFIX, "discovery", views.discovery, methods=["GET"])
    for sub in aggregated.SUBRESOURCES:
        bp.add_url_rule(
            aggregated.route(sub), f"api_{sub.name}", getattr(views, sub.view), methods=[sub.method]
        )

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, **exc.extra)

    @bp.errorhandler(AuthError)
    def _auth_error(exc: AuthError) -> Response:
        response = error_response(exc.status, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="migration-guard"'
        return response

    @bp.errorhandler(actions.BadRequest)
    def _bad_request(exc: actions.BadRequest) -> Response:
        return error_response(400, str(exc))

    @bp.errorhandler(actions.Conflict)
    def _conflict(exc: actions.Conflict) -> Response:
        return error_response(409, str(exc))

    @bp.errorhandler(KubeError)
    def _kube_error(exc: KubeError) -> Response:
        log.warning("Kubernetes API call failed: %s %s", exc.status, exc.message)
        if exc.status == 0:
            return error_response(503, exc.message)
        return error_response(502, f"Kubernetes API answered {exc.status}: {exc.message}")

    return bp


def register(app: Flask, ctx: ExtensionContext) -> None:
    """Add the extension to an app (the webhook's, or the standalone one of `extension.serve`)."""
    app.register_blueprint(create_blueprint(ctx))


class _Views:
    def __init__(self, ctx: ExtensionContext) -> None:
        self.ctx = ctx

    # --- shared steps -------------------------------------------------------------------------

    def _user(self) -> User:
        credentials = Credentials(
            authorization=request.headers.get("Authorization"),
            peer=connection.peer_certificate(request.environ),
            headers=connection.raw_headers() or list(request.headers.items()),
        )
        return self.ctx.authenticator.authenticate(credentials)

    def _vm(self, namespace: str, name: str, fresh: bool = False) -> dict:
        """The VM (cache first unless `fresh`, then the API), or 404."""
        vm = None if fresh else self.ctx.cache.state.vm(namespace, name)
        if vm is None:
            vm = self.ctx.kube.get_or_none(kubevirt_path(namespace, "virtualmachines", name))
        if vm is None:
            raise ApiError(404, f"VirtualMachine {namespace}/{name} not found")
        return vm

    def _require_synced(self) -> None:
        if not self.ctx.cache.synced:
            raise ApiError(503, "the cluster cache is still loading; retry in a few seconds")

    def _evaluate(self, namespace: str, name: str, target: str | None = None) -> Report:
        self._require_synced()
        try:
            self.ctx.cache.get_vmi_or_fetch(namespace, name)
        except Exception as exc:  # the engine then reports VMINotRunning from the cache alone
            log.warning("reading VMI %s/%s failed: %s", namespace, name, exc)
        try:
            return evaluate_migration(
                self.ctx.cache.state,
                namespace,
                name,
                target=target,
                settings=self.ctx.timeout_settings,
                policy=self.ctx.policy(),
            )
        except InputError as exc:
            raise ApiError(
                422,
                f"cannot evaluate VM {namespace}/{name}: {exc}",
                causes=[{"code": "InvalidObject", "message": str(exc), "field": None}],
            ) from None

    # --- views --------------------------------------------------------------------------------

    def openapi(self) -> Response:
        return jsonify(build_spec())

    def discovery(self) -> Response:
        return jsonify(_DISCOVERY)

    def migration_targets(self, namespace: str, name: str) -> Response:
        user = self._user()
        actions.check_names(namespace, name)
        self.ctx.authenticator.authorize(user, namespace, GET_VMS, name)
        self._vm(namespace, name)
        return jsonify(self._evaluate(namespace, name).to_dict())

    def migration(self, namespace: str, name: str) -> Response:
        user = self._user()
        actions.check_names(namespace, name)
        self.ctx.authenticator.authorize(user, namespace, GET_VMS, name)
        vm = self._vm(namespace, name, fresh=True)
        kube = self.ctx.kube
        vmi = kube.get_or_none(kubevirt_path(namespace, "virtualmachineinstances", name))
        listed = kube.get(kubevirt_path(namespace, "virtualmachineinstancemigrations"))
        vmims = actions.vmims_for(listed.get("items") or [], name)
        timeouts = None
        if vmi is not None:
            try:
                timeouts, notes = migration_timeouts(
                    self.ctx.cache.state,
                    vmi,
                    self.ctx.timeout_settings,
                    vm,
                    subject_uid(vmims, vmi),
                )
                for note in notes:
                    log.warning("VM %s/%s: %s", namespace, name, note)
            except InputError as exc:
                log.warning("timeouts of VM %s/%s: %s", namespace, name, exc)
        remaining = None
        if self.ctx.data_remaining is not None:
            try:
                remaining = self.ctx.data_remaining(namespace, name)
            except Exception as exc:  # a progress source is optional; its failure is not ours
                log.warning("progress of VM %s/%s unavailable: %s", namespace, name, exc)
        status = migration_status(vmims, vmi, vm, timeouts, self.ctx.clock(), remaining)
        if status is None:
            raise ApiError(404, f"VirtualMachine {namespace}/{name} has never migrated")
        return jsonify({"vm": f"{namespace}/{name}", "migration": status})

    def vm_action(self, namespace: str, name: str) -> Response:
        user = self._user()
        actions.check_names(namespace, name)
        action = actions.check_action(request.args.get("action"))
        if action == "findMigratableNodes":
            self.ctx.authenticator.authorize(user, namespace, GET_VMS, name)
            self._vm(namespace, name)
            report = self._evaluate(namespace, name)
            blocked = report.blockers and report.exemption is None
            nodes = [] if blocked else report.eligible_nodes
            return jsonify({"nodes": nodes})
        if action == "migrate":
            return self._migrate(user, namespace, name)
        return self._abort(user, namespace, name)

    def drain_plan(self, name: str) -> Response:
        """Every VM of the node and what draining it does (rules.drain); it shows VMs of every
        namespace, so it needs `list virtualmachineinstances` cluster-wide."""
        user = self._user()
        actions.check_names("default", name)
        self.ctx.authenticator.authorize(user, "", LIST_VMIS)
        self._require_synced()
        state = self.ctx.cache.state
        if state.node(name) is None:
            raise ApiError(404, f"Node {name} not found")
        try:
            plan = drain_plan(
                state, name, policy=self.ctx.policy(), settings=self.ctx.timeout_settings
            )
        except InputError as exc:
            raise ApiError(422, f"cannot plan the drain of node {name}: {exc}") from None
        return jsonify(plan.to_dict())

    def migrate(self, namespace: str, name: str) -> Response:
        user = self._user()
        actions.check_names(namespace, name)
        return self._migrate(user, namespace, name)

    def abort(self, namespace: str, name: str) -> Response:
        user = self._user()
        actions.check_names(namespace, name)
        return self._abort(user, namespace, name)

    def _migrate(self, user: User, namespace: str, name: str) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        node = actions.migrate_target(actions.parse_json_body(request.get_data()))
        self.ctx.authenticator.authorize(user, namespace, CREATE_VMIMS)
        self._vm(namespace, name)
        report = self._evaluate(namespace, name, target=node)
        problems = report.problems()
        if problems and not self.ctx.policy().audit:  # in audit mode the webhook admits it
            raise ApiError(
                422,
                f"live migration of VM {namespace}/{name} is not allowed",
                causes=actions.causes(problems),
                **_target_detail(report),
            )
        body = actions.build_vmim(namespace, name, node, user.username)
        try:
            created = self.ctx.kube.post(
                kubevirt_path(namespace, "virtualmachineinstancemigrations"), body
            )
        except KubeError as exc:
            if exc.status not in (400, 403, 422):
                raise
            # Refused by admission (this webhook, another webhook, a ValidatingAdmissionPolicy)
            # or by the API server: the caller gets its causes, or its message as the one cause.
            reason = exc.body.get("reason") or "Denied"
            relayed = exc.causes() or [{"code": reason, "message": exc.message, "field": None}]
            raise ApiError(
                422,
                f"the API server refused the migration of VM {namespace}/{name}: {exc.message}",
                causes=relayed,
            ) from None
        meta = created.get("metadata") or {}
        log.info(
            "user %s started migration %s/%s of VM %s to %s",
            user.username,
            namespace,
            meta.get("name"),
            name,
            node or "any node",
        )
        response = jsonify(
            {
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "vmiName": name,
                "targetNode": node,
                "timeouts": report.timeouts.to_dict() if report.timeouts else None,
            }
        )
        response.status_code = 201
        return response

    def _abort(self, user: User, namespace: str, name: str) -> Response:
        self.ctx.authenticator.authorize(user, namespace, DELETE_VMIMS)
        self._vm(namespace, name)
        path = kubevirt_path(namespace, "virtualmachineinstancemigrations")
        for _attempt in range(3):
            listed = self.ctx.kube.get(path)
            target = actions.abort_target(
                actions.vmims_for(listed.get("items") or [], name), f"{namespace}/{name}"
            )
            try:
                self.ctx.kube.delete(f"{path}/{target.name}", actions.delete_options(target))
            except KubeError as exc:
                if exc.status in (404, 409):  # changed or gone since we read it: look again
                    continue
                raise
            log.info(
                "user %s aborted migration %s/%s (phase %s) of VM %s",
                user.username,
                namespace,
                target.name,
                target.phase,
                name,
            )
            return jsonify(
                {"aborted": target.name, "uid": target.uid, "phase": target.phase, "vm": name}
            )
        raise ApiError(409, f"the migration of VM {namespace}/{name} kept changing; retry")


_DISCOVERY = aggregated.discovery()


def _target_detail(report: Report) -> dict:
    """For a refused target: every reason of that node, with its code (as the lookup lists)."""
    verdict = report.target_verdict() if report.target else None
    if verdict is None:
        return {}
    return {"target": verdict.name, "targetReasons": [r.to_dict() for r in verdict.reasons]}


def register_extension(app: Flask, cache: Any, settings: Any) -> None:
    """The webhook server's extension hook (`create_app(..., extensions=[register_extension])`).

    Uses the cache's own API client (the server's identity) for reviews and VMIM writes, the
    server's timeout settings, so the deadlines shown are the ones the webhook warns about, and
    the front-proxy trust the server keeps (`app.extensions["migration_guard"]["front_proxy"]`,
    an extension.trust.FrontProxyTrust, absent when no front proxy is trusted).
    """
    kube = Kube(cache.api)
    trust = app.extensions["migration_guard"].get("front_proxy")
    ctx = ExtensionContext(
        cache=cache,
        kube=kube,
        authenticator=Authenticator(kube, front_proxy=lambda: trust.config if trust else None),
        timeout_settings=settings.timeouts,
        policy=app.extensions["migration_guard"]["policy"],
        data_remaining=_data_remaining_from(settings.prometheus_url),
    )
    register(app, ctx)


def _data_remaining_from(prometheus_url: str) -> Callable[[str, str], int | None] | None:
    """Data remaining of one VMI's migration, from the Prometheus the enforcer reads too."""
    if not prometheus_url:
        return None
    source = PrometheusSource(prometheus_url, timeout=PROGRESS_QUERY_TIMEOUT_S)
    return lambda namespace, name: source.fetch().get((namespace, name))
