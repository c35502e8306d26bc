"""`python -m bench.profile lookup|enforcer|fill [--nodes N] [--pages DIR]`: pyinstrument profile.

How the fixes listed in docs/performance.md were found: the same fixtures as the benchmarks, run
under pyinstrument (the `bench` extra), printed as a call tree. For the running server use
py-spy instead: `py-spy top --pid <gunicorn worker pid>` while `make bench` drives it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import inprocess
from bench import objects as o


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["lookup", "enforcer", "fill"])
    parser.add_argument("--nodes", type=int, default=1000, help="cluster size for lookup")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--pages",
        type=Path,
        help="fill: the list pages saved by the start-up benchmark (MG_BENCH_STARTUP_PAGES)",
    )
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    if args.what == "fill":
        return _fill(args.pages, Profiler)

    if args.what == "lookup":
        from webhook.rules.engine import evaluate_migration

        state = inprocess.lookup_state(args.nodes)

        def run() -> object:
            return evaluate_migration(state, o.NAMESPACE, "vm-0")
    else:
        from webhook.enforcer.runner import Enforcer
        from webhook.enforcer.settings import EnforcerSettings

        count = inprocess.ENFORCER_MIGRATIONS
        state = inprocess.enforcer_state(count, datetime.now(UTC))
        values = {(o.NAMESPACE, f"vm-{i}"): 4 << 30 for i in range(count)}
        progress = inprocess.StaticProgress(values)
        enforcer = Enforcer(EnforcerSettings(), None, state, lambda: True, progress, None)  # type: ignore[arg-type]
        run = enforcer.check_once
    run()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(args.runs):
        run()
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False))
    return 0


def _fill(folder: Path | None, profiler_class) -> int:
    """The informers' list path over saved pages: the time of each step, then its profile."""
    from bench.startup import fill_steps, load_pages

    if folder is None:
        raise SystemExit(
            "fill needs --pages (run the start-up benchmark with MG_BENCH_STARTUP_PAGES)"
        )
    pages = load_pages(folder)
    steps, state = fill_steps(pages)
    print("steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()))
    del state
    profiler = profiler_class(interval=0.001)
    profiler.start()
    fill_steps(pages)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
