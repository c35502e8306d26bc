"""Security: TLS 1.2+ only, the extension's identity checks, and the chart's pod hardening.

Against the real `migration-guard webhook` process (which serves the extension) over TLS, with the
control plane's real bearer tokens; the chart is rendered by the real helm and its pods are checked
by kube-apiserver's own PodSecurity admission at the `restricted` level.
"""

from __future__ import annotations

import json
import socket
import ssl
import warnings

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.chart_support import render
from tests.integration.test_extension import grant, make_node, make_vm
from tests.reliability.support import FIGURES, https
from tests.webhook_process import WebhookProcess, running_webhook

pytestmark = pytest.mark.controlplane


@pytest.fixture(scope="module")
def hook(controlplane: ControlPlane):
    with running_webhook(controlplane) as process:
        yield process


def _handshake(port: int, maximum: ssl.TLSVersion) -> str:
    """The TLS version agreed with a client capped at `maximum`, or the SSLError text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # Let this client offer old protocols, so any refusal comes from the server.
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            return str(tls.version())
    except ssl.SSLError as e:
        return f"refused: {e}"
    finally:
        FIGURES.add("requests served (security)")


def test_only_tls_1_2_and_newer(hook: WebhookProcess) -> None:
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        answer = _handshake(hook.port, old)
        # the server's alert, received by a client that did offer the old version
        assert "TLSV1_ALERT_PROTOCOL_VERSION" in answer, answer
    assert _handshake(hook.port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(hook.port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert hook.get("/healthz")[0] == 200


def _call(hook: WebhookProcess, path: str, token: str | None, method: str = "GET", body=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw = None if body is None else json.dumps(body).encode()
    status, answer = https(hook.url + path, hook.ca_file, method, raw, headers)
    FIGURES.add("requests served (security)")
    return status, json.loads(answer)


def test_extension_identity_and_namespace_isolation(
    controlplane: ControlPlane, hook: WebhookProcess, namespace: str
) -> None:
    """401 without a valid token, 403 without permission, never another namespace's objects."""
    mine, theirs = namespace, f"{namespace}-theirs"
    assert controlplane.kubectl("create", "namespace", theirs).returncode == 0
    src, dst = f"{mine}-a", f"{mine}-b"
    make_node(controlplane, src, mine)
    make_node(controlplane, dst, mine)
    make_vm(controlplane, mine, "vm1", src)
    make_vm(controlplane, theirs, "vm1", src)
    make_vm(controlplane, theirs, "secret-vm", src)
    grant(controlplane, mine, "alice")
    alice, bob = controlplane.token("alice"), controlplane.token("bob")

    def targets(ns: str, name: str, token: str | None):
        return _call(hook, f"/v1/namespaces/{ns}/virtualmachines/{name}/migration-targets", token)

    def action(ns: str, name: str, what: str, token: str | None, body=None):
        path = f"/v1/harvester/kubevirt.io.virtualmachines/{ns}/{name}?action={what}"
        return _call(hook, path, token, "POST", body)

    for token in (None, "", "not-a-token", alice[:-1] + "x"):
        status, answer = targets(mine, "vm1", token)
        assert status == 401, (token, answer)
        assert "token" in answer["error"] or "Authorization" in answer["error"], answer
    for what in ("findMigratableNodes", "migrate", "abortMigration"):
        status, answer = action(mine, "vm1", what, "not-a-token")
        assert status == 401, answer

    # bob has no role anywhere: 403 naming the permission, for every endpoint
    status, answer = targets(mine, "vm1", bob)
    assert status == 403 and "user 'bob' may not get virtualmachines" in answer["error"], answer
    status, answer = action(mine, "vm1", "migrate", bob, {"nodeName": dst})
    assert status == 403 and "create virtualmachineinstancemigrations" in answer["error"]
    status, answer = action(mine, "vm1", "abortMigration", bob)
    assert status == 403 and "delete virtualmachineinstancemigrations" in answer["error"]

    # alice reads her namespace...
    for _ in range(100):  # the cache may need a moment to see the new VM
        status, report = targets(mine, "vm1", alice)
        if status == 200 and report.get("sourceNode"):
            break
    assert status == 200 and report["vm"] == f"{mine}/vm1", report
    assert theirs not in json.dumps(report)
    # ...but nothing of theirs: the same 403 whether the VM exists or not, so nothing leaks
    answers = {}
    for name in ("vm1", "secret-vm", "no-such-vm"):
        for path in (
            f"/v1/namespaces/{theirs}/virtualmachines/{name}/migration-targets",
            f"/v1/namespaces/{theirs}/virtualmachines/{name}/migration",
        ):
            status, answer = _call(hook, path, alice)
            assert status == 403, (path, answer)
            assert "secret-vm" not in json.dumps(answer) or name == "secret-vm"
            answers[path.replace(name, "NAME")] = answer
        status, answer = action(theirs, name, "findMigratableNodes", alice)
        assert status == 403 and "nodes" not in answer, answer
    status, answer = action(theirs, "vm1", "migrate", alice, {})
    assert status == 403, answer
    listed = controlplane.kubectl("get", "vmim", "-n", theirs, "-o", "json")
    assert json.loads(listed.stdout)["items"] == []  # nothing was created there


def _pod_templates(objs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for obj in objs:
        template = (obj.get("spec") or {}).get("template")
        if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job") and template:
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", template))
    return out


@pytest.mark.parametrize("sets", [(), ("enforcer.enabled=false",)])
def test_chart_pods_run_non_root_with_a_read_only_root_filesystem(
    controlplane: ControlPlane, namespace: str, sets: tuple[str, ...]
) -> None:
    """Every container of every pod the chart renders: non-root, read-only root filesystem, no
    privilege escalation; and kube-apiserver's PodSecurity admission accepts the pods at the
    `restricted` level (server-side dry run in a namespace that enforces it)."""
    objs = render(controlplane, *sets, namespace=namespace)
    templates = _pod_templates(objs)
    assert templates, [o["kind"] for o in objs]
    label = "pod-security.kubernetes.io/enforce=restricted"
    assert controlplane.kubectl("label", "namespace", namespace, label).returncode == 0
    for where, template in templates:
        spec = template["spec"]
        pod_ctx = spec.get("securityContext") or {}
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        assert containers, where
        for c in containers:
            ctx = c.get("securityContext") or {}
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, (where, c["name"])
            assert (ctx.get("runAsUser", pod_ctx.get("runAsUser")) or 1) != 0, (where, c["name"])
            assert ctx.get("readOnlyRootFilesystem") is True, (where, c["name"])
            assert ctx.get("allowPrivilegeEscalation") is False, (where, c["name"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pss-check", "namespace": namespace},
            "spec": spec,
        }
        result = controlplane.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(pod)
        )
        assert result.returncode == 0, (where, result.stderr)
        assert "Warning" not in result.stderr, (where, result.stderr)
    # the check bites: the same pod without its security context is refused
    bare = json.loads(json.dumps(templates[0][1]["spec"]))
    bare.pop("securityContext", None)
    for c in bare["containers"]:
        c.pop("securityContext", None)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pss-bare", "namespace": namespace},
        "spec": bare,
    }
    result = controlplane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert result.returncode != 0 and "violates PodSecurity" in result.stderr, result.stderr
