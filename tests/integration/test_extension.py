"""The extension backend end to end: the real `migration-guard webhook` process (which serves the
extension from the same app and cache), registered as an admission webhook of the test API
server, called over TLS with the real users' bearer tokens."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from extension.status import ABORTABLE_PHASES
from tests import webhook_objects as o
from tests.harness.controlplane import REPO, free_port
from tests.harness.processes import stop_process
from tests.harness.rbac import vm_migrator_rbac
from tests.harness.registration import local_webhook_configuration
from webhook.admission.certs import generate_ca, generate_serving_cert

pytestmark = pytest.mark.controlplane

KV = "/apis/kubevirt.io/v1"
SELECT_LABEL = "ext-test.migration-guard.io/webhook"
NODE_LABEL = "ext-test.migration-guard.io/ns"
RACK_LABEL = "ext-test.migration-guard.io/rack"
READY_TIMEOUT_S = 60


class Server:
    """A running migration-guard process and how to call it."""

    def __init__(self, url: str, ca_file: Path, process: subprocess.Popen, log: Path) -> None:
        self.url, self.ca_file, self.process, self.log = url, ca_file, process, log

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, self.url + path, headers=headers, verify=str(self.ca_file), timeout=30, **kwargs
        )

    def action(self, token: str | None, ns: str, name: str, action: str, **kwargs):
        path = f"/v1/harvester/kubevirt.io.virtualmachines/{ns}/{name}?action={action}"
        return self.call("POST", path, token, **kwargs)

    def targets(self, token: str | None, ns: str, name: str) -> requests.Response:
        return self.call(
            "GET", f"/v1/namespaces/{ns}/virtualmachines/{name}/migration-targets", token
        )

    def migration(self, token: str | None, ns: str, name: str) -> requests.Response:
        return self.call("GET", f"/v1/namespaces/{ns}/virtualmachines/{name}/migration", token)


def start_server(controlplane, workdir: Path, command: str, *extra_args: str) -> Server:
    """`migration-guard <command>` on loopback with a certificate we made (given-cert mode)."""
    now = dt.datetime.now(dt.UTC)
    ca_cert, ca_key = generate_ca(86400, now, "ext-test-ca")
    cert, key = generate_serving_cert(ca_cert, ca_key, ["127.0.0.1"], 86400, now)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (("ca.crt", ca_cert), ("tls.crt", cert), ("tls.key", key)):
        (workdir / name).write_text(text)
    port = free_port()
    log = workdir / f"{command}.log"
    args = [
        sys.executable,
        "-m",
        "webhook.cli",
        command,
        "--bind",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        str(controlplane.kubeconfig),
        "--tls-cert-file",
        str(workdir / "tls.crt"),
        "--tls-key-file",
        str(workdir / "tls.key"),
        "--webhook-config-name",
        "",
        "--threads",
        "4",
        "--watch-timeout",
        "30",
        *extra_args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(f"https://127.0.0.1:{port}", workdir / "ca.crt", process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{command} exited {process.returncode}: {log.read_text()[-3000:]}"
            )
        try:
            if server.call("GET", "/readyz").status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise AssertionError(f"{command} not ready after {READY_TIMEOUT_S}s: {log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    stop_process(server.process, timeout=15)


@pytest.fixture(scope="module")
def server(controlplane, tmp_path_factory):
    """The webhook process, registered for CREATE of VMIMs in namespaces labelled for it only."""
    srv = start_server(controlplane, tmp_path_factory.mktemp("ext-webhook"), "webhook")
    config = f"ext-test-{uuid.uuid4().hex[:8]}"
    vwc = local_webhook_configuration(
        config,
        urlsplit(srv.url).port,
        {SELECT_LABEL: config},
        webhook_name="ext-test.migration-guard.io",
        ca_bundle=_b64(srv.ca_file.read_bytes()),
    )
    controlplane.apply_yaml(json.dumps(vwc))
    srv.webhook_label = config
    try:
        yield srv
    finally:
        controlplane.kubectl("delete", "validatingwebhookconfiguration", config, "--wait=false")
        stop_server(srv)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


# ---- cluster objects ----------------------------------------------------------------------------


def kubectl_ok(controlplane, *args, input=None):
    result = controlplane.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def apply(controlplane, obj: dict) -> None:
    kubectl_ok(controlplane, "apply", "-f", "-", input=json.dumps(obj))


def patch_status(controlplane, kind: str, ns: str, name: str, status: dict) -> None:
    controlplane.patch_status(kind, name, status, namespace=ns)


def grant(controlplane, ns: str, user: str) -> None:
    """A Role letting `user` look up VMs and start and abort migrations in `ns`."""
    controlplane.apply_yaml(json.dumps(vm_migrator_rbac(ns, user)))


def make_node(controlplane, name: str, ns: str, **kw) -> None:
    """A node for this test's VMs: it carries the label the VMs select (other tests' nodes don't)."""
    labels = {NODE_LABEL: ns, RACK_LABEL: "r1", "cpu-model.node.kubevirt.io/Haswell": "true"}
    labels.update(kw.pop("labels", {}))
    drop = kw.pop("drop_labels", ())
    annotations = kw.pop("annotations", None)
    taints = kw.pop("taints", None)
    ready = kw.pop("ready", True)
    obj = o.node(name, labels=labels, **kw)
    for key in drop:
        obj["metadata"]["labels"].pop(key, None)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    status = obj.pop("status")
    if not ready:
        status["conditions"] = [{"type": "Ready", "status": "False", "reason": "KubeletDown"}]
    apply(controlplane, obj)
    patch_status(controlplane, "node", "", name, status)
    # the API server's TaintNodesByCondition admission adds not-ready on create; no kubelet
    # clears it here, so set the taints this test wants
    patch = json.dumps({"spec": {"taints": taints or None}})
    kubectl_ok(controlplane, "patch", "node", name, "--type=merge", "-p", patch)


def make_vm(controlplane, ns: str, name: str, source: str) -> None:
    """A Harvester-like VM whose Running VMI selects this test's nodes and a Haswell CPU."""
    apply(controlplane, o.nad(ns))
    apply(controlplane, o.vm(ns, name))
    vmi = o.vmi(ns, name, source)
    spec = vmi["spec"]
    spec["nodeSelector"] = {NODE_LABEL: ns}
    spec["domain"]["cpu"]["model"] = "Haswell"
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": RACK_LABEL, "operator": "NotIn", "values": ["r9"]}
                        ]
                    }
                ]
            }
        }
    }
    vm_uid = json.loads(kubectl_ok(controlplane, "get", "vm", name, "-n", ns, "-o", "json"))[
        "metadata"
    ]["uid"]
    vmi["metadata"]["ownerReferences"][0]["uid"] = vm_uid
    status = vmi.pop("status")
    apply(controlplane, vmi)
    patch_status(controlplane, "vmi", ns, name, status)


def vmims(controlplane, ns: str) -> list[dict]:
    return json.loads(kubectl_ok(controlplane, "get", "vmim", "-n", ns, "-o", "json"))["items"]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {value!r}")


# ---- identity -----------------------------------------------------------------------------------


def test_alice_with_a_role_may_act_in_her_namespace_only_and_bob_nowhere(
    controlplane, server, namespace
):
    ns, other = namespace, f"{namespace}-other"
    kubectl_ok(controlplane, "create", "namespace", other)
    src, dst = f"{ns}-a", f"{ns}-b"
    make_node(controlplane, src, ns)
    make_node(controlplane, dst, ns)
    make_vm(controlplane, ns, "vm1", src)
    make_vm(controlplane, other, "vm1", src)
    grant(controlplane, ns, "alice")
    alice, bob = controlplane.token("alice"), controlplane.token("bob")

    report = wait_for(
        lambda: (r := server.targets(alice, ns, "vm1").json()).get("eligibleNodes") and r,
        what="the cache to see the VM",
    )
    assert report["vm"] == f"{ns}/vm1"
    assert report["sourceNode"] == src
    assert report["eligibleNodes"] == [dst]
    found = server.action(alice, ns, "vm1", "findMigratableNodes")
    assert (found.status_code, found.json()) == (200, {"nodes": [dst]})

    migrated = server.action(alice, ns, "vm1", "migrate", json={"nodeName": dst})
    assert migrated.status_code == 201, migrated.text
    created = vmims(controlplane, ns)
    assert [m["metadata"]["name"] for m in created] == [migrated.json()["name"]]
    vmim = created[0]
    assert vmim["metadata"]["name"].startswith("vm1-")
    assert vmim["metadata"]["labels"] == {"kubevirt.io/vmi-name": "vm1"}
    assert vmim["metadata"]["annotations"]["migration-guard.io/requested-by"] == "alice"
    assert vmim["spec"] == {"vmiName": "vm1", "addedNodeSelector": {"kubernetes.io/hostname": dst}}

    # another namespace: 403 whether or not the VM exists, so nothing leaks
    for name in ("vm1", "no-such-vm"):
        for response in (
            server.targets(alice, other, name),
            server.migration(alice, other, name),
            server.action(alice, other, name, "findMigratableNodes"),
            server.action(alice, other, name, "migrate", json={}),
            server.action(alice, other, name, "abortMigration"),
        ):
            assert response.status_code == 403, response.text
            assert "user 'alice' may not" in response.json()["error"]
            assert f"namespace '{other}'" in response.json()["error"]
    for target_ns in (ns, other):
        response = server.action(bob, target_ns, "vm1", "findMigratableNodes")
        assert response.status_code == 403
        assert "user 'bob' may not get virtualmachines.kubevirt.io" in response.json()["error"]
        assert server.targets(bob, target_ns, "vm1").status_code == 403
        assert server.action(bob, target_ns, "vm1", "migrate", json={}).status_code == 403
    # no token, a bad token
    for token in (None, "not-a-real-token"):
        response = server.targets(token, ns, "vm1")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]
    # alice's own namespace: an unknown VM is 404, bad requests are 400 naming the problem
    missing = server.targets(alice, ns, "no-such-vm")
    assert missing.status_code == 404
    not_found = f"VirtualMachine {ns}/no-such-vm not found"
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 404,
        "reason": "NotFound",
        "message": not_found,
        "error": not_found,
    }
    assert server.migration(alice, ns, "no-such-vm").status_code == 404
    unknown = server.action(alice, ns, "vm1", "teleport")
    assert unknown.status_code == 400
    assert "unknown action 'teleport'" in unknown.json()["error"]
    malformed = server.action(
        alice,
        ns,
        "vm1",
        "migrate",
        data=b'{"nodeName": ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["error"]


# ---- the lookup and the webhook agree -----------------------------------------------------------


def node_cases(ns: str) -> dict[str, tuple[str | None, dict]]:
    """node -> (the reason it fails, or None for eligible; how to make it)."""
    return {
        f"{ns}-src": ("SourceNode", {}),
        f"{ns}-ok": (None, {}),
        f"{ns}-ok2": (None, {}),
        f"{ns}-notready": ("NodeNotReady", {"ready": False}),
        f"{ns}-cordoned": ("NodeCordoned", {"cordoned": True}),
        f"{ns}-maint": (
            "NodeInMaintenance",
            {"annotations": {"harvesterhci.io/maintain-status": "running"}},
        ),
        f"{ns}-witness": ("WitnessNode", {"labels": {"node-role.harvesterhci.io/witness": "true"}}),
        f"{ns}-unsched": ("NotSchedulable", {"labels": {"kubevirt.io/schedulable": "false"}}),
        f"{ns}-selector": ("NodeSelectorMismatch", {"drop_labels": (NODE_LABEL,)}),
        f"{ns}-affinity": ("NodeAffinityMismatch", {"labels": {RACK_LABEL: "r9"}}),
        f"{ns}-taint": (
            "TaintNotTolerated",
            {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
        ),
        f"{ns}-network": (
            "NetworkUnavailable",
            {"drop_labels": (f"network.harvesterhci.io/{o.CLUSTER_NETWORK}",)},
        ),
        f"{ns}-cpu": (
            "CPUModelUnsupported",
            {"drop_labels": ("cpu-model.node.kubevirt.io/Haswell",)},
        ),
        f"{ns}-small": ("InsufficientResources", {"memory": "1Gi"}),
    }


def codes(problems: list[dict]) -> list[str]:
    return sorted(p["code"] for p in problems)


def test_every_node_offered_is_admitted_and_every_node_excluded_is_denied_for_its_reasons(
    controlplane, server, namespace
):
    ns = namespace
    kubectl_ok(controlplane, "label", "namespace", ns, f"{SELECT_LABEL}={server.webhook_label}")
    cases = node_cases(ns)
    for name, (_, how) in cases.items():
        make_node(controlplane, name, ns, **how)
    apply(controlplane, o.nad(ns))
    make_vm(controlplane, ns, "vm1", f"{ns}-src")
    admin = controlplane.token("admin")

    def settled_report():
        report = server.targets(admin, ns, "vm1").json()
        mine = {n["name"] for n in report.get("nodes", [])} >= set(cases)
        return report if mine and not report["blockers"] else None

    report = wait_for(settled_report, what="the cache to see every node")
    verdicts = {n["name"]: n for n in report["nodes"]}
    for name, (reason, _) in cases.items():
        got = codes(verdicts[name]["reasons"])
        assert got == ([reason] if reason else []), f"{name}: {verdicts[name]['reasons']}"
    eligible = sorted(n for n, (r, _) in cases.items() if r is None)
    assert sorted(report["eligibleNodes"]) == eligible  # other tests' nodes lack NODE_LABEL
    found = server.action(admin, ns, "vm1", "findMigratableNodes").json()
    assert sorted(found["nodes"]) == eligible

    for name, verdict in verdicts.items():
        if name not in cases:
            continue  # other tests' nodes: excluded by NodeSelectorMismatch, checked by codes below
        response = server.action(admin, ns, "vm1", "migrate", json={"nodeName": name})
        if verdict["eligible"]:
            assert response.status_code == 201, response.text
            created = response.json()["name"]
            kubectl_ok(controlplane, "delete", "vmim", created, "-n", ns)
            wait_for(lambda: settled_report(), what="the cache to forget the migration")
            continue
        assert response.status_code == 422, response.text
        body = response.json()
        assert [c["code"] for c in body["causes"]] == ["TargetNotEligible"]
        assert codes(body["targetReasons"]) == codes(verdict["reasons"])
        # the webhook, asked directly (kubectl), refuses the same node for the same reasons
        vmim = o.vmim(ns, f"direct-{name}", "vm1", target=name)
        direct = controlplane.kubectl("create", "-f", "-", input=json.dumps(vmim))
        assert direct.returncode != 0, f"webhook admitted {name}"
        assert "denied the request" in direct.stderr
        assert "TargetNotEligible" in direct.stderr
        for reason in verdict["reasons"]:
            assert reason["message"] in direct.stderr, (name, reason, direct.stderr)
    assert vmims(controlplane, ns) == []

    # any node: admitted; and the webhook agrees it is now in progress
    response = server.action(admin, ns, "vm1", "migrate", json={"nodeName": ""})
    assert response.status_code == 201, response.text
    assert "addedNodeSelector" not in vmims(controlplane, ns)[0]["spec"]


def test_blocked_vm_offers_no_node_and_migrate_relays_every_blocker(
    controlplane, server, namespace
):
    ns = namespace
    kubectl_ok(controlplane, "label", "namespace", ns, f"{SELECT_LABEL}={server.webhook_label}")
    make_node(controlplane, f"{ns}-src", ns)
    make_node(controlplane, f"{ns}-ok", ns)
    apply(controlplane, o.nad(ns))
    apply(controlplane, o.vm(ns, "messy", cdrom=True, pci=True))
    vmi = o.vmi(ns, "messy", f"{ns}-src", cdrom=True, pci=True)
    vmi["spec"]["nodeSelector"] = {NODE_LABEL: ns}
    status = vmi.pop("status")
    apply(controlplane, vmi)
    patch_status(controlplane, "vmi", ns, "messy", status)
    admin = controlplane.token("admin")

    report = wait_for(
        lambda: (r := server.targets(admin, ns, "messy").json()).get("sourceNode") and r,
        what="the cache to see the VMI",
    )
    assert codes(report["blockers"]) == ["CDROMVolume", "PCIDevicePassthrough"]
    assert server.action(admin, ns, "messy", "findMigratableNodes").json() == {"nodes": []}
    response = server.action(admin, ns, "messy", "migrate", json={"nodeName": f"{ns}-ok"})
    assert response.status_code == 422
    causes = response.json()["causes"]
    assert codes(causes) == ["CDROMVolume", "PCIDevicePassthrough"]
    assert all(c["field"] for c in causes)
    assert vmims(controlplane, ns) == []


# ---- abort --------------------------------------------------------------------------------------


def test_abort_deletes_the_migration_in_each_abortable_phase_and_refuses_final_ones(
    controlplane, server, namespace
):
    ns = namespace  # not labelled for the webhook: VMIMs are created directly in any phase
    make_node(controlplane, f"{ns}-src", ns)
    make_vm(controlplane, ns, "vm1", f"{ns}-src")
    grant(controlplane, ns, "alice")
    alice = controlplane.token("alice")

    none = server.action(alice, ns, "vm1", "abortMigration")
    assert none.status_code == 409
    assert none.json()["error"] == f"no migration in progress for VM {ns}/vm1"

    for i, phase in enumerate(ABORTABLE_PHASES):
        name = f"m{i}-{phase.lower()}"
        apply(controlplane, o.vmim(ns, name, "vm1"))
        if phase != "Pending":
            patch_status(controlplane, "vmim", ns, name, {"phase": phase})
        response = server.action(alice, ns, "vm1", "abortMigration")
        assert response.status_code == 200, response.text
        assert response.json()["aborted"] == name
        assert response.json()["phase"] == phase
        assert vmims(controlplane, ns) == []

    for phase in ("Succeeded", "Failed"):
        name = f"final-{phase.lower()}"
        apply(controlplane, o.vmim(ns, name, "vm1"))
        patch_status(controlplane, "vmim", ns, name, {"phase": phase})
        response = server.action(alice, ns, "vm1", "abortMigration")
        assert response.status_code == 409
        assert f"{name}, is already {phase}" in response.json()["error"]
        assert name in [m["metadata"]["name"] for m in vmims(controlplane, ns)]
        kubectl_ok(controlplane, "delete", "vmim", name, "-n", ns)

    bob = server.action(controlplane.token("bob"), ns, "vm1", "abortMigration")
    assert bob.status_code == 403
    assert "delete virtualmachineinstancemigrations" in bob.json()["error"]


# ---- migration status ---------------------------------------------------------------------------


def test_migration_status_shows_phase_nodes_deadlines_and_why_it_was_aborted(
    controlplane, server, namespace
):
    ns = namespace
    make_node(controlplane, f"{ns}-src", ns)
    make_vm(controlplane, ns, "vm1", f"{ns}-src")
    grant(controlplane, ns, "alice")
    alice = controlplane.token("alice")
    never = server.migration(alice, ns, "vm1")
    assert never.status_code == 404
    assert "has never migrated" in never.json()["error"]

    apply(controlplane, o.vmim(ns, "m1", "vm1", target=f"{ns}-dst"))
    vmim = vmims(controlplane, ns)[0]
    patch_status(controlplane, "vmim", ns, "m1", {"phase": "Running"})
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    state = {
        "migrationUid": vmim["metadata"]["uid"],
        "sourceNode": f"{ns}-src",
        "targetNode": f"{ns}-dst",
        "startTimestamp": start,
    }
    vmi = json.loads(kubectl_ok(controlplane, "get", "vmi", "vm1", "-n", ns, "-o", "json"))
    patch_status(controlplane, "vmi", ns, "vm1", {**vmi["status"], "migrationState": state})

    body = server.migration(alice, ns, "vm1").json()
    assert body["vm"] == f"{ns}/vm1"
    m = body["migration"]
    assert (m["name"], m["uid"], m["phase"]) == ("m1", vmim["metadata"]["uid"], "Running")
    assert (m["sourceNode"], m["targetNode"]) == (f"{ns}-src", f"{ns}-dst")
    assert m["startTimestamp"] == start
    assert 29 <= m["elapsedSeconds"] <= 90
    # 2Gi guest memory -> 2 GiB x 800 s
    assert m["completionTimeoutSeconds"] == 1600
    assert m["progressTimeoutSeconds"] == 150
    start_dt = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    deadline = (start_dt + dt.timedelta(seconds=1600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert m["completionDeadline"] == deadline
    assert m["dataRemainingBytes"] is None
    assert m["why"] is None

    # the enforcer aborts: annotation on the VM, VMIM failed, VMI abort status
    record = {
        "reason": "MigrationStalled",
        "message": "no progress for 150s",
        "migration": "m1",
        "migrationUID": vmim["metadata"]["uid"],
        "time": start,
    }
    kubectl_ok(
        controlplane,
        "annotate",
        "vm",
        "vm1",
        "-n",
        ns,
        f"migration-guard.io/abort={json.dumps(record)}",
    )
    patch_status(controlplane, "vmim", ns, "m1", {"phase": "Failed"})
    patch_status(
        controlplane,
        "vmi",
        ns,
        "vm1",
        {"migrationState": {**state, "abortStatus": "Succeeded", "failed": True}},
    )
    m = server.migration(alice, ns, "vm1").json()["migration"]
    assert m["phase"] == "Failed"
    assert m["final"] is True
    assert m["abort"] == record
    assert m["abortStatus"] == "Succeeded"
    assert "MigrationStalled" in m["why"] and "no progress for 150s" in m["why"]


# ---- alone ---------------------------------------------------------------------------------------


def test_extension_command_serves_the_api_alone(controlplane, tmp_path, namespace):
    srv = start_server(controlplane, tmp_path, "extension")
    try:
        spec = srv.call("GET", "/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["openapi"].startswith("3.")
        assert srv.targets(None, namespace, "vm1").status_code == 401
        make_node(controlplane, f"{namespace}-src", namespace)
        make_node(controlplane, f"{namespace}-ok", namespace)
        make_vm(controlplane, namespace, "vm1", f"{namespace}-src")
        admin = controlplane.token("admin")
        found = wait_for(
            lambda: (
                (r := srv.action(admin, namespace, "vm1", "findMigratableNodes").json())["nodes"]
                and r
            ),
            what="the standalone cache",
        )
        assert found == {"nodes": [f"{namespace}-ok"]}
    finally:
        stop_server(srv)


def test_migrate_relays_a_refusal_by_another_admission_policy_as_422(
    controlplane, server, namespace
):
    """The rules allow it, but a ValidatingAdmissionPolicy of the cluster refuses the VMIM."""
    ns = namespace
    make_node(controlplane, f"{ns}-src", ns)
    make_node(controlplane, f"{ns}-dst", ns)
    make_vm(controlplane, ns, "frozen", f"{ns}-src")
    policy = f"freeze-{ns}"
    controlplane.apply_yaml(
        json.dumps(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": ["kubevirt.io"],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["virtualmachineinstancemigrations"],
                            }
                        ]
                    },
                    "validations": [
                        {
                            "expression": "false",
                            "message": "migrations are frozen for a change window",
                        }
                    ],
                },
            }
        )
    )
    controlplane.apply_yaml(
        json.dumps(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
                    },
                },
            }
        )
    )
    try:
        probe = json.dumps(
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstanceMigration",
                "metadata": {"generateName": "probe-", "namespace": ns},
                "spec": {"vmiName": "frozen"},
            }
        )
        wait_for(
            lambda: (
                "frozen for a change window"
                in controlplane.kubectl("create", "--dry-run=server", "-f", "-", input=probe).stderr
            ),
            what="the policy to be in force",
        )
        admin = controlplane.token("admin")
        wait_for(
            lambda: server.targets(admin, ns, "frozen").json().get("allowed"),
            what="the rules to allow the migration",
        )
        response = server.action(admin, ns, "frozen", "migrate", json={"nodeName": f"{ns}-dst"})
        assert response.status_code == 422, response.text
        body = response.json()
        assert "frozen for a change window" in body["error"]
        assert len(body["causes"]) == 1
        assert "frozen for a change window" in body["causes"][0]["message"]
        assert vmims(controlplane, ns) == []
    finally:
        controlplane.kubectl("delete", "validatingadmissionpolicybinding", policy)
        controlplane.kubectl("delete", "validatingadmissionpolicy", policy)
