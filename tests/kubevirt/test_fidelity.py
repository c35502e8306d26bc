"""Differential test, bounded sample: migration-guard's verdict on every (VM, node) pair of a
generated cluster equals what the real virt-controller and kube-scheduler do with the target pod.
`make fidelity` runs the large sample (README "Fidelity")."""

from __future__ import annotations

import pytest

from tests.fidelity.runner import run_rounds, summary
from tests.harness.controlplane import running_controlplane
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario, VirtHandler

pytestmark = pytest.mark.kubevirt
SEEDS = [101, 102]


@pytest.fixture(scope="module")
def fidelity_cluster():
    with running_controlplane(kubevirt_profile=True) as plane:
        handler = VirtHandler(plane)
        handler.default_scenario = Scenario.overrun()  # targets are judged, never completed
        handler.start()
        try:
            yield KubeVirtCluster(plane, handler, ())
        finally:
            handler.stop()


def test_guard_agrees_with_virt_controller_and_kube_scheduler(fidelity_cluster):
    pairs = run_rounds(fidelity_cluster, SEEDS, nodes=6, vms=8)
    figures = summary(pairs)
    assert figures["pairs"] >= 60, figures
    assert figures["bound"] > 0 and figures["bound"] < figures["pairs"], figures
    assert figures["disagreements"] == [], figures["disagreements"]
    # the sample exercises the reasons the scheduler and KubeVirt refuse for
    for code in ("CPUModelUnsupported", "InsufficientResources", "MachineTypeUnsupported"):
        assert figures["reasons"].get(code), figures["reasons"]
