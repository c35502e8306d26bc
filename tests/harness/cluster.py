"""`make cluster-up` / `make cluster-down`: a control plane that outlives the command.

`up` starts it in .cluster/, writes the admin kubeconfig to .cluster/kubeconfig and prints how to use
it; `down` stops the processes recorded in .cluster/state.json and removes the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time

from tests.harness.controlplane import REPO, start_controlplane

CLUSTER_DIR = REPO / ".cluster"
STATE = CLUSTER_DIR / "state.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def up() -> int:
    if STATE.exists():
        pids = json.loads(STATE.read_text())["pids"]
        if all(_alive(pid) for pid in pids):
            print(f"already running; kubeconfig: {CLUSTER_DIR / 'kubeconfig'}")
            return 0
        down()
    plane = start_controlplane(CLUSTER_DIR / "run", die_with_parent=False)
    shutil.copy(plane.kubeconfig, CLUSTER_DIR / "kubeconfig")
    STATE.write_text(
        json.dumps(
            {
                "pids": [p.pid for p in plane.processes],
                "url": plane.url,
                "binDir": str(plane.bin_dir),
                "tokens": plane.tokens,
            },
            indent=2,
        )
    )
    print(f"control plane ready at {plane.url}")
    print(f"export KUBECONFIG={CLUSTER_DIR / 'kubeconfig'} PATH={plane.bin_dir}:$PATH")
    print("kubectl get crd   # KubeVirt and NAD CRDs are installed")
    print(f"tokens for alice and bob are in {STATE}; `make cluster-down` stops it")
    return 0


def down() -> int:
    if not STATE.exists():
        print("no control plane running")
        shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
        return 0
    pids = json.loads(STATE.read_text())["pids"]
    for pid in reversed(pids):
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
    print("control plane stopped")
    return 0


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: python -m tests.harness.cluster up|down", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
