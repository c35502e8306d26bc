"""The webhook's Flask app: /validate, /healthz, /readyz, /metrics, plus extension blueprints.

Extension hook: `create_app(..., extensions=[register_extension])` calls each
`register_extension(app, cache, settings)` after the webhook routes exist, so extension/ can add
blueprints that read the same cache. They also find `app.extensions["migration_guard"]`, a dict
with "cache", "settings", "metrics", "front_proxy" (the front-proxy trust, or None) and
"policy" (a function: the rules.policy.Policy in force, as the webhook decides with it). `extra_blueprints` registers ready-made blueprints.

Every answer is JSON; nothing returns a 500 or a traceback. An unexpected error during a decision
denies the migration (fail closed) with a message, so kubectl shows why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec
from flask import Blueprint, Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from webhook.admission import review
from webhook.admission.events import EventRecorder
from webhook.admission.memo import ReportMemo, memo_key
from webhook.admission.metrics import WebhookMetrics
from webhook.admission.notices import notices, policy_notices
from webhook.admission.review import MalformedReview, ReviewRequest
from webhook.admission.settings import Settings
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules.engine import evaluate_migration
from webhook.rules.model import Problem, Report
from webhook.rules.origin import Origin, migration_origin
from webhook.rules.policy import ALL_DENY, Policy, PolicySource

log = logging.getLogger("migration_guard.server")
# A refused body up to this size is read and dropped so the client sees the 413 (see below).
MAX_DRAIN_BYTES = 16 * 1024 * 1024


class TrustStatus(Protocol):
    """What /readyz shows of the front-proxy trust (extension.trust.FrontProxyTrust)."""

    def status(self) -> dict: ...


class Cache(Protocol):
    """What the server needs from a cache (ClusterCache, or StaticCache in unit tests)."""

    state: ClusterState

    @property
    def synced(self) -> bool: ...

    def age_seconds(self) -> float: ...

    def status(self) -> dict: ...

    def get_vmi_or_fetch(self, namespace: str, name: str) -> dict | None: ...


Extension = Callable[[Flask, Any, Settings], None]


def decide(
    cache: Cache,
    settings: Settings,
    req: ReviewRequest,
    memo: ReportMemo | None = None,
    events: EventRecorder | None = None,
    metrics: WebhookMetrics | None = None,
    policy: Policy = ALL_DENY,
) -> dict:
    """The AdmissionReview answer for one parsed request (the cache must be trusted by now).

    `policy` (rules.policy) says what each of migration-guard's rules does and who is exempt;
    `memo` reuses the Report of an identical request from KubeVirt on an unchanged cluster (its
    retries); `events` records what operators must see of migrations KubeVirt started
    (webhook.admission.notices), except for dry runs.
    """
    namespace, vmi_name = review.migration_subject(req)
    if vmi_name is None:
        return review.deny(req, f"{namespace}/?", [review.missing_vmi_name()])
    try:
        cache.get_vmi_or_fetch(namespace, vmi_name)
    except Exception as e:  # the rules then report the VMI as missing; log why
        log.warning("could not read VMI %s/%s from the API: %s", namespace, vmi_name, e)
    vm = f"{namespace}/{vmi_name}"
    try:
        origin = migration_origin(
            req.object or {}, req.username, settings.kubevirt_controller_users
        )
        subject = (namespace, vmi_name)
        report = _report(cache.state, settings, req, subject, origin, policy, memo, metrics)
    except InputError as e:
        return review.deny(req, vm, [Problem("InvalidObject", str(e))])
    warn_only = settings.warn_only(origin) or (AUDIT_WARNING if policy.audit else None)
    if origin.by_kubevirt:
        _record_kubevirts(cache.state, req, subject, report, origin, warn_only, events, metrics)
    if not report.problems() or warn_only is not None:  # admitted: say what it was let through with
        _record_warnings(cache.state, req, subject, report, origin, policy, events, metrics)
    return review.respond(req, report, warn_only)


AUDIT_WARNING = "--policy-mode=audit lets it through"


def _report(
    state: ClusterState,
    settings: Settings,
    req: ReviewRequest,
    subject: tuple[str, str],
    origin: Origin,
    policy: Policy,
    memo: ReportMemo | None,
    metrics: WebhookMetrics | None,
) -> Report:
    """The rule engine's Report; KubeVirt's repeats come from the memo (people rarely repeat)."""
    namespace, vmi_name = subject

    def compute() -> Report:
        return evaluate_migration(
            state, namespace, vmi_name, vmim=req.object, settings=settings.timeouts, policy=policy
        )

    if memo is None or not origin.by_kubevirt:
        return compute()
    key = memo_key(namespace, vmi_name, req.object)
    report, reused = memo.report(key, state.generation, compute)
    if metrics is not None and reused:
        metrics.memo_hits.inc()
    return report


def _record_kubevirts(
    state: ClusterState,
    req: ReviewRequest,
    subject: tuple[str, str],
    report: Report,
    origin: Origin,
    warn_only: str | None,
    events: EventRecorder | None,
    metrics: WebhookMetrics | None,
) -> None:
    """Count a migration KubeVirt started, and queue the Events operators must see of it."""
    problems = report.problems()
    if metrics is not None:
        result = "allowed" if not problems else ("warned" if warn_only else "denied")
        metrics.kubevirt_migrations.labels(origin.kind, result).inc()
    if events is None or req.dry_run:
        return
    vmi = state.vmi(*subject)
    node = state.node(origin.node or report.source_node or "")
    for n in notices(origin, report.vm, problems, warn_only, vmi, node):
        events.record(n.involved, n.type, n.reason, n.message)


def _record_warnings(
    state: ClusterState,
    req: ReviewRequest,
    subject: tuple[str, str],
    report: Report,
    origin: Origin,
    policy: Policy,
    events: EventRecorder | None,
    metrics: WebhookMetrics | None,
) -> None:
    """For an admitted migration: count what the policy let through, and put it on the VMI
    (KubeVirt's own migrations let through with their problems are on it already)."""
    warned = report.all_warnings() + (report.problems() if policy.audit else [])
    if not warned and report.exemption is None:  # most migrations: nothing to count or to say
        return
    if metrics is not None:
        for problem in warned:
            metrics.policy_warnings.labels(problem.code).inc()
        if report.exemption is not None:
            metrics.exempt.inc()
    if events is None or req.dry_run:
        return
    if origin.by_kubevirt:
        warned = report.all_warnings()
    why = AUDIT_WARNING if policy.audit and report.problems() else "its policy warns about them"
    for n in policy_notices(report.vm, warned, why, state.vmi(*subject)):
        events.record(n.involved, n.type, n.reason, n.message)


def cache_distrust(cache: Cache, settings: Settings) -> str | None:
    """Why the cache cannot be trusted now, or None."""
    if not cache.synced:
        pending = [k for k, v in cache.status().items() if not v.get("synced")]
        return "migration-guard's cluster cache has not finished its first sync" + (
            f" (waiting for {', '.join(pending)})" if pending else ""
        )
    age = cache.age_seconds()
    if age > settings.max_cache_age_seconds:
        return (
            f"migration-guard's cluster cache is {age:.0f} s old "
            f"(limit {settings.max_cache_age_seconds:.0f} s): it lost its watch on the API server"
        )
    return None


_ENCODER = msgspec.json.Encoder()


def review_response(review_out: dict) -> Response:
    """An AdmissionReview answer as JSON (msgspec: a third of what flask.jsonify costs, and
    every review is answered with one)."""
    return Response(_ENCODER.encode(review_out), mimetype="application/json")


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": error, "message": message, "code": status}), status


def create_app(
    settings: Settings,
    cache: Cache,
    *,
    metrics: WebhookMetrics | None = None,
    extensions: Iterable[Extension] = (),
    extra_blueprints: Iterable[Blueprint] = (),
    cert_expiry: Callable[[], float] | None = None,
    events: EventRecorder | None = None,
    front_proxy: TrustStatus | None = None,
) -> Flask:
    """The Flask app; see the module docstring for the extension hook."""
    app = Flask("migration_guard")
    # A path with `//` or a missing trailing slash is a 404 naming it, not an HTML redirect:
    # API clients (kube-apiserver, the UI) do not follow redirects to another spelling.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    metrics = metrics or WebhookMetrics()
    metrics.bind_cache(lambda: cache.age_seconds(), lambda: cache.synced)
    if cert_expiry is not None:
        metrics.bind_cert_expiry(cert_expiry)
    policies = PolicySource(settings.policy, lambda p: metrics.show_policy(p.profile, p.mode))

    def current_policy() -> Policy:
        return policies.policy(cache.state.harvester_server_version())

    app.extensions["migration_guard"] = {
        "cache": cache,
        "settings": settings,
        "metrics": metrics,
        "front_proxy": front_proxy,
        "policy": current_policy,
    }
    memo = ReportMemo()

    @app.post("/validate")
    def validate() -> Any:
        started = time.perf_counter()
        raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
        req = review.read_review(raw)
        if req is None:  # not a well-formed review: say what is wrong with it
            try:
                body = json.loads(raw)
            except ValueError as e:
                metrics.count_request("", "", "invalid")
                return _error(400, "BadRequest", f"the body is not JSON: {e}")
            except RecursionError:
                metrics.count_request("", "", "invalid")
                return _error(400, "BadRequest", "the body is JSON nested too deeply to read")
            try:
                req = review.parse_review(body)
            except MalformedReview as e:
                metrics.count_request("", "", "invalid")
                return _error(400, "BadRequest", f"malformed AdmissionReview: {e}")
        if not req.is_migration_create:
            metrics.count_request(req.kind, req.operation, "ignored")
            return review_response(review.allow(req))
        why = cache_distrust(cache, settings)
        try:
            if why is not None:
                out = review.unchecked(req, why, settings.stale_cache_policy)
            else:
                out = decide(cache, settings, req, memo, events, metrics, current_policy())
        except Exception as e:
            log.exception("decision failed for %s", req.uid)
            problem = Problem(
                "InternalError",
                f"migration-guard could not evaluate this migration "
                f"({type(e).__name__}: {e}); retry, and see the webhook's log if it persists",
            )
            ns, vmi = review.migration_subject(req)
            out = review.deny(req, f"{ns}/{vmi or '?'}", [problem])
        response = out["response"]
        result = "allowed" if response["allowed"] else "denied"
        metrics.count_request(req.kind, req.operation, result)
        for cause in (response.get("status") or {}).get("details", {}).get("causes", []):
            metrics.denials.labels(cause["reason"]).inc()
        metrics.latency.observe(time.perf_counter() - started)
        return review_response(out)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Any:
        age = cache.age_seconds()
        informers = cache.status()
        detail = {
            "ready": cache.synced,
            "cacheSynced": cache.synced,
            "cacheAgeSeconds": None if math.isinf(age) else round(age, 3),
            "cacheStale": cache_distrust(cache, settings),
            "informers": informers,
            # optional kinds whose CRD is not installed: none of them, and still ready
            "notServed": sorted(k for k, v in informers.items() if v.get("served") is False),
        }
        if front_proxy is not None:  # informative: Bearer callers are served either way
            detail["frontProxy"] = front_proxy.status()
        if cache.synced:
            detail["policy"] = current_policy().to_dict()
        return jsonify(detail), 200 if cache.synced else 503

    @app.get("/metrics")
    def metrics_endpoint() -> Any:
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        code = e.code or 400
        if code == 413:
            message = f"the request body is larger than {settings.max_body_bytes} bytes"
        else:
            message = e.description or e.name
        return _error(code, e.name.replace(" ", ""), message)

    @app.after_request
    def drain_refused_body(response: Response) -> Response:
        """Read and drop the unread body of a refused large request (bounded), so the client
        receives the 413 instead of a connection reset when the server closes the socket."""
        if response.status_code == 413:
            remaining = min(request.content_length or 0, MAX_DRAIN_BYTES)
            stream = request.environ.get("wsgi.input")
            with contextlib.suppress(Exception):
                while stream is not None and remaining > 0:
                    chunk = stream.read(min(65536, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(503, "Unavailable", f"internal error ({type(e).__name__}); see the log")

    for blueprint in extra_blueprints:
        app.register_blueprint(blueprint)
    for extension in extensions:
        extension(app, cache, settings)
    return app
