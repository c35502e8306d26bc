"""The scripted tour: each step prints the command as a person would type it, then its real
output (kubectl against the demo's API server, HTTP calls to the extension backend)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import requests

from demo import environment
from demo.environment import VM_NS, Demo
from extension import aggregated

# What sets the nodes apart: cordoned (spec.unschedulable), Harvester maintenance mode (an
# annotation; it cordons too), the `data` cluster network label, and room for VMs.
NODE_COLUMNS = ",".join(
    [
        "NAME:.metadata.name",
        "UNSCHEDULABLE:.spec.unschedulable",
        r"MAINTENANCE:.metadata.annotations.harvesterhci\.io/maintain-status",
        r"DATA-NETWORK:.metadata.labels.network\.harvesterhci\.io/data",
        "CPU:.status.allocatable.cpu",
        "MEMORY:.status.allocatable.memory",
    ]
)
DENIED_STEPS = (
    "cdrom-vm",
    "gpu-vm",
    "bridge-vm",
    "migrating-vm",
    "big-vm",
    "clean-vm-to-node-1",
    "clean-vm-to-node-2",
    "vlan-vm-to-node-3",
)


def _show(title: str) -> None:
    print(f"\n## {title}", flush=True)


def _kubectl(demo: Demo, *args: str, input_file: str | None = None) -> int:
    extra = ["-f", input_file] if input_file else []
    print(f"$ {shlex.join(['kubectl', *args, *extra])}", flush=True)
    result = demo.plane.kubectl(*args, *extra)
    out = (result.stdout + result.stderr).rstrip()
    if out:
        print(out, flush=True)
    return result.returncode


def _as_alice(demo: Demo, *args: str) -> subprocess.CompletedProcess:
    """kubectl as alice (her kubeconfig), with the kubectl plugin on PATH."""
    print(f"$ {shlex.join(['kubectl', *args])}   # as alice", flush=True)
    env = demo.plane.env("alice")
    env["PATH"] = f"{environment.MIGRATION_GUARD.parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [str(demo.plane.bin_dir / "kubectl"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print((result.stdout + result.stderr).rstrip(), flush=True)
    return result


def _curl(demo: Demo, method: str, path: str, body: dict | None = None) -> dict:
    flags = "-X POST " if method == "POST" else ""
    data = f" -d '{json.dumps(body)}'" if body is not None else ""
    print(
        f'$ curl -sS --cacert {demo.ca_file} -H "Authorization: Bearer $TOKEN" {flags}"$MG{path}"{data}'
    )
    response = requests.request(
        method,
        demo.url + path,
        headers={"Authorization": f"Bearer {demo.plane.token('alice')}"},
        json=body,
        verify=str(demo.ca_file),
        timeout=30,
    )
    print(f"HTTP {response.status_code}")
    try:
        doc = response.json()
    except ValueError:
        print(response.text)
        return {}
    print(json.dumps(doc, indent=2), flush=True)
    return doc


def _wait_phase(demo: Demo, name: str, timeout: float = 60.0) -> str:
    """Print each phase the migration goes through; its final phase."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = demo.plane.kubectl(
            "get", "vmim", name, "-n", VM_NS, "-o", "jsonpath={.status.phase}"
        )
        phase = result.stdout.strip()
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
            print(f"  phase: {phase}", flush=True)
        if phase in ("Succeeded", "Failed"):
            return phase
        time.sleep(0.1)
    return seen[-1] if seen else ""


def _wait_node(demo: Demo, vmi: str, node: str, timeout: float = 30.0) -> bool:
    """The VMI reports `node` (the target's handler takes it over after the VMIM Succeeded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = demo.plane.kubectl(
            "get", "vmi", vmi, "-n", VM_NS, "-o", "jsonpath={.status.nodeName}"
        )
        if result.stdout.strip() == node:
            return True
        time.sleep(0.2)
    return False


def run(demo: Demo) -> int:
    """The tour; 0 when every step behaved as expected."""
    ok = True
    try_dir = demo.workdir / "try"
    _show(
        "The cluster: 4 Harvester nodes (node-1 cordoned, node-2 in maintenance,"
        " node-3 without the 'data' network)"
    )
    _kubectl(demo, "get", "nodes")
    _kubectl(demo, "get", "nodes", "-o", f"custom-columns={NODE_COLUMNS}")
    _kubectl(demo, "get", "vmi", "-n", VM_NS)

    for name in DENIED_STEPS:
        _show(f"Denied: {environment.TRY[name][2].split(': ', 1)[1]}")
        code = _kubectl(demo, "create", input_file=str(try_dir / f"{name}.yaml"))
        ok = ok and code != 0

    _show(
        "Allowed: clean-vm to harvester-node-3; virt-controller renders the target pod,"
        " kube-scheduler binds it, the migration runs"
    )
    path = str(try_dir / "clean-vm-to-node-3.yaml")
    print(f"$ kubectl create -f {path}")
    result = demo.plane.kubectl("create", "-f", path, "-o", "name")
    print((result.stderr + result.stdout).rstrip(), flush=True)
    ok = ok and result.returncode == 0
    name = result.stdout.strip().rpartition("/")[2]
    print(f"$ kubectl get vmim {name} -n {VM_NS} -w   # phases seen:")
    phase = _wait_phase(demo, name)
    ok = ok and phase == "Succeeded"
    uid = demo.plane.kubectl(
        "get", "vmim", name, "-n", VM_NS, "-o", "jsonpath={.metadata.uid}"
    ).stdout.strip()
    selector = f"kubevirt.io/migrationJobUID={uid}"
    _kubectl(demo, "get", "pods", "-n", VM_NS, "-l", selector, "-o", "wide")
    pod = demo.plane.kubectl(
        "get", "pods", "-n", VM_NS, "-l", selector, "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout.strip()
    _kubectl(
        demo, "get", "events", "-n", VM_NS,
        "--field-selector", f"involvedObject.name={pod},reason=Scheduled",
        "-o", "custom-columns=FROM:.reportingComponent,MESSAGE:.message",
    )  # fmt: skip
    ok = ok and _wait_node(demo, "clean-vm", "harvester-node-3")
    _kubectl(demo, "get", "vmi", "clean-vm", "-n", VM_NS)

    _show("Target lookup (extension backend, as the Harvester UI asks it)")
    found = _curl(
        demo,
        "POST",
        f"/v1/harvester/kubevirt.io.virtualmachines/{VM_NS}/clean-vm?action=findMigratableNodes",
    )
    ok = ok and found.get("nodes") == ["harvester-node-0"]
    report = _curl(
        demo, "GET", f"/v1/namespaces/{VM_NS}/virtualmachines/cdrom-vm/migration-targets"
    )
    ok = ok and report.get("allowed") is False and report.get("eligibleNodes") == []
    _show("Through kube-apiserver (the aggregated API the UI calls): the kubectl plugin, as alice")
    targets = _as_alice(demo, "migration-guard", "targets", "cdrom-vm", "-n", VM_NS)
    ok = ok and targets.returncode == 1 and "CDROMVolume" in targets.stdout
    raw = _as_alice(
        demo,
        "get",
        "--raw",
        f"{aggregated.PREFIX}/namespaces/{VM_NS}/virtualmachines/clean-vm/migrationtargets",
    )
    ok = (
        ok
        and raw.returncode == 0
        and json.loads(raw.stdout).get("eligibleNodes") == ["harvester-node-0"]
    )
    _show("Can harvester-node-0 go into maintenance? Its drain plan")
    print(f"$ migration-guard drain-plan harvester-node-0 --kubeconfig {demo.kubeconfig}")
    plan = subprocess.run(
        [str(environment.MIGRATION_GUARD), "drain-plan", "harvester-node-0", "--kubeconfig",
         str(demo.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    print((plan.stdout + plan.stderr).rstrip(), flush=True)
    ok = ok and plan.returncode == 1 and "holds-drain" in plan.stdout
    _show("Every VM's migratability, where Kyverno's users look")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # written within a round of the migratability gauges
        reports = demo.plane.kubectl("get", "policyreports", "-n", VM_NS, "-o", "name")
        if reports.stdout.strip():
            break
        time.sleep(1)
    ok = ok and _kubectl(demo, "get", "policyreports", "-A") == 0
    _show("The last migration of clean-vm, as the UI shows it")
    status = _curl(demo, "GET", f"/v1/namespaces/{VM_NS}/virtualmachines/clean-vm/migration")
    ok = ok and bool(status)
    print(
        "\ntour " + ("finished" if ok else "FAILED: a step did not behave as expected"), flush=True
    )
    return 0 if ok else 1
