"""`migration-guard enforcer`: wire settings, informers, progress source, Lease and HTTP endpoints.

Threads: one informer per kind (VMIM, VMI, VM; and, cluster-wide, KubeVirt CRs and
MigrationPolicies for KubeVirt's own limits) into a ClusterState, the Lease elector, the check
loop, the KubeVirt limits check, and a small HTTP server for /metrics, /healthz and /readyz. SIGTERM/SIGINT stop them all and
hand the Lease back so a standby takes over at once.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from webhook.cluster.informer import Informer
from webhook.cluster.resources import RESOURCES
from webhook.cluster.state import KUBEVIRT, MIGRATION_POLICY, VM, VMI, VMIM, ClusterState
from webhook.enforcer.kubevirt_check import KubeVirtLimitsCheck
from webhook.enforcer.leader import LeaseElector
from webhook.enforcer.metrics import EnforcerMetrics
from webhook.enforcer.runner import Enforcer
from webhook.enforcer.settings import EnforcerSettings, parse_settings
from webhook.errors import InputError
from webhook.progress import ProgressSource, PrometheusSource, ScrapeSource

log = logging.getLogger("migration_guard.enforcer")

WATCHED = (VMIM, VMI, VM)
# Cluster-wide whatever --watch-namespace says: KubeVirt's limits for every migration.
WATCHED_CLUSTER = (KUBEVIRT, MIGRATION_POLICY)


def make_source(settings: EnforcerSettings) -> ProgressSource | None:
    """virt-handler scraping when URLs are given, else Prometheus when a URL is set, else none."""
    timeout = settings.progress_timeout_http_seconds
    if settings.virt_handler_urls:
        return ScrapeSource(list(settings.virt_handler_urls), timeout)
    if settings.prometheus_url:
        return PrometheusSource(settings.prometheus_url, timeout)
    return None


def api_client(kubeconfig: str | None) -> k8s.ApiClient:
    """From the kubeconfig when given, else in-cluster config."""
    configuration = k8s.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            raise InputError("no --kubeconfig given and not running in a cluster") from None
    return k8s.ApiClient(configuration)


def start_informers(
    api: k8s.ApiClient, state: ClusterState, namespace: str | None
) -> list[Informer]:
    """One informer per kind; `namespace` limits VMIMs, VMIs and VMs to one namespace."""
    informers = []
    for kind in WATCHED + WATCHED_CLUSTER:
        r = RESOURCES[kind]
        list_fn = r.list_fn(api, namespace if kind in WATCHED else None)
        informer = Informer(state, kind, list_fn, api_version=r.api_version, optional=r.optional)
        informers.append(informer.start())
    return informers


class _Handler(BaseHTTPRequestHandler):
    enforcer: Enforcer
    limits: KubeVirtLimitsCheck | None = None

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, doc: dict) -> None:
        self._send(code, json.dumps(doc, sort_keys=True).encode() + b"\n", "application/json")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        enforcer = self.enforcer
        if path == "/metrics":
            self._send(200, enforcer.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/healthz":
            alive = enforcer.alive()
            self._json(200 if alive else 503, {"alive": alive, "lastCheck": enforcer.last_check})
        elif path == "/readyz":
            status = enforcer.status()
            if self.limits is not None:
                status["kubevirtLimits"] = self.limits.status()
            self._json(200 if status["ready"] else 503, status)
        else:
            self._json(404, {"error": f"no such path {path!r}; try /metrics, /healthz, /readyz"})

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


def serve_http(
    enforcer: Enforcer, bind: str, limits: KubeVirtLimitsCheck | None = None
) -> ThreadingHTTPServer:
    host, _, port = bind.rpartition(":")
    handler = type("Handler", (_Handler,), {"enforcer": enforcer, "limits": limits})
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="enforcer-http", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Run the enforcer until SIGTERM/SIGINT; 2 on bad settings, 0 on a clean stop."""
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except InputError as err:
        print(f"migration-guard enforcer: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        api = api_client(settings.kubeconfig)
    except (InputError, OSError, k8s_config.ConfigException) as err:
        print(f"migration-guard enforcer: cannot load Kubernetes config: {err}", file=sys.stderr)
        return 2
    state = ClusterState()
    stop = threading.Event()
    elector = LeaseElector(
        api,
        settings.lease_namespace,
        settings.lease_name,
        settings.identity,
        settings.lease_duration_seconds,
    )
    informers = start_informers(api, state, settings.watch_namespace)
    enforcer = Enforcer(
        settings,
        api,
        state,
        synced=lambda: all(i.synced for i in informers),
        source=make_source(settings),
        elector=elector,
        metrics=EnforcerMetrics(),
    )
    policies = next(i for i in informers if i.kind == MIGRATION_POLICY)
    limits = KubeVirtLimitsCheck(
        settings.timeout_settings(),
        state,
        enforcer.metrics,
        synced=lambda: all(i.synced for i in informers),
        policies_served=lambda: not policies.missing,
    )
    try:
        server = serve_http(enforcer, settings.bind, limits)
    except OSError as err:
        print(f"migration-guard enforcer: cannot listen on {settings.bind}: {err}", file=sys.stderr)
        for informer in informers:
            informer.stop(1.0)
        return 2

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    lease = threading.Thread(target=elector.run, args=(stop,), name="lease", daemon=True)
    lease.start()
    log.info(
        "enforcer %s started: completion %d s/GiB, progress %d s, interval %.1f s, dry-run %s, "
        "progress source %s, lease %s/%s, listening on %s",
        settings.identity,
        settings.completion_timeout_per_gib,
        settings.progress_timeout_seconds,
        settings.check_interval_seconds,
        settings.dry_run,
        enforcer.progress.description,
        settings.lease_namespace,
        settings.lease_name,
        settings.bind,
    )
    loop = threading.Thread(target=enforcer.run, args=(stop,), name="check-loop", daemon=True)
    loop.start()
    threading.Thread(
        target=limits.run,
        args=(stop, max(1.0, settings.check_interval_seconds)),
        name="kubevirt-limits",
        daemon=True,
    ).start()
    while not stop.wait(0.5):
        pass
    loop.join(5.0)
    lease.join(5.0)
    elector.release()
    server.shutdown()
    for informer in informers:
        informer.stop(1.0)
    log.info("enforcer %s stopped", settings.identity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
