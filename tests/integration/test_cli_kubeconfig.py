"""`migration-guard check --kubeconfig` reads the kinds it needs from a real kube-apiserver."""

from __future__ import annotations

import json

from kubernetes import client

from webhook import cli


def node_body(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubevirt.io/schedulable": "true",
                "network.harvesterhci.io/data": "true",
            },
        },
    }


NODE_STATUS = {
    "status": {
        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "ready",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
}


def test_check_reads_a_live_cluster(controlplane, namespace, capsys):
    api = controlplane.api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    source, target = f"{namespace}-n1", f"{namespace}-n2"
    for name in (source, target):
        core.create_node(node_body(name))
        core.patch_node_status(name, NODE_STATUS)
        # the TaintNodesByCondition admission plugin adds not-ready on create; a kubelet
        # would clear it once Ready, so clear it here
        core.patch_node(name, {"spec": {"taints": None}})
    custom.create_namespaced_custom_object(
        "k8s.cni.cncf.io",
        "v1",
        namespace,
        "network-attachment-definitions",
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "vlan100",
                "labels": {"network.harvesterhci.io/clusternetwork": "data"},
            },
            "spec": {"config": "{}"},
        },
    )
    vmi = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1"},
        "spec": {
            "domain": {
                "memory": {"guest": "2Gi"},
                "devices": {
                    "interfaces": [
                        {"name": "default", "masquerade": {}},
                        {"name": "nic-1", "bridge": {}},
                    ],
                    "disks": [{"name": "cd", "cdrom": {"bus": "sata"}}],
                },
            },
            "networks": [
                {"name": "default", "pod": {}},
                {"name": "nic-1", "multus": {"networkName": "vlan100"}},
            ],
            "volumes": [{"name": "cd", "persistentVolumeClaim": {"claimName": "iso"}}],
        },
    }
    custom.create_namespaced_custom_object(
        "kubevirt.io", "v1", namespace, "virtualmachineinstances", vmi
    )
    custom.patch_namespaced_custom_object(  # the VMI CRD has no status subresource
        "kubevirt.io",
        "v1",
        namespace,
        "virtualmachineinstances",
        "vm1",
        {"status": {"phase": "Running", "nodeName": source}},
    )
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "virt-launcher-vm1-abcde",
                "labels": {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "vm1"},
            },
            "spec": {
                "nodeName": source,
                "containers": [
                    {
                        "name": "compute",
                        "image": "virt-launcher",
                        "resources": {"requests": {"cpu": "100m", "memory": "40Gi"}},
                    }
                ],
            },
        },
    )

    args = [
        "check",
        "--kubeconfig",
        str(controlplane.kubeconfig),
        "--vm",
        f"{namespace}/vm1",
        "--output",
        "json",
    ]
    code = cli.main([*args, "--target", target])
    out, err = capsys.readouterr()
    assert code == 1, err
    report = json.loads(out)
    assert code == 1
    assert report["sourceNode"] == source
    assert [b["code"] for b in report["blockers"]] == ["CDROMVolume"]
    # the launcher pod's 40Gi request, read from the cluster, does not fit a 32Gi node
    (verdict,) = report["nodes"]
    assert verdict["name"] == target
    assert [r["code"] for r in verdict["reasons"]] == ["InsufficientResources"]

    code = cli.main([*args, "--target", source])
    report = json.loads(capsys.readouterr().out)
    assert "SourceNode" in [r["code"] for r in report["nodes"][0]["reasons"]]


def test_unusable_kubeconfig_is_an_input_error(tmp_path, capsys):
    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [a kubeconfig")
    code = cli.main(["check", "--kubeconfig", str(bad), "--vm", "default/vm1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and str(bad) in err and err.count("\n") == 1
