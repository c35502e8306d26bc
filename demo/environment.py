"""Start and stop everything the demo runs: the KubeVirt profile of the control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, KubeVirt's virt-api and
virt-controller, the virt-handler stand-in), the seeded cluster, webhook (+extension) and
enforcer. Every child process gets SIGKILL if the demo dies (PR_SET_PDEATHSIG, as the test harness
does), and `stop()` removes everything it started."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from demo.seed import SeedError, seed
from tests.harness.controlplane import (
    ControlPlane,
    free_port,
    set_parent_death_signal,
    start_controlplane,
)
from tests.harness.kubevirt import DEFAULT_CONFIGURATION
from tests.harness.rbac import vm_migrator_rbac
from tests.harness.registration import local_apiservice, local_webhook_configuration
from tests.harness.virt_handler import Scenario, VirtHandler
from webhook.cluster.kubeapi import KubeError

REPO = Path(__file__).resolve().parents[1]
MIGRATION_GUARD = REPO / ".venv" / "bin" / "migration-guard"
SYSTEM_NS = "migration-guard"
VWC_NAME = "migration-guard"
VM_NS = "default"
# Harvester's KubeVirt CR: host devices on, the example's GPU permitted.
KUBEVIRT_CONFIGURATION = {
    **DEFAULT_CONFIGURATION,
    "developerConfiguration": {"featureGates": ["HostDevices"]},
    "permittedHostDevices": {
        "pciHostDevices": [
            {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4"}
        ]
    },
}


class DemoError(RuntimeError):
    """A step of the demo start failed; the message names it and where its log is."""


@dataclass
class Demo:
    workdir: Path
    plane: ControlPlane
    port: int
    enforcer_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    handler: VirtHandler | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def dead(self) -> list[str]:
        """Names of the servers that exited."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self, remove: bool = True) -> None:
        if self.handler is not None:
            self.handler.stop()
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.plane.stop()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            preexec_fn=set_parent_death_signal,
        )


def _wait(demo: Demo, what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name in demo.dead():
            raise DemoError(f"{name} exited while starting; see {demo.log(name)}")
        try:
            if check():
                return
        except (requests.RequestException, OSError) as err:
            last = str(err)
        time.sleep(0.2)
    raise DemoError(f"{what} not ready after {timeout:.0f}s ({last}); logs in {demo.workdir}")


def start(workdir: Path, say=print) -> Demo:
    """Everything up and ready; on failure, what was started is stopped before raising."""
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh cluster every time
    workdir.mkdir(parents=True)
    say(
        "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, virt-api"
        " and virt-controller (building them first if not cached) ..."
    )
    plane = start_controlplane(
        workdir / "controlplane",
        kubevirt_profile=True,
        kubevirt_configuration=KUBEVIRT_CONFIGURATION,
    )
    demo = Demo(workdir, plane, free_port(), free_port())
    try:
        _start(demo, say)
    except (KubeError, SeedError) as err:
        demo.stop(remove=False)
        raise DemoError(f"seeding the cluster failed: {err}") from None
    except BaseException:
        demo.stop(remove=False)
        raise
    return demo


def _kubectl(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    result = plane.kubectl(*args, input=input)
    if result.returncode != 0:
        raise DemoError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _start(demo: Demo, say) -> None:
    plane = demo.plane
    shutil.copy(plane.kubeconfig, demo.kubeconfig)
    demo.handler = VirtHandler(plane, poll_seconds=0.2).start()
    demo.handler.default_scenario = Scenario.succeed(3.0)
    say("seeding a Harvester-like cluster from examples/cluster; KubeVirt starts its VMs ...")
    objs = seed(plane, demo.handler)
    kinds = [o["kind"] for o in objs]
    say(f"  {kinds.count('Node')} nodes, {kinds.count('VirtualMachine')} VMs")
    _kubectl(plane, "create", "namespace", SYSTEM_NS)
    _kubectl(
        plane,
        "apply",
        "-f",
        "-",
        input=json.dumps(vm_migrator_rbac(VM_NS, "alice", also_read=("virtualmachineinstances",))),
    )
    _kubectl(
        plane,
        "create",
        "-f",
        "-",
        input=json.dumps(local_webhook_configuration(VWC_NAME, demo.port)),
    )

    # the extension as an aggregated API: kube-apiserver proxies /apis/subresources.migration-guard.io
    _kubectl(plane, "apply", "-f", "-", input=json.dumps(local_apiservice(SYSTEM_NS, demo.port)))

    say("starting migration-guard webhook (+ extension) and enforcer ...")
    common = ["--kubeconfig", str(demo.kubeconfig)]
    demo.processes["webhook"] = _spawn(
        [
            str(MIGRATION_GUARD),
            "webhook",
            *common,
            "--bind",
            f"127.0.0.1:{demo.port}",
            "--namespace",
            SYSTEM_NS,
            "--webhook-config-name",
            VWC_NAME,
            "--policy-reports",
            "--migratability-interval",
            "2s",
            "--cert-hosts",
            "127.0.0.1,localhost",
            "--cert-dir",
            str(demo.workdir / "certs"),
        ],
        demo.log("webhook"),
    )
    demo.processes["enforcer"] = _spawn(
        [
            str(MIGRATION_GUARD),
            "enforcer",
            *common,
            "--bind",
            f"127.0.0.1:{demo.enforcer_port}",
            "--lease-namespace",
            SYSTEM_NS,
            "--virt-handler-urls",
            demo.handler.metrics_url,
            "--check-interval",
            "2s",
        ],
        demo.log("enforcer"),
    )

    def webhook_ready() -> bool:
        config = json.loads(
            _kubectl(plane, "get", "validatingwebhookconfiguration", VWC_NAME, "-o", "json")
        )
        bundle = config["webhooks"][0]["clientConfig"].get("caBundle")
        if not bundle:
            return False
        demo.ca_file.write_bytes(base64.b64decode(bundle))
        return requests.get(f"{demo.url}/readyz", verify=str(demo.ca_file), timeout=2).ok

    _wait(demo, "the webhook", webhook_ready)
    _wait(
        demo,
        "the enforcer",
        lambda: requests.get(f"http://127.0.0.1:{demo.enforcer_port}/readyz", timeout=2).ok,
    )
    write_try_files(demo.workdir / "try")


# name of the file -> (VM, target node or None, what happens)
TRY = {
    "cdrom-vm": ("cdrom-vm", None, "denied: CD-ROM inserted"),
    "bridge-vm": ("bridge-vm", None, "denied: bridge binding on the management network"),
    "gpu-vm": ("gpu-vm", None, "denied: PCI passthrough (GPU)"),
    "containerdisk-vm": ("containerdisk-vm", None, "denied: container disk"),
    "pinned-vm": ("pinned-vm", None, "denied: pinned to its node"),
    "stopped-vm": ("stopped-vm", None, "denied: not running"),
    "migrating-vm": ("migrating-vm", None, "denied: a migration is already running"),
    "rwo-vm": ("rwo-vm", None, "denied: KubeVirt says not live-migratable (RWO disk)"),
    "lost-network-vm": ("lost-network-vm", None, "denied: its VLAN network does not exist"),
    "big-vm": ("big-vm", None, "denied: no node has room (NoEligibleTarget)"),
    "vlan-vm": ("vlan-vm", None, "denied: no node left for a VM on the VLAN (NoEligibleTarget)"),
    "clean-vm-to-node-1": ("clean-vm", "harvester-node-1", "denied: node cordoned"),
    "clean-vm-to-node-2": ("clean-vm", "harvester-node-2", "denied: node in maintenance"),
    "vlan-vm-to-node-3": (
        "vlan-vm",
        "harvester-node-3",
        "denied: node without the 'data' cluster network",
    ),
    "clean-vm-to-node-3": ("clean-vm", "harvester-node-3", "allowed; moves to Succeeded"),
    "clean-vm-2": ("clean-vm-2", None, "allowed; goes to harvester-node-0, the one node left"),
}


def vmim(vm: str, target: str | None) -> dict:
    spec: dict = {"vmiName": vm}
    if target:
        spec["addedNodeSelector"] = {"kubernetes.io/hostname": target}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"generateName": f"{vm}-", "namespace": VM_NS},
        "spec": spec,
    }


def write_try_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (vm, target, _) in TRY.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(vmim(vm, target), sort_keys=False))
