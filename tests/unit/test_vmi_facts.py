"""Facts computed when objects are stored change no decision and no error message.

ClusterState keeps each VMI's `read_vmi` facts and each launcher pod's `read_source_pod`; the
engine reads the objects themselves when they are absent. Both ways must give the same report, or
the same InputError naming the same field, for any object with any field replaced.
"""

import copy
import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import rules_objects as o
from tests.unit.test_rules_properties import EXTRA_PATHS, JSON, all_paths, scene, set_path
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules import evaluate_migration


class WithoutFacts(ClusterState):
    """A state that hands the engine no precomputed facts: it reads every object itself."""

    def vmi_with_facts(self, ns, name):
        return self.vmi(ns, name), None

    def vmi_view(self, ns, name):
        return dataclasses.replace(super().vmi_view(ns, name), facts=None, launcher_facts=None)


def outcome(state_cls, objs, vmim):
    try:
        state = state_cls.from_objects(copy.deepcopy(objs))
    except InputError as exc:
        return ("rejected", str(exc))
    out = []
    for target in (None, "node-2", "node-9"):
        try:
            report = evaluate_migration(state, "default", "vm1", vmim=vmim, target=target)
            out.append(json.dumps(report.to_dict()))
        except InputError as exc:
            out.append(f"InputError: {exc}")
    return out


def same_both_ways(objs, vmim):
    with_facts = outcome(ClusterState, objs, vmim)
    assert with_facts == outcome(WithoutFacts, objs, vmim)
    return with_facts


def test_the_scene_decides_the_same_both_ways():
    results = same_both_ways(scene(), o.vmim("mine", target="node-2"))
    assert any('"allowed"' in r for r in results)


def test_a_malformed_vmi_is_named_the_same_way():
    objs = scene()
    vmi = next(x for x in objs if x["kind"] == "VirtualMachineInstance")
    vmi["spec"]["domain"].setdefault("cpu", {})["model"] = 7
    results = same_both_ways(objs, o.vmim("mine", target="node-2"))
    assert all("spec.domain.cpu.model" in r for r in results)


def test_requests_that_are_not_a_map_are_named_the_same_way():
    """Found by the fuzzer below once the VMI's part of the target pod moved into its facts."""
    objs = scene()
    vmi = next(x for x in objs if x["kind"] == "VirtualMachineInstance")
    vmi["spec"]["domain"].setdefault("resources", {})["requests"] = True
    results = same_both_ways(objs, o.vmim("mine", target="node-2"))
    assert all("spec.domain.resources.requests must be a map" in r for r in results)


def test_a_launcher_whose_selector_is_not_a_map_is_named_the_same_way():
    """The launcher pod's part of the target pod is read when the pod is stored: a bad one is
    still stored, and the decision names it."""
    objs = scene()
    pod = next(x for x in objs if x["kind"] == "Pod" and x["metadata"]["name"].startswith("virt-"))
    pod["spec"]["nodeSelector"] = ["kubevirt.io/schedulable"]
    results = same_both_ways(objs, o.vmim("mine", target="node-2"))
    assert all("spec.nodeSelector must be a map" in r for r in results)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), JSON)
def test_any_field_replaced_by_anything(data, value):
    objs = scene()
    i = data.draw(st.integers(0, len(objs) - 1))
    path = data.draw(st.sampled_from([p for p in all_paths(objs[i]) if p]))
    set_path(objs[i], path, copy.deepcopy(value))
    same_both_ways(objs, o.vmim("mine", target="node-2"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXTRA_PATHS), JSON)
def test_rule_inputs_replaced_by_anything(where, value):
    kind, path = where
    objs = scene()
    for obj in objs:
        if obj["kind"] == kind:
            set_path(obj, path, copy.deepcopy(value))
    same_both_ways(objs, o.vmim("mine", target="node-2"))
