"""KubeVirt's own migration limits (webhook.rules.kubevirt_limits), as KubeVirt v1.8.2 computes them."""

from __future__ import annotations

import copy

import pytest

from tests.unit import rules_objects as o
from webhook.admission.review import report_warnings
from webhook.cli import format_text
from webhook.cluster.state import ClusterState
from webhook.enforcer.kubevirt_check import KubeVirtLimitsCheck
from webhook.enforcer.metrics import EnforcerMetrics
from webhook.rules import TimeoutSettings, compute_timeouts, evaluate_migration
from webhook.rules.kubevirt_limits import (
    cluster_config,
    effective_config,
    first_to_fire,
    kubevirt_timeouts,
    match_policy,
    shorter_limits,
)

GIB = 2**30


def kubevirt(migrations: dict | None = None, phase: str | None = "Deployed", name="kubevirt"):
    kv: dict = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": name, "namespace": "kubevirt"},
        "spec": {"configuration": {"migrations": migrations or {}}},
    }
    if phase:
        kv["status"] = {"phase": phase}
    return kv


def policy(name: str, vmi_sel=None, ns_sel=None, **spec) -> dict:
    selectors: dict = {}
    if vmi_sel is not None:
        selectors["virtualMachineInstanceSelector"] = vmi_sel
    if ns_sel is not None:
        selectors["namespaceSelector"] = ns_sel
    return {
        "apiVersion": "migrations.kubevirt.io/v1alpha1",
        "kind": "MigrationPolicy",
        "metadata": {"name": name},
        "spec": {"selectors": selectors, **spec},
    }


def vmi(memory="2Gi", labels=None, **kw):
    out = o.vmi(memory=memory, **kw)
    if labels is not None:
        out["metadata"]["labels"] = labels
    return out


def limits(v, kubevirts=(), policies=(), ns_labels=None, uid=None):
    guard = compute_timeouts(v, TimeoutSettings())
    return kubevirt_timeouts(v, guard, list(kubevirts), list(policies), ns_labels, uid)


def test_defaults_count_decimal_gb_rounded_up():
    t = limits(vmi("2Gi"))  # 2.147 GB -> 3 GB
    kv = t.kubevirt
    assert (kv.data_gb, kv.completion_timeout_per_gib, kv.completion_timeout_seconds) == (
        3,
        150,
        450,
    )
    assert kv.progress_timeout_seconds == 150 and kv.source == "default"
    assert (kv.allow_post_copy, kv.allow_workload_disruption, kv.completion_action) == (
        False,
        False,
        "abort",
    )
    assert t.completion_timeout_seconds == 1600 and kv.completion_first == "kubevirt"
    assert kv.progress_first == "same"
    assert limits(vmi("1G")).kubevirt.data_gb == 1  # exactly 10^9 bytes: no rounding up
    assert limits(vmi("1000000001")).kubevirt.data_gb == 2


def test_guest_memory_wins_and_migrated_volumes_count():
    v = vmi("1Gi")
    v["spec"]["domain"]["memory"] = {"guest": "3G"}
    v["status"]["migratedVolumes"] = [
        {"sourcePVCInfo": {"capacity": {"storage": "10G"}, "requests": {"storage": "5G"}}},
        {"sourcePVCInfo": {"capacity": {"storage": "1G"}}},  # no request: not counted
    ]
    assert limits(v).kubevirt.data_gb == 8  # 3 GB + min(10, 5) GB


def test_block_migration_pvcs_are_not_counted_by_kubevirt():
    v = vmi("1G")
    v["status"]["migrationMethod"] = "BlockMigration"
    v["status"]["volumeStatus"] = [
        {"name": "d", "persistentVolumeClaimInfo": {"capacity": {"storage": "10Gi"}}}
    ]
    t = limits(v)
    assert t.data_gib == 11  # 1 GB + 10 GiB: migration-guard counts the copied PVC
    assert t.kubevirt.data_gb == 1 and any("ephemeral" in n for n in t.kubevirt.notes)


def test_kubevirt_cr_overrides_field_by_field():
    kv = kubevirt({"completionTimeoutPerGiB": 800, "allowPostCopy": True})
    t = limits(vmi("2Gi"), [kv])
    k = t.kubevirt
    assert (k.completion_timeout_per_gib, k.progress_timeout_seconds) == (800, 150)
    assert k.source == "kubevirt" and k.kubevirt == "kubevirt/kubevirt"
    # allowWorkloadDisruption unset follows allowPostCopy: post-copy at the limit, no abort
    assert k.allow_workload_disruption is True and k.completion_action == "post-copy"
    assert k.completion_timeout_seconds == 2400 and k.completion_first == "migration-guard"


def test_kubevirt_cr_without_phase_or_being_deleted_is_not_read():
    assert limits(vmi(), [kubevirt({"progressTimeout": 20}, phase=None)]).kubevirt.source == (
        "default"
    )
    deleting = kubevirt({"progressTimeout": 20})
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert limits(vmi(), [deleting]).kubevirt.progress_timeout_seconds == 150


def test_zero_disables_and_migration_guard_fires_first():
    k = limits(vmi(), [kubevirt({"completionTimeoutPerGiB": 0, "progressTimeout": 0})]).kubevirt
    assert k.completion_timeout_seconds == 0 and k.progress_timeout_seconds == 0
    assert k.completion_first == k.progress_first == "migration-guard"
    assert first_to_fire(100, 99) == "kubevirt" and first_to_fire(100, 100) == "same"


def test_malformed_cr_and_policy_are_ignored_with_a_note():
    bad_cr = kubevirt({"completionTimeoutPerGiB": "fast", "progressTimeout": -3})
    bad_policy = policy("p", vmi_sel={"a": 1})
    k = limits(vmi(labels={"a": "1"}), [bad_cr], [bad_policy, {"metadata": {"name": "q"}}]).kubevirt
    assert k.completion_timeout_per_gib == 150 and k.progress_timeout_seconds == 150
    assert k.source == "default"
    assert any("completionTimeoutPerGiB='fast'" in n for n in k.notes)
    assert any("MigrationPolicy p is malformed" in n for n in k.notes)


def test_policy_overrides_completion_and_post_copy_not_progress():
    p = policy("slow", vmi_sel={"app": "db"}, completionTimeoutPerGiB=20, allowPostCopy=False)
    k = limits(vmi(labels={"app": "db"}), [kubevirt({"progressTimeout": 30})], [p], {}).kubevirt
    assert (k.completion_timeout_per_gib, k.progress_timeout_seconds) == (20, 30)
    assert k.source == "policy" and k.policy == "slow"


def test_most_matching_labels_wins_then_vmi_labels_then_name():
    labels = {"app": "db", "tier": "gold"}
    ns = {"team": "a", "env": "prod"}
    one = policy("a-one", vmi_sel={"app": "db"})
    two = policy("z-two", vmi_sel={"app": "db", "tier": "gold"})
    assert match_policy([one, two], labels, ns)["metadata"]["name"] == "z-two"
    # 2 total each: one VMI + one namespace label vs two VMI labels -> more VMI labels wins
    mixed = policy("b-mixed", vmi_sel={"app": "db"}, ns_sel={"team": "a"})
    assert match_policy([mixed, two], labels, ns)["metadata"]["name"] == "z-two"
    # a full tie goes to the smallest name
    twin = policy("m-twin", vmi_sel={"app": "db", "tier": "gold"})
    assert match_policy([two, twin], labels, ns)["metadata"]["name"] == "m-twin"
    # a selector label that does not match excludes the policy
    miss = policy("a-miss", vmi_sel={"app": "db", "tier": "gold", "x": "y"})
    assert match_policy([miss, one], labels, ns)["metadata"]["name"] == "a-one"
    assert match_policy([policy("n", ns_sel={"team": "b"})], labels, ns) is None
    assert match_policy([{"metadata": {"name": "nosel"}, "spec": {}}], labels, ns) is None


def test_vmi_without_labels_matches_any_policy_as_kubevirt_does():
    p = policy("p", vmi_sel={"app": "db"}, ns_sel={"team": "a"})
    assert match_policy([p], {}, {"team": "b"})["metadata"]["name"] == "p"


def test_unknown_namespace_leaves_namespace_policies_unmatched_with_a_note():
    notes: list[str] = []
    p = policy("p", ns_sel={"team": "a"})
    assert match_policy([p], {"app": "x"}, None, notes) is None
    assert notes and "namespace is not known" in notes[0]


def test_migration_state_configuration_wins_while_in_flight():
    v = vmi("2Gi")
    v["status"]["migrationState"] = {
        "migrationUid": "u1",
        "startTimestamp": "2026-01-01T00:00:00Z",
        "migrationPolicyName": "slow",
        "migrationConfiguration": {"completionTimeoutPerGiB": 5, "progressTimeout": 9},
    }
    cr = [kubevirt({"completionTimeoutPerGiB": 800})]
    k = limits(v, cr).kubevirt
    assert (k.source, k.policy, k.completion_timeout_seconds, k.progress_timeout_seconds) == (
        "migrationState",
        "slow",
        15,
        9,
    )
    # once that migration ended, a new one is configured afresh; asked by uid, it is still its own
    ended = copy.deepcopy(v)
    ended["status"]["migrationState"]["completed"] = True
    assert limits(ended, cr).kubevirt.source == "kubevirt"
    assert limits(ended, cr, uid="u1").kubevirt.source == "migrationState"
    assert limits(v, cr, uid="other").kubevirt.source == "kubevirt"


def test_effective_config_workload_disruption_from_policy_post_copy():
    p = policy("pc", vmi_sel={"a": "b"}, allowPostCopy=True)
    eff = effective_config(vmi(labels={"a": "b"}), [], [p], {})
    assert eff.config.workload_disruption is True and eff.source == "policy"


def test_shorter_limits_compare_per_gib_in_equal_units():
    s = TimeoutSettings(completion_timeout_per_gib=800, progress_timeout_seconds=150)
    found, _ = shorter_limits(s, [], [])
    assert [(f.limit, f.source, f.name) for f in found] == [("completion", "kubevirt", "default")]
    assert found[0].kubevirt_seconds == pytest.approx(161.06)
    # 745 s/GB = 799.94 s/GiB: still shorter; 746 s/GB = 801 s/GiB: not
    assert shorter_limits(s, [kubevirt({"completionTimeoutPerGiB": 745})], [])[0]
    found, _ = shorter_limits(
        s,
        [kubevirt({"completionTimeoutPerGiB": 746, "progressTimeout": 60})],
        [policy("fast", completionTimeoutPerGiB=100), policy("long", completionTimeoutPerGiB=900)],
    )
    assert [(f.limit, f.source, f.name) for f in found] == [
        ("progress", "kubevirt", "kubevirt/kubevirt"),
        ("completion", "policy", "fast"),
    ]


def test_engine_report_admission_and_cli_show_both_limits():
    state = ClusterState.from_objects(o.cluster())
    state.apply(kubevirt({"completionTimeoutPerGiB": 100}))
    state.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    labels = o.vmi()["metadata"].get("labels") or {}
    state.apply(policy("short", vmi_sel=labels, completionTimeoutPerGiB=10))
    report = evaluate_migration(state, "default", "vm1")
    t = report.to_dict()["timeouts"]
    assert t["kubevirt"]["source"] == "policy" and t["kubevirt"]["migrationPolicy"] == "short"
    assert t["firesFirst"]["completion"] == "kubevirt"
    warnings = report_warnings(report)
    assert any(
        "MigrationPolicy short" in w and "completion limit fires first" in w for w in warnings
    )
    text = format_text(report)
    assert "MigrationPolicy short over KubeVirt CR kubevirt/kubevirt" in text
    assert "Fires first: completion: KubeVirt" in text


def test_state_keeps_namespaces_and_policies_cluster_scoped():
    state = ClusterState()
    state.apply({"kind": "Namespace", "metadata": {"name": "a", "labels": {"x": "y"}}})
    state.apply(policy("p"))
    assert state.namespace_labels("a") == {"x": "y"} and state.namespace_labels("b") is None
    assert [p["metadata"].get("namespace") for p in state.migration_policies()] == [None]
    state.remove("Namespace", None, "a")
    assert state.namespace_labels("a") is None


def test_state_reads_the_kubevirt_config_again_when_a_cr_changes():
    state = ClusterState()
    assert state.migration_inputs("default")[0].kubevirt is None
    state.apply(kubevirt({"completionTimeoutPerGiB": 90}))
    assert state.migration_inputs("default")[0].config.completion_per_gib == 90
    assert state.migration_inputs("default")[0] is state.migration_inputs("default")[0]  # read once
    state.apply(kubevirt({"completionTimeoutPerGiB": 60}))
    assert state.migration_inputs("default")[0].config.completion_per_gib == 60
    state.replace_all("KubeVirt", [kubevirt({"progressTimeout": 10}, name="other")])
    assert (
        state.migration_inputs("default")[0].kubevirt,
        state.migration_inputs("default")[0].config.progress_seconds,
    ) == (
        "kubevirt/other",
        10,
    )
    state.remove("KubeVirt", "kubevirt", "other")
    assert state.migration_inputs("default")[0] == cluster_config([])


def test_enforcer_check_gauges_and_one_log_line(caplog):
    state = ClusterState()
    metrics = EnforcerMetrics()
    check = KubeVirtLimitsCheck(TimeoutSettings(), state, metrics, synced=lambda: True)
    with caplog.at_level("WARNING", logger="migration_guard.enforcer"):
        check.update()
        check.update()
    lines = [r for r in caplog.records if "shorter than migration-guard" in r.getMessage()]
    assert len(lines) == 1
    rendered = metrics.render().decode()
    assert (
        'migration_guard_enforcer_kubevirt_limit_shorter{limit="completion",source="kubevirt"} 1.0'
        in rendered
    )
    assert check.status()["shorter"][0]["name"] == "default"
    state.apply(kubevirt({"completionTimeoutPerGiB": 800}))
    check.update()
    rendered = metrics.render().decode()
    assert (
        'migration_guard_enforcer_kubevirt_limit_shorter{limit="completion",source="kubevirt"} 0.0'
        in rendered
    )
    assert check.status()["shorter"] == []


def test_equal_inputs_share_one_timeouts_and_a_changed_config_is_read_at_once():
    """Without a policy or a migration in flight, the Timeouts of VMIs of one size are made once
    per cluster configuration; a new configuration gives its own values, never the old ones."""
    first, second = vmi("2Gi"), vmi("2Gi")
    settings = TimeoutSettings()  # one per process, as the webhook's flags give it
    guard = compute_timeouts(first, settings)
    assert compute_timeouts(second, settings) is guard
    assert compute_timeouts(second, TimeoutSettings(progress_timeout_seconds=60)) is not guard
    config = cluster_config([kubevirt({"completionTimeoutPerGiB": 90})])
    a = kubevirt_timeouts(first, guard, config, [], None)
    b = kubevirt_timeouts(second, compute_timeouts(second, settings), config, [], None)
    assert a is b and a.kubevirt.completion_timeout_per_gib == 90
    bigger = vmi("8Gi")
    c = kubevirt_timeouts(bigger, compute_timeouts(bigger, settings), config, [], None)
    assert c.kubevirt.data_gb == 9 and c.data_gib == 8
    changed = cluster_config([kubevirt({"completionTimeoutPerGiB": 40})])
    d = kubevirt_timeouts(first, guard, changed, [], None)
    assert (
        d.kubevirt.completion_timeout_per_gib == 40 and d.kubevirt.completion_timeout_seconds == 120
    )
    labels = first["metadata"].get("labels") or {"kubevirt.io/vm": "vm1"}
    first["metadata"]["labels"] = labels
    matched = kubevirt_timeouts(
        first, guard, config, [policy("fast", vmi_sel=labels, completionTimeoutPerGiB=10)], None
    )
    assert matched.kubevirt.source == "policy" and matched.kubevirt.completion_timeout_per_gib == 10
