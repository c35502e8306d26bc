"""Figures of a benchmark run: the results.json format, budget checks, and the printed table.

Every figure is `{"name", "value", "unit", "budget", "better"}`; `budget` is None when a figure
has no budget of its own (baselines, per-node costs). Ratios are printed against a baseline
figure measured in the same run, never against numbers written down earlier.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

PREFIXES = (
    "admission",
    "lookup",
    "enforcer",
    "memory",
    "kubectl",
    "drain",
    "virtapi",
    "startup",
    "retrystorm",
)
BETTER = ("lower", "higher")


@dataclass(frozen=True)
class Figure:
    """One measured number; `baseline` names the figure it is compared to (printed only)."""

    name: str
    value: float
    unit: str
    budget: float | None = None
    better: str = "lower"
    baseline: str | None = None

    def __post_init__(self) -> None:
        if not self.name.startswith(tuple(p + "." for p in PREFIXES)):
            raise ValueError(f"figure name {self.name!r} must start with one of {PREFIXES}")
        if self.better not in BETTER:
            raise ValueError(f"figure {self.name}: better must be 'lower' or 'higher'")
        if not isinstance(self.value, int | float) or not math.isfinite(self.value):
            raise ValueError(f"figure {self.name}: value must be a finite number")

    @property
    def within_budget(self) -> bool | None:
        if self.budget is None:
            return None
        return self.value <= self.budget if self.better == "lower" else self.value >= self.budget

    def to_json(self) -> dict:
        out = asdict(self)
        del out["baseline"]
        out["value"] = round(float(self.value), 6)
        return out


def write_results(
    figures: Iterable[Figure], path: Path, keep_others_of: Iterable[str] = ()
) -> list[dict]:
    """Write the figures as a JSON list (the issue's format) and return what was written.

    `keep_others_of`: the benchmarks not run this time (prefixes); their figures already in
    `path` are kept, first, so `--only` runs add to the file instead of emptying it.
    """
    data = [f.to_json() for f in figures]
    keep = tuple(p + "." for p in keep_others_of)
    if keep and path.exists():
        try:
            old = json.loads(path.read_text())
            check_results(old)
        except ValueError:
            old = []
        new = {entry["name"] for entry in data}
        data = [e for e in old if e["name"].startswith(keep) and e["name"] not in new] + data
    check_results(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def check_results(data: object) -> None:
    """ValueError naming the first entry that does not have the results.json shape."""
    if not isinstance(data, list):
        raise ValueError("results must be a JSON list")
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) != {
            "name",
            "value",
            "unit",
            "budget",
            "better",
        }:
            raise ValueError(f"results[{i}] must have exactly name, value, unit, budget, better")
        if not isinstance(entry["name"], str) or not entry["name"].startswith(PREFIXES):
            raise ValueError(f"results[{i}].name must start with one of {PREFIXES}")
        if not isinstance(entry["value"], int | float) or isinstance(entry["value"], bool):
            raise ValueError(f"results[{i}].value must be a number")
        if not isinstance(entry["unit"], str) or not entry["unit"]:
            raise ValueError(f"results[{i}].unit must be a non-empty string")
        if entry["budget"] is not None and not isinstance(entry["budget"], int | float):
            raise ValueError(f"results[{i}].budget must be a number or null")
        if entry["better"] not in BETTER:
            raise ValueError(f"results[{i}].better must be 'lower' or 'higher'")


def _fmt(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 100_000:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_table(figures: Sequence[Figure]) -> str:
    """One line per figure: value, unit, budget and verdict, ratio to its baseline."""
    by_name = {f.name: f for f in figures}
    width = max((len(f.name) for f in figures), default=10)
    lines = []
    for f in figures:
        budget = ""
        if f.budget is not None:
            sign = "<=" if f.better == "lower" else ">="
            budget = f"budget {sign} {_fmt(f.budget)}  {'OK' if f.within_budget else 'MISSED'}"
        ratio = ""
        base = by_name.get(f.baseline or "")
        if base is not None and base.value:
            ratio = f"{f.value / base.value:.2f}x {base.name}"
        lines.append(f"{f.name:<{width}}  {_fmt(f.value):>12} {f.unit:<8} {budget:<28} {ratio}")
    return "\n".join(lines)
