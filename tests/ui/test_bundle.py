"""The extension bundle `make ui` builds (ui/dist-pkg/) is what Rancher and the harness page load:
a UMD script that, after Vue's global build, defines `window["migration-guard-<version>"]` with
the plugin function (default) and the components and client the harness page mounts.

Runs the bundle in jsdom with Node (ui/node_modules), not the sources: a build that drops an
export, registers the action somewhere else, or cannot render fails here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "ui"
PKG = UI / "pkg" / "migration-guard"


def _bundle() -> tuple[str, Path]:
    version = json.loads((PKG / "package.json").read_text())["version"]
    name = f"migration-guard-{version}"
    path = UI / "dist-pkg" / name / f"{name}.umd.min.js"
    assert path.is_file(), f"{path} is missing: `make ui` builds it (`make test` does first)"
    return name, path


def _report() -> dict:
    node = lambda n, ok, reasons=(): {"name": n, "eligible": ok, "reasons": list(reasons)}  # noqa: E731
    return {
        "vm": "default/cdrom-vm",
        "sourceNode": "harvester-node-0",
        "target": None,
        "allowed": False,
        "blockers": [
            {
                "code": "CDROMVolume",
                "message": "CD-ROM 'cdrom-0' has PVC 'iso' inserted: eject the CD-ROM before migrating",
                "field": "spec.domain.devices.disks[1]",
            }
        ],
        "nodes": [
            node(
                "harvester-node-1",
                False,
                [{"code": "NodeCordoned", "message": "node 'harvester-node-1' is cordoned"}],
            ),
            node("harvester-node-3", True),
        ],
        "eligibleNodes": ["harvester-node-3"],
        "timeouts": None,
    }


def test_the_built_bundle_registers_the_action_and_the_tab_and_renders() -> None:
    name, path = _bundle()
    dist_pkg = json.loads((path.parent / "package.json").read_text())
    assert dist_pkg["main"] == path.name
    assert dist_pkg["rancher"] is True
    out = subprocess.run(
        ["node", str(Path(__file__).with_name("bundle_check.js")), str(UI), str(path), name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MG_REPORT": json.dumps(_report())},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)

    assert {
        "default",
        "MigrateDialog",
        "MigrationTab",
        "MigrationGuardClient",
        "fetchTransport",
    } <= set(seen["exports"])
    assert seen["metadata"] == {"name": "migration-guard", "version": name.rsplit("-", 1)[1]}
    where = {"product": ["harvester"], "resource": ["kubevirt.io.virtualmachine"]}
    calls = {c["call"]: c for c in seen["calls"]}
    assert calls["register"] == {
        "call": "register",
        "type": "dialog",
        "id": "MigrationGuardMigrateDialog",
        "fn": "function",
    }
    assert calls["addAction"]["where"] == "table-action"
    assert calls["addAction"]["when"] == where
    assert calls["addAction"]["label"] == "Migrate (checked)"
    assert calls["addTab"]["where"] == "tab"
    # addTab's `when` gains mode: ["detail"] inside Rancher's plugin; the bundle passes its own
    assert calls["addTab"]["when"] == where
    assert calls["addTab"]["label"] == "Migration"

    # the bundle's dialog, mounted as the harness page mounts it
    assert [r["url"] for r in seen["requests"]] == [
        "/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/cdrom-vm/migrationtargets"
    ]
    assert seen["blockers"] == ["CDROMVolume"]
    assert seen["nodes"] == [
        ["mg-node-harvester-node-3", "true"],
        ["mg-node-harvester-node-1", "false"],
    ]
    assert "eject the CD-ROM before migrating" in seen["text"]
    assert "node 'harvester-node-1' is cordoned" in seen["text"]
