"""Rendering the Helm chart with the real helm, and reading the rendered objects."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.harness.controlplane import ControlPlane

CHART = Path(__file__).resolve().parents[2] / "charts" / "migration-guard"


def render(plane: ControlPlane, *sets: str, namespace: str = "migration-guard") -> list[dict]:
    """`helm template mg CHART -n NAMESPACE --set ...` as a list of objects (fails the test on error)."""
    args = ["template", "mg", str(CHART), "-n", namespace]
    for item in sets:
        args += ["--set", item]
    result = plane.helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_text(plane: ControlPlane, *sets: str, namespace: str = "migration-guard") -> str:
    args = ["template", "mg", str(CHART), "-n", namespace]
    for item in sets:
        args += ["--set", item]
    result = plane.helm(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def one(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(objs: list[dict]) -> list[str]:
    return sorted(o["kind"] for o in objs)


def container(objs: list[dict], name: str) -> dict:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    by_name = {c["name"]: c for c in containers}
    assert name in by_name, f"no container {name!r} in {sorted(by_name)}"
    return by_name[name]


def env(c: dict) -> dict[str, str]:
    """Plain-value environment variables of a container (fieldRef ones as '<fieldRef:path>')."""
    out = {}
    for item in c.get("env", []):
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            out[item["name"]] = f"<fieldRef:{item['valueFrom']['fieldRef']['fieldPath']}>"
    return out


def named(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, got {len(found)}; {names(objs, kind)}"
    return found[0]


def names(objs: list[dict], kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs if o["kind"] == kind)
