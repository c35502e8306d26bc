"""KubeVirt's own migration limits, read from the real KubeVirt CR and a MigrationPolicy, are shown
beside migration-guard's, and match what the real virt-controller writes into the VMI.

The KubeVirt CR gets completionTimeoutPerGiB 400 and progressTimeout 600; a MigrationPolicy that
selects one VM (by VMI label and namespace label) sets 50. The webhook's admission warning (as
kubectl prints it) names each VM's KubeVirt limit, its source and that KubeVirt fires first; once
virt-controller hands the migration to the target it writes `migrationState.migrationConfiguration`
(with the policy's name), and `GET .../migration` shows that, even after the policy changes. The
enforcer's /readyz and gauge say KubeVirt's limit is shorter, and follow the CR when it changes.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.harness.enforcers import Enforcers, wait_for
from tests.harness.kubevirt import DEFAULT_CONFIGURATION
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario
from tests.harness.vms import harvester_vm, vmim
from tests.integration.test_extension import start_server, stop_server
from webhook.cluster.kubeapi import call

pytestmark = pytest.mark.kubevirt

POLICIES = "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies"
GAUGE = "migration_guard_enforcer_kubevirt_limit_shorter"


def configure(cluster: KubeVirtCluster, migrations: dict) -> None:
    config = json.loads(json.dumps(DEFAULT_CONFIGURATION))
    config["migrations"].update(migrations)
    cluster.plane.stack.configure(config)


@contextlib.contextmanager
def kubevirt_limits(cluster: KubeVirtCluster, namespace: str):
    """The CR's limits and a policy for VM `limited` in `namespace`; both undone afterwards."""
    api = cluster.plane.api_client()
    policy = f"mg-{namespace}"
    configure(cluster, {"completionTimeoutPerGiB": 400, "progressTimeout": 600})
    body = {
        "apiVersion": "migrations.kubevirt.io/v1alpha1",
        "kind": "MigrationPolicy",
        "metadata": {"name": policy},
        "spec": {
            "selectors": {
                "virtualMachineInstanceSelector": {"harvesterhci.io/vmName": "limited"},
                "namespaceSelector": {"kubernetes.io/metadata.name": namespace},
            },
            "completionTimeoutPerGiB": 50,
        },
    }
    call(api, "POST", POLICIES, body)
    try:
        yield policy
    finally:
        call(api, "DELETE", f"{POLICIES}/{policy}")
        cluster.plane.stack.configure(DEFAULT_CONFIGURATION)


def dry_run_warning(cluster: KubeVirtCluster, ns: str, vm: str, expect: str) -> str:
    """The webhook's warning for a server-side dry run, once its cache shows `expect`."""
    body = json.dumps(vmim(ns, f"{vm}-dry", vm))

    def warned():
        result = cluster.plane.kubectl("create", "--dry-run=server", "-f", "-", input=body)
        return result.returncode == 0 and expect in result.stderr and result.stderr

    return wait_for(warned, 30, f"the admission warning to say {expect!r}", every=0.5)


def test_kubevirt_limits_shown_from_cr_policy_and_migration_state(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, enforcers: Enforcers, tmp_path
):
    cluster, ns = kubevirt_cluster, vm_namespace
    cluster.handler.set_scenario(ns, "limited", Scenario.overrun(would_take=600.0))
    cluster.start_vm(harvester_vm(ns, "limited", memory="2Gi"))
    cluster.start_vm(harvester_vm(ns, "plain", memory="2Gi"))
    with kubevirt_limits(cluster, ns) as policy:
        # 2 GiB = 2.15 GB -> 3 GB counted by KubeVirt; migration-guard: 2 GiB x 800 s = 1600 s
        plain = dry_run_warning(cluster, ns, "plain", "completion 1200s")
        assert (
            f"KubeVirt's limits for VM {ns}/plain: completion 1200s (400s/GB x 3 GB, KubeVirt CR)"
            in plain
        )
        assert "progress 600s; KubeVirt's completion limit fires first (abort)" in plain
        assert f"VM {ns}/plain must finish migrating within 1600s (2 GiB of data)" in plain

        extension = start_server(cluster.plane, tmp_path / "ext", "extension")
        try:
            admin = cluster.plane.token("admin")
            created = cluster.plane.kubectl(
                "create", "-f", "-", input=json.dumps(vmim(ns, "m1", "limited"))
            )
            assert created.returncode == 0, created.stderr
            assert (
                f"Warning: migration-guard: KubeVirt's limits for VM {ns}/limited: completion "
                f"150s (50s/GB x 3 GB, MigrationPolicy {policy}), progress 600s; KubeVirt's "
                "completion limit fires first (abort)"
            ) in created.stderr

            # the real virt-controller matched the same policy and wrote what KubeVirt applies
            def handed_off():
                state = (cluster.vmi(ns, "limited").get("status") or {}).get("migrationState")
                return (state or {}).get("migrationConfiguration") and state

            state = cluster.wait_for("migrationState.migrationConfiguration", handed_off)
            assert state["migrationPolicyName"] == policy
            assert state["migrationConfiguration"]["completionTimeoutPerGiB"] == 50
            assert state["migrationConfiguration"]["progressTimeout"] == 600

            def shown(source: str):
                response = extension.migration(admin, ns, "limited")
                migration = response.json().get("migration") if response.ok else None
                kv = (migration or {}).get("kubevirt") or {}
                started = (migration or {}).get("startTimestamp")
                return kv.get("source") == source and started and migration

            migration = wait_for(lambda: shown("migrationState"), 30, "migrationState shown")
            kv = migration["kubevirt"]
            assert (kv["completionTimeoutPerGiB"], kv["completionTimeoutSeconds"]) == (50, 150)
            assert kv["migrationPolicy"] == policy and kv["progressTimeoutSeconds"] == 600
            assert migration["completionTimeoutSeconds"] == 1600
            assert migration["firesFirst"] == {
                "completion": "kubevirt",
                "progress": "migration-guard",
            }
            assert migration["kubevirtCompletionDeadline"] < migration["completionDeadline"]

            # a policy change after the hand-off does not change what KubeVirt applies
            call(
                cluster.plane.api_client(),
                "PATCH",
                f"{POLICIES}/{policy}",
                {"spec": {"completionTimeoutPerGiB": 70}},
                content_type="application/merge-patch+json",
            )
            time.sleep(2.0)  # the extension's watch delivers the change well within this
            assert (
                extension.migration(admin, ns, "limited").json()["migration"]["kubevirt"][
                    "completionTimeoutPerGiB"
                ]
                == 50
            )
        finally:
            stop_server(extension)

        # the enforcer (migration-guard's product limits) says KubeVirt's are shorter
        enforcer = enforcers.start(
            "kv-limits", ns, "--completion-timeout-per-gib", "800", "--progress-timeout", "150"
        )
        ready = enforcers.wait_ready(enforcer)
        limits = wait_for(
            lambda: (s := enforcer.readyz().get("kubevirtLimits") or {}).get("checked") and s,
            20,
            "the KubeVirt limits check",
        )
        assert ready["ready"] is True
        found = {(s["limit"], s["source"], s["name"]) for s in limits["shorter"]}
        assert ("completion", "kubevirt", "kubevirt/kubevirt") in found
        assert ("completion", "policy", policy) in found
        assert not any(s["limit"] == "progress" for s in limits["shorter"])  # 600 s > 150 s
        assert limits["cluster"]["completionTimeoutPerGiB"] == 400
        assert limits["migrationPolicies"]["served"] is True
        assert enforcer.metric(GAUGE, limit="completion", source="kubevirt") == 1.0
        assert enforcer.metric(GAUGE, limit="progress", source="kubevirt") == 0.0
        assert enforcer.metric(GAUGE, limit="completion", source="policy") == 1.0
        assert "KubeVirt's own limits are shorter than migration-guard's" in enforcer.log()

        # kept current: a CR allowing more than migration-guard clears the cluster-wide finding
        configure(cluster, {"completionTimeoutPerGiB": 800, "progressTimeout": 100})
        wait_for(
            lambda: enforcer.metric(GAUGE, limit="completion", source="kubevirt") == 0.0,
            20,
            "the completion gauge to follow the KubeVirt CR",
        )
        assert enforcer.metric(GAUGE, limit="progress", source="kubevirt") == 1.0
