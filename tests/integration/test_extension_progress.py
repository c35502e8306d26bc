"""The extension's migration status shows data remaining, read from a real Prometheus.

The KubeVirt simulator serves virt-handler's `kubevirt_vmi_migration_data_remaining_bytes`, a real
Prometheus scrapes it, and `migration-guard extension --prometheus-url` reads it back: what the
Harvester UI shows is what the enforcer judges progress by.
"""

from __future__ import annotations

from tests.harness.prometheus import running_prometheus
from tests.harness.simulator import KubeVirtSimulator, Scenario, create_migration, create_vm
from tests.integration.test_extension import start_server, stop_server, wait_for


def test_migration_status_shows_data_remaining_from_prometheus(controlplane, namespace, tmp_path):
    api = controlplane.api_client()
    create_vm(api, namespace, "busy", memory="2Gi", node="node-a")
    simulator = KubeVirtSimulator(api).start()
    try:
        simulator.set_scenario(namespace, "busy", Scenario.overrun(would_take=600.0))
        with running_prometheus([simulator.metrics_url]) as prometheus:
            server = start_server(
                controlplane, tmp_path / "ext", "extension", "--prometheus-url", prometheus.url
            )
            try:
                create_migration(api, namespace, "busy")
                admin = controlplane.token("admin")

                def remaining() -> int | None:
                    response = server.migration(admin, namespace, "busy")
                    if response.status_code != 200:
                        return None
                    return response.json()["migration"]["dataRemainingBytes"]

                first = wait_for(remaining, timeout=20, what="data remaining from Prometheus")
                assert 0 < first <= 2 * 1024**3
                later = wait_for(
                    lambda: (value := remaining()) is not None and value < first and value,
                    timeout=20,
                    what="data remaining to go down",
                )
                assert later < first
            finally:
                stop_server(server)
    finally:
        simulator.stop()
