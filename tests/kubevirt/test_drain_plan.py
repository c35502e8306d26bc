"""A node's drain plan, then `kubectl drain` of it on the real stack: the plan is what happens.

The plan is read through the running webhook's extension API (the same code as
`migration-guard drain-plan`). Then virt-api's eviction webhook, virt-controller's evacuation
controller and kube-scheduler do the drain. Every VM the plan moves leaves; where it lands is
the node the plan named or one of its alternatives (equal scores, or a wave's other migration
scheduled first), and how often each happened is printed; every VM it says holds the drain
stays, with its reason in KubeVirt's event.
"""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest

from tests.harness.enforcers import events_for
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.vms import container_disk, harvester_vm
from tests.webhook_process import WebhookProcess

pytestmark = pytest.mark.kubevirt


def get(hook: WebhookProcess, plane, path: str) -> dict:
    context = ssl.create_default_context(cafile=str(hook.ca_file))
    request = urllib.request.Request(
        hook.url + path, headers={"Authorization": f"Bearer {plane.token('admin')}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return json.loads(response.read())


def scheduler_scores(cluster: KubeVirtCluster, ns: str, vm: str) -> str:
    """kube-scheduler's log lines scoring the VM's launcher pods (tests/harness/kubevirt.py
    runs it with those lines on)."""
    log = (cluster.plane.workdir / "kube-scheduler.log").read_text(errors="replace")
    pod = f'pod="{ns}/virt-launcher-{vm}-'
    wanted = ("Listed internal info", "final score", "Successfully bound")
    return "\n".join(
        line for line in log.splitlines() if pod in line and any(w in line for w in wanted)
    )


def test_the_plan_says_where_each_vm_goes_and_which_one_holds_the_drain(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, guard: WebhookProcess
):
    cluster, ns, hook = kubevirt_cluster, vm_namespace, guard
    node = cluster.nodes[-1]
    disk, volume = container_disk()
    with cluster.only_schedulable(node):
        cluster.start_vm(harvester_vm(ns, "big", memory="24Gi"))
        cluster.start_vm(harvester_vm(ns, "small", memory="2Gi"))
        cluster.start_vm(harvester_vm(ns, "boxed", disks=[disk], volumes=[volume]))
    # the plan is read on a cluster that stays as it is until the drain (earlier tests'
    # namespaces are deleted without waiting: their pods would leave nodes meanwhile), once
    # the cache has seen the other nodes uncordoned again
    cluster.settled()
    others = sorted(n for n in cluster.nodes if n != node)
    targets = f"/v1/namespaces/{ns}/virtualmachines/small/migration-targets"
    cluster.wait_for(
        "the webhook's cache to see the other nodes schedulable",
        lambda: get(hook, cluster.plane, targets)["eligibleNodes"] == others,
    )
    plan = get(hook, cluster.plane, f"/v1/nodes/{node}/drain-plan")
    by_vm = {p["vm"]: p for p in plan["vms"] if p["vm"].startswith(f"{ns}/")}
    assert {v: p["outcome"] for v, p in by_vm.items()} == {
        f"{ns}/big": "migrates",
        f"{ns}/boxed": "holds-drain",
        f"{ns}/small": "migrates",
    }
    assert [r["code"] for r in by_vm[f"{ns}/boxed"]["reasons"]] == ["ContainerDiskVolume"]
    assert not plan["drainable"]

    try:
        drained = cluster.plane.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s",
            timeout=90,
        )  # fmt: skip
        assert drained.returncode != 0 and "virt-launcher-boxed" in drained.stderr
        landed_where = {"planned": 0, "alternative": 0}
        for name in ("big", "small"):
            entry = by_vm[f"{ns}/{name}"]
            moved = cluster.wait_for(
                f"{name} evacuated",
                lambda n=name: (v := cluster.vmi(ns, n))["status"]["nodeName"] != node and v,
            )
            assert moved["status"]["migrationState"]["completed"] is True
            landed = moved["status"]["nodeName"]
            assert landed in [entry["target"], *entry["alternatives"]], (
                f"{name} landed on {landed}; the plan said {entry['target']} or "
                f"{entry['alternatives']}; kube-scheduler scored:\n"
                + scheduler_scores(cluster, ns, name)
            )
            landed_where["planned" if landed == entry["target"] else "alternative"] += 1
        print(f"drain plan: 2 VMs moved; landed {landed_where}")
        assert cluster.vmi(ns, "boxed")["status"]["nodeName"] == node
        events = cluster.wait_for(
            "KubeVirt's FailedCreate event on the VM that holds the drain",
            lambda: [
                e for e in events_for(cluster.plane, ns, "boxed") if e["reason"] == "FailedCreate"
            ],
        )
        assert "ContainerDiskVolume" in events[0]["message"]
    finally:
        cluster.kubectl_ok("uncordon", node)
