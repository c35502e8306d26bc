"""The Helm chart with the real helm: lint, rendered fields for default and other values, values
mapped to the servers' real settings, and every variant accepted by the test kube-apiserver
(`kubectl apply --dry-run=server`)."""

from __future__ import annotations

import base64
import json
import time

import pytest
import yaml

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.integration.chart_support import (
    CHART,
    container,
    env,
    kinds,
    named,
    names,
    one,
    render,
    render_text,
)
from webhook.admission.settings import parse_settings as parse_webhook_settings
from webhook.admission.settings import settings_help as webhook_settings_help
from webhook.enforcer import settings as enforcer_settings
from webhook.rules.policy import POLICY_CODES, PolicySettings

pytestmark = pytest.mark.controlplane

SECURE = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def server_rules(objs: list[dict]) -> list[dict]:
    """The rules of the chart's own ClusterRole and Role (named after the release)."""
    return (
        named(objs, "ClusterRole", "mg-migration-guard")["rules"]
        + named(objs, "Role", "mg-migration-guard")["rules"]
    )


def test_helm_lint_strict(controlplane: ControlPlane):
    result = controlplane.helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_defaults_render_the_documented_objects(controlplane: ControlPlane):
    objs = render(controlplane)
    assert kinds(objs) == sorted(
        [
            "APIService",
            "ClusterRole",  # the server's
            "ClusterRole",  # :view
            "ClusterRole",  # :migrate
            "ClusterRole",  # :drain-planner
            "ClusterRoleBinding",  # the server's ClusterRole
            "ClusterRoleBinding",  # system:auth-delegator
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",  # the server's Role
            "RoleBinding",  # extension-apiserver-authentication-reader in kube-system
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
    assert e["MIGRATION_GUARD_APISERVICE_NAME"] == "v1.subresources.migration-guard.io"
    assert e["MIGRATION_GUARD_REQUESTHEADER_CONFIGMAP"] == (
        "kube-system/extension-apiserver-authentication"
    )
    assert not any("APISERVICE" in k or "REQUESTHEADER" in k for k in env(enforcer))
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
    # cert-manager owns the Secret: no Secret rights, no webhook configuration or APIService rights
    rules = server_rules(objs)
    resources = {r for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources and "validatingwebhookconfigurations" not in resources
    assert "apiservices" not in resources
    # ...and its cainjector writes the APIService's caBundle too, from the same Certificate
    apiservice = one(objs, "APIService")
    assert apiservice["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "migration-guard/mg-migration-guard"
    }
    assert "caBundle" not in apiservice["spec"]
    assert e["MIGRATION_GUARD_APISERVICE_NAME"] == ""  # the server patches no APIService
    assert e["MIGRATION_GUARD_REQUESTHEADER_CONFIGMAP"] == (
        "kube-system/extension-apiserver-authentication"
    )
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
    rules = server_rules(objs)
    (named_leases,) = [r for r in rules if "leases" in r["resources"] and r.get("resourceNames")]
    assert named_leases["resourceNames"] == ["mg-migration-guard-policy-reports"]  # no enforcer
    (events,) = [rule for rule in rules if "events" in rule["resources"]]  # the webhook's
    assert events["verbs"] == ["create", "patch"]
    assert [p["name"] for p in one(objs, "Service")["spec"]["ports"]] == ["https"]


POLICY_ENV = (
    "MIGRATION_GUARD_HARVESTER_VERSION",
    "MIGRATION_GUARD_RULE_ACTIONS",
    "MIGRATION_GUARD_POLICY_MODE",
    "MIGRATION_GUARD_EXEMPT_NAMESPACES",
    "MIGRATION_GUARD_EXEMPT_NAMESPACE_SELECTOR",
)
EXEMPT_LABEL = "migration-guard.io/exempt"


def test_policy_reports_and_their_rights_follow_the_value(controlplane: ControlPlane):
    on = render(controlplane)
    assert env(container(on, "server"))["MIGRATION_GUARD_POLICY_REPORTS"] == "true"
    (reports,) = [r for r in server_rules(on) if "policyreports" in r["resources"]]
    assert reports == {
        "apiGroups": ["wgpolicyk8s.io"],
        "resources": ["policyreports"],
        "verbs": ["get", "create", "update", "delete"],
    }
    off = render(controlplane, "policyReports.enabled=false", "enforcer.enabled=false")
    assert env(container(off, "server"))["MIGRATION_GUARD_POLICY_REPORTS"] == "false"
    resources = {r for rule in server_rules(off) for r in rule["resources"]}
    assert not resources & {"policyreports", "leases"}


def test_prometheus_rule_alerts_on_undrainable_nodes_and_aborts(controlplane: ControlPlane):
    assert "PrometheusRule" not in kinds(render(controlplane))
    rule = one(render(controlplane, "prometheusRule.enabled=true"), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    blocked = alerts["MigrationGuardNodeDrainBlocked"]
    assert blocked["expr"] == "max by (node) (migration_guard_node_drain_blockers) > 0"
    assert blocked["for"] == "15m"
    assert "{{ $labels.node }}" in blocked["annotations"]["summary"]
    aborted = alerts["MigrationGuardMigrationAborted"]
    assert 'migration_guard_enforcer_aborts_total{dry_run="false"}' in aborted["expr"]
    no_enforcer = render(controlplane, "prometheusRule.enabled=true", "enforcer.enabled=false")
    groups = one(no_enforcer, "PrometheusRule")["spec"]["groups"]
    assert [r["alert"] for g in groups for r in g["rules"]] == ["MigrationGuardNodeDrainBlocked"]


def test_default_policy_env(controlplane: ControlPlane):
    objs = render(controlplane)
    e = env(container(objs, "server"))
    assert [e[k] for k in POLICY_ENV] == ["auto", "", "enforce", "", ""]
    assert not any(k in env(container(objs, "enforcer")) for k in POLICY_ENV)  # the server's only
    assert "ValidatingAdmissionPolicy" not in kinds(objs)
    assert "ValidatingAdmissionPolicyBinding" not in kinds(objs)


def test_policy_values_become_the_servers_env(controlplane: ControlPlane):
    objs = render(
        controlplane,
        "policy.harvesterVersion=v1.8",
        # given out of order: rendered sorted by code, so the Deployment only changes with them
        "policy.ruleActions.WitnessNode=off",
        "policy.ruleActions.CDROMVolume=deny",
        "policy.ruleActions.NodeCordoned=warn",
        "policy.mode=audit",
        "policy.exemptNamespaces={legacy,harvester-public}",
        r"policy.exemptNamespaceSelector=team=legacy\,env notin (prod)",
    )
    e = env(container(objs, "server"))
    assert e["MIGRATION_GUARD_HARVESTER_VERSION"] == "v1.8"
    assert e["MIGRATION_GUARD_RULE_ACTIONS"] == "CDROMVolume=deny,NodeCordoned=warn,WitnessNode=off"
    assert e["MIGRATION_GUARD_POLICY_MODE"] == "audit"
    assert e["MIGRATION_GUARD_EXEMPT_NAMESPACES"] == "legacy,harvester-public"
    assert e["MIGRATION_GUARD_EXEMPT_NAMESPACE_SELECTOR"] == "team=legacy,env notin (prod)"


def test_policy_values_file_forms(controlplane: ControlPlane, tmp_path):
    """Every rule code is accepted (the chart's list is POLICY_CODES); YAML's bare `off` (false)
    means off; a version given as a YAML number is refused rather than read as 1.1 for 1.10."""
    values = tmp_path / "values.yaml"
    actions = "\n".join(f"    {code}: warn" for code in POLICY_CODES if code != "WitnessNode")
    values.write_text(f"policy:\n  ruleActions:\n{actions}\n    WitnessNode: off\n")
    result = controlplane.helm("template", "mg", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stderr
    e = env(container([d for d in yaml.safe_load_all(result.stdout) if d], "server"))
    expected = {code: "warn" for code in POLICY_CODES} | {"WitnessNode": "off"}
    assert e["MIGRATION_GUARD_RULE_ACTIONS"] == ",".join(
        f"{code}={expected[code]}" for code in sorted(POLICY_CODES)
    )
    values.write_text("policy:\n  harvesterVersion: 1.10\n")
    result = controlplane.helm("template", "mg", str(CHART), "-f", str(values))
    assert result.returncode != 0
    assert (
        "policy.harvesterVersion must be auto or a Harvester version such as v1.8 or v1.8.0 "
        "(a string: quote it in a values file), got 1.1"
    ) in result.stderr


def test_restrict_exempt_label_renders_the_admission_policy(controlplane: ControlPlane):
    objs = render(
        controlplane,
        "policy.restrictExemptLabel.enabled=true",
        "policy.restrictExemptLabel.allowedGroups={system:masters,harvester:vm-admins}",
    )
    vap = one(objs, "ValidatingAdmissionPolicy")
    assert vap["metadata"]["name"] == "mg-migration-guard-exempt-label"
    assert "namespace" not in vap["metadata"]  # cluster-scoped
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["kubevirt.io"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["virtualmachines", "virtualmachineinstances"],
        }
    ]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert f"'{EXEMPT_LABEL}'" in variables["new"] and "oldObject" in variables["old"]
    assert '["system:masters","harvester:vm-admins"]' in variables["allowed"]
    # virt-controller copies the label from a VM's template into its VMI, and restores VMs
    assert "system:serviceaccount:kubevirt:kubevirt-controller" in variables["allowed"]
    for validation in spec["validations"]:
        assert validation["reason"] == "Forbidden"
        assert EXEMPT_LABEL in validation["message"]
        assert "system:masters, harvester:vm-admins" in validation["message"]
    binding = one(objs, "ValidatingAdmissionPolicyBinding")
    assert binding["metadata"]["name"] == "mg-migration-guard-exempt-label"
    assert binding["spec"] == {
        "policyName": "mg-migration-guard-exempt-label",
        "validationActions": ["Deny"],
    }


API_GROUP = "subresources.migration-guard.io"
APISERVICE = f"v1.{API_GROUP}"
AGGREGATE_LABELS = {
    f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in ("view", "edit", "admin")
}


def test_default_apiservice_points_at_the_service(controlplane: ControlPlane):
    objs = render(controlplane, "service.port=9443", namespace="harvester-addons")
    apiservice = one(objs, "APIService")
    assert apiservice["metadata"]["name"] == APISERVICE
    assert "annotations" not in apiservice["metadata"]  # no cainjector: the server patches it
    spec = apiservice["spec"]
    # no caBundle in the template: `helm upgrade` keeps the one the server wrote
    assert spec == {
        "group": API_GROUP,
        "version": "v1",
        "groupPriorityMinimum": 1000,
        "versionPriority": 15,
        "service": {"name": "mg-migration-guard", "namespace": "harvester-addons", "port": 9443},
    }
    service = one(objs, "Service")
    assert service["metadata"]["name"] == spec["service"]["name"]
    assert service["metadata"]["namespace"] == spec["service"]["namespace"]
    # aggregator routing (k3s/RKE2/Harvester) resolves the port by number, then the
    # EndpointSlice endpoints of the selected pods by that port's name
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == spec["service"]["port"]]
    assert port["name"] == "https" and port["targetPort"] == "https"
    assert service["spec"]["type"] == "ClusterIP"
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    server_ports = container(objs, "server")["ports"]
    assert {"name": "https", "containerPort": 8443, "protocol": "TCP"} in server_ports


def test_apiservice_priorities_from_values(controlplane: ControlPlane):
    objs = render(
        controlplane,
        "aggregatedApi.groupPriorityMinimum=20000",
        "aggregatedApi.versionPriority=1",
    )
    spec = one(objs, "APIService")["spec"]
    assert (spec["groupPriorityMinimum"], spec["versionPriority"]) == (20000, 1)


def test_aggregated_api_rbac_of_the_server(controlplane: ControlPlane):
    objs = render(controlplane)
    server = named(objs, "ClusterRole", "mg-migration-guard")["rules"]
    assert {
        "apiGroups": ["apiregistration.k8s.io"],
        "resources": ["apiservices"],
        "resourceNames": [APISERVICE],
        "verbs": ["get", "patch"],
    } in server
    # TokenReviews and SubjectAccessReviews come from the bootstrap role, not a copy of it
    resources = {r for rule in server for r in rule["resources"]}
    assert not resources & {"tokenreviews", "subjectaccessreviews", "configmaps"}
    sa = [{"kind": "ServiceAccount", "name": "mg-migration-guard", "namespace": "migration-guard"}]
    delegator = named(objs, "ClusterRoleBinding", "mg-migration-guard:auth-delegator")
    assert delegator["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:auth-delegator",
    }
    assert delegator["subjects"] == sa
    reader = named(
        objs, "RoleBinding", "mg-migration-guard:extension-apiserver-authentication-reader"
    )
    assert reader["metadata"]["namespace"] == "kube-system"
    assert reader["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "extension-apiserver-authentication-reader",
    }
    assert reader["subjects"] == sa
    assert names(objs, "Role") == ["mg-migration-guard"]  # the bootstrap Role is bound, not copied


def test_aggregated_api_user_roles(controlplane: ControlPlane):
    objs = render(controlplane)
    view = named(objs, "ClusterRole", "mg-migration-guard:view")
    assert AGGREGATE_LABELS.items() <= view["metadata"]["labels"].items()
    assert view["rules"] == [
        {
            "apiGroups": [API_GROUP],
            "resources": ["virtualmachines/migrationtargets", "virtualmachines/migration"],
            "verbs": ["get"],
        }
    ]
    migrate = named(objs, "ClusterRole", "mg-migration-guard:migrate")
    # like KubeVirt's kubevirt.io:migrate: granted explicitly, never through admin/edit/view
    assert not any(
        k.startswith("rbac.authorization.k8s.io/") for k in migrate["metadata"]["labels"]
    )
    assert migrate["rules"] == [
        {
            "apiGroups": [API_GROUP],
            "resources": ["virtualmachines/migrate", "virtualmachines/abortmigration"],
            "verbs": ["update"],
        }
    ]
    planner = named(objs, "ClusterRole", "mg-migration-guard:drain-planner")
    assert planner["rules"] == [
        {"apiGroups": [API_GROUP], "resources": ["nodes/drainplan"], "verbs": ["get"]}
    ]
    # nobody is bound to them by the chart
    bound = {b["roleRef"]["name"] for b in objs if b["kind"].endswith("RoleBinding")}
    assert not bound & {"mg-migration-guard:view", "mg-migration-guard:migrate"}
    assert "mg-migration-guard:drain-planner" not in bound


def test_aggregated_api_disabled_drops_the_apiservice_and_its_rbac(controlplane: ControlPlane):
    objs = render(controlplane, "aggregatedApi.enabled=false")
    assert "APIService" not in kinds(objs)
    assert names(objs, "ClusterRole") == ["mg-migration-guard"]
    assert names(objs, "RoleBinding") == ["mg-migration-guard"]
    assert all(o["metadata"].get("namespace") != "kube-system" for o in objs)
    resources = {r for rule in server_rules(objs) for r in rule["resources"]}
    assert "apiservices" not in resources
    # the extension's Bearer-token path still reviews tokens and rights
    assert names(objs, "ClusterRoleBinding") == [
        "mg-migration-guard",
        "mg-migration-guard:auth-delegator",
    ]
    e = env(container(objs, "server"))
    assert e["MIGRATION_GUARD_APISERVICE_NAME"] == ""
    assert e["MIGRATION_GUARD_REQUESTHEADER_CONFIGMAP"] == ""
    assert "Aggregated API" not in render_text(controlplane, "aggregatedApi.enabled=false")


def test_other_requestheader_configmap_gets_its_own_reader_role(controlplane: ControlPlane):
    objs = render(controlplane, "aggregatedApi.requestheaderConfigMap=auth/front-proxy")
    assert env(container(objs, "server"))["MIGRATION_GUARD_REQUESTHEADER_CONFIGMAP"] == (
        "auth/front-proxy"
    )
    role = named(objs, "Role", "mg-migration-guard:requestheader-reader")
    assert role["metadata"]["namespace"] == "auth"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["front-proxy"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = named(objs, "RoleBinding", "mg-migration-guard:requestheader-reader")
    assert binding["metadata"]["namespace"] == "auth"
    assert binding["roleRef"]["name"] == "mg-migration-guard:requestheader-reader"
    assert all(o["metadata"].get("namespace") != "kube-system" for o in objs)


def test_no_requestheader_configmap_means_no_reader_binding(controlplane: ControlPlane):
    objs = render(controlplane, "aggregatedApi.requestheaderConfigMap=")
    assert env(container(objs, "server"))["MIGRATION_GUARD_REQUESTHEADER_CONFIGMAP"] == ""
    assert names(objs, "RoleBinding") == ["mg-migration-guard"]
    assert one(objs, "APIService")  # Bearer tokens only, still served as an aggregated API


def test_notes_name_the_aggregated_api_paths(controlplane: ControlPlane):
    result = controlplane.helm(
        "install", "mg", str(CHART), "-n", "migration-guard", "--dry-run=client"
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    base = f"/apis/{API_GROUP}/v1/namespaces/<ns>/virtualmachines/<name>"
    for method, sub in (
        ("GET", "migrationtargets"),
        ("GET", "migration"),
        ("PUT", "migrate"),
        ("PUT", "abortmigration"),
    ):
        assert f"{method} {base}/{sub}" in notes, notes
    assert "mg-migration-guard:migrate" in notes and "kubevirt.io:migrate" in notes


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
        (
            "aggregatedApi.groupPriorityMinimum=0",
            "aggregatedApi.groupPriorityMinimum must be a whole number from 1 to 20000, got 0",
        ),
        (
            "aggregatedApi.groupPriorityMinimum=20001",
            "aggregatedApi.groupPriorityMinimum must be a whole number from 1 to 20000, got 20001",
        ),
        (
            "aggregatedApi.versionPriority=1001",
            "aggregatedApi.versionPriority must be a whole number from 1 to 1000, got 1001",
        ),
        (
            "aggregatedApi.versionPriority=-1",
            "aggregatedApi.versionPriority must be a whole number from 1 to 1000, got -1",
        ),
        (
            "aggregatedApi.versionPriority=high",
            'aggregatedApi.versionPriority must be a whole number from 1 to 1000, got "high"',
        ),
        (
            "aggregatedApi.requestheaderConfigMap=extension-apiserver-authentication",
            "aggregatedApi.requestheaderConfigMap must be namespace/name or "
            '"", got "extension-apiserver-authentication"',
        ),
        (
            "policy.ruleActions.VMINotRunning=warn",  # KubeVirt's verdict: not a choice
            'policy.ruleActions: "VMINotRunning" is not a rule migration-guard may relax; '
            f"the rules are {', '.join(POLICY_CODES)}",
        ),
        (
            "policy.ruleActions.CDROMVolume=allow",
            'policy.ruleActions.CDROMVolume must be deny, warn or off, got "allow"',
        ),
        (
            "policy.ruleActions.WitnessNode=true",
            "policy.ruleActions.WitnessNode must be deny, warn or off, got true",
        ),
        ("policy.mode=dryrun", 'policy.mode must be enforce or audit, got "dryrun"'),
        (
            "policy.harvesterVersion=latest",
            "policy.harvesterVersion must be auto or a Harvester version such as v1.8 or v1.8.0, "
            'got "latest"',
        ),
        (
            "policy.harvesterVersion=v1",
            "policy.harvesterVersion must be auto or a Harvester version such as v1.8 or v1.8.0, "
            'got "v1"',
        ),
        (
            "policy.exemptNamespaces={legacy,Team_B}",
            'policy.exemptNamespaces must be a list of namespace names, got "Team_B" in it',
        ),
        (
            "policy.exemptNamespaces=legacy",
            'policy.exemptNamespaces must be a list of namespace names, got "legacy"',
        ),
        (
            "policy.restrictExemptLabel.enabled=true,policy.restrictExemptLabel.allowedGroups=null",
            "policy.restrictExemptLabel.allowedGroups must list at least one group",
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
            "aggregatedApi.enabled=false",
            "policy.harvesterVersion=v1.8.0",
            "policy.ruleActions.CDROMVolume=deny",
            "policy.ruleActions.NodeCordoned=off",
            "policy.ruleActions.ManagementNetworkBridge=warn",
            "policy.mode=audit",
            "policy.exemptNamespaces={legacy,harvester-public}",
            r"policy.exemptNamespaceSelector=team=legacy\,env in (dev\,test)",
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
        # no aggregated API: no APIService to patch, no front-proxy ConfigMap to read
        assert s.apiservice_name == "" and s.requestheader_configmap == ""
        policy = s.policy
        assert policy.harvester_version == "v1.8.0" and policy.mode == "audit"
        assert policy.rule_actions == {
            "CDROMVolume": "deny",
            "ManagementNetworkBridge": "warn",
            "NodeCordoned": "off",
        }
        assert policy.exempt_namespaces == ("legacy", "harvester-public")
        assert policy.exempt_namespace_selector == {
            "matchLabels": {"team": "legacy"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "test"]}],
        }
    else:
        assert es.prometheus_url == enforcer_settings.HARVESTER_PROMETHEUS
        assert s.apiservice_name == "v1.subresources.migration-guard.io"
        assert s.requestheader_configmap == "kube-system/extension-apiserver-authentication"
        assert s.policy == PolicySettings()  # the chart's defaults are the server's


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
        ("aggregatedApi.enabled=false",),
        ("aggregatedApi.requestheaderConfigMap={namespace}/front-proxy",),
        ("policy.restrictExemptLabel.enabled=true", "policy.mode=audit"),
    ],
    ids=[
        "defaults",
        "cert-manager+servicemonitor",
        "no-enforcer",
        "no-aggregated-api",
        "own-requestheader-configmap",
        "exempt-label-policy",
    ],
)
def test_rendered_manifests_accepted_by_the_api_server(
    controlplane: ControlPlane, namespace: str, optional_crds: None, sets: tuple
):
    sets = tuple(item.format(namespace=namespace) for item in sets)
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
    apiservice = f"apiservice.apiregistration.k8s.io/{APISERVICE}"
    assert (apiservice in result.stdout) == ("aggregatedApi.enabled=false" not in sets)
    restricted = "policy.restrictExemptLabel.enabled=true" in sets
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        name = f"{kind}.admissionregistration.k8s.io/mg-migration-guard-exempt-label"
        assert (name in result.stdout) == restricted, result.stdout
    # a dry run leaves nothing behind
    assert controlplane.kubectl("get", "deployment", "-n", namespace, "-o", "name").stdout == ""


def _apiservice(plane: ControlPlane) -> dict | None:
    result = plane.kubectl("get", "apiservice", APISERVICE, "-o", "json", "--ignore-not-found")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_install_upgrade_and_uninstall_of_the_apiservice(
    controlplane: ControlPlane, namespace: str
):
    """The real `helm install`, `upgrade` and `uninstall` (no pods run here, no image is needed):
    an upgrade keeps the caBundle the server wrote and applies the new values, and uninstall
    removes the APIService, which would otherwise point at nothing and hold up namespace
    deletion in the whole cluster, with the rest of the aggregated API's objects."""
    fullname = f"mgi-{namespace}"
    sets = [f"fullnameOverride={fullname}", "webhook.failurePolicy=Ignore"]
    installed = False

    def helm_ok(*args: str) -> str:
        result = controlplane.helm(*args, "-n", namespace)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    try:
        helm_ok("install", "mgi", str(CHART), *(f"--set={s}" for s in sets))
        installed = True
        apiservice = _apiservice(controlplane)
        assert apiservice is not None
        assert apiservice["metadata"]["annotations"]["meta.helm.sh/release-name"] == "mgi"
        assert apiservice["spec"]["service"] == {
            "name": fullname,
            "namespace": namespace,
            "port": 443,
        }
        assert "caBundle" not in apiservice["spec"]
        # what the server does at start (generated certificates): patch its CA in
        ca_bundle = base64.b64encode(controlplane.ca_file.read_bytes()).decode()
        patch = json.dumps({"spec": {"caBundle": ca_bundle}})
        result = controlplane.kubectl(
            "patch", "apiservice", APISERVICE, "--type=merge", "-p", patch
        )
        assert result.returncode == 0, result.stderr

        helm_ok(
            "upgrade", "mgi", str(CHART),
            *(f"--set={s}" for s in [*sets, "aggregatedApi.versionPriority=20"]),
        )  # fmt: skip
        spec = _apiservice(controlplane)["spec"]
        assert spec["versionPriority"] == 20  # the upgrade was applied...
        assert spec["caBundle"] == ca_bundle  # ...and left the server's caBundle alone

        out = helm_ok("uninstall", "mgi", "--wait", "--timeout=60s")
        installed = False
        assert "uninstalled" in out
        assert _apiservice(controlplane) is None
        for kind, name, ns in [
            ("clusterrole", f"{fullname}:view", ""),
            ("clusterrole", f"{fullname}:migrate", ""),
            ("clusterrole", f"{fullname}:drain-planner", ""),
            ("clusterrolebinding", f"{fullname}:auth-delegator", ""),
            ("rolebinding", f"{fullname}:extension-apiserver-authentication-reader", "kube-system"),
            ("service", fullname, namespace),
        ]:
            args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
            result = controlplane.kubectl(*args, *(["-n", ns] if ns else []))
            assert result.returncode == 0 and result.stdout == "", (kind, name, result.stdout)
    finally:
        if installed:
            controlplane.helm("uninstall", "mgi", "-n", namespace)
        controlplane.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found")


def test_user_roles_authorize_the_aggregated_api_requests(
    controlplane: ControlPlane, namespace: str
):
    """kube-apiserver authorizes a proxied request as resource virtualmachines, subresource
    <sub>, in the group, with verb get (GET) or update (PUT). The chart's roles, bound in one
    namespace as docs/install.md tells, grant exactly that there (the real RBAC authorizer, asked
    with SubjectAccessReviews)."""
    fullname = f"mgu-{namespace}"
    objs = render(controlplane, f"fullnameOverride={fullname}", namespace=namespace)
    roles = [named(objs, "ClusterRole", f"{fullname}:{r}") for r in ("view", "migrate")]
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"alice-{role}", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{fullname}:{role}",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        for role, user in (("view", "alice"), ("migrate", "alice"), ("view", "bob"))
    ]
    bindings[2]["metadata"]["name"] = "bob-view"
    controlplane.apply_yaml(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": roles + bindings})
    )

    def can(user: str, verb: str, sub: str, ns: str = namespace) -> bool:
        """The API server's answer for the request attributes a proxied call has."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:authenticated"],
                "resourceAttributes": {
                    "namespace": ns,
                    "verb": verb,
                    "group": API_GROUP,
                    "resource": "virtualmachines",
                    "subresource": sub,
                    "name": "vm1",
                },
            },
        }
        result = controlplane.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["status"].get("allowed", False)

    try:
        # the RBAC authorizer sees new bindings through its informers, a moment later
        deadline = time.monotonic() + 10
        while not (can("alice", "update", "migrate") and can("bob", "get", "migration")):
            assert time.monotonic() < deadline, "the bindings never took effect"
            time.sleep(0.1)
        for sub in ("migrationtargets", "migration"):
            assert can("alice", "get", sub) and can("bob", "get", sub)
            assert not can("alice", "update", sub)
        for sub in ("migrate", "abortmigration"):
            assert can("alice", "update", sub)
            assert not can("bob", "update", sub)  # :view alone never migrates
            assert not can("alice", "create", sub)  # PUT is update; POST would be refused
        assert not can("alice", "update", "migrate", ns="default")  # only where it is bound
        assert not can("alice", "get", "migrationtargets", ns="default")
    finally:
        for role in roles:
            controlplane.kubectl("delete", "clusterrole", role["metadata"]["name"])


def test_exempt_label_policy_on_the_api_server(controlplane: ControlPlane, namespace: str):
    """The rendered ValidatingAdmissionPolicy in the real kube-apiserver: alice, who may edit VMs,
    cannot add, change or remove the exemption label (on the VM or in its VMI template), and is
    told who can and what to run; admin (system:masters, allowed) can; alice's other edits of a
    labelled VM pass; virt-controller's user may copy it into a VMI. The binding is narrowed to
    this test's namespace so the other tests' VMs on the shared control plane stay unaffected."""
    fullname = f"mgv-{namespace}"
    objs = render(
        controlplane,
        f"fullnameOverride={fullname}",
        "policy.restrictExemptLabel.enabled=true",
        namespace=namespace,
    )
    vap = one(objs, "ValidatingAdmissionPolicy")
    binding = one(objs, "ValidatingAdmissionPolicyBinding")
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    controller = "system:serviceaccount:kubevirt:kubevirt-controller"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "vm-editor", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubevirt.io"],
                "resources": ["virtualmachines", "virtualmachineinstances"],
                "verbs": ["get", "create", "update", "patch"],
            }
        ],
    }
    grant = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "vm-editors", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vm-editor"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}
            for name in ("alice", controller)
        ],
    }
    as_controller = ("--as", controller, "--as-group", "system:serviceaccounts")

    def kubectl(*args: str, user: str = "admin", input: str | None = None):
        return controlplane.kubectl(*args, "-n", namespace, user=user, input=input)

    def labelled(name: str) -> dict:
        obj = o.vm(namespace, name)
        obj["metadata"]["labels"][EXEMPT_LABEL] = "true"
        return obj

    expected = (
        f"only members of system:masters may add, change or remove the label {EXEMPT_LABEL} on "
        "a VirtualMachine (it exempts the VM from migration-guard's live-migration checks); "
        "ask one of them to run: kubectl label vm -n "
    )
    try:
        controlplane.apply_yaml(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": [vap, binding, role, grant]})
        )
        # the policy and the RBAC grant take effect a moment after they are created: probe with
        # server-side dry runs (admission policies run for them too) until alice is refused
        probe = json.dumps(labelled("probe"))
        deadline = time.monotonic() + 30
        while True:
            result = kubectl("create", "--dry-run=server", "-f", "-", user="alice", input=probe)
            if result.returncode != 0 and EXEMPT_LABEL in result.stderr:
                break
            assert time.monotonic() < deadline, f"the policy never refused: {result}"
            time.sleep(0.2)

        # creating a VM with the label: refused, naming the label, who may, and the command
        refused = kubectl("create", "-f", "-", user="alice", input=json.dumps(labelled("vm-a")))
        assert refused.returncode != 0
        assert expected + f"{namespace} vm-a {EXEMPT_LABEL}=true" in refused.stderr
        assert f"ValidatingAdmissionPolicy '{fullname}-exempt-label'" in refused.stderr
        assert kubectl("get", "vm", "vm-a", "--ignore-not-found", "-o", "name").stdout == ""

        # created without it: alice's edits are fine, but not adding the label
        created = kubectl(
            "create", "-f", "-", user="alice", input=json.dumps(o.vm(namespace, "vm-b"))
        )
        assert created.returncode == 0, created.stderr
        assert kubectl("label", "vm", "vm-b", "team=db", user="alice").returncode == 0
        refused = kubectl("label", "vm", "vm-b", f"{EXEMPT_LABEL}=true", user="alice")
        assert refused.returncode != 0
        assert expected + f"{namespace} vm-b {EXEMPT_LABEL}=true" in refused.stderr
        # ... nor in the VMI template (KubeVirt copies it into the VMI's labels)
        template = {"spec": {"template": {"metadata": {"labels": {EXEMPT_LABEL: "true"}}}}}
        refused = kubectl(
            "patch", "vm", "vm-b", "--type=merge", "-p", json.dumps(template), user="alice"
        )
        assert refused.returncode != 0
        assert f"{EXEMPT_LABEL} in spec.template.metadata.labels" in refused.stderr
        assert (
            f"ask one of them to label the VM instead: kubectl label vm -n {namespace} vm-b "
            f"{EXEMPT_LABEL}=true"
        ) in refused.stderr

        # admin (system:masters) adds it; then alice may edit the VM but not change or remove it
        added = kubectl("label", "vm", "vm-b", f"{EXEMPT_LABEL}=true")
        assert added.returncode == 0, added.stderr
        assert (
            kubectl("label", "vm", "vm-b", "team=web", "--overwrite", user="alice").returncode == 0
        )
        changed = kubectl(
            "label", "vm", "vm-b", f"{EXEMPT_LABEL}=false", "--overwrite", user="alice"
        )
        assert changed.returncode != 0 and f"{EXEMPT_LABEL}=false" in changed.stderr
        removed = kubectl("label", "vm", "vm-b", f"{EXEMPT_LABEL}-", user="alice")
        assert removed.returncode != 0
        assert expected + f"{namespace} vm-b {EXEMPT_LABEL}-" in removed.stderr
        vm = json.loads(kubectl("get", "vm", "vm-b", "-o", "json").stdout)
        assert vm["metadata"]["labels"][EXEMPT_LABEL] == "true"
        assert vm["metadata"]["labels"]["team"] == "web"
        assert (
            kubectl("patch", "vm", "vm-b", "--type=merge", "-p", json.dumps(template)).returncode
            == 0
        )

        # VMIs: alice is refused the label; virt-controller copies it from a VM's template
        vmi = o.vmi(namespace, "vmi-c", "node-1")
        vmi.pop("status", None)
        vmi["metadata"].setdefault("labels", {})[EXEMPT_LABEL] = "true"
        refused = kubectl("create", "-f", "-", user="alice", input=json.dumps(vmi))
        assert refused.returncode != 0
        assert "on a VirtualMachineInstance" in refused.stderr
        assert f"kubectl label vmi -n {namespace} vmi-c {EXEMPT_LABEL}=true" in refused.stderr
        copied = controlplane.kubectl(
            "create", "-n", namespace, *as_controller, "-f", "-", input=json.dumps(vmi)
        )
        assert copied.returncode == 0, copied.stderr
    finally:
        for kind, obj in (
            ("validatingadmissionpolicybinding", binding),
            ("validatingadmissionpolicy", vap),
        ):
            controlplane.kubectl("delete", kind, obj["metadata"]["name"], "--ignore-not-found")
