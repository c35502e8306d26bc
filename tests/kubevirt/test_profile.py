"""The KubeVirt profile itself: virt-api and virt-controller exit when CDI's CRDs appear (as they
do on a real cluster, where kubelet restarts them), and the supervisor restarts them, their logs
kept in one file. (With only part of CDI installed, virt-controller then waits for the rest of
CDI's CRDs: seen in its log, not asserted.)"""

from __future__ import annotations

import shutil

import pytest

from tests.harness.controlplane import start_controlplane
from tests.harness.kubevirt_cluster import KubeVirtCluster, node_ready
from tests.harness.nodes import harvester_node
from tests.harness.virt_handler import VirtHandler
from webhook.cluster.kubeapi import call

pytestmark = pytest.mark.kubevirt

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def cdi_crd(kind: str) -> dict:
    """A CDI CRD by name and kind (virt-api and virt-controller watch for these two)."""
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.cdi.kubevirt.io"},
        "spec": {
            "group": "cdi.kubevirt.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def test_virt_api_and_virt_controller_restart_when_cdi_crds_appear(tmp_path):
    plane = start_controlplane(tmp_path / "plane", kubevirt_profile=True)
    handler = VirtHandler(plane)
    try:
        api = plane.api_client()
        call(api, "POST", "/api/v1/nodes", harvester_node("cdi-node-0"))
        handler.start()
        cluster = KubeVirtCluster(plane, handler, ("cdi-node-0",))
        cluster.wait_for(
            "the node Ready", lambda: node_ready(cluster.get("/api/v1/nodes/cdi-node-0"))
        )
        stack = plane.stack
        names = ("virt-api", "virt-controller")

        def restarted_since(counts: dict[str, int]):
            return lambda: all(stack.processes[n].restarts > counts[n] for n in names)

        before = {name: stack.processes[name].restarts for name in names}
        for kind in ("DataVolume", "DataSource"):
            call(api, "POST", CRDS, cdi_crd(kind))
        cluster.wait_for("both restarted for CDI", restarted_since(before), timeout=60)
        for name in names:
            log = stack.processes[name].log.read_text(errors="replace")
            assert f"--- {name} exited with" in log  # the supervisor's line, in the same log
            assert log.count('"component":"' + name) > 0  # and both runs' own lines
    finally:
        handler.stop()
        plane.stop()
        shutil.rmtree(plane.workdir, ignore_errors=True)
