"""A real Kubernetes control plane on loopback for tests and the demo, like controller-runtime's envtest.

etcd and kube-apiserver are the binaries built from their Go modules by hack/build-controlplane.sh
(cached outside the checkout), with KubeVirt's own CRDs (generated from KubeVirt's code by
hack/build-kubevirt.sh). The API server runs with RBAC, the front-proxy (requestheader) flags, and
static bearer tokens for `admin` (system:masters), `alice` and `bob` (no rights until a test grants
them some) and KubeVirt's service accounts. ServiceAccount admission is off so pods can be created
without service accounts.

Two profiles:
- plain (the default): no controllers run; objects are what tests write.
- kubevirt (`kubevirt_profile=True`): kube-controller-manager, kube-scheduler, KWOK, and KubeVirt's
  virt-api and virt-controller run against it (tests/harness/kubevirt.py).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.harness import kubevirt
from tests.harness.builds import built
from tests.harness.pki import FRONT_PROXY_CLIENT, write_pki
from webhook.cluster.kubeapi import KubeError, call

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
CHART_CRD_DIR = REPO / "charts" / "migration-guard" / "crds"  # the chart's (PolicyReport)
USERS = {
    "admin": ("system:masters",),
    "alice": ("mg:users",),
    "bob": ("mg:users",),
    **kubevirt.USERS,
}
READY_TIMEOUT_S = 60.0
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
VMI_NAMES = ("vmi", "vmis", "virtualmachineinstance", "virtualmachineinstances")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says which step failed."""


def controlplane_bin_dir() -> Path:
    """The cached binaries, building them first when missing (MG_CONTROLPLANE_BIN overrides)."""
    override = os.environ.get("MG_CONTROLPLANE_BIN")
    if override:
        return Path(override)
    return built("build-controlplane.sh", ControlPlaneError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_parent_death_signal() -> None:
    """Child-side: get SIGKILL when the test process dies, so no orphan outlives an interrupted run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair and the files clients need to reach it."""

    workdir: Path
    bin_dir: Path
    port: int
    tokens: dict[str, str]
    ca_file: Path
    pki: dict[str, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    stack: kubevirt.KubeVirtStack | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.kubeconfig_for("admin")

    def kubeconfig_for(self, user: str) -> Path:
        return self.workdir / f"kubeconfig-{user.replace(':', '-')}"

    def token(self, user: str) -> str:
        return self.tokens[user]

    def api_client(self, user: str = "admin"):
        """An official-client ApiClient for `user`."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig_for(user)), client_configuration=configuration
        )
        return client.ApiClient(configuration)

    def env(self, user: str = "admin") -> dict[str, str]:
        """Environment for child processes: KUBECONFIG for `user` and the built tools first on PATH."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig_for(user)),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self, *args: str, user: str = "admin", input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), *args],
            env=self.env(user),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def helm(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        helm_home = self.workdir / "helm"
        env = {
            **self.env(),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        return subprocess.run(
            [str(self.bin_dir / "helm"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def patch_status(self, kind: str, name: str, status: dict, namespace: str = "") -> None:
        """Write `status` as its controller would, with kubectl: through the status subresource
        where the kind has one (KubeVirt's VMI CRD has none)."""
        args = ["patch", kind, name, "--type=merge", "-p", json.dumps({"status": status})]
        if namespace:
            args += ["-n", namespace]
        if kind.lower() not in VMI_NAMES:
            args.append("--subresource=status")
        result = self.kubectl(*args)
        if result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {result.stderr}")

    def apply_yaml(self, text: str) -> None:
        result = self.kubectl("apply", "-f", "-", input=text)
        if result.returncode != 0:
            raise ControlPlaneError(f"kubectl apply failed: {result.stderr}")

    def stop(self) -> None:
        """Stop the API server, then etcd; never leaves a process behind.

        The data is throw-away, so the API server is killed rather than waiting out its graceful
        shutdown (several seconds); etcd gets a few seconds to exit cleanly. The KubeVirt
        profile's components go first.
        """
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        for process in reversed(self.processes):
            if process.poll() is not None:
                continue
            if process is self.processes[-1]:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "migration-guard-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": user,
                "context": {
                    "cluster": "migration-guard-test",
                    "user": user,
                    "namespace": "default",
                },
            }
        ],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)


def _spawn(args: list[str], log: Path, die_with_parent: bool) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=set_parent_death_signal if die_with_parent else None,
            start_new_session=not die_with_parent,
        )


def _wait_ready(plane: ControlPlane, timeout: float) -> None:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(
        f"{plane.url}/readyz", headers={"Authorization": f"Bearer {plane.token('admin')}"}
    )
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        for process in plane.processes:
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{process.args[0]} exited with {process.returncode} while starting; "
                    f"logs in {plane.workdir}"
                )
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as error:
            last_error = str(error)
        time.sleep(0.2)
    raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s: {last_error}")


def install_crds(plane: ControlPlane) -> None:
    """Create KubeVirt's CRDs and the NAD CRD and wait until they are served. KubeVirt's are 2 MB
    of JSON: created through the API directly, in parallel, they take a fraction of what
    `kubectl apply` of the same 4 MB of YAML takes."""
    crds = json.loads(kubevirt.kubevirt_crds().read_text())["items"]
    crds += [
        doc
        for path in sorted([*CRD_DIR.glob("*.yaml"), *CHART_CRD_DIR.glob("*.yaml")])
        for doc in yaml.safe_load_all(path.read_text())
    ]
    api = plane.api_client()

    def create(crd: dict) -> None:
        try:
            call(api, "POST", CRD_PATH, crd, timeout=60)
        except KubeError as err:
            if err.status != 409:
                raise ControlPlaneError(f"creating CRD {crd['metadata']['name']}: {err}") from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, crds))
    pending = {crd["metadata"]["name"] for crd in crds}
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            conditions = (call(api, "GET", f"{CRD_PATH}/{name}").get("status") or {}).get(
                "conditions"
            ) or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                pending.discard(name)
        time.sleep(0.1)
    if pending:
        raise ControlPlaneError(f"CRDs not established after 30s: {', '.join(sorted(pending))}")


def start_controlplane(
    workdir: Path | None = None,
    die_with_parent: bool = True,
    apiserver_args: Sequence[str] = (),
    kubevirt_profile: bool = False,
    kubevirt_configuration: dict | None = None,
) -> ControlPlane:
    """Start etcd and kube-apiserver on free loopback ports and wait until the API is ready.

    `apiserver_args` are appended to kube-apiserver's flags (a test of watch expiry, say).
    `kubevirt_profile` also starts the KubeVirt profile, its KubeVirt CR configured with
    `kubevirt_configuration` (else kubevirt.DEFAULT_CONFIGURATION).
    """
    bin_dir = controlplane_bin_dir()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="mg-controlplane-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pki = write_pki(workdir)
    tokens = {user: secrets.token_hex(16) for user in USERS}
    (workdir / "tokens.csv").write_text(
        "".join(
            f'{tokens[user]},{user},{user}-uid,"{",".join(groups)}"\n'
            for user, groups in USERS.items()
        )
    )
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    plane = ControlPlane(
        workdir=workdir, bin_dir=bin_dir, port=api_port, tokens=tokens, ca_file=pki["ca"], pki=pki
    )
    try:
        plane.processes.append(
            _spawn(
                [
                    str(bin_dir / "etcd"),
                    f"--data-dir={workdir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                workdir / "etcd.log",
                die_with_parent,
            )
        )
        plane.processes.append(
            _spawn(
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--tls-cert-file={pki['cert']}",
                    f"--tls-private-key-file={pki['key']}",
                    f"--client-ca-file={pki['ca']}",
                    f"--service-account-key-file={pki['sa_pub']}",
                    f"--service-account-signing-key-file={pki['sa_key']}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--authorization-mode=RBAC",
                    f"--token-auth-file={workdir / 'tokens.csv'}",
                    "--disable-admission-plugins=ServiceAccount",
                    "--allow-privileged=true",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={workdir / 'certs'}",
                    # the front proxy: aggregated APIs and virt-api read these from the
                    # kube-system/extension-apiserver-authentication ConfigMap
                    f"--requestheader-client-ca-file={pki['front_proxy_ca']}",
                    f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-uid-headers=X-Remote-Uid",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki['front_proxy_cert']}",
                    f"--proxy-client-key-file={pki['front_proxy_key']}",
                    *apiserver_args,
                ],
                workdir / "kube-apiserver.log",
                die_with_parent,
            )
        )
        for user in USERS:
            _write_kubeconfig(plane.kubeconfig_for(user), plane.url, pki["ca"], user, tokens[user])
        _wait_ready(plane, READY_TIMEOUT_S)
        install_crds(plane)
        if kubevirt_profile:
            plane.stack = kubevirt.KubeVirtStack(plane, kubevirt.kubevirt_root())
            plane.stack.start_kube_components()
            plane.stack.start_kubevirt(kubevirt_configuration)
    except BaseException:
        plane.stop()
        raise
    return plane


@contextlib.contextmanager
def running_controlplane(
    workdir: Path | None = None,
    apiserver_args: Sequence[str] = (),
    kubevirt_profile: bool = False,
    kubevirt_configuration: dict | None = None,
):
    """Context manager: a control plane that is stopped and removed on exit, also on errors."""
    plane = start_controlplane(
        workdir,
        apiserver_args=apiserver_args,
        kubevirt_profile=kubevirt_profile,
        kubevirt_configuration=kubevirt_configuration,
    )
    try:
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(plane.workdir, ignore_errors=True)
