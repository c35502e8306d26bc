"""`migration-guard webhook`: settings, certificates, the watch-fed cache, and gunicorn over TLS.

One gunicorn worker with threads, so there is one cache per pod. The master process prepares the
certificate files (gunicorn checks they exist before binding); the worker builds everything that
runs threads (cache informers, certificate renewal), because threads do not survive a fork.
gunicorn asks our `ssl_context` hook for a context on every new connection, and the hook returns
the CertManager's current context, so a renewed certificate is served from the next handshake on.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gunicorn.app.base import BaseApplication
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from webhook.admission import connection
from webhook.admission.certs import CertManager
from webhook.admission.events import EventRecorder
from webhook.admission.metrics import WebhookMetrics
from webhook.admission.migratability import MigratabilityGauges
from webhook.admission.policyreports import PolicyReportWriter
from webhook.admission.server import Extension, create_app
from webhook.admission.settings import Settings, parse_settings
from webhook.cluster.cache import ClusterCache
from webhook.enforcer.leader import LeaseElector
from webhook.errors import InputError

log = logging.getLogger("migration_guard.serve")


def api_client(settings: Settings) -> k8s.ApiClient:
    """From --kubeconfig / KUBECONFIG, else the in-cluster service account, else ~/.kube/config."""
    if settings.kubeconfig:
        return k8s_config.new_client_from_config(config_file=settings.kubeconfig)
    try:
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config()


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class Runtime:
    """What the worker runs: the cache, the certificates and the app (stopped on worker exit)."""

    def __init__(self, settings: Settings, extensions: Iterable[Extension] = ()) -> None:
        self.api = api_client(settings)
        self._stop = threading.Event()
        self.cache = ClusterCache(self.api, watch_timeout_seconds=settings.watch_timeout_seconds)
        self.certs = CertManager(settings, self.api)
        metrics = WebhookMetrics()
        self.events = EventRecorder(
            self.api,
            instance=socket.gethostname(),
            interval=settings.event_interval_seconds,
            on_drop=metrics.events_dropped.inc,
            on_write=metrics.events_written.inc,
        )
        self.certs.start()
        self.front_proxy = None
        if settings.requestheader_configmap:
            from extension.trust import FrontProxyTrust  # the extension API's callers

            self.front_proxy = FrontProxyTrust(
                self.api, settings.requestheader_configmap, self.certs.set_client_ca
            ).start()
        self.cache.start()
        self.events.start()
        self.app = create_app(
            settings,
            self.cache,
            metrics=metrics,
            extensions=extensions,
            cert_expiry=lambda: self.certs.expiry_timestamp,
            events=self.events,
            front_proxy=self.front_proxy,
        )
        self.reports_lease: LeaseElector | None = None
        writer = None
        if settings.policy_reports:
            self.reports_lease = LeaseElector(
                self.api,
                settings.namespace,
                f"{settings.service_name}-policy-reports",
                identity=socket.gethostname(),
            )
            threading.Thread(target=self.reports_lease.run, args=(self._stop,), daemon=True).start()
            writer = PolicyReportWriter(self.api, self.reports_lease.is_leader)
        self.gauges = MigratabilityGauges(
            self.cache.state,
            self.app.extensions["migration_guard"]["policy"],
            lambda: self.cache.synced,
            interval=settings.migratability_interval_seconds,
            after_round=writer.sync if writer is not None else None,
        )
        metrics.registry.register(self.gauges)
        self.gauges.start()

    def stop(self) -> None:
        self._stop.set()
        self.gauges.stop()
        if self.reports_lease is not None:
            self.reports_lease.release()
        if self.front_proxy is not None:
            self.front_proxy.stop()
        self.cache.stop()
        self.certs.stop()
        self.events.stop()


class WebhookApplication(BaseApplication):
    """gunicorn application: 1 gthread worker, TLS through the CertManager's context."""

    def __init__(self, settings: Settings, extensions: Iterable[Extension] = ()) -> None:
        self.settings = settings
        self.extensions = list(extensions)
        self.runtime: Runtime | None = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings

        def ssl_context(_conf: Any, _default_factory: Any) -> Any:
            assert self.runtime is not None, "TLS requested before the worker loaded the app"
            return self.runtime.certs.ssl_context()

        def pre_request(_worker: Any, req: Any) -> None:
            connection.remember_headers(req.headers)

        def post_request(_worker: Any, _req: Any, _environ: Any, _resp: Any) -> None:
            connection.forget_headers()

        def worker_exit(_server: Any, _worker: Any) -> None:
            if self.runtime is not None:
                self.runtime.stop()

        cert_file, key_file = _cert_paths(s)
        options = {
            "bind": [s.bind],
            "workers": 1,
            "worker_class": "gthread",
            "threads": s.threads,
            "certfile": cert_file,
            "keyfile": key_file,
            "ssl_context": ssl_context,
            # HTTP/1.1 only, as KubeVirt's virt-api (HTTP/2 rapid reset, CVE-2023-44487); the
            # front-proxy headers are read from HTTP/1.1 requests (webhook.admission.connection)
            "http_protocols": "h1",
            "pre_request": pre_request,
            "post_request": post_request,
            "worker_exit": worker_exit,
            "timeout": 30,
            "graceful_timeout": 5,
            "loglevel": s.log_level,
            "proc_name": "migration-guard-webhook",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        _configure_logging(self.settings.log_level)
        self.runtime = Runtime(self.settings, self.extensions)
        return self.runtime.app


def _cert_paths(s: Settings) -> tuple[str, str]:
    if s.tls_cert_file and s.tls_key_file:
        return s.tls_cert_file, s.tls_key_file
    assert s.cert_dir, "cert_dir is set by prepare_certificates"
    return f"{s.cert_dir}/tls.crt", f"{s.cert_dir}/tls.key"


def prepare_certificates(settings: Settings) -> Settings:
    """In the master: make sure the cert files exist (and the Secret, and the caBundle)."""
    if settings.tls_cert_file:
        CertManager(settings, None).refresh()  # fails early on an unreadable cert or key
        return settings
    if not settings.cert_dir:
        settings = dataclasses.replace(
            settings, cert_dir=tempfile.mkdtemp(prefix="migration-guard-certs-")
        )
    CertManager(settings, api_client(settings)).refresh()
    return settings


def run(settings: Settings, extensions: Iterable[Extension] = ()) -> int:
    """Serve until gunicorn exits (SIGTERM/SIGINT); reusable by other entry points."""
    settings = prepare_certificates(settings)
    WebhookApplication(settings, extensions).run()
    return 0


def serve_command(
    command: str, parse: Callable[[list[str]], Settings], argv: Sequence[str] | None
) -> int:
    """Parse settings, then serve the webhook and the extension backend on one app and cache.

    Shared by `migration-guard webhook` and `migration-guard extension` (which differ only in
    their defaults); 2 on bad settings or an unusable environment, with a one-line message.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        settings = parse(argv)
    except InputError as e:
        print(f"migration-guard {command}: {e}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    try:
        from extension.api import register_extension  # the UI backend shares this app and cache

        return run(settings, extensions=[register_extension])
    except (InputError, OSError, k8s_config.ConfigException) as e:
        print(f"migration-guard {command}: {e}", file=sys.stderr)
        return 2
    except (ApiException, TransportError) as e:  # certificate Secret / caBundle at start
        print(f"migration-guard {command}: {_api_failure(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # gunicorn exits this way
        return int(e.code or 0) if isinstance(e.code, int | type(None)) else 1


def _api_failure(e: ApiException | TransportError) -> str:
    """One line for a Kubernetes API call that failed before serving (RBAC, API unreachable)."""
    if isinstance(e, ApiException):
        detail = f"the Kubernetes API answered {e.status} {e.reason}"
    else:
        detail = f"the Kubernetes API is unreachable: {' '.join(str(e).split())}"
    return f"cannot prepare the serving certificate: {detail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `migration-guard webhook`."""
    return serve_command("webhook", parse_settings, argv)


if __name__ == "__main__":
    sys.exit(main())
