"""Prints the reliability figures (inputs tried, requests served, faults injected, decisions wrong
or lost) at the end of the run, and keeps them in pytest's cache (key reliability/figures)."""

from __future__ import annotations

from tests.reliability.support import FIGURES


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    figures = FIGURES.as_dict()
    if not figures:
        return
    terminalreporter.section("reliability figures")
    for key, value in figures.items():
        terminalreporter.write_line(f"{key}: {value}")
    if getattr(config, "cache", None) is not None:
        config.cache.set("reliability/figures", figures)
