"""The ValidatingWebhookConfiguration that points the test API server at a webhook on loopback.

Shaped like the chart's (CREATE of kubevirt.io/v1 virtualmachineinstancemigrations, sideEffects
None, failurePolicy Fail), but with `url` instead of a Service; the server writes the caBundle.
"""

from __future__ import annotations

WEBHOOK_NAME = "vmim.migration-guard.io"


def local_webhook_configuration(
    name: str,
    port: int,
    namespace_labels: dict[str, str] | None = None,
    *,
    webhook_name: str = WEBHOOK_NAME,
    ca_bundle: str | None = None,
) -> dict:
    """`namespace_labels` limits the webhook to labelled namespaces, so tests do not disturb others;
    `ca_bundle` (base64 PEM) is for servers that do not write it themselves."""
    client_config: dict = {"url": f"https://127.0.0.1:{port}/validate"}
    if ca_bundle:
        client_config["caBundle"] = ca_bundle
    webhook: dict = {
        "name": webhook_name,
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": ["kubevirt.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["virtualmachineinstancemigrations"],
            }
        ],
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
    }
    if namespace_labels:
        webhook["namespaceSelector"] = {"matchLabels": namespace_labels}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }


def local_apiservice(namespace: str, port: int, service: str = "migration-guard-webhook") -> dict:
    """The extension's APIService and its Service (as a List), for a backend on loopback.

    Like the chart's, but the Service is ExternalName 127.0.0.1: without kube-proxy the
    aggregator dials the name itself (it does not with --enable-aggregator-routing, which is
    why the chart's Service has a selector). The backend's certificate must name
    `<service>.<namespace>.svc`; the server writes the caBundle.
    """
    from extension import aggregated

    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"type": "ExternalName", "externalName": "127.0.0.1"},
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": aggregated.APISERVICE_NAME},
                "spec": {
                    "group": aggregated.GROUP,
                    "version": aggregated.VERSION,
                    "groupPriorityMinimum": 1000,
                    "versionPriority": 15,
                    "service": {"name": service, "namespace": namespace, "port": port},
                },
            },
        ],
    }
