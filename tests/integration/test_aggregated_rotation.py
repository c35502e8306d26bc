"""Rotations under the aggregated API, without a restart: the front proxy's CA, and the backend's
own serving CA reaching the APIService's caBundle (the real kube-apiserver, as in
test_aggregated_api, in a module of its own: it registers its own server for the group)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error

import pytest

from extension import aggregated
from tests.harness.pki import FRONT_PROXY_CLIENT, client_cert, new_ca
from tests.integration.test_aggregated_api import ca_bundle, direct, register, served, vm_path
from tests.integration.test_extension import kubectl_ok, wait_for
from tests.webhook_process import running_webhook

pytestmark = pytest.mark.controlplane


def test_rotations_need_no_restart(controlplane, namespace, tmp_path):
    """A new requestheader CA in the ConfigMap is honoured at once, and a new serving CA reaches
    the APIService's caBundle. The ConfigMap is a copy the test owns (kube-apiserver rewrites
    its own); the serving CA lives 12 s, so it is replaced within a few seconds."""
    published = json.loads(
        kubectl_ok(
            controlplane,
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        )
    )["data"]
    copy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "front-proxy", "namespace": namespace},
        "data": published,
    }
    controlplane.apply_yaml(json.dumps(copy))
    args = (
        "--apiservice-name",
        aggregated.APISERVICE_NAME,
        "--requestheader-configmap",
        f"{namespace}/front-proxy",
        "--ca-validity",
        "12s",
        "--cert-validity",
        "4s",
        "--cert-renew-before",
        "2s",
        "--cert-check-interval",
        "1s",
    )
    with running_webhook(controlplane, *args) as hook:
        register(controlplane, hook)
        try:
            first = wait_for(lambda: ca_bundle(controlplane), timeout=20, what="the caBundle")
            served(controlplane, aggregated.PREFIX)
            rotated = wait_for(
                lambda: (b := ca_bundle(controlplane)) != first and b,
                timeout=30,
                what="a new serving CA in the APIService",
            )
            assert rotated.count("BEGIN CERTIFICATE") >= 1
            served(controlplane, aggregated.PREFIX)  # kube-apiserver trusts the new CA

            # the front proxy's CA rotates: certificates of the new CA are trusted from then on
            new_ca_cert, new_ca_key = new_ca(tmp_path, "rotated-front-proxy-ca")
            proxy = client_cert(tmp_path, new_ca_cert, new_ca_key, FRONT_PROXY_CLIENT)
            path = vm_path(namespace, "vm1", "migrationtargets")
            headers = {"X-Remote-User": "bob"}
            copy["data"] = published | {"requestheader-client-ca-file": new_ca_cert.read_text()}
            controlplane.apply_yaml(json.dumps(copy))
            try:
                status, body = wait_for(
                    lambda: _try(
                        lambda: direct(hook, path, headers, proxy, ca_bundle(controlplane))
                    ),
                    timeout=15,
                    what="the new front-proxy CA to be trusted",
                )
            except AssertionError as e:
                raise AssertionError(f"{e}\n{hook.log_text()[-3000:]}") from None
            assert status == 403 and "user 'bob'" in body["error"]
            old = (controlplane.pki["front_proxy_cert"], controlplane.pki["front_proxy_key"])
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)) as info:
                direct(hook, path, headers, old, ca_bundle(controlplane))
            assert "unknown ca" in str(info.value).lower()
        finally:
            controlplane.kubectl("delete", "apiservice", aggregated.APISERVICE_NAME)


def _try(call):
    try:
        return call()
    except (ssl.SSLError, urllib.error.URLError, ConnectionError):
        time.sleep(0.2)
        return None
