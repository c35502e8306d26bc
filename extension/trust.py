"""FrontProxyTrust: kube-apiserver's front-proxy settings, kept current from their ConfigMap.

kube-apiserver publishes its `--requestheader-*` settings in ConfigMap
`kube-system/extension-apiserver-authentication` and rewrites it when they change (a rotated
front-proxy CA, another apiserver joining). Like k8s.io/apiserver's requestheader controller, this
watches that one ConfigMap and applies every change without a restart: the CA goes to the serving
TLS context (`on_client_ca`), the header names to the authenticator (`config`). Until the
ConfigMap is read, or when it sets no requestheader CA, no front proxy is trusted and callers
authenticate with Bearer tokens only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from extension.frontproxy import BadRequestHeaderConfig, RequestHeaderConfig, parse_configmap

log = logging.getLogger("migration_guard.frontproxy")

RETRY_SECONDS = 10.0
WATCH_SECONDS = 60


class FrontProxyTrust:
    """The current RequestHeaderConfig (None: no front proxy), from a watched ConfigMap."""

    def __init__(
        self,
        api: k8s.ApiClient,
        configmap: str,
        on_client_ca: Callable[[str | None], None] = lambda _ca: None,
    ) -> None:
        self.namespace, _, self.name = configmap.partition("/")
        self._core = k8s.CoreV1Api(api)
        self._on_client_ca = on_client_ca
        self._config: RequestHeaderConfig | None = None
        self._problem: str | None = "not read yet"
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> RequestHeaderConfig | None:
        return self._config

    def status(self) -> dict:
        """For /readyz: whether front-proxy callers are served, and why not."""
        config = self._config
        return {
            "configMap": f"{self.namespace}/{self.name}",
            "trusted": config is not None,
            "allowedNames": list(config.allowed_names) if config else [],
            "problem": self._problem,
        }

    def start(self) -> FrontProxyTrust:
        self._read()
        self._thread = threading.Thread(target=self._run, name="front-proxy-trust", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _apply(self, data: dict | None, found: bool = True) -> None:
        try:
            config = parse_configmap(data)
        except BadRequestHeaderConfig as exc:
            # Keep trusting what was valid before: a half-written ConfigMap must not lock out
            # every UI user, nor open the door.
            self._problem = f"ConfigMap {self.namespace}/{self.name}: {exc}"
            log.error("%s; keeping the previous front-proxy settings", self._problem)
            return
        if config is None:
            what = "sets no requestheader-client-ca-file" if found else "does not exist"
            self._problem = f"ConfigMap {self.namespace}/{self.name} {what}"
        else:
            self._problem = None
        if config != self._config:
            self._on_client_ca(config.ca_pem if config else None)
            self._config = config
            log.info(
                "front-proxy callers %s (%s)",
                "trusted" if config else "not trusted",
                self._problem or f"allowed names: {', '.join(config.allowed_names) or 'any'}",
            )

    def _read(self) -> str | None:
        """Read the ConfigMap once; its resourceVersion, or None when it cannot be read."""
        try:
            cm = self._core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                self._apply(None, found=False)
            else:
                self._problem = (
                    f"cannot read ConfigMap {self.namespace}/{self.name}: {exc.status} {exc.reason}"
                )
                log.warning("%s", self._problem)
            return None
        except Exception as exc:  # the API unreachable: retried
            self._problem = f"cannot read ConfigMap {self.namespace}/{self.name}: {exc}"
            log.warning("%s", self._problem)
            return None
        self._apply(cm.data)
        return cm.metadata.resource_version

    def _run(self) -> None:
        while not self._stop.is_set():
            version = self._read()
            if version is None:
                self._stop.wait(RETRY_SECONDS)
                continue
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    self._core.list_namespaced_config_map,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    if event["type"] == "DELETED":
                        self._apply(None, found=False)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._apply(event["object"].data)
            except Exception as exc:  # expired version, dropped connection: read again
                if not self._stop.is_set():
                    log.info("front-proxy ConfigMap watch ended (%s); reading it again", exc)
                    self._stop.wait(1.0)
