"""Run `migration-guard webhook` as a real subprocess registered with the test kube-apiserver.

`running_webhook(...)` creates a ValidatingWebhookConfiguration (url https://127.0.0.1:PORT,
namespaceSelector on a label so other tests' namespaces are not affected), starts the server,
waits until kube-apiserver trusts it (the caBundle the server wrote) and its cache is synced,
and always stops the process and deletes the configuration at the end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.processes import stop_process
from tests.harness.registration import local_webhook_configuration

REPO = Path(__file__).resolve().parent.parent


@dataclass
class WebhookProcess:
    proc: subprocess.Popen
    port: int
    config_name: str
    selector_label: str
    selector_value: str
    secret_namespace: str
    secret_name: str
    log: Path
    ca_file: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(self.url + path, context=ctx, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def label_namespace(self, plane: ControlPlane, namespace: str) -> None:
        result = plane.kubectl(
            "label", "namespace", namespace, f"{self.selector_label}={self.selector_value}"
        )
        assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def running_webhook(plane: ControlPlane, *extra_args: str) -> Iterator[WebhookProcess]:
    api = plane.api_client()
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    config_name = f"migration-guard-test-{tag}"
    secret_ns = f"mg-system-{tag}"
    label, value = "migration-guard.io/test-webhook", tag
    assert plane.kubectl("create", "namespace", secret_ns).returncode == 0
    adm = k8s.AdmissionregistrationV1Api(api)
    config = json.dumps(local_webhook_configuration(config_name, port, {label: value}))
    created = plane.kubectl("create", "-f", "-", input=config)
    assert created.returncode == 0, created.stderr
    workdir = Path(tempfile.mkdtemp(prefix="mg-webhook-test-"))
    log = workdir / "webhook.log"
    args = [
        str(REPO / ".venv/bin/migration-guard"),
        "webhook",
        "--bind",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        str(plane.kubeconfig),
        "--namespace",
        secret_ns,
        "--webhook-config-name",
        config_name,
        "--cert-hosts",
        "127.0.0.1,localhost",
        "--cert-dir",
        str(workdir / "certs"),
        "--apiservice-name",
        "",  # the cluster's one APIService of the group is a test's own (test_aggregated_api)
        *extra_args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    hook = WebhookProcess(
        proc,
        port,
        config_name,
        label,
        value,
        secret_ns,
        "migration-guard-webhook-tls",
        log,
        workdir / "ca.crt",
    )
    try:
        _wait_ready(hook, adm, timeout=60)
        yield hook
    finally:
        stop_process(proc)
        with contextlib.suppress(ApiException):
            adm.delete_validating_webhook_configuration(config_name)


def _wait_ready(hook: WebhookProcess, adm: k8s.AdmissionregistrationV1Api, timeout: float) -> None:
    """The caBundle is in the configuration and /readyz says the cache synced."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if hook.proc.poll() is not None:
            raise RuntimeError(f"webhook exited with {hook.proc.returncode}:\n{hook.log_text()}")
        config = adm.read_validating_webhook_configuration(hook.config_name)
        bundle = config.webhooks[0].client_config.ca_bundle
        if bundle:
            hook.ca_file.write_bytes(base64.b64decode(bundle))
            try:
                status, last = hook.get("/readyz")
                if status == 200:
                    return
            except OSError as e:
                last = str(e)
        time.sleep(0.1)
    raise RuntimeError(f"webhook not ready in {timeout}s ({last}):\n{hook.log_text()}")
