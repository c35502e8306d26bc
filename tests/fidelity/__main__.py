"""`make fidelity`: migration-guard against the real virt-controller and kube-scheduler.

    python -m tests.fidelity [--pairs 2000] [--nodes 8] [--vms 10] [--seed 1] [--out FILE]

Starts a KubeVirt profile of its own, runs generated clusters (one seed each) until at least
`--pairs` (VM, node) pairs are compared, prints the figures and every disagreement, and writes
them as JSON. Exit 0 when there is none beyond the deliberate ones, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.fidelity.runner import run_rounds, summary
from tests.harness.controlplane import running_controlplane
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.virt_handler import Scenario, VirtHandler


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fidelity")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--vms", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench/fidelity.json")
    args = parser.parse_args()
    started = time.monotonic()
    pairs = []
    with running_controlplane(kubevirt_profile=True) as plane:
        handler = VirtHandler(plane)
        handler.default_scenario = Scenario.overrun()
        handler.start()
        try:
            kv = KubeVirtCluster(plane, handler, ())
            seed = args.seed
            while len(pairs) < args.pairs:
                pairs += run_rounds(kv, [seed], args.nodes, args.vms)
                so_far = summary(pairs)
                print(
                    f"seed {seed}: {so_far['pairs']} pairs so far, {so_far['agree']} agree, "
                    f"{so_far['disagree']} disagree, {so_far['undecided']} undecided",
                    file=sys.stderr,
                )
                seed += 1
        finally:
            handler.stop()
    figures = summary(pairs)
    figures["seconds"] = round(time.monotonic() - started)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    for d in figures["disagreements"]:
        print(f"DISAGREE seed {d['seed']} {d['vm']} -> {d['node']}: migration-guard "
              f"{'allows' if d['guard_allowed'] else 'refuses ' + ','.join(d['guard_codes'])}, "
              f"real: {d['real_message']}")  # fmt: skip
    keys = ("pairs", "clusters", "vms", "bound", "agree", "deliberate", "disagree", "undecided")
    print(" ".join(f"{k}={figures[k]}" for k in keys) + f" seconds={figures['seconds']}")
    print(
        "pairs refused per reason: " + ", ".join(f"{k} {v}" for k, v in figures["reasons"].items())
    )
    return 0 if not figures["disagreements"] else 1


if __name__ == "__main__":
    sys.exit(main())
