"""Certificate renewal while requests flow: several renewals under concurrent load, no failed request.

The real webhook process serves 6 s certificates renewed 3 s before they expire (a new one about
every 3 s). For 12 s, four threads send requests at once on new TLS connections: two straight to
/validate (trusting the CA file), two through kube-apiserver (a dry-run VMIM create, so the API
server's own TLS client with the caBundle calls the webhook). Every request must get the
webhook's answer.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from cryptography import x509
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.harness.registration import WEBHOOK_NAME
from tests.harness.tls import served_certificate
from tests.reliability.support import FIGURES, post_json
from tests.webhook_process import running_webhook

pytestmark = pytest.mark.controlplane

RUN_S = 12.0


def _serial(port: int, ca_file: str) -> int:
    der, _version = served_certificate(port, ca_file)
    return x509.load_der_x509_certificate(der).serial_number


def test_renewals_under_concurrent_requests_fail_none(
    controlplane: ControlPlane, namespace: str
) -> None:
    args = ("--cert-validity", "6s", "--cert-renew-before", "3s", "--cert-check-interval", "1s")
    custom = k8s.CustomObjectsApi(controlplane.api_client())
    served: list[str] = []
    failed: list[str] = []
    serials: set[int] = set()
    lock = threading.Lock()

    with running_webhook(controlplane, *args) as hook:
        hook.label_namespace(controlplane, namespace)
        stop = time.monotonic() + RUN_S

        def direct() -> None:
            while time.monotonic() < stop:
                uid = uuid.uuid4().hex
                review = o.review(o.vmim(namespace, "m", "ghost"), uid=uid)
                try:
                    status, body = post_json(hook.url + "/validate", hook.ca_file, review)
                    ok = status == 200 and body["response"]["uid"] == uid
                    outcome = "ok" if ok else f"{status} {body}"
                except Exception as e:
                    outcome = f"{type(e).__name__}: {e}"
                with lock:
                    (served if outcome == "ok" else failed).append(outcome)

        def through_apiserver() -> None:
            while time.monotonic() < stop:
                body = o.vmim(namespace, f"m-{uuid.uuid4().hex[:8]}", "ghost")
                try:
                    custom.create_namespaced_custom_object(
                        "kubevirt.io",
                        "v1",
                        namespace,
                        "virtualmachineinstancemigrations",
                        body,
                        dry_run="All",
                        _request_timeout=30,
                    )
                    outcome = "allowed a VMIM for a VMI that does not exist"
                except ApiException as e:
                    denied = f'admission webhook \\"{WEBHOOK_NAME}\\" denied'
                    good = e.status == 403 and denied in e.body and "VMINotRunning" in e.body
                    outcome = "ok" if good else f"{e.status} {e.body[:300]}"
                with lock:
                    (served if outcome == "ok" else failed).append(outcome)

        def watch_serials() -> None:
            while time.monotonic() < stop:
                try:
                    serial = _serial(hook.port, str(hook.ca_file))
                except OSError as e:
                    with lock:
                        failed.append(f"handshake: {e}")
                    continue
                with lock:
                    serials.add(serial)
                time.sleep(0.2)

        threads = [threading.Thread(target=f) for f in (direct, direct)]
        threads += [threading.Thread(target=f) for f in (through_apiserver, through_apiserver)]
        threads.append(threading.Thread(target=watch_serials))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert hook.proc.poll() is None
        assert "certificate refresh failed" not in hook.log_text()

    FIGURES.add("requests served (certificate renewal)", len(served) + len(failed))
    FIGURES.add("faults injected", max(0, len(serials) - 1))  # each renewal
    FIGURES.add("decisions wrong or lost", len(failed))
    print(f"renewal: {len(serials)} certificates, {len(served)} requests, {len(failed)} failed")
    assert not failed, failed[:3]
    assert len(serials) >= 4, f"only {len(serials)} certificates served in {RUN_S}s"
    assert len(served) >= 100
