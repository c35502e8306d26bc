"""`migration-guard check` on the example cluster in examples/, and its input errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit import rules_objects as o
from webhook import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "cluster"


def run(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def check_json(capsys, vm, *extra):
    code, out, err = run(
        capsys, "check", "--state", str(EXAMPLES), "--vm", vm, "--output", "json", *extra
    )
    return code, json.loads(out), err


@pytest.mark.parametrize(
    ("vm", "source", "target", "timeout"),
    [
        ("clean-vm", "harvester-node-0", "harvester-node-3", 6400),
        ("clean-vm-2", "harvester-node-3", "harvester-node-0", 3200),
    ],
)
def test_clean_vms_are_allowed_to_the_one_healthy_node_they_do_not_run_on(
    capsys, vm, source, target, timeout
):
    code, report, _ = check_json(capsys, f"default/{vm}")
    assert code == 0
    assert report["allowed"] is True and report["blockers"] == []
    assert report["sourceNode"] == source
    assert report["eligibleNodes"] == [target]
    assert [n["name"] for n in report["nodes"]] == [f"harvester-node-{i}" for i in range(4)]
    assert report["timeouts"]["completionTimeoutSeconds"] == timeout


@pytest.mark.parametrize(
    ("vm", "code"),
    [
        ("bridge-vm", "ManagementNetworkBridge"),
        ("cdrom-vm", "CDROMVolume"),
        ("containerdisk-vm", "ContainerDiskVolume"),
        ("gpu-vm", "PCIDevicePassthrough"),
        ("pinned-vm", "NodePinned"),
        ("stopped-vm", "VMINotRunning"),
        ("migrating-vm", "MigrationInProgress"),
        ("rwo-vm", "NotLiveMigratable"),
        ("lost-network-vm", "NetworkUnavailable"),
    ],
)
def test_each_example_vm_is_denied_for_its_blocker(capsys, vm, code):
    exit_code, report, _ = check_json(capsys, f"default/{vm}")
    assert exit_code == 1 and report["allowed"] is False
    assert [b["code"] for b in report["blockers"]] == [code]


# Every node's reasons for a VM on harvester-node-0: node-1 is cordoned (`kubectl cordon`),
# node-2 is in Harvester maintenance mode (which cordons too), node-3 lacks the `data` network.
NODE_REASONS = {
    "harvester-node-0": ["SourceNode"],
    "harvester-node-1": ["NodeCordoned"],
    "harvester-node-2": ["NodeCordoned", "NodeInMaintenance"],
    "harvester-node-3": [],
}


def reasons_of(report):
    return {n["name"]: [r["code"] for r in n["reasons"]] for n in report["nodes"]}


def test_node_reasons_of_a_vm_on_the_management_network(capsys):
    _, report, _ = check_json(capsys, "default/clean-vm")
    assert reasons_of(report) == NODE_REASONS
    node2 = {r["code"]: r["message"] for r in report["nodes"][2]["reasons"]}
    assert "harvesterhci.io/maintain-status=completed" in node2["NodeInMaintenance"]


def test_vlan_vm_has_no_target_because_node_3_lacks_the_data_network(capsys):
    code, report, _ = check_json(capsys, "default/vlan-vm")
    assert code == 1 and report["blockers"] == []
    assert reasons_of(report) == NODE_REASONS | {"harvester-node-3": ["NetworkUnavailable"]}
    assert "network.harvesterhci.io/data=true" in report["nodes"][3]["reasons"][0]["message"]
    assert [p["code"] for p in report["problems"]] == ["NoEligibleTarget"]
    code, report, _ = check_json(capsys, "default/vlan-vm", "--target", "harvester-node-3")
    assert code == 1 and [p["code"] for p in report["problems"]] == ["TargetNotEligible"]


def test_big_vm_fits_nowhere_it_could_go(capsys):
    _, report, _ = check_json(capsys, "default/big-vm")
    assert reasons_of(report) == {
        "harvester-node-0": ["SourceNode"],
        # db-vm fills the cordoned node-1; node-3 is smaller than the VM; node-2 is drained
        "harvester-node-1": ["NodeCordoned", "InsufficientResources"],
        "harvester-node-2": ["NodeCordoned", "NodeInMaintenance"],
        "harvester-node-3": ["InsufficientResources"],
    }
    assert [p["code"] for p in report["problems"]] == ["NoEligibleTarget"]


def test_target_checks_one_node(capsys):
    code, report, _ = check_json(capsys, "default/clean-vm", "--target", "harvester-node-2")
    assert code == 1 and [n["name"] for n in report["nodes"]] == ["harvester-node-2"]
    assert [p["code"] for p in report["problems"]] == ["TargetNotEligible"]
    code, report, _ = check_json(capsys, "default/clean-vm", "--target", "harvester-node-1")
    assert code == 1 and [p["code"] for p in report["problems"]] == ["TargetNotEligible"]
    assert [r["code"] for r in report["nodes"][0]["reasons"]] == ["NodeCordoned"]
    code, report, _ = check_json(capsys, "default/clean-vm", "--target", "harvester-node-3")
    assert code == 0 and report["target"] == "harvester-node-3"
    code, report, _ = check_json(capsys, "default/clean-vm", "--target", "node-x")
    assert code == 1 and [p["code"] for p in report["problems"]] == ["TargetNotFound"]


def test_text_output_lists_blockers_then_nodes(capsys):
    code, out, _ = run(capsys, "check", "--state", str(EXAMPLES), "--vm", "default/cdrom-vm")
    assert code == 1
    assert out.index("CDROMVolume") < out.index("NODE") < out.index("harvester-node-3")
    assert "Result:  DENIED" in out
    assert re.search(r"harvester-node-3\s+no\s+NetworkUnavailable", out)
    assert "Eligible nodes: none" in out
    assert "completion timeout 6400 s" in out


def test_readme_snippet_is_real_output(capsys):
    readme = (REPO / "examples" / "README.md").read_text()
    block = re.search(
        r"```console\n\$ migration-guard (check [^\n]*)\n(.*?)\$ echo \$\?\n(\d)\n```", readme, re.S
    )
    assert block, "README snippet not found"
    args = block.group(1).split()
    args[args.index("--state") + 1] = str(EXAMPLES)
    code, out, _ = run(capsys, *args)
    assert out == block.group(2)
    assert code == int(block.group(3))


def test_single_files_lists_and_json(tmp_path, capsys):
    state = tmp_path / "state.yaml"
    docs = [
        (EXAMPLES / f).read_text() for f in ("nodes.yaml", "networks.yaml", "vms.yaml", "pods.yaml")
    ]
    state.write_text("\n---\n".join(docs))
    code, _, _ = run(capsys, "check", "--state", str(state), "--vm", "default/clean-vm")
    assert code == 0
    as_json = tmp_path / "nodes.json"
    import yaml

    as_json.write_text(json.dumps(yaml.safe_load((EXAMPLES / "nodes.yaml").read_text())))
    code, _, err = run(capsys, "check", "--state", str(as_json), "--vm", "default/clean-vm")
    assert code == 2 and "VM default/clean-vm is not in the state" in err


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("files", "vm", "message"),
    [
        ({}, "default/vm", "no such file or folder"),
        ({"bad.yaml": "kind: Node\n  metadata: [\n"}, "default/vm", "bad.yaml: invalid YAML"),
        ({"bad.json": "{nope"}, "default/vm", "bad.json: invalid JSON"),
        ({"list.yaml": "- a\n- b\n"}, "default/vm", "list.yaml: expected a Kubernetes object"),
        (
            {"n.yaml": "kind: Node\nmetadata: {name: n1}\n"},
            "default/vm",
            "VM default/vm is not in the state",
        ),
        (
            {"v.yaml": "kind: VirtualMachine\nmetadata: {name: vm, namespace: default}\n"},
            "default/vm",
            "the state has no nodes",
        ),
        (
            {
                "n.yaml": "kind: Node\nmetadata: {name: n1, labels: {kubevirt.io/schedulable: true}}\n"
            },
            "default/vm",
            "n.yaml: Node n1: metadata.labels['kubevirt.io/schedulable'] must be a string",
        ),
        (
            {
                "m.yaml": "---\nkind: Node\nmetadata: {name: n1}\n---\nkind: Pod\nmetadata: {name: p}\n"
                "spec: {containers: [{resources: {requests: {memory: 2 GB}}}]}\n"
            },
            "default/vm",
            "m.yaml (document 2): Pod default/p: spec.containers[0].resources.requests"
            ".memory: invalid quantity '2 GB'",
        ),
        ({"n.yaml": "kind: Node\nmetadata: {name: n1}\n"}, "vm-without-namespace", "--vm"),
    ],
)
def test_input_errors_exit_2_with_one_line(tmp_path, capsys, files, vm, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    path = tmp_path / next(iter(files)) if files else tmp_path / "missing.yaml"
    code, out, err = run(capsys, "check", "--state", str(path), "--vm", vm)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    if files:
        assert str(path) in err or message.startswith("--vm")


def test_errors_found_by_the_rules_name_the_file(tmp_path, capsys):
    for f in ("nodes.yaml", "networks.yaml", "pods.yaml"):
        write(tmp_path, f, (EXAMPLES / f).read_text())
    text = (EXAMPLES / "vms.yaml").read_text().replace("guest: 8Gi", "guest: 8 gigs")
    write(tmp_path, "vms.yaml", text)
    code, _, err = run(capsys, "check", "--state", str(tmp_path), "--vm", "default/clean-vm")
    assert code == 2 and err.count("\n") == 1
    assert str(tmp_path / "vms.yaml") in err and "(document 2)" in err
    assert "VirtualMachineInstance default/clean-vm: spec.domain.memory.guest" in err


def test_folder_without_state_files(tmp_path, capsys):
    write(tmp_path, "notes.txt", "hello")
    code, _, err = run(capsys, "check", "--state", str(tmp_path), "--vm", "default/vm")
    assert code == 2 and "no .yaml, .yml or .json files" in err


def test_malformed_timeout_override_warns(tmp_path, capsys):
    text = (
        (EXAMPLES / "vms.yaml")
        .read_text()
        .replace(
            "kubevirt.io/latest-observed-api-version: v1",
            "kubevirt.io/latest-observed-api-version: v1\n    migration-guard.io/progress-timeout-seconds: soon",
        )
    )
    for f in ("nodes.yaml", "networks.yaml", "pods.yaml"):
        write(tmp_path, f, (EXAMPLES / f).read_text())
    write(tmp_path, "vms.yaml", text)
    code, out, err = run(
        capsys, "check", "--state", str(tmp_path), "--vm", "default/clean-vm", "--output", "json"
    )
    assert code == 0 and json.loads(out)["timeouts"]["progressTimeoutSeconds"] == 150
    assert "warning:" in err and "progress-timeout-seconds" in err and "'soon'" in err


def test_settings_options(capsys):
    _, report, _ = check_json(
        capsys,
        "default/clean-vm",
        "--completion-timeout-per-gib",
        "100",
        "--progress-timeout-seconds",
        "60",
    )
    assert report["timeouts"]["completionTimeoutSeconds"] == 800
    assert report["timeouts"]["progressTimeoutSeconds"] == 60


def test_help_lists_all_four_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("check", "webhook", "extension", "enforcer"):
        assert re.search(rf"^\s+{command}\b", out, re.M), command


def test_server_commands_are_delegated_lazily(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_serve.py"
    pkg.write_text("calls = []\ndef main(argv):\n    calls.append(list(argv))\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.DELEGATES, "webhook", ("fake_serve", "test"))
    assert cli.main(["webhook", "--port", "8443"]) == 7
    import fake_serve

    assert fake_serve.calls == [["--port", "8443"]]


def test_console_script_end_to_end():
    exe = Path(sys.executable).parent / "migration-guard"
    result = subprocess.run(
        [str(exe), "check", "--state", str(EXAMPLES), "--vm", "default/gpu-vm", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["blockers"][0]["code"] == "PCIDevicePassthrough"


def test_webhook_with_an_unreachable_api_exits_2_with_one_line(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    exe = Path(sys.executable).parent / "migration-guard"
    result = subprocess.run(
        [str(exe), "webhook", "--kubeconfig", str(kubeconfig), "--bind", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("migration-guard webhook: cannot prepare the serving certificate")
    assert "Traceback" not in result.stderr


# ---- --migration ---------------------------------------------------------------------------
def test_check_migration_file_is_evaluated_as_the_webhook_would(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "kind": "List",
                "items": [o.node("node-1"), o.node("node-2"), o.node("node-3"), o.vmi(), o.nad()],
            }
        )
    )
    vmim = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {
            "vmiName": "vm1",
            "addedNodeSelector": {"kubernetes.io/hostname": "node-2", "disk": "ssd"},
        },
    }
    path = tmp_path / "vmim.yaml"
    path.write_text(yaml.safe_dump(vmim))
    code, out, _ = run(
        capsys, "check", "--state", str(state), "--migration", str(path), "--output", "json"
    )
    report = json.loads(out)
    assert code == 1 and report["target"] == "node-2"
    (node,) = report["nodes"]
    assert [r["code"] for r in node["reasons"]] == ["NodeSelectorMismatch"]
    assert "addedNodeSelector (disk=ssd)" in node["reasons"][0]["message"]
    del vmim["spec"]["addedNodeSelector"]["disk"]
    path.write_text(yaml.safe_dump(vmim))
    assert run(capsys, "check", "--state", str(state), "--migration", str(path))[0] == 0


def test_check_migration_file_bad_input(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"kind": "List", "items": [o.node("node-1"), o.vmi(), o.nad()]}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(o.vmi()))
    code, _, err = run(capsys, "check", "--state", str(state), "--migration", str(bad))
    assert (
        code == 2
        and "expected one VirtualMachineInstanceMigration, got VirtualMachineInstance" in err
    )
    code, _, err = run(
        capsys, "check", "--state", str(state), "--migration", str(bad), "--target", "x"
    )
    assert code == 2 and "--target and --migration exclude each other" in err
    code, _, err = run(capsys, "check", "--state", str(state))
    assert code == 2 and "give --vm NS/NAME, or --migration FILE" in err


def test_check_reads_the_webhooks_policy_flags_and_variables(capsys, monkeypatch):
    """The same policy as the webhook: v1.8 warns about the CD-ROM; audit mode exits 0."""
    check = ("check", "--state", str(EXAMPLES), "--vm", "default/cdrom-vm")
    code, out, _ = run(
        capsys, *check, "--harvester-version", "v1.8.0", "--target", "harvester-node-3"
    )
    assert code == 1  # node-3 lacks the VM's network: a denial the profile does not touch
    assert "Warnings, allowed by the policy (1):\n  - CDROMVolume" in out
    monkeypatch.setenv("MIGRATION_GUARD_POLICY_MODE", "audit")
    code, out, _ = run(capsys, *check)
    assert code == 0
    assert out.endswith("Audit mode: the webhook admits it, with these problems as warnings\n")


def test_policy_prints_the_table_from_state_files(tmp_path, capsys):
    setting = {
        "apiVersion": "harvesterhci.io/v1beta1",
        "kind": "Setting",
        "metadata": {"name": "server-version"},
        "value": "v1.8.2",
    }
    (tmp_path / "setting.yaml").write_text(yaml.safe_dump(setting))
    assert cli.main(["policy", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Profile: Harvester v1.8 (auto: Harvester's server-version is v1.8.2)")
    assert cli.main(["policy", "--rule-actions", "Nope=warn"]) == 2
    assert "error: --rule-actions: 'Nope' is not a rule" in capsys.readouterr().err


def test_drain_plan_of_the_example_nodes(capsys):
    code, out, _ = run(capsys, "drain-plan", "harvester-node-3", "--state", str(EXAMPLES))
    assert code == 0
    assert "Result:  every VM leaves" in out
    assert "default/clean-vm-2  LiveMigrateIfPossible  migrates  1     harvester-node-0" in out
    code, out, _ = run(
        capsys, "drain-plan", "harvester-node-0", "--state", str(EXAMPLES), "-o", "json"
    )
    plan = json.loads(out)
    assert code == 1 and plan["drainable"] is False
    outcomes = {v["vm"]: (v["outcome"], [r["code"] for r in v["reasons"]]) for v in plan["vms"]}
    assert outcomes["default/cdrom-vm"] == ("holds-drain", ["CDROMVolume"])
    assert outcomes["default/rwo-vm"] == ("shut-down", ["ShutDownOnDrain"])
    assert outcomes["default/clean-vm"] == ("migrates", [])
    code, _, err = run(capsys, "drain-plan", "nope", "--state", str(EXAMPLES))
    assert code == 2 and err == f"error: {EXAMPLES}: node 'nope' is not in the state\n"
