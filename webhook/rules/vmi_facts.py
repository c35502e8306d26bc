"""VMIFacts: what a VMI alone contributes to every decision, read and checked once per VMI object.

A VMI is decided on many times (every admission of a migration of it, every target lookup), but
changes rarely. ClusterState computes its facts when the VMI is applied, as it does a node's
(`node_eligibility.NodeFacts`); the engine then runs only what depends on other objects (the
VMI's migrations, NADs, launcher pod and target pod, the VMIM, the nodes, the VM). Every fact comes from the
rule functions the engine calls without facts, so each rule still lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook.rules import access as a
from webhook.rules.harvester import NetworkRef, multus_networks
from webhook.rules.kubevirt_limits import kubevirt_data_bytes
from webhook.rules.model import Problem
from webhook.rules.target_pod import VMIPod, read_vmi_pod
from webhook.rules.timeouts import Overrides, data_bytes, vmi_overrides
from webhook.rules.vm_blockers import vmi_blockers


@dataclass(frozen=True, slots=True)
class VMIFacts:
    """The VMI-only inputs of `evaluate_migration` (see the module docstring)."""

    blockers: tuple[tuple[Problem, ...], tuple[Problem, ...]]  # vmi_blockers(vmi)
    data_bytes: int  # timeouts.data_bytes(vmi)
    pod: VMIPod  # target_pod.read_vmi_pod(vmi): the VMI's part of its migration target pod
    kubevirt_data: tuple[int, list[str]]  # kubevirt_limits.kubevirt_data_bytes(vmi)
    networks: tuple[NetworkRef, ...]  # harvester.multus_networks(vmi)
    overrides: Overrides  # timeouts.vmi_overrides(vmi)
    node_name: str | None  # status.nodeName: the node it runs on (the migration's source)


def read_vmi(vmi: dict) -> VMIFacts:
    """The VMI's facts; raises InputError on malformed fields (the engine then reads the VMI
    itself, naming the same field in the same order as without facts)."""
    return VMIFacts(
        vmi_blockers(vmi),
        data_bytes(vmi),
        read_vmi_pod(vmi),
        kubevirt_data_bytes(vmi),
        multus_networks(vmi),
        vmi_overrides(vmi),
        node_name(vmi),
    )


def node_name(vmi: dict) -> str | None:
    """The node the VMI runs on (`status.nodeName`; InputError when it is not a string)."""
    return a.get(vmi, "status.nodeName", str, a.describe(vmi, "VirtualMachineInstance"))
