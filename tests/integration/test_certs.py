"""Certificates against the real API server: the shared Secret, the caBundle, and renewal."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import uuid

import pytest
from cryptography import x509

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.harness.registration import WEBHOOK_NAME
from tests.harness.tls import served_certificate
from tests.webhook_process import running_webhook
from webhook.admission import certs
from webhook.admission.settings import Settings

pytestmark = pytest.mark.controlplane


def test_replicas_racing_share_one_secret(controlplane: ControlPlane, namespace: str):
    settings = Settings(namespace=namespace, cert_secret_name="tls", cert_hosts=("127.0.0.1",))
    results: list[certs.CertBundle] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            store = certs.SecretStore(controlplane.api_client(), namespace, "tls")
            results.append(store.ensure(settings))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({b.cert for b in results}) == 1, "replicas must serve the same certificate"
    stored, _ = certs.SecretStore(controlplane.api_client(), namespace, "tls").read()
    assert stored == results[0]
    out = controlplane.kubectl("get", "secret", "tls", "-n", namespace, "-o", "json")
    assert json.loads(out.stdout)["type"] == "kubernetes.io/tls"


def test_ca_bundle_written_into_every_webhook(controlplane: ControlPlane):
    name = f"mg-cabundle-{uuid.uuid4().hex[:6]}"
    hook = {
        "clientConfig": {"url": "https://127.0.0.1:1/validate"},
        "rules": [
            {
                "apiGroups": ["kubevirt.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["virtualmachineinstancemigrations"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"never": "matches"}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{"name": "a.example.com", **hook}, {"name": "b.example.com", **hook}],
    }
    assert controlplane.kubectl("create", "-f", "-", input=json.dumps(config)).returncode == 0
    try:
        bundle = certs.plan_bundle(None, Settings(), certs._utcnow())
        assert certs.patch_ca_bundle(controlplane.api_client(), name, bundle.ca_bundle)
        got = json.loads(
            controlplane.kubectl("get", "validatingwebhookconfiguration", name, "-o", "json").stdout
        )
        written = {
            base64.b64decode(w["clientConfig"]["caBundle"]).decode() for w in got["webhooks"]
        }
        assert written == {bundle.ca_bundle}
        assert not certs.patch_ca_bundle(controlplane.api_client(), name + "-missing", "x")
    finally:
        controlplane.kubectl("delete", "validatingwebhookconfiguration", name)


def _serial(port: int, ca_file: str) -> int:
    der, version = served_certificate(port, ca_file)
    assert version in ("TLSv1.2", "TLSv1.3")
    return x509.load_der_x509_certificate(der).serial_number


def test_renewal_with_short_lived_cert_fails_no_request(controlplane: ControlPlane, namespace: str):
    args = ("--cert-validity", "6s", "--cert-renew-before", "3s", "--cert-check-interval", "1s")
    with running_webhook(controlplane, *args) as hook:
        hook.label_namespace(controlplane, namespace)
        ca = str(hook.ca_file)
        # A keep-alive connection opened before renewal keeps working through renewals (used
        # at least every second: gunicorn closes connections idle for 2 s).
        kept = http.client.HTTPSConnection(
            "127.0.0.1", hook.port, context=ssl.create_default_context(cafile=ca), timeout=5
        )
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b'{"status":"ok"}\n'
        serials, answers = set(), []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            serials.add(_serial(hook.port, ca))
            vmim = o.vmim(namespace, f"m-{uuid.uuid4().hex[:6]}", "ghost")
            result = controlplane.kubectl(
                "create", "-f", "-", "--dry-run=server", input=json.dumps(vmim)
            )
            answers.append(result.stderr)
            kept.request("GET", "/healthz")
            assert kept.getresponse().read() == b'{"status":"ok"}\n'
        kept.close()
        # ~6 s certs renewed 3 s before expiry: a new one every ~3 s.
        assert len(serials) >= 3, f"saw serials {serials}"
        # Every request went through kube-apiserver -> TLS -> webhook and got the webhook's answer.
        failed = [a for a in answers if f'"{WEBHOOK_NAME}" denied the request' not in a]
        assert not failed, failed[:2]
        assert all("VMINotRunning" in a for a in answers)
        assert len(answers) >= 10
        print(f"renewal: {len(serials)} certificates served, {len(answers)} requests, 0 failed")
        assert "certificate refresh failed" not in hook.log_text()
        stored = json.loads(
            controlplane.kubectl(
                "get", "secret", hook.secret_name, "-n", hook.secret_namespace, "-o", "json"
            ).stdout
        )
        cert_pem = base64.b64decode(stored["data"]["tls.crt"])
        assert x509.load_pem_x509_certificate(cert_pem).serial_number in serials
