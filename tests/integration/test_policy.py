"""The policy through the real kube-apiserver and kubectl: audit mode, exemptions, the Harvester
profile read from the cluster's server-version Setting, and settings that cannot work.

Answers are read from `kubectl create --dry-run=server`, which goes through every admission
webhook and prints their warnings, and creates nothing.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
import uuid

import pytest

from tests import webhook_objects as o
from tests.harness.controlplane import REPO, ControlPlane
from tests.harness.metrics import sample
from tests.harness.rbac import vm_migrator_rbac
from tests.integration.test_webhook import DENIED, create, create_vmim, kubectl_ok
from tests.webhook_process import WebhookProcess, running_webhook

pytestmark = pytest.mark.controlplane

TAG = uuid.uuid4().hex[:6]
N1, N2, N3 = f"pol-{TAG}-node-1", f"pol-{TAG}-node-2", f"pol-{TAG}-node-3"
DRY = "--dry-run=server"


@pytest.fixture(scope="module")
def nodes(controlplane: ControlPlane):
    for node in (o.node(N1), o.node(N2), o.node(N3, cordoned=True)):
        create(controlplane, node)
    yield
    for name in (N1, N2, N3):
        controlplane.kubectl("delete", "node", name, "--wait=false")


def messy_vm(
    plane: ControlPlane, hook: WebhookProcess, namespace: str, labels=None, node: str = N1
) -> None:
    """A VM with a CD-ROM and a GPU on `node`, in a namespace the webhook is called for."""
    hook.label_namespace(plane, namespace)
    create(plane, o.nad(namespace))
    vm = o.vm(namespace, "messy", cdrom=True, pci=True)
    vm["metadata"]["labels"] = {**vm["metadata"].get("labels", {}), **(labels or {})}
    create(plane, vm)
    create(plane, o.vmi(namespace, "messy", node, cdrom=True, pci=True))
    create(plane, o.launcher_pod(namespace, "messy", node))


def warnings(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]


def metrics(hook: WebhookProcess) -> str:
    status, text = hook.get("/metrics")
    assert status == 200
    return text


def test_audit_mode_admits_a_denied_migration_with_every_problem_as_a_warning(
    controlplane, nodes, namespace
):
    with running_webhook(controlplane, "--policy-mode", "audit") as hook:
        messy_vm(controlplane, hook, namespace)
        result = create_vmim(controlplane, namespace, "messy", N3, DRY)
        assert result.returncode == 0, result.stderr
        lines = warnings(result)
        assert lines[0] == (
            f"Warning: migration-guard would deny this migration of VM {namespace}/messy; "
            "--policy-mode=audit lets it through"
        )
        text = "\n".join(lines)
        for code in ("CDROMVolume", "PCIDevicePassthrough", "TargetNotEligible"):
            assert f"Warning: migration-guard: {code}: " in text, code
        assert f"target node '{N3}'" in text and "is cordoned" in text
        scraped = metrics(hook)
        for code in ("CDROMVolume", "PCIDevicePassthrough", "TargetNotEligible"):
            assert sample(scraped, "migration_guard_policy_warnings_total", code=code) == 1.0
        assert sample(scraped, "migration_guard_policy_info", profile="v1.7", mode="audit") == 1.0


def test_an_exempt_namespace_and_an_exempt_vm_are_admitted_and_counted(
    controlplane, nodes, namespace
):
    other = f"{namespace}-labelled"
    kubectl_ok(controlplane, "create", "namespace", other)
    with running_webhook(controlplane, "--exempt-namespaces", namespace) as hook:
        messy_vm(controlplane, hook, namespace)
        messy_vm(controlplane, hook, other, labels={"migration-guard.io/exempt": "true"})
        by_namespace = create_vmim(controlplane, namespace, "messy", None, DRY)
        assert by_namespace.returncode == 0, by_namespace.stderr
        assert warnings(by_namespace) == [
            f"Warning: migration-guard did not check VM {namespace}/messy: namespace "
            f"'{namespace}' is in --exempt-namespaces"
        ]
        by_label = create_vmim(controlplane, other, "messy", None, DRY)
        assert by_label.returncode == 0, by_label.stderr
        assert "the VM has the label migration-guard.io/exempt=true" in by_label.stderr
        assert sample(metrics(hook), "migration_guard_admission_exempt_total") == 2.0

        # the label is the VM's choice: without it the same VM is denied again
        kubectl_ok(controlplane, "label", "vm", "messy", "-n", other, "migration-guard.io/exempt-")
        denied = wait_denied(controlplane, other)
        assert "CDROMVolume" in denied.stderr


def wait_denied(plane: ControlPlane, namespace: str) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + 10
    while True:
        result = create_vmim(plane, namespace, "messy", None, DRY)
        if result.returncode != 0 or time.monotonic() > deadline:
            assert DENIED in result.stderr, result.stderr
            return result
        time.sleep(0.2)


def test_the_profile_follows_harvesters_server_version_without_a_restart(
    controlplane, nodes, namespace
):
    """v1.8 removed Harvester's CD-ROM check: CDROMVolume then warns, PCI still denies."""
    setting = {
        "apiVersion": "harvesterhci.io/v1beta1",
        "kind": "Setting",
        "metadata": {"name": "server-version"},
        "value": "v1.7.1",
    }
    controlplane.apply_yaml(json.dumps(setting))
    try:
        with running_webhook(controlplane, "--rule-actions", "PCIDevicePassthrough=warn") as hook:
            messy_vm(controlplane, hook, namespace)
            on_17 = create_vmim(controlplane, namespace, "messy", None, DRY)
            assert on_17.returncode != 0 and "- CDROMVolume: CD-ROM" in on_17.stderr
            assert "PCIDevicePassthrough" not in on_17.stderr.split("denied the request")[1]

            controlplane.apply_yaml(json.dumps({**setting, "value": "v1.8.0"}))
            on_18 = wait_admitted(controlplane, namespace)
            text = "\n".join(warnings(on_18))
            assert "Warning: migration-guard: CDROMVolume (warn): CD-ROM 'cdrom-disk'" in text
            assert "Warning: migration-guard: PCIDevicePassthrough (warn): host device" in text
            status, body = hook.get("/readyz")
            assert status == 200
            policy = json.loads(body)["policy"]
            assert policy["profile"] == "v1.8"
            assert policy["profileSource"] == "auto: Harvester's server-version is v1.8.0"
            whys = {r["code"]: (r["action"], r["why"]) for r in policy["rules"]}
            assert whys["CDROMVolume"] == ("warn", "profile v1.8")
            assert whys["PCIDevicePassthrough"] == ("warn", "--rule-actions")
            assert whys["ManagementNetworkBridge"] == ("deny", "default")
            assert (
                sample(metrics(hook), "migration_guard_policy_info", profile="v1.8", mode="enforce")
                == 1.0
            )
    finally:
        controlplane.kubectl("delete", "setting", "server-version")


def wait_admitted(plane: ControlPlane, namespace: str) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + 10
    while True:
        result = create_vmim(plane, namespace, "messy", None, DRY)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return result
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule-actions", "NoSuchRule=warn"], "--rule-actions: 'NoSuchRule' is not a rule"),
        (["--rule-actions", "CDROMVolume=maybe"], "the action must be deny, warn or off"),
        (
            ["--rule-actions", "InsufficientResources=off"],
            "KubeVirt's and kube-scheduler's verdicts stay denials",
        ),
        (["--harvester-version", "one-point-eight"], "--harvester-version: 'one-point-eight'"),
        (["--exempt-namespace-selector", "team in legacy"], "--exempt-namespace-selector:"),
        (["--policy-mode", "dryrun"], "--policy-mode: must be one of enforce, audit"),
    ],
)
def test_a_setting_that_cannot_work_stops_start_up_naming_it(args, message):
    result = subprocess.run(
        [str(REPO / ".venv/bin/migration-guard"), "webhook", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert message in result.stderr


def test_the_extension_offers_what_the_webhook_admits_under_the_same_policy(
    controlplane, nodes, namespace
):
    """NodeCordoned set to warn: the cordoned node is offered (with its warning) and admitted."""
    with running_webhook(controlplane, "--rule-actions", "NodeCordoned=warn") as hook:
        hook.label_namespace(controlplane, namespace)
        create(controlplane, o.nad(namespace))
        create(controlplane, o.vm(namespace, "clean"))
        create(controlplane, o.vmi(namespace, "clean", N1))
        create(controlplane, o.launcher_pod(namespace, "clean", N1))
        controlplane.apply_yaml(json.dumps(vm_migrator_rbac(namespace, "alice")))
        context = ssl.create_default_context(cafile=str(hook.ca_file))
        request = urllib.request.Request(
            f"{hook.url}/v1/namespaces/{namespace}/virtualmachines/clean/migration-targets",
            headers={"Authorization": f"Bearer {controlplane.token('alice')}"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            report = json.loads(response.read())
        verdicts = {n["name"]: n for n in report["nodes"]}
        assert verdicts[N3]["eligible"] is True
        assert [w["code"] for w in verdicts[N3]["warnings"]] == ["NodeCordoned"]
        assert N3 in report["eligibleNodes"]
        admitted = create_vmim(controlplane, namespace, "clean", N3, DRY)
        assert admitted.returncode == 0, admitted.stderr
        assert f"Warning: migration-guard: NodeCordoned (warn): node '{N3}' is cordoned" in (
            admitted.stderr
        )


def test_every_vms_migratability_is_a_gauge_kept_current(controlplane, nodes, namespace):
    own = f"pol-{TAG}-gauges"  # a node of this test alone: the node gauge counts all its VMs
    create(controlplane, o.node(own))
    try:
        with running_webhook(controlplane, "--migratability-interval", "1s") as hook:
            messy_vm(controlplane, hook, namespace, node=own)
            kubectl_ok(
                controlplane, "patch", "vmi", "messy", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"evictionStrategy": "LiveMigrate"}}),
            )  # fmt: skip
            create(controlplane, o.vmi(namespace, "clean", own))
            labels = {"namespace": namespace, "node": own}

            def gauges() -> tuple[float | None, float | None, float | None]:
                text = metrics(hook)
                return (
                    sample(
                        text, "migration_guard_vm_migratable", vm="messy",
                        blockers="CDROMVolume,PCIDevicePassthrough", **labels,
                    ),
                    sample(text, "migration_guard_vm_migratable", vm="clean", blockers="", **labels),
                    sample(text, "migration_guard_node_drain_blockers", node=own),
                )  # fmt: skip

            deadline = time.monotonic() + 15
            while gauges() != (0.0, 1.0, 1.0) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert gauges() == (0.0, 1.0, 1.0)

            # the CD-ROM and the GPU gone: the next round says the VM can move
            vmi = json.loads(
                kubectl_ok(controlplane, "get", "vmi", "messy", "-n", namespace, "-o", "json")
            )
            vmi["spec"] = o.vmi(namespace, "messy", own)["spec"] | {
                "evictionStrategy": "LiveMigrate"
            }
            kubectl_ok(controlplane, "replace", "-f", "-", input=json.dumps(vmi))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = metrics(hook)
                if (
                    sample(text, "migration_guard_vm_migratable", vm="messy", blockers="", **labels)
                    == 1.0
                ):
                    break
                time.sleep(0.5)
            assert (
                sample(text, "migration_guard_vm_migratable", vm="messy", blockers="", **labels)
                == 1.0
            )
            assert sample(text, "migration_guard_node_drain_blockers", node=own) == 0.0
    finally:
        controlplane.kubectl("delete", "node", own, "--wait=false")


def test_policy_reports_show_every_vm_and_follow_changes(controlplane, nodes, namespace):
    args = ("--policy-reports", "--migratability-interval", "1s")
    with running_webhook(controlplane, *args) as hook:
        messy_vm(controlplane, hook, namespace)
        create(controlplane, o.vmi(namespace, "clean", N1))

        def report() -> dict | None:
            got = controlplane.kubectl(
                "get", "policyreport", "migration-guard", "-n", namespace, "-o", "json"
            )
            return json.loads(got.stdout) if got.returncode == 0 else None

        deadline = time.monotonic() + 20
        while (r := report()) is None or len(r["results"]) < 2:
            assert time.monotonic() < deadline, r
            time.sleep(0.5)
        by_vm = {x["resources"][0]["name"]: x for x in r["results"]}
        assert by_vm["clean"]["result"] == "pass"
        assert by_vm["messy"]["result"] == "fail"
        assert by_vm["messy"]["properties"]["blockers"] == "CDROMVolume,PCIDevicePassthrough"
        assert (
            "- " not in by_vm["messy"]["message"]
            and "eject the CD-ROM" in by_vm["messy"]["message"]
        )
        assert r["summary"]["pass"] == 1 and r["summary"]["fail"] == 1
        listed = kubectl_ok(controlplane, "get", "policyreports", "-A")
        assert "migration-guard" in listed and namespace in listed

        # the VM leaves: its result goes; the last VM leaves: the report goes
        kubectl_ok(controlplane, "delete", "vmi", "messy", "-n", namespace)
        deadline = time.monotonic() + 20
        while (r := report()) is not None and len(r["results"]) != 1:
            assert time.monotonic() < deadline, r
            time.sleep(0.5)
        kubectl_ok(controlplane, "delete", "vmi", "clean", "-n", namespace)
        deadline = time.monotonic() + 20
        while report() is not None:
            assert time.monotonic() < deadline
            time.sleep(0.5)
