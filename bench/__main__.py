"""`python -m bench [--only admission,lookup,...] [--quick]`: run, print, write bench/results.json."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from bench.results import PREFIXES, Figure, format_table, write_results

DEFAULT_OUTPUT = Path(__file__).with_name("results.json")


def machine() -> str:
    """nproc, CPU model, Python: printed with the figures (docs/performance.md quotes it)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, load average {load}"
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(PREFIXES),
        help=f"comma-separated benchmarks to run (default: all of {', '.join(PREFIXES)})",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    selected = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = selected - set(PREFIXES)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {PREFIXES}")

    from bench import inprocess

    log(f"machine: {machine()}")
    started = time.perf_counter()
    figures: list[Figure] = []
    steps = [
        ("lookup", "lookup (in-process)", inprocess.bench_lookup),
        ("enforcer", "enforcer", inprocess.bench_enforcer),
        ("memory", "memory (cache in a fresh process)", inprocess.bench_memory),
        ("admission", "repeated denials (in-process)", inprocess.bench_retry),
        (
            "admission",
            "decisions, warm and with the caches flushed (in-process)",
            inprocess.bench_decision,
        ),
        ("drain", "drain plan (in-process)", inprocess.bench_drain_plan),
    ]
    for key, title, fn in steps:
        if key in selected:
            log(f"{title} ...")
            figures += fn(args.quick)
    if selected & {"admission", "lookup", "kubectl", "memory"}:
        from bench.live import bench_live

        log("real server stack (kube-apiserver, gunicorn, TLS) ...")
        figures += bench_live(selected, args.quick, log)
    if "virtapi" in selected:
        from bench.virtapi import bench_virtapi

        log("beside KubeVirt's virt-api (kube-apiserver, virt-api, gunicorn, TLS) ...")
        figures += bench_virtapi(args.quick, log)
    if "startup" in selected:
        from bench.startup import bench_startup

        log("start-up at scale (kube-apiserver filled, then the webhook started) ...")
        figures += bench_startup(args.quick, log)
    if "retrystorm" in selected:
        from bench.retrystorm import bench_retrystorm

        log("a retry storm (KubeVirt's workload updater, virt-api, virt-controller, gunicorn) ...")
        figures += bench_retrystorm(args.quick, log)

    write_results(figures, args.output, keep_others_of=set(PREFIXES) - selected)
    print(f"machine: {machine()}")
    print(format_table(figures))
    missed = [f.name for f in figures if f.within_budget is False]
    print(
        f"{len(figures)} figures in {time.perf_counter() - started:.0f} s -> {args.output}; "
        + (f"budgets missed: {', '.join(missed)}" if missed else "all budgets met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
