"""The Helm chart with the real helm: lint, rendered fields for default and other values, values
mapped to the servers' real settings, and every variant accepted by the test kube-apiserver
(`kubectl apply --dry-run=server`)."""

from __future__ import annotations

import json

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.chart_support import CHART, container, env, kinds, one, render, render_text
from webhook.admission.settings import parse_settings as parse_webhook_settings
from webhook.admission.settings import settings_help as webhook_settings_help
from webhook.enforcer import settings as enforcer_settings

pytestmark = pytest.mark.controlplane

SECURE = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_helm_lint_strict(controlplane: ControlPlane):
    result = controlplane.helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_defaults_render_the_documented_objects(controlplane: ControlPlane):
    objs = render(controlplane)
    assert kinds(objs) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mg-migration-guard"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert [c["name"] for c in pod["containers"]] == ["server", "enforcer"]
    for c in pod["containers"]:
        assert c["securityContext"] == SECURE, c["name"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
        assert c["image"] == "ghcr.io/migration-guard/migration-guard:0.1.0"
    server, enforcer = container(objs, "server"), container(objs, "enforcer")
    assert server["args"] == ["webhook"] and enforcer["args"] == ["enforcer"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert server[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
        assert enforcer[probe]["httpGet"] == {"path": path, "port": "enforcer-http"}
    # read-only root filesystem: the generated certs and gunicorn's temp files go to emptyDirs
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    assert mounts == {"/tmp", "/run/migration-guard/certs"}
    e = env(server)
    assert e["MIGRATION_GUARD_BIND"] == "0.0.0.0:8443"
    assert e["MIGRATION_GUARD_NAMESPACE"] == "<fieldRef:metadata.namespace>"
    assert e["MIGRATION_GUARD_WEBHOOK_CONFIG_NAME"] == "mg-migration-guard"
    assert e["MIGRATION_GUARD_CERT_SECRET_NAME"] == "mg-migration-guard-tls"
    assert e["MIGRATION_GUARD_STALE_CACHE_POLICY"] == "deny"
    assert e["MIGRATION_GUARD_COMPLETION_TIMEOUT_PER_GIB"] == "800"
    assert e["MIGRATION_GUARD_PROGRESS_TIMEOUT"] == "150"
    assert e["MIGRATION_GUARD_EVACUATION_MIGRATIONS"] == "enforce"
    assert e["MIGRATION_GUARD_WORKLOAD_UPDATE_MIGRATIONS"] == "enforce"
    assert e["MIGRATION_GUARD_KUBEVIRT_CONTROLLER_USERS"] == (
        "system:serviceaccount:harvester-system:kubevirt-controller,"
        "system:serviceaccount:kubevirt:kubevirt-controller"
    )
    assert "MIGRATION_GUARD_TLS_CERT_FILE" not in e
    ee = env(enforcer)
    assert ee["MIGRATION_GUARD_BIND"] == "0.0.0.0:9102"  # kubelet probes reach the pod IP
    assert ee["MIGRATION_GUARD_LEASE_NAME"] == "mg-migration-guard-enforcer"
    assert ee["MIGRATION_GUARD_LEASE_NAMESPACE"] == "<fieldRef:metadata.namespace>"
    assert ee["POD_NAME"] == "<fieldRef:metadata.name>"
    assert ee["MIGRATION_GUARD_PROMETHEUS_URL"].startswith("http://rancher-monitoring-prometheus")
    assert ee["MIGRATION_GUARD_DRY_RUN"] == "false"


def test_default_webhook_configuration(controlplane: ControlPlane):
    vwc = one(render(controlplane), "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["name"] == "mg-migration-guard"
    assert "annotations" not in vwc["metadata"]
    (hook,) = vwc["webhooks"]
    assert hook["rules"] == [
        {
            "apiGroups": ["kubevirt.io"],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["virtualmachineinstancemigrations"],
            "scope": "Namespaced",
        }
    ]
    assert hook["sideEffects"] == "NoneOnDryRun"  # Events about KubeVirt's migrations
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] == 10
    assert hook["failurePolicy"] == "Fail"
    assert hook["namespaceSelector"] == {} and hook["objectSelector"] == {}
    assert hook["clientConfig"]["service"] == {
        "name": "mg-migration-guard",
        "namespace": "migration-guard",
        "path": "/validate",
        "port": 443,
    }


def test_non_default_values(controlplane: ControlPlane):
    objs = render(
        controlplane,
        "replicaCount=3",
        "webhook.failurePolicy=Ignore",
        "webhook.timeoutSeconds=5",
        "webhook.namespaceSelector.matchLabels.team=vms",
        "webhook.objectSelector.matchExpressions[0].key=skip",
        "webhook.objectSelector.matchExpressions[0].operator=DoesNotExist",
        "webhook.staleCachePolicy=allow",
        "webhook.maxCacheAge=5m",
        "timeouts.completionTimeoutPerGiB=300",
        "timeouts.progressTimeoutSeconds=60",
        "enforcer.dryRun=true",
        "enforcer.checkInterval=3s",
        "enforcer.progress.source=virtHandler",
        "enforcer.progress.virtHandlerUrls={http://10.0.0.1:8443/metrics,http://10.0.0.2:8443/metrics}",
        "image.tag=1.2.3",
        "podDisruptionBudget.minAvailable=2",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=cattle-monitoring-system",
        namespace="harvester-addons",
    )
    deploy = one(objs, "Deployment")
    assert deploy["metadata"]["namespace"] == "harvester-addons"
    assert deploy["spec"]["replicas"] == 3
    hook = one(objs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["namespaceSelector"] == {"matchLabels": {"team": "vms"}}
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]
    }
    e = env(container(objs, "server"))
    assert e["MIGRATION_GUARD_STALE_CACHE_POLICY"] == "allow"
    assert e["MIGRATION_GUARD_MAX_CACHE_AGE"] == "5m"
    assert e["MIGRATION_GUARD_COMPLETION_TIMEOUT_PER_GIB"] == "300"
    ee = env(container(objs, "enforcer"))
    assert ee["MIGRATION_GUARD_COMPLETION_TIMEOUT_PER_GIB"] == "300"
    assert ee["MIGRATION_GUARD_PROGRESS_TIMEOUT"] == "60"
    assert ee["MIGRATION_GUARD_DRY_RUN"] == "true"
    assert ee["MIGRATION_GUARD_CHECK_INTERVAL"] == "3s"
    assert ee["MIGRATION_GUARD_PROMETHEUS_URL"] == ""
    assert (
        ee["MIGRATION_GUARD_VIRT_HANDLER_URLS"]
        == "http://10.0.0.1:8443/metrics,http://10.0.0.2:8443/metrics"
    )
    assert container(objs, "server")["image"].endswith(":1.2.3")
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    ingress = one(objs, "NetworkPolicy")["spec"]["ingress"]
    assert ingress[1]["from"] == [
        {"namespaceSelector": {"matchLabels": {"name": "cattle-monitoring-system"}}}
    ]


def test_cert_manager_variant(controlplane: ControlPlane):
    objs = render(controlplane, "certificates.source=certManager", "serviceMonitor.enabled=true")
    vwc = one(objs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "migration-guard/mg-migration-guard"
    }
    cert = one(objs, "Certificate")
    assert cert["spec"]["secretName"] == "mg-migration-guard-tls"
    assert "mg-migration-guard.migration-guard.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"]["name"] == one(objs, "Issuer")["metadata"]["name"]
    server = container(objs, "server")
    e = env(server)
    assert e["MIGRATION_GUARD_TLS_CERT_FILE"] == "/run/migration-guard/tls/tls.crt"
    assert e["MIGRATION_GUARD_TLS_KEY_FILE"] == "/run/migration-guard/tls/tls.key"
    assert e["MIGRATION_GUARD_WEBHOOK_CONFIG_NAME"] == ""  # cainjector writes the caBundle
    assert "MIGRATION_GUARD_CERT_SECRET_NAME" not in e
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "mg-migration-guard-tls"}} in volumes
    # cert-manager owns the Secret: no Secret rights, no webhook configuration rights
    rules = one(objs, "ClusterRole")["rules"] + one(objs, "Role")["rules"]
    resources = {r for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources and "validatingwebhookconfigurations" not in resources
    monitor = one(objs, "ServiceMonitor")
    assert [ep["port"] for ep in monitor["spec"]["endpoints"]] == ["https", "enforcer-http"]


def test_existing_issuer_is_used(controlplane: ControlPlane):
    objs = render(
        controlplane,
        "certificates.source=certManager",
        "certificates.certManager.issuerRef.name=harvester-ca",
        "certificates.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert "Issuer" not in kinds(objs)
    ref = one(objs, "Certificate")["spec"]["issuerRef"]
    assert ref == {"name": "harvester-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_enforcer_disabled_drops_its_container_and_rights(controlplane: ControlPlane):
    objs = render(controlplane, "enforcer.enabled=false")
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["server"]
    rules = one(objs, "ClusterRole")["rules"] + one(objs, "Role")["rules"]
    resources = {r for rule in rules for r in rule["resources"]}
    assert "leases" not in resources
    (events,) = [rule for rule in rules if "events" in rule["resources"]]  # the webhook's
    assert events["verbs"] == ["create", "patch"]
    assert [p["name"] for p in one(objs, "Service")["spec"]["ports"]] == ["https"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "webhook.failurePolicy=Never",
            'webhook.failurePolicy must be Fail or Ignore, got "Never"',
        ),
        ("certificates.source=vault", "certificates.source must be selfGenerated or certManager"),
        ("enforcer.progress.source=graphite", "enforcer.progress.source must be prometheus"),
        ("enforcer.progress.source=virtHandler", "needs enforcer.progress.virtHandlerUrls"),
        (
            "webhook.workloadUpdateMigrations=audit",
            'webhook.workloadUpdateMigrations must be enforce or warn, got "audit"',
        ),
    ],
)
def test_bad_values_fail_naming_the_value(controlplane: ControlPlane, setting: str, message: str):
    result = controlplane.helm("template", "mg", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert message in result.stderr


def _spec_env(c: dict) -> dict[str, str]:
    """The container's environment as the server would see it (fieldRefs resolved)."""
    values = {"metadata.namespace": "migration-guard", "metadata.name": "mg-migration-guard-0"}
    out = {}
    for key, value in env(c).items():
        if value.startswith("<fieldRef:"):
            value = values[value[len("<fieldRef:") : -1]]
        out[key] = value
    return out


@pytest.mark.parametrize(
    "sets",
    [
        (),
        (
            "webhook.staleCachePolicy=allow",
            "enforcer.progress.source=none",
            "enforcer.dryRun=true",
            "enforcer.watchNamespace=vms",
            "webhook.evacuationMigrations=warn",
            "webhook.eventInterval=5m",
        ),
    ],
)
def test_every_env_var_is_a_real_setting_and_parses(controlplane: ControlPlane, sets: tuple):
    """Each MIGRATION_GUARD_* variable the chart sets is one the server reads, with a valid value."""
    objs = render(controlplane, *sets)
    server_env = _spec_env(container(objs, "server"))
    known = {var for _, var, _ in webhook_settings_help()}
    assert set(k for k in server_env if k.startswith("MIGRATION_GUARD_")) <= known
    s = parse_webhook_settings([], env=server_env)
    assert s.bind == "0.0.0.0:8443" and s.namespace == "migration-guard"
    assert s.service_name == "mg-migration-guard"
    assert s.cert_dir == "/run/migration-guard/certs"
    enforcer_env = _spec_env(container(objs, "enforcer"))
    known = {var for _, var, _ in enforcer_settings.settings_help()} | {"POD_NAME"}
    assert set(enforcer_env) <= known
    es = enforcer_settings.parse_settings([], env=enforcer_env)
    assert es.identity == "mg-migration-guard-0"
    assert es.lease_namespace == "migration-guard"
    assert es.bind == "0.0.0.0:9102"
    if sets:
        assert s.stale_cache_policy == "allow"
        assert s.evacuation_migrations == "warn" and s.event_interval_seconds == 300
        assert es.prometheus_url == "" and es.virt_handler_urls == ()
        assert es.dry_run is True and es.watch_namespace == "vms"
    else:
        assert es.prometheus_url == enforcer_settings.HARVESTER_PROMETHEUS


# Minimal CRDs for the optional kinds (no network here to fetch cert-manager's or the
# Prometheus Operator's): enough for the API server to validate and accept the objects.
def _crd(group: str, kind: str, plural: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def optional_crds(controlplane: ControlPlane) -> None:
    crds = [
        _crd("cert-manager.io", "Certificate", "certificates"),
        _crd("cert-manager.io", "Issuer", "issuers"),
        _crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ]
    controlplane.apply_yaml(json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}))
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    result = controlplane.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("certificates.source=certManager", "serviceMonitor.enabled=true"),
        ("enforcer.enabled=false", "networkPolicy.enabled=false", "webhook.failurePolicy=Ignore"),
    ],
    ids=["defaults", "cert-manager+servicemonitor", "no-enforcer"],
)
def test_rendered_manifests_accepted_by_the_api_server(
    controlplane: ControlPlane, namespace: str, optional_crds: None, sets: tuple
):
    text = render_text(controlplane, *sets, namespace=namespace)
    result = controlplane.kubectl("apply", "--dry-run=server", "-f", "-", input=text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), result.stdout
    expected = len(render(controlplane, *sets, namespace=namespace))
    assert len(lines) == expected
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/mg-migration-guard" in (
        result.stdout
    )
    # a dry run leaves nothing behind
    assert controlplane.kubectl("get", "deployment", "-n", namespace, "-o", "name").stdout == ""
