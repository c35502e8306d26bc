"""The harness itself: a real API server with KubeVirt's CRDs, RBAC and users."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.harness.controlplane import REPO, controlplane_bin_dir, start_controlplane

VMIM = """
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata:
  name: migrate-vm1
  namespace: {ns}
spec:
  vmiName: vm1
"""


def test_api_server_is_ready(controlplane):
    result = controlplane.kubectl("get", "--raw", "/readyz")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_kubevirt_and_nad_crds_are_served_with_kubevirt_names(controlplane):
    result = controlplane.kubectl("api-resources", "--api-group=kubevirt.io", "-o", "wide")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "vmim,vmims" in lines["virtualmachineinstancemigrations"]
    assert "vmi,vmis" in lines["virtualmachineinstances"]
    assert "vm,vms" in lines["virtualmachines"]
    result = controlplane.kubectl("get", "net-attach-def", "-A")
    assert result.returncode == 0, result.stderr


def test_vmim_is_created_listed_with_printer_columns_and_deleted(controlplane, namespace):
    created = controlplane.kubectl("apply", "-f", "-", input=VMIM.format(ns=namespace))
    assert created.returncode == 0, created.stderr
    status = json.dumps({"status": {"phase": "Scheduling"}})
    patched = controlplane.kubectl(
        "patch",
        "vmim",
        "migrate-vm1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    )
    assert patched.returncode == 0, patched.stderr
    listed = controlplane.kubectl("get", "vmim", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "VMI"]  # KubeVirt's printer columns
    assert row.split()[:3] == ["migrate-vm1", "Scheduling", "vm1"]
    deleted = controlplane.kubectl("delete", "vmim", "migrate-vm1", "-n", namespace)
    assert deleted.returncode == 0, deleted.stderr
    gone = controlplane.kubectl("get", "vmim", "migrate-vm1", "-n", namespace)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_rbac_refuses_bob_what_he_was_not_granted(controlplane, namespace):
    denied = controlplane.kubectl("get", "vmim", "-n", namespace, user="bob")
    assert denied.returncode == 1
    assert 'User "bob" cannot list resource "virtualmachineinstancemigrations"' in denied.stderr
    role = controlplane.kubectl(
        "create",
        "role",
        "vmim-reader",
        "-n",
        namespace,
        "--verb=list",
        "--resource=virtualmachineinstancemigrations.kubevirt.io",
    )
    assert role.returncode == 0, role.stderr
    binding = controlplane.kubectl(
        "create",
        "rolebinding",
        "alice-reads",
        "-n",
        namespace,
        "--role=vmim-reader",
        "--user=alice",
    )
    assert binding.returncode == 0, binding.stderr
    assert controlplane.kubectl("get", "vmim", "-n", namespace, user="alice").returncode == 0
    assert controlplane.kubectl("get", "vmim", "-n", namespace, user="bob").returncode == 1


def test_tokens_are_checked_by_tokenreview(controlplane):
    from kubernetes import client

    api = client.AuthenticationV1Api(controlplane.api_client())
    review = api.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=controlplane.token("alice")))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == "alice"
    bogus = api.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token="not-a-token"))
    )
    assert not bogus.status.authenticated


def test_second_start_reuses_cached_binaries(tmp_path):
    """Nothing is rebuilt once cached; the time to ready is printed (bench/ measures speed)."""
    from tests.harness.kubevirt import kubevirt_root

    cached = [*controlplane_bin_dir().iterdir(), *(kubevirt_root() / "bin").iterdir()]
    built = {path: path.stat().st_mtime_ns for path in cached}
    started = time.monotonic()
    plane = start_controlplane(tmp_path / "plane")
    try:
        elapsed = time.monotonic() - started
        assert (
            plane.kubectl("get", "crd", "virtualmachineinstancemigrations.kubevirt.io").returncode
            == 0
        )
    finally:
        plane.stop()
    assert all(p.poll() is not None for p in plane.processes) or not plane.processes
    assert {path: path.stat().st_mtime_ns for path in cached} == built
    print(f"control plane ready (with KubeVirt's CRDs) in {elapsed:.1f}s")


def test_interrupted_run_leaves_no_orphans(tmp_path):
    """A harness user killed with SIGKILL takes etcd and kube-apiserver with it."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from tests.harness.controlplane import start_controlplane\n"
        f"p = start_controlplane(Path({str(tmp_path / 'p')!r}))\n"
        "print(' '.join(str(x.pid) for x in p.processes), flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    pids = [int(x) for x in child.stdout.readline().split()]
    assert len(pids) == 2
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
