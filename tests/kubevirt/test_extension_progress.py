"""The extension's migration status shows data remaining, read from a real Prometheus.

The virt-handler stand-in serves virt-handler's `kubevirt_vmi_migration_data_remaining_bytes` for a
migration the real virt-controller runs, a real Prometheus scrapes it, and `migration-guard
extension --prometheus-url` reads it back: what the Harvester UI shows is what the enforcer judges
progress by.
"""

from __future__ import annotations

import pytest

from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.prometheus import Prometheus
from tests.harness.virt_handler import Scenario
from tests.harness.vms import create_migration, harvester_vm
from tests.integration.test_extension import start_server, stop_server, wait_for

pytestmark = pytest.mark.kubevirt


def test_migration_status_shows_data_remaining_from_prometheus(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, prometheus: Prometheus, tmp_path
):
    cluster, namespace = kubevirt_cluster, vm_namespace
    cluster.handler.set_scenario(namespace, "busy", Scenario.overrun(would_take=600.0))
    cluster.start_vm(harvester_vm(namespace, "busy", memory="2Gi"))
    server = start_server(
        cluster.plane, tmp_path / "ext", "extension", "--prometheus-url", prometheus.url
    )
    try:
        create_migration(cluster.plane.api_client(), namespace, "busy")
        admin = cluster.plane.token("admin")

        def remaining() -> int | None:
            response = server.migration(admin, namespace, "busy")
            if response.status_code != 200:
                return None
            return response.json()["migration"]["dataRemainingBytes"]

        first = wait_for(remaining, timeout=30, what="data remaining from Prometheus")
        assert 0 < first <= 2 * 1024**3
        later = wait_for(
            lambda: (value := remaining()) is not None and value < first and value,
            timeout=20,
            what="data remaining to go down",
        )
        assert later < first
    finally:
        stop_server(server)
