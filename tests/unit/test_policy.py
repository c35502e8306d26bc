"""The policy, pure: profiles, settings, and what it does to the rule engine's report and answer."""

from __future__ import annotations

import json

import pytest

from tests.unit import rules_objects as o
from webhook.admission import review
from webhook.cli import format_policy, format_text
from webhook.cluster.state import ClusterState
from webhook.errors import InputError
from webhook.rules import evaluate_migration
from webhook.rules.model import Report
from webhook.rules.policy import (
    ALL_DENY,
    POLICY_CODES,
    PolicySettings,
    PolicySource,
    resolve,
)


def actions(policy) -> dict[str, tuple[str, str]]:
    return {r.code: (r.action, r.why) for r in policy.rules}


@pytest.mark.parametrize(
    ("version", "profile", "cdrom"),
    [("v1.7.1", "v1.7", "deny"), ("v1.8.0", "v1.8", "warn"), ("1.10.2-rc1", "v1.8", "warn")],
)
def test_the_profile_follows_harvesters_version(version, profile, cdrom):
    policy = resolve(PolicySettings(), version)
    assert policy.profile == profile
    assert policy.profile_source == f"auto: Harvester's server-version is {version}"
    assert actions(policy)["CDROMVolume"][0] == cdrom
    assert actions(policy)["ContainerDiskVolume"][0] == cdrom
    assert actions(policy)["PCIDevicePassthrough"] == ("deny", "default")


def test_without_a_readable_version_the_earliest_profile_applies_and_says_why():
    assert resolve(PolicySettings(), None).profile_source == (
        "auto: the cluster publishes no Harvester server-version"
    )
    unreadable = resolve(PolicySettings(), "master-head")
    assert unreadable.profile == "v1.7" and "unreadable" in unreadable.profile_source


def test_explicit_actions_override_the_profile_and_a_fixed_version_wins_over_the_cluster():
    settings = PolicySettings.parse("v1.8.0", ["CDROMVolume=deny", "NodeCordoned=off"])
    policy = resolve(settings, "v1.7.0")
    assert policy.profile == "v1.8" and policy.profile_source == "--harvester-version"
    table = actions(policy)
    assert table["CDROMVolume"] == ("deny", "--rule-actions")
    assert table["ContainerDiskVolume"] == ("warn", "profile v1.8")
    assert table["NodeCordoned"] == ("off", "--rule-actions")
    assert [r.code for r in policy.rules] == list(POLICY_CODES)


def test_the_policy_is_resolved_again_only_when_the_version_changes():
    seen = []
    source = PolicySource(PolicySettings(), seen.append)
    first = source.policy("v1.7.0")
    assert source.policy("v1.7.0") is first
    assert source.policy("v1.8.0").profile == "v1.8"
    assert [p.profile for p in seen] == ["v1.7", "v1.8"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule_actions": ["CDROMVolume"]}, "is not CODE=ACTION"),
        ({"rule_actions": ["SourceNode=off"]}, "'SourceNode' is not a rule"),
        ({"harvester_version": "latest"}, "--harvester-version: 'latest'"),
        ({"exempt_namespace_selector": "a in b"}, "--exempt-namespace-selector: 'a in b'"),
    ],
)
def test_bad_policy_settings_name_the_setting(kwargs, message):
    with pytest.raises(InputError, match=message):
        PolicySettings.parse(**kwargs)


# ---- what the policy does to a decision -------------------------------------------------------


def with_cdrom(vmi: dict) -> dict:
    spec = vmi["spec"]
    spec["domain"]["devices"].setdefault("disks", []).append({"name": "cd", "cdrom": {}})
    spec.setdefault("volumes", []).append(
        {"name": "cd", "persistentVolumeClaim": {"claimName": "iso"}}
    )
    return vmi


def scene(*extra, nodes=None, vmi=None) -> ClusterState:
    objs = o.cluster(*extra, nodes=nodes)
    if vmi is not None:
        objs = [vmi if ob["kind"] == "VirtualMachineInstance" else ob for ob in objs]
    return ClusterState.from_objects(objs)


def test_a_warned_blocker_is_a_warning_not_a_denial_and_off_drops_it():
    state = scene(vmi=with_cdrom(o.vmi()))
    denied = evaluate_migration(state, "default", "vm1")
    assert [p.code for p in denied.problems()] == ["CDROMVolume"]

    warned = evaluate_migration(state, "default", "vm1", policy=resolve(PolicySettings(), "v1.8.0"))
    assert warned.allowed and [w.code for w in warned.warnings] == ["CDROMVolume"]
    assert Report.from_dict(json.loads(json.dumps(warned.to_dict()))) == warned
    text = format_text(warned)
    assert (
        "Warnings, allowed by the policy (1):\n  - CDROMVolume [spec.domain.devices.disks[" in text
    )

    off = resolve(PolicySettings.parse(rule_actions=["CDROMVolume=off"]), None)
    dropped = evaluate_migration(state, "default", "vm1", policy=off)
    assert dropped.allowed and not dropped.warnings and not dropped.blockers


def test_a_warned_node_rule_keeps_the_node_eligible_with_its_warning():
    cordoned = o.node("node-2", spec={"unschedulable": True})
    state = scene(nodes=[o.node("node-1"), cordoned])
    assert evaluate_migration(state, "default", "vm1").eligible_nodes == []
    policy = resolve(PolicySettings.parse(rule_actions=["NodeCordoned=warn"]), None)
    report = evaluate_migration(state, "default", "vm1", target="node-2", policy=policy)
    assert report.allowed
    assert [w.code for w in report.all_warnings()] == ["NodeCordoned"]
    answer = review.respond(req(), report)
    warnings = answer["response"]["warnings"]
    assert warnings[0].startswith("migration-guard: NodeCordoned (warn): node 'node-2' is cordoned")
    assert "node-2  yes       NodeCordoned (warn): node 'node-2' is cordoned" in format_text(report)


def test_an_exempt_vm_is_admitted_unchecked_with_one_warning():
    vm = o.vm()
    vm["metadata"]["labels"] = {"migration-guard.io/exempt": "true"}
    state = scene(vm, vmi=with_cdrom(o.vmi()))
    report = evaluate_migration(state, "default", "vm1", policy=ALL_DENY)
    assert report.exemption == "the VM has the label migration-guard.io/exempt=true"
    assert report.allowed and [b.code for b in report.blockers] == ["CDROMVolume"]
    assert review.respond(req(), report)["response"]["warnings"] == [
        "migration-guard did not check VM default/vm1: the VM has the label "
        "migration-guard.io/exempt=true"
    ]
    assert "Exempt: the VM has the label" in format_text(report)


def test_namespaces_are_exempt_by_name_or_selector():
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default", "labels": {"team": "legacy"}},
    }
    state = scene(ns, vmi=with_cdrom(o.vmi()))
    for settings, why in (
        (PolicySettings.parse(exempt_namespaces=["default"]), "is in --exempt-namespaces"),
        (
            PolicySettings.parse(exempt_namespace_selector="team in (legacy)"),
            "matches --exempt-namespace-selector",
        ),
    ):
        report = evaluate_migration(state, "default", "vm1", policy=resolve(settings, None))
        assert report.exemption == f"namespace 'default' {why}"
    other = PolicySettings.parse(exempt_namespace_selector="team!=legacy")
    assert (
        evaluate_migration(state, "default", "vm1", policy=resolve(other, None)).exemption is None
    )


def test_the_policy_table_says_why_for_every_rule():
    text = format_policy(resolve(PolicySettings.parse(rule_actions=["WitnessNode=warn"]), "v1.8.0"))
    assert "Profile: Harvester v1.8 (auto: Harvester's server-version is v1.8.0)" in text
    assert "CDROMVolume              warn    profile v1.8" in text
    assert "WitnessNode              warn    --rule-actions" in text
    assert "NodeCordoned             deny    default" in text


def req() -> review.ReviewRequest:
    return review.parse_review(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {
                    "group": "kubevirt.io",
                    "version": "v1",
                    "kind": "VirtualMachineInstanceMigration",
                },
                "operation": "CREATE",
                "object": o.vmim(),
            },
        }
    )
