"""`python -m demo --tour` end to end: its own control plane, seeded cluster, real webhook,
extension, enforcer and KubeVirt simulator; the tour's printed output is what a person sees."""

from __future__ import annotations

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


def test_tour_shows_denials_with_what_to_fix(tour):
    out = tour[0].stdout
    assert out.count(DENIED) == 6
    assert "- CDROMVolume: CD-ROM 'cdrom-0' has PVC" in out
    assert "- PCIDevicePassthrough: host device" in out
    assert "- ManagementNetworkBridge: interface 'default' uses bridge binding" in out
    assert "- MigrationInProgress: migration 'migrating-vm-6f8wd'" in out
    assert "- NoEligibleTarget: no node can receive VM default/big-vm" in out
    assert "- TargetNotEligible: target node 'harvester-node-2'" in out
    assert "is in maintenance mode" in out


def test_tour_allowed_migration_reaches_succeeded_via_the_simulator(tour):
    out = tour[0].stdout
    assert "Warning: migration-guard: VM default/clean-vm must finish migrating within 6400s" in out
    allowed = out.split("## Allowed")[1].split("## Target lookup")[0]
    phases = [line.split("phase: ")[1] for line in allowed.splitlines() if "  phase: " in line]
    assert phases[-1] == "Succeeded"
    assert "Running" in phases and phases[0] == "Pending"
    assert "clean-vm   " in allowed and "harvester-node-1" in allowed.splitlines()[-2]


def test_tour_target_lookup(tour):
    out = tour[0].stdout
    lookup = out.split("## Target lookup")[1]
    assert "?action=findMigratableNodes" in lookup
    assert '"nodes": [\n    "harvester-node-0"\n  ]' in lookup  # clean-vm now runs on node-1
    assert '"code": "CDROMVolume"' in lookup
    assert '"eligibleNodes": [\n    "harvester-node-1"\n  ]' in lookup
    assert '"phase": "Succeeded"' in lookup
