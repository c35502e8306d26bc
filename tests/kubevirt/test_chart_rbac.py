"""The chart's RBAC is exactly what the code calls: recorded from the real servers, not guessed.

Why this way: the code reaches the API through typed clients, `CustomObjectsApi` list functions,
raw `call_api` paths and informers; scanning the source for all of them would miss the next new
style. Instead the real `migration-guard webhook` (with the extension) and `migration-guard
enforcer` run here *as the chart's ServiceAccount* (a token from the TokenRequest API, bound by the
chart's own ClusterRole and Role) while every code path that talks to Kubernetes is exercised:
start-up (certificate Secret, caBundle), the caches, a VMI read on a cache miss, the extension's
TokenReview/SubjectAccessReview, lookup, migrate, status and abort, the enforcer's Lease, and an
abort (Events, VM annotation, delete), and a certificate renewal. The cluster is the KubeVirt
profile: the migrations are real virt-controller migrations. With `--log-level debug`, urllib3
logs each request line ("GET /api/v1/nodes?watch=True ... 200"); those lines are turned into
Kubernetes request attributes (group, resource, verb, namespace, name) the way the API server does.
Then: every request was allowed (no 403, and a rule bound to the ServiceAccount covers it), and
every verb of every rule the chart writes was used by some request (nothing granted that the code
does not call). The bootstrap roles the chart binds (system:auth-delegator, and in kube-system
extension-apiserver-authentication-reader) are read from the API server and count as granted, but
are not the chart's to trim. The chart's APIService is created too (reaching the local server
through an ExternalName Service), so the server's caBundle patch of it is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.enforcers import wait_for
from tests.harness.kubevirt import CONTROLLER
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.processes import stop_process
from tests.harness.registration import local_webhook_configuration
from tests.harness.virt_handler import Scenario
from tests.harness.vms import harvester_vm
from tests.integration.chart_support import render

pytestmark = pytest.mark.kubevirt

REPO = Path(__file__).resolve().parents[2]
MG = str(REPO / ".venv" / "bin" / "migration-guard")
REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# Harvester's Setting (harvesterhci.io/v1beta1, cluster-scoped; its value is top-level).
HARVESTER_SETTING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "settings.harvesterhci.io"},
    "spec": {
        "group": "harvesterhci.io",
        "scope": "Cluster",
        "names": {"kind": "Setting", "plural": "settings", "singular": "setting"},
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@dataclass(frozen=True)
class Request:
    """Kubernetes request attributes, as the API server's RequestInfo resolves them."""

    verb: str
    group: str
    resource: str  # "pods" or "pods/status"
    namespace: str
    name: str
    status: int


def request_info(method: str, target: str, status: int) -> Request:
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    query = parse_qs(url.query)
    watch = query.get("watch", ["false"])[0].lower() in ("true", "1")
    collection = not name
    if collection and method == "GET":
        # a list or watch of one object by field selector stays a list or watch, authorized by
        # the object's name (RequestInfo: fieldSelector.RequiresExactMatch("metadata.name"))
        for term in query.get("fieldSelector", [""])[0].split(","):
            field, _, value = term.partition("=")
            if field == "metadata.name" and value:
                name = value.removeprefix("=")
    verb = {
        "GET": "watch" if watch else ("list" if collection else "get"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }[method]
    return Request(verb, group, resource, namespace, name, status)


def recorded_requests(*logs: Path) -> list[Request]:
    out = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "urllib3.connectionpool" not in line:
                continue
            match = REQUEST_LINE.search(line)
            if match:
                out.append(request_info(match[1], match[2], int(match[3])))
    return out


def rule_allows(rule: dict, req: Request) -> bool:
    return (
        req.group in rule.get("apiGroups", [])
        and req.resource in rule.get("resources", [])
        and req.verb in rule["verbs"]
        and (not rule.get("resourceNames") or req.name in rule["resourceNames"])
    )


def allowed(recorded: Recorded, req: Request) -> bool:
    rbac, release_ns = recorded.rbac, recorded.release_ns
    if any(rule_allows(r, req) for r in rbac["ClusterRole"]):
        return True
    if req.namespace == release_ns and any(rule_allows(r, req) for r in rbac["Role"]):
        return True
    return any(
        rule_allows(r, req) and (not ns or req.namespace == ns) for ns, r in recorded.bootstrap
    )


def bound_rules(
    plane: ControlPlane, objs: list[dict], sa: str, release_ns: str
) -> tuple[dict[str, list[dict]], list[tuple[str, dict]]]:
    """The rules every rendered binding grants the chart's ServiceAccount: those of the chart's own
    roles (by kind), and those of the bootstrap roles it binds, read from the API server, with the
    namespace they hold in ("" cluster-wide). Roles nobody binds to it (the user-facing ones) are
    not its rights."""
    roles = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o["rules"]
        for o in objs
        if o["kind"] in ("ClusterRole", "Role")
    }
    own: dict[str, list[dict]] = {"ClusterRole": [], "Role": []}
    bootstrap: list[tuple[str, dict]] = []
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": release_ns}
    for binding in objs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if subject not in binding["subjects"]:
            continue
        ref, scope = binding["roleRef"], binding["metadata"].get("namespace", "")
        key = (ref["kind"], scope if ref["kind"] == "Role" else "", ref["name"])
        if key in roles:
            assert scope in ("", release_ns), f"a chart role bound outside the release: {binding}"
            own["Role" if scope else "ClusterRole"] += roles[key]
        else:
            where = ["-n", scope] if ref["kind"] == "Role" else []
            role = json.loads(
                kubectl_ok(plane, "get", ref["kind"], ref["name"], *where, "-o", "json")
            )
            bootstrap += [(scope, rule) for rule in role["rules"]]
    return own, bootstrap


def kubectl_ok(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    result = plane.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def sa_kubeconfig(plane: ControlPlane, namespace: str, sa: str, path: Path) -> Path:
    token = kubectl_ok(plane, "create", "token", sa, "-n", namespace, "--duration=1h").strip()
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Recorded:
    requests: list[Request]
    rbac: dict[str, list[dict]]  # the chart's own rules bound to its ServiceAccount, by kind
    bootstrap: list[tuple[str, dict]]  # (namespace or "", rule) of the bootstrap roles it binds
    release_ns: str
    webhook_log: Path
    enforcer_log: Path


@contextlib.contextmanager
def spawn(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        yield proc
    finally:
        stop_process(proc, timeout=15)


@pytest.fixture(scope="module")
def recorded(kubevirt_cluster: KubeVirtCluster, tmp_path_factory) -> Recorded:
    controlplane = kubevirt_cluster.plane
    tag = uuid.uuid4().hex[:6]
    work = tmp_path_factory.mktemp("rbac")
    release, release_ns, vm_ns = f"mgr-{tag}", f"mg-rbac-{tag}", f"vms-rbac-{tag}"
    for ns in (release_ns, vm_ns):
        kubectl_ok(controlplane, "create", "namespace", ns)
    kubectl_ok(controlplane, "label", "namespace", vm_ns, f"rbac-test={tag}")

    # The chart's ServiceAccount and RBAC, applied as rendered (its webhook configuration is not:
    # it would send every test's migrations to a Service with no pods).
    objs = render(controlplane, f"fullnameOverride={release}", namespace=release_ns)
    rbac_objs = [x for x in objs if x["kind"] in RBAC_KINDS]
    kubectl_ok(
        controlplane, "apply", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac_objs}),
    )  # fmt: skip
    rbac, bootstrap = bound_rules(controlplane, rbac_objs, release, release_ns)
    kubeconfig = sa_kubeconfig(controlplane, release_ns, release, work / "sa-kubeconfig")

    # Harvester's Setting CRD (the server lists and watches its server-version Setting; without
    # the CRD the list is a 404 and no watch follows), removed again unless it was there before
    settings_crd = "settings.harvesterhci.io"
    had_settings_crd = bool(
        kubectl_ok(controlplane, "get", "crd", settings_crd, "--ignore-not-found", "-o", "name")
    )
    if not had_settings_crd:
        kubectl_ok(controlplane, "create", "-f", "-", input=json.dumps(HARVESTER_SETTING_CRD))
        kubectl_ok(controlplane, "wait", "--for=condition=Established", f"crd/{settings_crd}")

    port, enforcer_port = free_port(), free_port()
    vwc = local_webhook_configuration(release, port, {"rbac-test": tag})
    kubectl_ok(controlplane, "create", "-f", "-", input=json.dumps(vwc))
    # The chart's APIService (the server patches its caBundle), to the local server's port through
    # an ExternalName Service of the chart's Service name (no kube-proxy here).
    (apiservice,) = [x for x in objs if x["kind"] == "APIService"]
    apiservice["spec"]["service"]["port"] = port
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": release, "namespace": release_ns},
        "spec": {"type": "ExternalName", "externalName": "127.0.0.1"},
    }
    kubectl_ok(
        controlplane, "create", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, apiservice]}),
    )  # fmt: skip

    sim = kubevirt_cluster.handler
    sim.set_scenario(vm_ns, "moves", Scenario.succeed(0.5))
    sim.set_scenario(vm_ns, "stalls", Scenario.stall(after=0.5))
    sim.set_scenario(vm_ns, "aborted", Scenario.stall(after=0.5))
    for name in ("moves", "stalls", "aborted"):
        kubevirt_cluster.start_vm(harvester_vm(vm_ns, name))
    grant = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alice-edit", "namespace": vm_ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "vm-migrator", "namespace": vm_ns},
        "rules": [
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get"]},
            {
                "apiGroups": ["kubevirt.io"],
                "resources": ["virtualmachineinstancemigrations"],
                "verbs": ["create", "delete"],
            },
        ],
    }
    grant["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "vm-migrator",
    }
    kubectl_ok(
        controlplane, "apply", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, grant]}),
    )  # fmt: skip

    webhook_log, enforcer_log = work / "webhook.log", work / "enforcer.log"
    webhook_args = [
        MG, "webhook", "--kubeconfig", str(kubeconfig), "--bind", f"127.0.0.1:{port}",
        "--namespace", release_ns, "--service-name", release, "--webhook-config-name", release,
        "--cert-secret-name", f"{release}-tls", "--cert-hosts", "127.0.0.1",
        "--cert-dir", str(work / "certs"), "--log-level", "debug",
        # short-lived serving certs so a renewal (Secret update) happens during the test
        "--cert-validity", "30s", "--cert-renew-before", "26s", "--cert-check-interval", "1s",
        "--ca-validity", "1h",
        # a repeated Event is written again (patched) within the test
        "--event-interval", "1s",
        # PolicyReports (the chart's default): written, updated and deleted within the test
        "--policy-reports", "--migratability-interval", "1s",
    ]  # fmt: skip
    enforcer_args = [
        MG, "enforcer", "--kubeconfig", str(kubeconfig), "--bind", f"127.0.0.1:{enforcer_port}",
        "--lease-namespace", release_ns, "--lease-name", f"{release}-enforcer",
        "--check-interval", "0.5s", "--progress-timeout", "3",
        "--virt-handler-urls", sim.metrics_url, "--log-level", "debug",
    ]  # fmt: skip
    try:
        with spawn(webhook_args, webhook_log) as webhook, spawn(enforcer_args, enforcer_log):
            ca_file = work / "ca.crt"

            def ready() -> bool:
                assert webhook.poll() is None, webhook_log.read_text()
                hook = json.loads(
                    kubectl_ok(
                        controlplane, "get", "validatingwebhookconfiguration", release, "-o", "json"
                    )
                )
                bundle = hook["webhooks"][0]["clientConfig"].get("caBundle")
                if not bundle:
                    return False
                ca_file.write_bytes(base64.b64decode(bundle))
                try:
                    return requests.get(
                        f"https://127.0.0.1:{port}/readyz", verify=str(ca_file), timeout=2
                    ).ok
                except requests.RequestException:
                    return False

            wait_for(ready, 60, "the webhook (running as the chart's ServiceAccount) to be ready")
            ext = f"https://127.0.0.1:{port}/v1"
            alice = {"Authorization": f"Bearer {controlplane.token('alice')}"}

            def call(method: str, path: str, **kw) -> requests.Response:
                return requests.request(
                    method, ext + path, headers=alice, verify=str(ca_file), timeout=20, **kw
                )

            # webhook: a VMI the cache has never seen is read once from the API, then denied
            # (virt-api denies it too; which denial kubectl prints is the API server's pick)
            missing = o.vmim(vm_ns, "mig-missing", "no-such-vmi", kubevirt_cluster.nodes[0])
            denied = controlplane.kubectl("create", "-f", "-", input=json.dumps(missing))
            assert denied.returncode != 0 and "denied the request" in denied.stderr, denied.stderr
            # an evacuation by virt-controller, denied twice: the webhook's Event on the Node is
            # created, then its count patched
            evacuation = o.vmim(vm_ns, "mig-evacuation", "no-such-vmi")
            drained = kubevirt_cluster.nodes[0]
            evacuation["metadata"]["annotations"] = {"kubevirt.io/evacuationMigration": drained}
            for _ in range(2):
                refused = controlplane.kubectl(
                    "create",
                    "-f",
                    "-",
                    "--as",
                    CONTROLLER,
                    "--as-group",
                    "system:masters",
                    input=json.dumps(evacuation),
                )
                assert refused.returncode != 0 and "denied the request" in refused.stderr
                time.sleep(1.5)
            action = f"/harvester/kubevirt.io.virtualmachines/{vm_ns}"
            found = call("POST", f"{action}/moves?action=findMigratableNodes")
            assert found.status_code == 200 and found.json()["nodes"], found.text
            assert call("GET", f"/namespaces/{vm_ns}/virtualmachines/moves/migration-targets").ok
            for vm in ("moves", "stalls", "aborted"):
                started = call("POST", f"{action}/{vm}?action=migrate", json={"nodeName": ""})
                assert started.status_code in (200, 201, 204), started.text
            wait_for(
                lambda: "Running" in kubectl_ok(controlplane, "get", "vmim", "-n", vm_ns, "-o", "yaml"),
                30, "a migration to run",
            )  # fmt: skip
            time.sleep(1.0)
            aborted = call("POST", f"{action}/aborted?action=abortMigration")
            assert aborted.status_code in (200, 202, 204), aborted.text
            assert call("GET", f"/namespaces/{vm_ns}/virtualmachines/moves/migration").ok

            def enforcer_aborted() -> bool:
                vm = json.loads(
                    kubectl_ok(controlplane, "get", "vm", "stalls", "-n", vm_ns, "-o", "json")
                )
                return "migration-guard.io/abort" in (vm["metadata"].get("annotations") or {})

            wait_for(enforcer_aborted, 60, "the enforcer to abort the stalled migration")
            # a namespace whose one VM goes: its PolicyReport is written, then deleted
            lone_ns = f"lone-{tag}"
            kubectl_ok(controlplane, "create", "namespace", lone_ns)
            kubevirt_cluster.start_vm(harvester_vm(lone_ns, "lone"))

            def report_in(ns: str) -> bool:
                got = controlplane.kubectl("get", "policyreport", "migration-guard", "-n", ns)
                return got.returncode == 0

            wait_for(lambda: report_in(lone_ns), 30, "the lone VM's PolicyReport")
            kubectl_ok(controlplane, "delete", "vm", "lone", "-n", lone_ns, "--wait=false")
            wait_for(lambda: not report_in(lone_ns), 60, "the PolicyReport to go with the VM")
            wait_for(
                lambda: re.search(r'"PUT /api/v1/namespaces/\S+/secrets/', webhook_log.read_text()),
                30, "a certificate renewal (Secret update)",
            )  # fmt: skip
            time.sleep(1.0)
    finally:
        controlplane.kubectl(
            "delete", "validatingwebhookconfiguration", release, "--ignore-not-found"
        )
        # an APIService left without its server would hold up namespace deletion cluster-wide
        name = apiservice["metadata"]["name"]
        controlplane.kubectl("delete", "apiservice", name, "--ignore-not-found")
        if not had_settings_crd:
            controlplane.kubectl("delete", "crd", settings_crd, "--ignore-not-found")
    requests_ = recorded_requests(webhook_log, enforcer_log)
    return Recorded(requests_, rbac, bootstrap, release_ns, webhook_log, enforcer_log)


def test_the_servers_made_every_kind_of_call(recorded: Recorded):
    """The exercise reached each code path that talks to Kubernetes (else the next tests prove little)."""
    seen = {(r.verb, r.resource) for r in recorded.requests}
    for expected in [
        ("watch", "nodes"),
        ("watch", "namespaces"),
        ("watch", "kubevirts"),
        ("watch", "migrationpolicies"),
        ("list", "settings"),
        ("watch", "settings"),
        ("get", "virtualmachineinstances"),
        ("create", "tokenreviews"),
        ("create", "subjectaccessreviews"),
        ("create", "virtualmachineinstancemigrations"),
        ("delete", "virtualmachineinstancemigrations"),
        ("create", "leases"),
        ("patch", "virtualmachines"),
        ("create", "events"),
        ("patch", "events"),
        ("update", "secrets"),
        ("update", "validatingwebhookconfigurations"),
        ("patch", "apiservices"),
        ("create", "policyreports"),
        ("update", "policyreports"),
        ("delete", "policyreports"),
    ]:
        assert expected in seen, f"{expected} not recorded; seen {sorted(seen)}"


def test_every_call_was_allowed_by_the_chart_rbac(recorded: Recorded):
    forbidden = [r for r in recorded.requests if r.status in (401, 403)]
    assert not forbidden, f"denied to the chart's ServiceAccount: {forbidden}"
    uncovered = [r for r in recorded.requests if not allowed(recorded, r)]
    assert not uncovered, f"calls no chart rule grants: {uncovered}"


def test_every_granted_verb_is_used_by_the_code(recorded: Recorded):
    unused = []
    for kind, rules in recorded.rbac.items():
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = rule.get("resourceNames") or [None]
                        for name in names:
                            used = any(
                                r.group == group and r.resource == resource and r.verb == verb
                                and (name is None or r.name == name)
                                and (kind == "ClusterRole" or r.namespace == recorded.release_ns)
                                for r in recorded.requests
                            )  # fmt: skip
                            if not used:
                                unused.append((kind, group, resource, verb, name))
    assert not unused, f"granted but never called: {unused}"


def test_namespaced_rights_stay_in_the_release_namespace(recorded: Recorded):
    cluster = {r for rule in recorded.rbac["ClusterRole"] for r in rule["resources"]}
    assert not cluster & {"leases", "secrets"}
    for rule in recorded.rbac["Role"]:
        if set(rule["verbs"]) - {"create"}:
            assert rule.get("resourceNames"), f"Role rule without resourceNames: {rule}"
