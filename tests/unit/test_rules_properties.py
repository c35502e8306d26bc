"""Property tests: malformed objects anywhere surface as InputError, never another exception."""

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules import TimeoutSettings, compute_timeouts, evaluate_migration, migration_target

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["1Gi", "100m", "True", "true", "Running", "", "bridge", "x/y"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

# paths rules read that the base objects may not carry
EXTRA_PATHS = [
    ("VirtualMachineInstance", ["spec", "tolerations"]),
    ("VirtualMachineInstance", ["spec", "affinity"]),
    ("VirtualMachineInstance", ["spec", "affinity", "nodeAffinity"]),
    ("VirtualMachineInstance", ["spec", "nodeSelector"]),
    ("VirtualMachineInstance", ["spec", "domain", "cpu", "model"]),
    ("VirtualMachineInstance", ["spec", "domain", "cpu", "features"]),
    ("VirtualMachineInstance", ["spec", "domain", "devices", "hostDevices"]),
    ("VirtualMachineInstance", ["spec", "domain", "devices", "gpus"]),
    ("VirtualMachineInstance", ["status", "migrationMethod"]),
    ("VirtualMachineInstance", ["status", "volumeStatus"]),
    ("Node", ["spec", "taints"]),
    ("Node", ["spec", "unschedulable"]),
    ("Pod", ["spec", "initContainers"]),
    ("Pod", ["spec", "overhead"]),
    ("VirtualMachineInstanceMigration", ["spec", "addedNodeSelector"]),
    ("VirtualMachineInstanceMigration", ["status", "phase"]),
]


def all_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from all_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from all_paths(v, (*prefix, i))


def set_path(obj, path, value):
    cur = obj
    for key in path[:-1]:
        if isinstance(cur, dict):
            cur = cur.setdefault(key, {})
        elif isinstance(cur, list) and isinstance(key, int) and key < len(cur):
            cur = cur[key]
        else:
            return
    if isinstance(cur, dict) or (isinstance(cur, list) and path[-1] < len(cur)):
        cur[path[-1]] = value


def scene():
    return o.cluster(o.vmim("other", phase="Running"), o.pod("hog", "node-2"))


def exercise(objs, vmim):
    try:
        state = ClusterState.from_objects(objs)
        for target in (None, "node-2", "node-9"):
            report = evaluate_migration(state, "default", "vm1", vmim=vmim, target=target)
            json.dumps(report.to_dict())
            report.problems()
        vmi = state.vmi("default", "vm1")
        if vmi is not None:
            compute_timeouts(vmi, TimeoutSettings(), state.vm("default", "vm1"), strict=True)
        migration_target(vmim, vmi)
    except InputError as exc:
        assert str(exc)  # a message a person can read


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), JSON)
def test_any_field_replaced_by_anything(data, value):
    objs = scene()
    i = data.draw(st.integers(0, len(objs) - 1))
    paths = [p for p in all_paths(objs[i]) if p]
    path = data.draw(st.sampled_from(paths))
    set_path(objs[i], path, copy.deepcopy(value))
    exercise(objs, o.vmim("mine", target="node-2"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXTRA_PATHS), JSON, st.booleans())
def test_rule_inputs_replaced_by_anything(where, value, on_admitted_vmim):
    kind, path = where
    objs = scene()
    vmim = o.vmim("mine", target="node-2")
    if kind == "VirtualMachineInstanceMigration" and on_admitted_vmim:
        set_path(vmim, path, copy.deepcopy(value))
    else:
        for obj in objs:
            if obj["kind"] == kind:
                set_path(obj, path, copy.deepcopy(value))
    exercise(objs, vmim)


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, max_size=4), JSON)
def test_arbitrary_top_level_objects(objs, vmim):
    exercise(objs, vmim if isinstance(vmim, dict) else None)
