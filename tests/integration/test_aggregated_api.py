"""The extension as an aggregated API, through the real kube-apiserver's aggregator.

The backend is the real `migration-guard webhook` process (generated certificates: it writes the
APIService's caBundle itself). kube-apiserver reaches it through an ExternalName Service
(127.0.0.1: no kube-proxy here) and proxies with its front-proxy client certificate. Every test
makes real proxied requests: on Kubernetes 1.35 the APIService's availability check does not even
verify TLS, so `Available` alone proves nothing.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from extension import aggregated
from tests.harness.controlplane import REPO, ControlPlane
from tests.harness.pki import FRONT_PROXY_CLIENT, client_cert, new_ca
from tests.harness.registration import local_apiservice
from tests.integration.test_extension import kubectl_ok, make_node, make_vm, wait_for
from tests.webhook_process import WebhookProcess, running_webhook

pytestmark = pytest.mark.controlplane


def vm_path(ns: str, name: str, sub: str) -> str:
    return f"{aggregated.PREFIX}/namespaces/{ns}/virtualmachines/{name}/{sub}"


def register(plane: ControlPlane, hook: WebhookProcess) -> None:
    """The Service and APIService a cluster would have (the chart's, with ExternalName here)."""
    registration = local_apiservice(hook.secret_namespace, hook.port)
    kubectl_ok(plane, "apply", "-f", "-", input=json.dumps(registration))


def ca_bundle(plane: ControlPlane) -> str:
    out = kubectl_ok(
        plane, "get", "apiservice", aggregated.APISERVICE_NAME, "-o", "jsonpath={.spec.caBundle}"
    )
    return base64.b64decode(out).decode() if out else ""


def raw(plane: ControlPlane, path: str, *args: str, user: str = "admin"):
    return plane.kubectl("get", "--raw", path, *args, user=user)


def served(plane: ControlPlane, path: str) -> dict:
    """`kubectl get --raw` once the aggregator routes to the backend (Available, TLS trusted)."""
    result = wait_for(
        lambda: (r := raw(plane, path)).returncode == 0 and r,
        timeout=30,
        what=f"kube-apiserver to proxy {path}",
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def backend(controlplane: ControlPlane) -> Iterator[WebhookProcess]:
    args = ("--apiservice-name", aggregated.APISERVICE_NAME, "--cert-check-interval", "1s")
    with running_webhook(controlplane, *args) as hook:
        register(controlplane, hook)
        try:
            wait_for(lambda: ca_bundle(controlplane), timeout=20, what="the caBundle")
            served(controlplane, aggregated.PREFIX)
            yield hook
        finally:
            controlplane.kubectl("delete", "apiservice", aggregated.APISERVICE_NAME)


def direct(
    hook: WebhookProcess,
    path: str,
    headers: dict[str, str],
    cert: tuple[Path, Path] | None,
    serving_ca: str | None = None,
) -> tuple[int, dict]:
    """Call the backend directly (not through kube-apiserver), optionally with a client cert;
    `serving_ca`: the PEM to trust it with (default: its CA when it started)."""
    context = ssl.create_default_context(
        cafile=None if serving_ca else str(hook.ca_file), cadata=serving_ca
    )
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    request = urllib.request.Request(hook.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---- discovery -----------------------------------------------------------------------------------


def test_discovery_lists_every_subresource_with_its_verb(controlplane, backend):
    listing = served(controlplane, aggregated.PREFIX)
    assert listing["groupVersion"] == aggregated.GROUP_VERSION
    verbs = {r["name"]: r["verbs"] for r in listing["resources"]}
    assert verbs == {
        "virtualmachines/migrationtargets": ["get"],
        "virtualmachines/migration": ["get"],
        "virtualmachines/migrate": ["update"],
        "virtualmachines/abortmigration": ["update"],
        "nodes/drainplan": ["get"],
    }
    assert {r["name"]: r["namespaced"] for r in listing["resources"]}["nodes/drainplan"] is False
    apis = json.loads(kubectl_ok(controlplane, "get", "--raw", "/apis"))
    groups = {g["name"]: g for g in apis["groups"]}
    assert groups[aggregated.GROUP]["preferredVersion"]["groupVersion"] == aggregated.GROUP_VERSION


# ---- identity through kube-apiserver ---------------------------------------------------------------


def subresource_role(ns: str, name: str, subjects: list[dict], *subs: str) -> dict:
    """A Role on the aggregated subresources, bound to `subjects` (what kube-apiserver checks)."""
    verbs = {s.name: s.verb for s in aggregated.SUBRESOURCES}
    rules = [
        {
            "apiGroups": [aggregated.GROUP],
            "resources": [f"virtualmachines/{s}"],
            "verbs": [verbs[s]],
        }
        for s in subs
    ]
    return role_and_binding(ns, name, rules, subjects)


def role_and_binding(ns: str, name: str, rules: list[dict], subjects: list[dict]) -> dict:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **s} for s in subjects],
    }
    return {"apiVersion": "v1", "kind": "List", "items": [role, binding]}


def user(name: str) -> dict:
    return {"kind": "User", "name": name}


def group(name: str) -> dict:
    return {"kind": "Group", "name": name}


KUBEVIRT_MIGRATOR = [
    {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get"]},
    {
        "apiGroups": ["kubevirt.io"],
        "resources": ["virtualmachineinstancemigrations"],
        "verbs": ["get", "list", "create", "delete"],
    },
]


@pytest.fixture
def vm(controlplane, backend, namespace) -> str:
    """A running VM `vm1` in `namespace` with one node it may move to; its name."""
    make_node(controlplane, f"{namespace}-a", namespace)
    make_node(controlplane, f"{namespace}-b", namespace)
    make_vm(controlplane, namespace, "vm1", f"{namespace}-a")
    return "vm1"


@pytest.fixture
def alice(controlplane, namespace) -> str:
    """alice may use every VM subresource (kube-apiserver's check) and migrate with KubeVirt's
    rights (the backend's check) in `namespace`."""
    everything = [s.name for s in aggregated.SUBRESOURCES if s.namespaced]
    controlplane.apply_yaml(
        json.dumps(subresource_role(namespace, "mg-subresources", [user("alice")], *everything))
    )
    controlplane.apply_yaml(
        json.dumps(
            role_and_binding(namespace, "kubevirt-migrator", KUBEVIRT_MIGRATOR, [user("alice")])
        )
    )
    return "alice"


def test_alice_with_a_role_is_served_as_herself_and_bob_is_refused_by_kube_apiserver(
    controlplane, backend, namespace, vm, alice
):
    ns = namespace
    targets = vm_path(ns, vm, "migrationtargets")
    report = wait_for(
        lambda: (
            (r := raw(controlplane, targets, user="alice")).returncode == 0
            and json.loads(r.stdout).get("eligibleNodes")
            and json.loads(r.stdout)
        ),
        what="alice's report through kube-apiserver",
    )
    assert report["vm"] == f"{ns}/{vm}" and report["eligibleNodes"] == [f"{ns}-b"]

    refused = raw(controlplane, targets, user="bob")
    assert refused.returncode != 0
    assert (
        f'User "bob" cannot get resource "virtualmachines/migrationtargets" in API group '
        f'"{aggregated.GROUP}"' in refused.stderr
    )

    # migrate as alice: the VMIM records her as the requester (the backend got her identity)
    body = Path(backend.ca_file.parent / "migrate.json")
    body.write_text(json.dumps({"nodeName": f"{ns}-b"}))
    started = controlplane.kubectl(
        "replace", "--raw", vm_path(ns, vm, "migrate"), "-f", str(body), user="alice"
    )
    assert started.returncode == 0, started.stderr
    created = json.loads(started.stdout)
    assert created["targetNode"] == f"{ns}-b"
    vmim = json.loads(
        kubectl_ok(controlplane, "get", "vmim", created["name"], "-n", ns, "-o", "json")
    )
    assert vmim["metadata"]["annotations"]["migration-guard.io/requested-by"] == "alice"

    status = json.loads(kubectl_ok(controlplane, "get", "--raw", vm_path(ns, vm, "migration")))
    assert status["migration"]["name"] == created["name"]
    empty = backend.ca_file.parent / "empty.json"
    empty.write_text("{}")
    aborted = controlplane.kubectl(
        "replace", "--raw", vm_path(ns, vm, "abortmigration"), "-f", str(empty), user="alice"
    )
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)["aborted"] == created["name"]


def test_impersonation_carries_the_user_and_a_group_with_a_comma_whole(
    controlplane, backend, namespace, vm
):
    """As Rancher calls clusters: kube-apiserver checks the subresource for the impersonated user;
    the backend's own SubjectAccessReview passes only if it got the group whole."""
    ns, ldap_group = namespace, "CN=Domain Users,DC=ad"
    controlplane.apply_yaml(
        json.dumps(subresource_role(ns, "mg-targets", [user("u-abc")], "migrationtargets"))
    )
    read_vms = [{"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get"]}]
    controlplane.apply_yaml(
        json.dumps(role_and_binding(ns, "ldap-vms", read_vms, [group(ldap_group)]))
    )
    as_rancher = (
        "--as",
        "u-abc",
        "--as-group",
        ldap_group,
        "--as-group",
        "system:cattle:authenticated",
    )
    targets = vm_path(ns, vm, "migrationtargets")
    result = wait_for(
        lambda: (r := raw(controlplane, targets, *as_rancher)).returncode == 0 and r,
        what="the impersonated user's report",
    )
    assert json.loads(result.stdout)["vm"] == f"{ns}/{vm}"

    # without the group, the same user passes kube-apiserver and is refused by the backend
    refused = raw(controlplane, targets, "--as", "u-abc")
    assert refused.returncode != 0
    assert "may not get virtualmachines.kubevirt.io" in refused.stderr


# ---- forged identities, straight to the backend ---------------------------------------------------


FORGED = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}


def test_identity_headers_without_a_client_certificate_are_refused_naming_why(backend, namespace):
    status, body = direct(backend, vm_path(namespace, "vm1", "migrationtargets"), FORGED, None)
    assert status == 401
    assert "ignored without a front-proxy client certificate" in body["error"]


def test_a_front_proxy_certificate_with_another_name_is_refused_naming_it(
    controlplane, backend, namespace, tmp_path
):
    pki = controlplane.pki
    cert = client_cert(tmp_path, pki["front_proxy_ca"], pki["front_proxy_ca_key"], "intruder")
    status, body = direct(backend, vm_path(namespace, "vm1", "migrationtargets"), FORGED, cert)
    assert status == 401
    assert "CN=intruder is not in the front proxy's allowed names" in body["error"]
    assert FRONT_PROXY_CLIENT in body["error"]


def test_a_certificate_of_another_ca_fails_the_handshake(backend, namespace, tmp_path):
    other = client_cert(tmp_path, *new_ca(tmp_path, "other-ca"), FRONT_PROXY_CLIENT)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)) as info:
        direct(backend, vm_path(namespace, "vm1", "migrationtargets"), FORGED, other)
    assert "unknown ca" in str(info.value).lower()


def test_the_real_front_proxy_certificate_is_trusted(controlplane, backend, namespace, vm):
    """The backend believes exactly what a valid front-proxy certificate says (here: bob, who then
    lacks KubeVirt's permission: the backend's own SubjectAccessReview refuses him by name)."""
    pki = controlplane.pki
    cert = (pki["front_proxy_cert"], pki["front_proxy_key"])
    headers = {"X-Remote-User": "bob", "X-Remote-Group": "system:authenticated"}
    status, body = direct(backend, vm_path(namespace, vm, "migrationtargets"), headers, cert)
    assert status == 403
    assert (
        f"user 'bob' may not get virtualmachines.kubevirt.io 'vm1' in namespace '{namespace}'"
        in body["error"]
    )


def test_readyz_shows_the_front_proxy_trust(backend):
    status, text = backend.get("/readyz")
    detail = json.loads(text)["frontProxy"]
    assert status == 200
    assert detail["trusted"] is True and detail["allowedNames"] == [FRONT_PROXY_CLIENT]
    assert detail["configMap"] == "kube-system/extension-apiserver-authentication"


# ---- the kubectl plugin --------------------------------------------------------------------------


def plugin(plane: ControlPlane, user: str, *args: str) -> subprocess.CompletedProcess:
    """`kubectl migration-guard ...` as kubectl finds it: `kubectl-migration_guard` on PATH."""
    env = plane.env(user)
    env["PATH"] = f"{REPO / '.venv/bin'}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [str(plane.bin_dir / "kubectl"), "migration-guard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kubectl_plugin_targets_migrates_shows_and_aborts_as_the_user(
    controlplane, backend, namespace, vm, alice
):
    ns = namespace
    last: list[subprocess.CompletedProcess] = []

    def allowed() -> subprocess.CompletedProcess | None:
        last[:] = [plugin(controlplane, "alice", "targets", vm, "-n", ns)]
        return last[0] if last[0].returncode == 0 else None

    try:
        targets = wait_for(allowed, what="the plugin's report")
    except AssertionError as e:
        raise AssertionError(f"{e}: {last[0]}") from None
    assert f"VM:      {ns}/{vm} (on {ns}-a)" in targets.stdout
    assert "Result:  ALLOWED" in targets.stdout
    assert f"Eligible nodes: {ns}-b" in targets.stdout
    assert "SourceNode" in targets.stdout  # the source node's reason, as `check` prints it

    refused = plugin(controlplane, "alice", "migrate", vm, "-n", ns, "--node", f"{ns}-a")
    assert refused.returncode == 1
    assert f"live migration of VM {ns}/{vm} is not allowed" in refused.stderr
    assert "TargetNotEligible" in refused.stderr

    started = plugin(controlplane, "alice", "migrate", vm, "-n", ns, "--node", f"{ns}-b")
    assert started.returncode == 0, started.stderr
    assert f"of VM started to {ns}-b" in started.stdout
    status = plugin(controlplane, "alice", "status", vm, "-n", ns, "-o", "json")
    assert status.returncode == 0, status.stderr
    name = json.loads(status.stdout)["migration"]["name"]
    assert f"migration {ns}/{name} " in started.stdout
    aborted = plugin(controlplane, "alice", "abort", vm, "-n", ns)
    assert aborted.returncode == 0, aborted.stderr
    assert f"aborted migration {name}" in aborted.stdout

    bob = plugin(controlplane, "bob", "targets", vm, "-n", ns)
    assert bob.returncode == 1
    assert 'User "bob" cannot get resource "virtualmachines/migrationtargets"' in bob.stderr


def test_the_drain_plan_of_a_node_through_kube_apiserver(controlplane, backend, namespace, vm):
    node = f"{namespace}-a"
    path = f"{aggregated.PREFIX}/nodes/{node}/drainplan"
    plan = wait_for(
        lambda: (
            (r := raw(controlplane, path)).returncode == 0
            and (p := json.loads(r.stdout))["vms"]
            and p
        ),
        what="the drain plan",
    )
    assert plan["node"] == node
    (entry,) = [v for v in plan["vms"] if v["vm"] == f"{namespace}/{vm}"]
    assert entry["outcome"] in ("migrates", "shut-down", "holds-drain")

    refused = raw(controlplane, path, user="bob")
    assert refused.returncode != 0
    assert f'cannot get resource "nodes/drainplan" in API group "{aggregated.GROUP}"' in (
        refused.stderr
    )
    # allowed by kube-apiserver, refused by the backend: the plan shows VMs of every namespace
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"drain-planner-{namespace}"},
        "rules": [
            {"apiGroups": [aggregated.GROUP], "resources": ["nodes/drainplan"], "verbs": ["get"]}
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"drain-planner-{namespace}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
    }
    controlplane.apply_yaml(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    backend_refusal = wait_for(
        lambda: "may not list" in (r := raw(controlplane, path, user="bob")).stderr and r,
        what="the backend's refusal",
    )
    assert (
        "user 'bob' may not list virtualmachineinstances.kubevirt.io in every namespace"
        in backend_refusal.stderr
    )
