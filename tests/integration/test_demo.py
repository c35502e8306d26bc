"""`python -m demo --tour` end to end: its own control plane on the KubeVirt profile (real
virt-api, virt-controller, kube-scheduler, KWOK), seeded cluster, real webhook, extension and
enforcer; the tour's printed output is what a person sees."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]
DENIED = 'admission webhook "vmim.migration-guard.io" denied the request: '


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--tour", "--workdir", str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return result, workdir


def test_tour_exits_0_and_cleans_up(tour):
    result, workdir = tour
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "tour finished" in result.stdout
    assert not workdir.exists(), "the demo removes what it started"
    # no process of the demo outlives it
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(workdir) not in ps


def test_tour_shows_the_four_kinds_of_node(tour):
    out = tour[0].stdout
    nodes = out.split("## Denied")[0]
    rows = {
        line.split()[0]: line.split()[1:]
        for line in nodes.splitlines()
        if line.startswith("harvester-node-")
    }
    assert len(rows) == 4
    # kubectl get nodes: STATUS shows the cordon of node-1 and node-2 (maintenance cordons too)
    assert re.search(r"^harvester-node-1\s+Ready,SchedulingDisabled\s", nodes, re.M)
    assert re.search(r"^harvester-node-2\s+Ready,SchedulingDisabled\s", nodes, re.M)
    assert re.search(r"^harvester-node-0\s+Ready\s", nodes, re.M)
    assert re.search(r"^harvester-node-3\s+Ready\s", nodes, re.M)
    # custom columns: NAME UNSCHEDULABLE MAINTENANCE DATA-NETWORK CPU MEMORY
    columns = re.findall(
        r"^(harvester-node-\d)\s+(\S+)\s+(\S+)\s+(\S+)\s+\d+\s+\d+Ki$", nodes, re.M
    )
    assert columns == [
        ("harvester-node-0", "<none>", "<none>", "true"),
        ("harvester-node-1", "true", "<none>", "true"),
        ("harvester-node-2", "true", "completed", "true"),
        ("harvester-node-3", "<none>", "<none>", "<none>"),
    ]
    assert re.search(r"^clean-vm-2\s+\d+s\s+Running\s+(\S+\s+)?harvester-node-3\s", nodes, re.M)


def test_tour_shows_denials_with_what_to_fix(tour):
    out = tour[0].stdout
    assert out.count(DENIED) == 8
    assert "- CDROMVolume: CD-ROM 'cdrom-0' has PVC" in out
    assert "- PCIDevicePassthrough: host device" in out
    assert "- ManagementNetworkBridge: interface 'default' uses bridge binding" in out
    assert "- MigrationInProgress: migration 'migrating-vm-6f8wd'" in out
    big = out.split("## Denied: no node has room")[1].split("## ")[0]
    assert "- NoEligibleTarget: no node can receive VM default/big-vm" in big
    assert "harvester-node-1' lacks room for the virt-launcher pod" in big
    assert "harvester-node-3' lacks room for the virt-launcher pod" in big
    cordoned = out.split("## Denied: node cordoned")[1].split("## ")[0]
    assert "- TargetNotEligible: target node 'harvester-node-1'" in cordoned
    assert "node 'harvester-node-1' is cordoned" in cordoned
    assert "maintenance" not in cordoned
    maintenance = out.split("## Denied: node in maintenance")[1].split("## ")[0]
    assert "- TargetNotEligible: target node 'harvester-node-2'" in maintenance
    assert "is in maintenance mode (harvesterhci.io/maintain-status=completed)" in maintenance
    no_network = out.split("## Denied: node without the 'data' cluster network")[1].split("## ")[0]
    assert (
        "- TargetNotEligible: target node 'harvester-node-3' cannot receive VM default/vlan-vm"
        in (no_network)
    )
    assert "lacks cluster network 'data'" in no_network


def test_tour_allowed_migration_is_scheduled_by_kube_scheduler_and_succeeds(tour):
    out = tour[0].stdout
    assert "Warning: migration-guard: VM default/clean-vm must finish migrating within 6400s" in out
    allowed = out.split("## Allowed")[1].split("## Target lookup")[0]
    assert "clean-vm-to-node-3.yaml" in allowed
    phases = [line.split("phase: ")[1] for line in allowed.splitlines() if "  phase: " in line]
    assert phases[-1] == "Succeeded"
    assert "Running" in phases
    # the target virt-launcher pod virt-controller rendered, bound by kube-scheduler
    assert re.search(
        r"^virt-launcher-clean-vm-\S+\s+(\d)/\1\s+Running\s.*harvester-node-3", allowed, re.M
    )
    assert re.search(
        r"^default-scheduler\s+Successfully assigned default/virt-launcher-clean-vm-\S+ to harvester-node-3",
        allowed,
        re.M,
    )
    assert re.search(r"^clean-vm\s.*Running.*harvester-node-3", allowed, re.M)


def test_tour_target_lookup(tour):
    out = tour[0].stdout
    lookup = out.split("## Target lookup")[1]
    assert "?action=findMigratableNodes" in lookup
    # clean-vm now runs on node-3: node-0 is the one node left (1 cordoned, 2 in maintenance)
    assert '"nodes": [\n    "harvester-node-0"\n  ]' in lookup
    assert '"code": "CDROMVolume"' in lookup
    assert '"eligibleNodes": []' in lookup  # cdrom-vm is on default/vlan100: node-3 lacks it
    assert '"code": "NoEligibleTarget"' in lookup
    assert '"phase": "Succeeded"' in lookup
    assert '"targetNode": "harvester-node-3"' in lookup


def test_tour_reaches_the_extension_through_kube_apiserver_as_alice(tour):
    out = tour[0].stdout
    section = out.split("## Through kube-apiserver")[1].split("## The last migration")[0]
    assert "$ kubectl migration-guard targets cdrom-vm -n default   # as alice" in section
    assert "Result:  DENIED" in section
    assert "- CDROMVolume [spec.domain.devices.disks[1]]: CD-ROM 'cdrom-0'" in section
    assert "/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines" in section
    assert '"eligibleNodes":["harvester-node-0"]' in section.replace(" ", "").replace("\n", "")


def test_tour_shows_a_drain_plan_and_the_policy_reports(tour):
    out = tour[0].stdout
    plan = out.split("## Can harvester-node-0 go into maintenance?")[1].split("## Every VM")[0]
    assert "Node:    harvester-node-0" in plan
    assert "default/cdrom-vm" in plan and "holds-drain" in plan and "CDROMVolume" in plan
    reports = out.split("## Every VM's migratability")[1].split("## The last migration")[0]
    assert "$ kubectl get policyreports -A" in reports
    row = next(line for line in reports.splitlines() if line.startswith("default "))
    assert row.split()[1] == "migration-guard"  # NAMESPACE NAME PASS FAIL WARN ERROR SKIP AGE
    assert int(row.split()[3]) >= 5  # the VMs with blockers fail
