"""The KubeVirt profile of the test control plane: what runs beside etcd and kube-apiserver so that
migrations are decided and carried out by the real KubeVirt and the real kube-scheduler.

- kube-controller-manager (service accounts, garbage collection, namespace deletion, node
  lifecycle, PodDisruptionBudget status, PV binding) and kube-scheduler, both v1.35.4;
- KWOK, the kubelets of the nodes annotated `kwok.x-k8s.io/node: fake` (tests/harness/nodes.py);
- KubeVirt's virt-api, its webhooks registered as virt-operator registers them (the
  configurations come from KubeVirt's own constructors, hack/kubevirt-manifests), by URL and
  caBundle instead of the `kubevirt/virt-api` Service;
- KubeVirt's virt-controller in namespace `kubevirt`, as
  `system:serviceaccount:kubevirt:kubevirt-controller`, and a KubeVirt CR in phase Deployed;
- virt-handler's part is played by tests/harness/virt_handler.py.

Every process is supervised (restarted when it exits, as virt-api and virt-controller do when a
CDI CRD appears) and logs to the control plane's workdir; `KubeVirtStack.diagnostics()` is what a
failing test prints. See ../shared/reference/kubevirt-offcluster.md for the facts behind each flag.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.harness.builds import built
from tests.harness.supervisor import Supervised
from webhook.cluster.kubeapi import KubeError, call

if TYPE_CHECKING:
    from tests.harness.controlplane import ControlPlane

NAMESPACE = "kubevirt"
CONTROLLER = f"system:serviceaccount:{NAMESPACE}:kubevirt-controller"
APISERVER = f"system:serviceaccount:{NAMESPACE}:kubevirt-apiserver"
HANDLER = f"system:serviceaccount:{NAMESPACE}:kubevirt-handler"
# Static-token users of the KubeVirt profile (the API server's token file); KubeVirt's webhooks
# trust these names, and cluster-admin rights stand in for virt-operator's ClusterRoles.
USERS = {
    CONTROLLER: ("system:serviceaccounts", "system:masters"),
    APISERVER: ("system:serviceaccounts", "system:masters"),
}
LAUNCHER_IMAGE = "quay.io/kubevirt/virt-launcher:v1.8.2"
KUBEVIRT_PATH = f"/apis/kubevirt.io/v1/namespaces/{NAMESPACE}/kubevirts"
START_TIMEOUT_S = 90.0
# What a Harvester cluster's KubeVirt CR configures that matters for migrations.
DEFAULT_CONFIGURATION = {
    "evictionStrategy": "LiveMigrate",
    "developerConfiguration": {"featureGates": []},
    "migrations": {"parallelMigrationsPerCluster": 5, "parallelOutboundMigrationsPerNode": 2},
}


class KubeVirtError(RuntimeError):
    """The KubeVirt profile could not start; the message names the component and its log."""


def kubevirt_root() -> Path:
    """The cached KubeVirt build (hack/build-kubevirt.sh), built first when missing."""
    return built("build-kubevirt.sh", KubeVirtError).parent


def kubevirt_crds() -> Path:
    """KubeVirt's CRDs, one JSON List."""
    return kubevirt_root() / "kubevirt-crds.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class KubeVirtStack:
    """The supervised processes of the profile, by name."""

    plane: ControlPlane
    root: Path
    processes: dict[str, Supervised] = field(default_factory=dict)
    virt_api_port: int = 0

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        self.processes.clear()

    def diagnostics(self, lines: int = 30) -> str:
        """The end of every component's log, for a failing test's message."""
        return "\n".join(
            f"===== {name} (restarts: {proc.restarts}) =====\n{proc.tail(lines)}"
            for name, proc in self.processes.items()
        )

    def configure(self, configuration: dict) -> None:
        """Replace the KubeVirt CR's spec.configuration (virt-api and virt-controller follow it)."""
        path = f"{KUBEVIRT_PATH}/kubevirt"
        call(
            self.plane.api_client(),
            "PATCH",
            path,
            [{"op": "replace", "path": "/spec/configuration", "value": configuration}],
            content_type="application/json-patch+json",
        )

    # ----------------------------------------------------------------- start
    def _supervise(self, name: str, args: list[str]) -> Supervised:
        proc = Supervised(name, args, self.plane.workdir / f"{name}.log", env=dict(os.environ))
        self.processes[name] = proc.start()
        return proc

    def _kubeconfig(self, user: str) -> str:
        return str(self.plane.kubeconfig_for(user))

    def start_kube_components(self) -> None:
        bins, pki = self.plane.bin_dir, self.plane.pki
        self._supervise(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                f"--kubeconfig={self.plane.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                f"--service-account-private-key-file={pki['sa_key']}",
                f"--root-ca-file={pki['ca']}",
                "--use-service-account-credentials=false",
                "--controllers=*,-csrsigning,-csrapproving,-csrcleaner,-nodeipam",
                "--node-monitor-period=2s",
                "--concurrent-gc-syncs=5",
            ],
        )
        self._supervise(
            "kube-scheduler",
            [
                str(bins / "kube-scheduler"),
                f"--kubeconfig={self.plane.kubeconfig}",
                # each node's score for each pod, so a test can show why a pod went where it
                # did (scheduler_scores); a few lines per node and pod
                "--vmodule=schedule_one=10,resource_allocation=10",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
            ],
        )
        # only Stages: kwok defaults its KwokConfiguration when the file holds none
        config = self.root / "kwok-stages.yaml"
        self._supervise(
            "kwok",
            [
                str(self.root / "bin" / "kwok"),
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--config={config}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
            ],
        )

    def start_kubevirt(
        self, configuration: dict | None = None, *, with_controller: bool = True
    ) -> None:
        """virt-api (its webhooks registered) and, unless `with_controller` is False,
        virt-controller (a benchmark of virt-api alone runs VMIs without launcher pods, which
        virt-controller would fail)."""
        api = self.plane.api_client()
        _ensure(api, "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        self._create_kubevirt_cr(api, configuration or DEFAULT_CONFIGURATION)
        # a folder of its own: virt-api reloads its certificate on any change in the folder
        # (fsnotify on the directory), and the workdir holds every component's growing log
        certs = self.plane.workdir / "virt-api-certs"
        certs.mkdir(exist_ok=True)
        for name in ("virt_api_cert", "virt_api_key"):
            shutil.copy(self.plane.pki[name], certs / self.plane.pki[name].name)
        cert, key = (certs / self.plane.pki[n].name for n in ("virt_api_cert", "virt_api_key"))
        self.virt_api_port = _free_port()
        virt_api = self._supervise(
            "virt-api",
            [
                str(self.root / "bin" / "virt-api"),
                f"--kubeconfig={self._kubeconfig(APISERVER)}",
                "--listen=127.0.0.1",
                f"--port={self.virt_api_port}",
                f"--tls-cert-file={cert}",
                f"--tls-key-file={key}",
            ],
        )
        if with_controller:
            self._supervise(
                "virt-controller",
                [
                    str(self.root / "bin" / "virt-controller"),
                    f"--kubeconfig={self._kubeconfig(CONTROLLER)}",
                    "--listen=127.0.0.1",
                    f"--port={_free_port()}",
                    f"--launcher-image={LAUNCHER_IMAGE}",
                    "--leader-elect-lease-duration=4s",
                    "--leader-elect-renew-deadline=3s",
                    "--leader-elect-retry-period=1s",
                ],
            )
        _wait(
            lambda: _tls_answers(self.virt_api_port, self.plane.ca_file),
            "virt-api serving TLS",
            virt_api,
        )
        self._register_virt_api_webhooks(api)
        if with_controller:
            _wait(
                lambda: _lease_held(api, NAMESPACE, "virt-controller"),
                "virt-controller holding its Lease",
                self.processes["virt-controller"],
            )

    def _create_kubevirt_cr(self, api, configuration: dict) -> None:
        body = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": NAMESPACE},
            "spec": {"configuration": copy.deepcopy(configuration)},
        }
        _ensure(api, KUBEVIRT_PATH, body)
        # What virt-operator reports once it has deployed KubeVirt: virt-api and virt-controller
        # use a CR only in phase Deployed, and take the architecture of pods from it.
        call(
            api,
            "PATCH",
            f"{KUBEVIRT_PATH}/kubevirt/status",
            {"status": {"phase": "Deployed", "defaultArchitecture": "amd64"}},
            content_type="application/merge-patch+json",
        )

    def _register_virt_api_webhooks(self, api) -> None:
        """virt-api's webhook configurations, pointed at its loopback URL with the test CA."""
        ca_bundle = base64.b64encode(self.plane.ca_file.read_bytes()).decode()
        for config in json.loads((self.root / "virt-api-webhooks.json").read_text())["items"]:
            for webhook in config.get("webhooks") or []:
                service = webhook["clientConfig"].pop("service")
                webhook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{self.virt_api_port}{service.get('path', '/')}",
                    "caBundle": ca_bundle,
                }
            plural = config["kind"].lower() + "s"
            _ensure(api, f"/apis/admissionregistration.k8s.io/v1/{plural}", config)


def _ensure(api, collection: str, body: dict) -> None:
    try:
        call(api, "POST", collection, body)
    except KubeError as err:
        if err.status != 409:
            raise


def _tls_answers(port: int, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1"),
        ):
            return True
    except OSError:
        return False


def _lease_held(api, namespace: str, name: str) -> bool:
    try:
        lease = call(
            api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        )
    except KubeError:
        return False
    return bool((lease.get("spec") or {}).get("holderIdentity"))


def _wait(check, what: str, proc: Supervised, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise KubeVirtError(
        f"timed out after {timeout:.0f}s waiting for {what}; {proc.log}:\n{proc.tail()}"
    )
