"""`python -m demo` (make demo): run migration-guard on a local control plane until Ctrl-C.
`python -m demo --tour` (make demo ARGS=--tour): the same, then a scripted tour, then exit 0."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from demo import environment, tour
from extension import aggregated
from tests.harness.controlplane import ControlPlaneError


def instructions(demo: environment.Demo) -> str:
    try_dir = demo.workdir / "try"
    denied = [
        f"  kubectl create -f {try_dir / n}.yaml   # {w}"
        for n, (_, _, w) in environment.TRY.items()
        if "denied" in w
    ]
    allowed = [
        f"  kubectl create -f {try_dir / n}.yaml   # {w}"
        for n, (_, _, w) in environment.TRY.items()
        if w.startswith("allowed")
    ]
    curl = f'curl -sS --cacert {demo.ca_file} -H "Authorization: Bearer $TOKEN"'
    action = "$MG/v1/harvester/kubevirt.io.virtualmachines/default"
    return "\n".join(
        [
            "",
            "migration-guard demo is running. In another shell:",
            "",
            f"  export KUBECONFIG={demo.kubeconfig}",
            f"  export PATH={demo.plane.bin_dir}:$PATH",
            f"  export MG={demo.url}",
            f"  export TOKEN={demo.plane.token('alice')}   # alice: may look up VMs, migrate and abort in 'default'",
            "",
            "Look around:",
            f"  kubectl get nodes -o custom-columns='{tour.NODE_COLUMNS}'",
            "  kubectl get vmi,vmim -n default",
            "",
            "Denied by the webhook (each line says what to fix):",
            *denied,
            "",
            "Allowed (virt-controller renders the target pod, kube-scheduler binds it, the"
            " virt-handler stand-in carries the migration out):",
            *allowed,
            "  kubectl get vmim -n default -w",
            "",
            "Target lookup through the extension backend:",
            f'  {curl} -X POST "{action}/clean-vm?action=findMigratableNodes"',
            f'  {curl} "$MG/v1/namespaces/default/virtualmachines/cdrom-vm/migration-targets"',
            f'  {curl} -X POST -H "Content-Type: application/json" "{action}/clean-vm?action=migrate" -d \'{{"nodeName": ""}}\'',
            f'  {curl} "$MG/v1/namespaces/default/virtualmachines/clean-vm/migration"',
            "",
            "Through kube-apiserver, as the UI reaches it (the aggregated API), with the kubectl"
            " plugin:",
            f"  export PATH={environment.MIGRATION_GUARD.parent}:$PATH",
            f"  KUBECONFIG={demo.plane.kubeconfig_for('alice')} kubectl migration-guard targets cdrom-vm -n default",
            f"  KUBECONFIG={demo.plane.kubeconfig_for('alice')} kubectl migration-guard status clean-vm -n default",
            f"  kubectl get --raw {aggregated.PREFIX}/namespaces/default/virtualmachines/clean-vm/migrationtargets",
            "",
            "The UI extension's Migrate dialog and Migration tab in a browser (`make ui-harness`"
            " in the checkout first; the harness page of tests/ui, through kube-apiserver as alice):",
            f"  kubectl proxy --kubeconfig {demo.plane.kubeconfig_for('alice')} --port=8001"
            f" --www={environment.REPO / 'ui' / 'dist-harness'} --www-prefix=/harness/",
            "  then open http://127.0.0.1:8001/harness/index.html?view=dialog&ns=default&vm=clean-vm"
            " (view=tab for the Migration tab; vm=cdrom-vm shows a blocker)",
            "",
            f"The same rules offline: {environment.MIGRATION_GUARD} check --kubeconfig $KUBECONFIG --vm default/big-vm",
            f"Can a node go into maintenance: {environment.MIGRATION_GUARD} drain-plan harvester-node-0 --kubeconfig $KUBECONFIG",
            "Every VM's migratability: kubectl get policyreports -A",
            f"Logs: {demo.workdir}/webhook.log, {demo.workdir}/enforcer.log,"
            f" {demo.plane.workdir}/virt-controller.log (and the other components')",
            "",
            "Ctrl-C stops everything and removes it.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--tour", action="store_true", help="run a scripted tour, then exit")
    parser.add_argument("--workdir", default=".demo", help="where the demo keeps its files")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        demo = environment.start(Path(args.workdir), say=lambda m: print(m, flush=True))
    except (environment.DemoError, ControlPlaneError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # start() has stopped what it had started
        print("demo: interrupted while starting", file=sys.stderr)
        return 130
    code = 0
    try:
        if args.tour:
            code = tour.run(demo)
        else:
            print(instructions(demo), flush=True)
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            while not stop.wait(1.0):
                dead = demo.dead()
                if dead:
                    print(
                        f"demo: {', '.join(dead)} exited; see its log in {demo.workdir}",
                        file=sys.stderr,
                    )
                    code = 1  # keep the workdir: the message points at its logs
                    break
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping: enforcer, webhook, KubeVirt, Kubernetes, etcd ...", flush=True)
        demo.stop(remove=code == 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
