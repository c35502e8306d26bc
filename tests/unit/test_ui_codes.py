"""The UI extension knows every code the rule engine gives: a title for each (ui/.../lib/report.ts),
and a component test for every node reason and every blocker (ui/.../__tests__/fixtures.ts).

A new rule in webhook/rules that the UI does not know fails here, not in front of a user."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "webhook" / "rules"
PKG = ROOT / "ui" / "pkg" / "migration-guard"

_PROBLEM = re.compile(r'(?:Problem|Reason)\(\s*"([A-Z][A-Za-z]+)"')
# causes the extension writes itself (extension/api.py: an object it cannot evaluate)
_CAUSE = re.compile(r'"code": "([A-Z][A-Za-z]+)"')
# node verdicts: Harvester's node rules and the kube-scheduler filters the target pod meets
NODE_MODULES = ["node_eligibility.py", "harvester.py", "filters/*.py"]
BLOCKER_MODULES = ["vm_blockers.py"]
# what only a drain plan says (docs/drain.md), never a migration report
DRAIN_ONLY = {"ShutDownOnDrain", "NoRoomAfterPlacements"}


def _codes(patterns: list[str]) -> set[str]:
    out: set[str] = set()
    for pattern in patterns:
        for path in sorted(RULES.glob(pattern)):
            out |= set(_PROBLEM.findall(path.read_text()))
    return out


def _ts_keys(text: str, const: str) -> set[str]:
    """Keys of `export const NAME: ... = { Key: ..., ... };` (one entry a line)."""
    body = re.search(rf"export const {const}\b[^=]*=\s*\{{(.*?)\n\}};", text, re.S)
    assert body, f"{const} not found"
    return set(re.findall(r"^\s+([A-Z][A-Za-z]+):", body.group(1), re.M))


def test_the_rule_engine_codes_are_found() -> None:
    # the pattern still matches how rules are written: a sample of known codes of each kind
    assert {"SourceNode", "NodeCordoned", "InsufficientResources", "TaintNotTolerated"} <= _codes(
        NODE_MODULES
    )
    assert {"CDROMVolume", "VMINotRunning", "NotLiveMigratable"} <= _codes(BLOCKER_MODULES)


def test_every_code_has_a_title_in_the_ui() -> None:
    titles = _ts_keys((PKG / "lib" / "report.ts").read_text(), "CODE_TITLES")
    produced = _codes(["*.py", "filters/*.py"]) - DRAIN_ONLY
    produced |= set(_CAUSE.findall((ROOT / "extension" / "api.py").read_text()))
    assert "InvalidObject" in produced
    assert produced - titles == set(), "codes the UI shows without a title"
    assert titles - produced == set(), "titles for codes the rule engine no longer gives"


def test_the_component_tests_cover_every_node_reason_and_blocker() -> None:
    fixtures = (PKG / "__tests__" / "fixtures.ts").read_text()
    assert _ts_keys(fixtures, "NODE_REASONS") == _codes(NODE_MODULES)
    assert _ts_keys(fixtures, "BLOCKERS") == _codes(BLOCKER_MODULES)
