"""The UI extension's Helm chart (charts/migration-guard-ui) with the real helm: lint, the UIPlugin
Rancher reads, the bundle it packages and the server that serves it in the layout Rancher
fetches (files.txt, then each file), and every object accepted by the test kube-apiserver with
a UIPlugin CRD installed (strict field validation).

The chart is staged with the bundle `make ui` built (ui/scripts/stage-chart.sh, as `make
ui-chart` does) in a temporary copy, so the checkout's chart folder is left alone."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.builds import built
from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.processes import stop_process

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "migration-guard-ui"
PKG = REPO / "ui" / "pkg" / "migration-guard"
CRD = Path(__file__).with_name("uiplugin-crd.yaml")
NS = "cattle-ui-plugin-system"

PKG_JSON = json.loads((PKG / "package.json").read_text())
VERSION = PKG_JSON["version"]
ID = f"{PKG_JSON['name']}-{VERSION}"
BUNDLE = REPO / "ui" / "dist-pkg" / ID / f"{ID}.umd.min.js"


class HelmError(Exception):
    pass


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> list[str]:
    home = tmp_path_factory.mktemp("helm-home")
    return [str(built("build-controlplane.sh", HelmError) / "helm"), home]


def run_helm(helm, *args: str) -> subprocess.CompletedProcess:
    binary, home = helm
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """A copy of the chart with the built bundle in files/ (what `make ui-chart` packages)."""
    assert BUNDLE.is_file(), f"{BUNDLE} is missing: `make ui` builds it (`make test` does first)"
    chart = tmp_path_factory.mktemp("chart") / "migration-guard-ui"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("plugin"))
    result = subprocess.run(
        ["bash", str(REPO / "ui" / "scripts" / "stage-chart.sh"), str(chart)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return chart


def render(helm, chart: Path, *sets: str) -> list[dict]:
    args = ["template", "mgui", str(chart), "-n", NS]
    for item in sets:
        args += ["--set", item]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objs]
    return found[0]


def test_lint_strict(helm, staged: Path):
    result = run_helm(helm, "lint", "--strict", str(staged))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_annotations_are_the_extensions(helm):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    annotations = chart["annotations"]
    # what Rancher's Extensions page needs to list it as an extension chart
    assert annotations["catalog.cattle.io/ui-component"] == "plugins"
    assert annotations["catalog.cattle.io/namespace"] == NS
    assert annotations["catalog.cattle.io/scope"] == "management"
    # the supported versions: the package's own, in Chart.yaml and in the UIPlugin's metadata
    declared = PKG_JSON["rancher"]["annotations"]
    for key in (
        "catalog.cattle.io/kube-version",
        "catalog.cattle.io/rancher-version",
        "catalog.cattle.io/ui-extensions-version",
    ):
        assert annotations[key] == declared[key], key
        assert values["plugin"]["metadata"][key] == declared[key], key
    assert chart["appVersion"] == VERSION
    assert values["plugin"]["name"] == PKG_JSON["name"]


def test_defaults_render_the_uiplugin_and_the_bundle_server(helm, staged: Path):
    objs = render(helm, staged)
    assert sorted(o["kind"] for o in objs) == ["ConfigMap", "Deployment", "Service", "UIPlugin"]
    plugin = one(objs, "UIPlugin")
    assert plugin["apiVersion"] == "catalog.cattle.io/v1"
    assert plugin["metadata"]["namespace"] == NS
    spec = plugin["spec"]["plugin"]
    # Rancher loads <endpoint>/plugin/<name>-<version>.umd.min.js and calls window[<name>-<version>]
    assert spec["name"] == "migration-guard"
    assert spec["version"] == VERSION
    assert spec["endpoint"] == f"http://mgui-migration-guard-ui.{NS}.svc:8080/plugin/{ID}"
    assert spec["noCache"] is False
    assert spec["noAuth"] is False
    assert spec["metadata"]["catalog.cattle.io/rancher-version"] == ">= 2.11.0-0"

    files = one(objs, "ConfigMap")["binaryData"]
    assert base64.b64decode(files[f"plugin__{ID}.umd.min.js"]) == BUNDLE.read_bytes()
    assert base64.b64decode(files["files.txt"]).decode().split() == [
        f"plugin/{ID}.umd.min.js",
        "plugin/package.json",
    ]
    served = json.loads(base64.b64decode(files["plugin__package.json"]))
    assert served["main"] == f"{ID}.umd.min.js"

    deploy = one(objs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"ghcr.io/migration-guard/migration-guard:{VERSION}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == f"/plugin/{ID}/files.txt"
    service = one(objs, "Service")
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_a_new_bundle_rolls_the_server(helm, staged: Path, tmp_path: Path):
    before = one(render(helm, staged), "Deployment")["spec"]["template"]["metadata"]
    other = tmp_path / "migration-guard-ui"
    shutil.copytree(staged, other)
    bundle = other / "files" / "plugin" / ID / "plugin" / f"{ID}.umd.min.js"
    bundle.write_text(bundle.read_text() + "\n// changed\n")
    after = one(render(helm, other), "Deployment")["spec"]["template"]["metadata"]
    assert before["annotations"]["checksum/files"] != after["annotations"]["checksum/files"]


def test_the_server_serves_the_layout_rancher_fetches(helm, staged: Path, tmp_path: Path):
    """The Deployment's own command over the ConfigMap as its volume lays it out: files.txt at
    the endpoint, then every file it lists, byte for byte."""
    objs = render(helm, staged)
    deploy = one(objs, "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    volume = deploy["spec"]["template"]["spec"]["volumes"][0]["configMap"]
    data = one(objs, "ConfigMap")["binaryData"]
    mount = tmp_path / container["volumeMounts"][0]["mountPath"].lstrip("/")
    for item in volume["items"]:
        target = mount / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data[item["key"]]))
    command = container["command"]
    assert command[:3] == ["python3", "-m", "http.server"]
    port = free_port()
    directory = tmp_path / command[command.index("--directory") + 1].lstrip("/")
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(
        [*server, "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = one(objs, "UIPlugin")["spec"]["plugin"]["endpoint"]
        path = endpoint.split(".svc:8080", 1)[1]
        base = f"http://127.0.0.1:{port}{path}"
        deadline = time.monotonic() + 10
        while True:
            try:
                listing = requests.get(f"{base}/files.txt", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the file server did not start"
                time.sleep(0.1)
        assert listing.status_code == 200
        for entry in listing.text.split():
            got = requests.get(f"{base}/{entry}", timeout=5)
            assert got.status_code == 200, entry
        main = requests.get(f"{base}/plugin/{ID}.umd.min.js", timeout=5)
        assert main.content == BUNDLE.read_bytes()
    finally:
        stop_process(proc)


def test_an_endpoint_of_ones_own_without_the_server(helm, staged: Path):
    objs = render(
        helm,
        staged,
        "server.enabled=false",
        "plugin.endpoint=https://charts.example.org/extensions/migration-guard/0.1.0/",
        "plugin.noCache=true",
    )
    assert [o["kind"] for o in objs] == ["UIPlugin"]
    spec = objs[0]["spec"]["plugin"]
    assert spec["endpoint"] == "https://charts.example.org/extensions/migration-guard/0.1.0"
    assert spec["noCache"] is True


def test_no_endpoint_and_no_server_fails_naming_the_value(helm, staged: Path):
    result = run_helm(helm, "template", "mgui", str(staged), "--set", "server.enabled=false")
    assert result.returncode != 0
    assert "plugin.endpoint is empty and server.enabled=false" in result.stderr


def test_the_chart_without_its_bundle_fails_saying_how_to_package_it(helm, tmp_path: Path):
    bare = tmp_path / "migration-guard-ui"
    shutil.copytree(CHART, bare, ignore=shutil.ignore_patterns("plugin"))
    result = run_helm(helm, "template", "mgui", str(bare))
    assert result.returncode != 0
    assert f"this chart holds no bundle for {ID}" in result.stderr
    assert "make ui-chart" in result.stderr
    # with an endpoint elsewhere it needs none
    assert (
        run_helm(
            helm,
            "template",
            "mgui",
            str(bare),
            "--set",
            "server.enabled=false",
            "--set",
            "plugin.endpoint=https://example.org/x",
        ).returncode
        == 0
    )


@pytest.mark.controlplane
def test_rendered_objects_accepted_by_the_api_server(
    helm, staged: Path, controlplane: ControlPlane
):
    controlplane.apply_yaml(CRD.read_text())
    deadline = time.monotonic() + 30
    while True:
        got = controlplane.kubectl("get", "crd", "uiplugins.catalog.cattle.io", "-o", "json")
        conditions = json.loads(got.stdout)["status"].get("conditions", []) if got.stdout else []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            break
        assert time.monotonic() < deadline, got.stderr
        time.sleep(0.2)
    controlplane.kubectl("create", "namespace", NS)
    result = run_helm(helm, "template", "mgui", str(staged), "-n", NS)
    assert result.returncode == 0, result.stderr
    applied = controlplane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=result.stdout
    )
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.strip().splitlines()
    assert sorted(lines) == sorted(
        [
            "configmap/mgui-migration-guard-ui-files created (server dry run)",
            "service/mgui-migration-guard-ui created (server dry run)",
            "deployment.apps/mgui-migration-guard-ui created (server dry run)",
            "uiplugin.catalog.cattle.io/mgui-migration-guard-ui created (server dry run)",
        ]
    )
    # a misspelt field is refused: strict validation does look at the UIPlugin's fields
    wrong = result.stdout.replace("noCache:", "noCached:")
    refused = controlplane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=wrong
    )
    assert refused.returncode != 0
    assert "noCached" in refused.stderr
