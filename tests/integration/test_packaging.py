"""The Dockerfile, without a Docker engine: its own RUN steps build the wheels and the virtualenv
here, and each entry point of the result (webhook, extension, enforcer) serves its health endpoint
against the test control plane.

The steps are read from the Dockerfile (not retyped), with the image paths (/src, /wheels,
/opt/migration-guard) mapped into a temporary folder; so a change to the Dockerfile's build or
install lines is what this test runs.
"""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.processes import stop_process

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("gcc", "build-essential", "make", "git", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, line
            base = re.sub(r"\$\{(\w+)\}", lambda v: args[v[1]], m[1])
            stages.append(Stage(base, m[2]))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def _strip_mounts(command: str) -> str:
    return re.sub(r"--mount=\S+\s*", "", command).strip()


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_dockerfile_shape(stages: list[Stage]):
    builder, final = stages
    assert builder.name == "builder" and final.name is None
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    assert any("pip wheel" in run for run in builder.args("RUN"))
    final_runs = " ".join(final.args("RUN"))
    assert "pip wheel" not in final_runs and "COPY" not in [k for k, _ in final.instructions]
    assert not any(re.search(rf"\b{re.escape(tool)}\b", final_runs) for tool in BUILD_TOOLS)
    assert "--no-index" in final_runs and "from=builder" in final_runs
    (user,) = final.args("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root USER lets runAsNonRoot verify it"
    assert final.args("ENTRYPOINT") == ['["migration-guard"]']
    assert final.args("CMD") == ['["webhook"]']


def test_dockerignore_keeps_the_context_small():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny everything, then allow what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "webhook", "extension"}
    # and the builder copies exactly those
    builder = parse_dockerfile(DOCKERFILE.read_text())[1][0]
    copied = {p.rstrip("/").lstrip("./") for c in builder.args("COPY") for p in c.split()[:-1]}
    assert copied == allowed


@pytest.fixture(scope="module")
def installed(stages: list[Stage], tmp_path_factory) -> Path:
    """Run the Dockerfile's wheel build and virtualenv install here; the venv's bin folder."""
    root = tmp_path_factory.mktemp("image")
    src, wheels, venv = root / "src", root / "wheels", root / "opt-migration-guard"
    src.mkdir()
    builder, final = stages
    for copy in builder.args("COPY"):
        *sources, _dest = copy.split()
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(
                    path, src / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(path, src / source)

    def run(command: str, cwd: Path) -> None:
        command = _strip_mounts(command)
        command = command.replace("/opt/migration-guard", str(venv)).replace("/wheels", str(wheels))
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )

    for command in builder.args("RUN"):
        run(command, src)
    assert any(p.name.startswith("migration_guard-0.1.0-") for p in wheels.glob("*.whl"))
    installs = [c for c in final.args("RUN") if "venv" in c]
    assert len(installs) == 1, "one RUN creates the virtualenv from the wheels"
    run(installs[0], root)
    bin_dir = venv / "bin"
    assert (bin_dir / "migration-guard").exists()
    assert not (bin_dir / "pip").exists(), "the final image carries no pip"
    return bin_dir


def test_installed_from_the_wheel_not_the_checkout(installed: Path):
    code = "import webhook, extension; print(webhook.__file__); print(extension.__file__)"
    out = subprocess.run(
        [str(installed / "python"), "-c", code], capture_output=True, text=True, cwd="/", check=True
    ).stdout
    assert all(str(installed.parent) in line for line in out.splitlines()), out
    assert str(REPO) not in out


@contextlib.contextmanager
def serving(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd="/")
    try:
        yield proc
    finally:
        stop_process(proc, timeout=15)


def wait_healthy(proc: subprocess.Popen, log: Path, get) -> requests.Response:
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
        try:
            response = get()
            if response.status_code == 200:
                return response
            last = response.text
        except (requests.RequestException, OSError) as err:
            last = str(err)
        time.sleep(0.3)
    raise AssertionError(f"not healthy in 60s ({last}):\n{log.read_text()}")


def _secret_ca(plane: ControlPlane, namespace: str, name: str) -> bytes | None:
    result = plane.kubectl(
        "get", "secret", name, "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}"
    )
    return base64.b64decode(result.stdout) if result.returncode == 0 and result.stdout else None


@pytest.mark.parametrize("command", ["webhook", "extension"])
def test_https_entry_points_serve_health(
    installed: Path, controlplane: ControlPlane, namespace: str, tmp_path: Path, command: str
):
    port = free_port()
    args = [
        str(installed / "migration-guard"), command,
        "--bind", f"127.0.0.1:{port}", "--kubeconfig", str(controlplane.kubeconfig),
        "--namespace", namespace, "--webhook-config-name", "",
        "--cert-hosts", "127.0.0.1", "--cert-dir", str(tmp_path / "certs"),
    ]  # fmt: skip
    secret = (
        "migration-guard-webhook-tls" if command == "webhook" else "migration-guard-extension-tls"
    )
    log = tmp_path / f"{command}.log"
    with serving(args, log) as proc:
        ca = tmp_path / "ca.crt"

        def get() -> requests.Response:
            data = _secret_ca(controlplane, namespace, secret)
            if not data:
                raise OSError(f"no Secret {secret} yet")
            ca.write_bytes(data)
            return requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(ca), timeout=3)

        wait_healthy(proc, log, get)
        ready = wait_healthy(
            proc,
            log,
            lambda: requests.get(f"https://127.0.0.1:{port}/readyz", verify=str(ca), timeout=3),
        )
        assert ready.status_code == 200
        # gunicorn serves it: the worker announced itself in the log
        assert "Booting worker with pid" in log.read_text()


def test_enforcer_entry_point_serves_health(
    installed: Path, controlplane: ControlPlane, namespace: str, tmp_path: Path
):
    port = free_port()
    args = [
        str(installed / "migration-guard"), "enforcer",
        "--bind", f"127.0.0.1:{port}", "--kubeconfig", str(controlplane.kubeconfig),
        "--lease-namespace", namespace, "--prometheus-url", "", "--check-interval", "1s",
    ]  # fmt: skip
    log = tmp_path / "enforcer.log"
    with serving(args, log) as proc:
        health = wait_healthy(
            proc, log, lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
        )
        assert health.json()["alive"] is True
        ready = wait_healthy(
            proc, log, lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
        )
        assert ready.json()["ready"] is True
