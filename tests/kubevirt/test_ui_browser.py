"""The UI extension in a real browser on the real stack: Debian's Chromium, headless (driven by
Playwright), loads the built bundle's components in the harness page (tests/ui/harness), which
kubectl proxy serves beside the API as alice; so every call the components make goes through
the real kube-apiserver's aggregation layer (RBAC, front proxy) to the real migration-guard
server, whose answers come from the real KubeVirt (virt-controller runs the migrations,
kube-scheduler places their pods, the virt-handler stand-in carries them out and publishes the
progress a real Prometheus scrapes).

It lists a VM's nodes with their real reasons and a blocked VM's blocker, migrates a VM from
the dialog and watches the Migration tab's progress bar until Succeeded, then starts another
and aborts it from the tab. Screenshots go to build/ui-browser/ (MG_UI_ARTIFACTS elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from extension import aggregated
from tests.harness.kubevirt_cluster import KubeVirtCluster
from tests.harness.processes import stop_process
from tests.harness.prometheus import Prometheus
from tests.harness.rbac import vm_migrator_rbac
from tests.harness.registration import local_apiservice
from tests.harness.virt_handler import Scenario
from tests.harness.vms import container_disk, harvester_vm
from tests.webhook_process import WebhookProcess, running_webhook
from webhook.cluster.kubeapi import kubevirt_path

pytestmark = pytest.mark.kubevirt

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "ui"
ARTIFACTS = Path(os.environ.get("MG_UI_ARTIFACTS", REPO / "build" / "ui-browser"))
POOL = "ui-test.migration-guard.io/pool"  # the nodes the test's VMs may run on


def _bundle() -> Path:
    pkg = json.loads((UI / "pkg" / "migration-guard" / "package.json").read_text())
    name = f"{pkg['name']}-{pkg['version']}"
    path = UI / "dist-pkg" / name / f"{name}.umd.min.js"
    assert path.is_file(), f"{path} is missing: `make ui` builds it (`make test` does first)"
    return path


@pytest.fixture(scope="module")
def backend(kubevirt_cluster: KubeVirtCluster, prometheus: Prometheus) -> Iterator[WebhookProcess]:
    """migration-guard's server as the cluster's aggregated API, reading progress from Prometheus."""
    plane = kubevirt_cluster.plane
    args = (
        "--apiservice-name",
        aggregated.APISERVICE_NAME,
        # the server writes the APIService's caBundle when it next checks its certificate
        "--cert-check-interval",
        "1s",
        "--prometheus-url",
        prometheus.url,
    )
    with running_webhook(plane, *args) as hook:
        kubevirt_cluster.kubectl_ok(
            "apply", "-f", "-", input=json.dumps(local_apiservice(hook.secret_namespace, hook.port))
        )
        try:
            kubevirt_cluster.wait_for(
                "kube-apiserver to proxy the aggregated API",
                lambda: plane.kubectl("get", "--raw", aggregated.PREFIX).returncode == 0,
                60,
            )
            yield hook
        finally:
            plane.kubectl("delete", "apiservice", aggregated.APISERVICE_NAME)


@pytest.fixture(scope="module")
def harness_url(kubevirt_cluster: KubeVirtCluster, backend, tmp_path_factory) -> Iterator[str]:
    """kubectl proxy as alice on loopback: the harness page at /harness/, the API beside it."""
    _bundle()
    www = tmp_path_factory.mktemp("www")
    subprocess.run(["bash", str(UI / "scripts" / "assemble-harness.sh"), str(www)], check=True)
    plane = kubevirt_cluster.plane
    proc = subprocess.Popen(
        [
            str(plane.bin_dir / "kubectl"),
            "proxy",
            "--address=127.0.0.1",
            "--port=0",
            f"--www={www}",
            "--www-prefix=/harness/",
            "--kubeconfig",
            str(plane.kubeconfig_for("alice")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        assert "Starting to serve on 127.0.0.1:" in line, line
        yield f"http://{line.strip().rsplit(' ', 1)[1]}/harness/index.html"
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, (
        "Debian's chromium is missing: make test installs it (hack/install-debian-tool.sh)"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        try:
            yield page
        finally:
            browser.close()


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def by_testid(page: Page, name: str):
    return page.locator(f'[data-testid="{name}"]')


def rows(page: Page) -> dict[str, tuple[bool, list[str]]]:
    """Every node row of the dialog: name -> (eligible, reason codes), in the page's order."""
    out = {}
    for row in page.locator('[data-testid^="mg-node-"]').all():
        name = row.get_attribute("data-testid").removeprefix("mg-node-")
        codes = [
            r.get_attribute("data-code") for r in row.locator('[data-testid="mg-reason"]').all()
        ]
        out[name] = (row.get_attribute("data-eligible") == "true", codes)
    return out


def wait_until(what: str, check, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def test_dialog_and_tab_in_chromium_on_the_real_stack(
    kubevirt_cluster: KubeVirtCluster, vm_namespace: str, harness_url: str, browser_page: Page
):
    cluster, ns, page = kubevirt_cluster, vm_namespace, browser_page
    source, cordoned, target, outside = cluster.nodes[:4]
    cluster.kubectl_ok("apply", "-f", "-", input=json.dumps(vm_migrator_rbac(ns, "alice")))
    for node in (source, cordoned, target):
        cluster.kubectl_ok("label", "node", node, f"{POOL}={ns}", "--overwrite")
    cluster.handler.set_scenario(ns, "ui-vm", Scenario.succeed(20.0))
    cluster.handler.set_scenario(ns, "long-vm", Scenario.overrun(would_take=600.0))
    pool = {POOL: ns}
    try:
        with cluster.only_schedulable(source):
            cluster.start_vm(harvester_vm(ns, "ui-vm", memory="2Gi", node_selector=pool))
            cluster.start_vm(harvester_vm(ns, "long-vm", memory="2Gi", node_selector=pool))
            disk, volume = container_disk()
            cluster.start_vm(
                harvester_vm(ns, "blocked-vm", disks=[disk], volumes=[volume], node_selector=pool)
            )
        cluster.kubectl_ok("cordon", cordoned)
        _run(cluster, ns, page, harness_url, source, cordoned, target, outside)
    finally:
        cluster.kubectl_ok("uncordon", cordoned)
        for node in (source, cordoned, target):
            cluster.kubectl_ok("label", "node", node, f"{POOL}-")


def _open(page: Page, url: str, view: str, ns: str, vm: str) -> None:
    page.goto(f"{url}?view={view}&ns={ns}&vm={vm}&poll=1")


def _run(cluster, ns, page, url, source, cordoned, target, outside) -> None:
    # --- a blocked VM: its blocker with the remedy above the list, nothing to apply ----------------
    _open(page, url, "dialog", ns, "blocked-vm")
    by_testid(page, "mg-blockers").wait_for(timeout=30_000)
    blocker = page.locator('[data-testid="mg-blocker"][data-code="ContainerDiskVolume"]')
    assert "remove the volume before migrating" in blocker.inner_text()
    assert by_testid(page, "mg-apply").is_disabled()
    shoot(page, "dialog-blocked")

    # --- the nodes of ui-vm, each with its real reasons, eligible first ------------------------------
    def listed():
        _open(page, url, "dialog", ns, "ui-vm")
        by_testid(page, "mg-nodes").wait_for(timeout=30_000)
        found = rows(page)
        # the server's cache sees the cordon within a moment; read again until it does
        return found if "NodeCordoned" in found.get(cordoned, (True, []))[1] else None

    found = wait_until("the dialog to show the cordoned node", listed, 30, interval=1)
    assert next(iter(found)) == target  # the one eligible node first
    assert found[target] == (True, [])
    assert found[source] == (False, ["SourceNode"])
    assert found[cordoned] == (False, ["NodeCordoned"])
    assert found[outside] == (False, ["NodeSelectorMismatch"])
    assert set(found) == set(cluster.nodes)
    reason = page.locator(f'[data-testid="mg-node-{cordoned}"] [data-testid="mg-reason"]')
    assert f"node '{cordoned}' is cordoned" in reason.inner_text()
    assert (
        by_testid(page, "mg-summary").inner_text()
        == f"1 of {len(cluster.nodes)} nodes can receive this VM."
    )
    shoot(page, "dialog-nodes")

    # --- Apply: PUT .../migrate as alice, run by virt-controller, placed by kube-scheduler ----------
    page.locator(f'[data-testid="mg-node-{target}"] input').check()
    by_testid(page, "mg-apply").click()
    started = by_testid(page, "mg-started")
    started.wait_for(timeout=30_000)
    assert f"to {target} started" in started.inner_text()
    shoot(page, "dialog-started")
    (vmim,) = cluster.get(kubevirt_path(ns, "virtualmachineinstancemigrations"))["items"]
    assert vmim["spec"]["addedNodeSelector"] == {"kubernetes.io/hostname": target}
    assert vmim["metadata"]["annotations"]["migration-guard.io/requested-by"] == "alice"

    # --- the Migration tab follows it to Succeeded ---------------------------------------------------
    _open(page, url, "tab", ns, "ui-vm")
    by_testid(page, "mg-phase").wait_for(timeout=30_000)
    seen: list[int] = []
    shot_running = False
    deadline = time.monotonic() + 150  # a 20 s transfer; room for a loaded machine
    while time.monotonic() < deadline:
        phase = by_testid(page, "mg-phase").inner_text()
        value = by_testid(page, "mg-progress").get_attribute("aria-valuenow")
        if value is not None and (not seen or int(value) != seen[-1]):
            seen.append(int(value))
        if phase == "Running" and value is not None and 0 < int(value) < 100 and not shot_running:
            assert by_testid(page, "mg-countdown").first.inner_text().startswith("in ")
            assert "left to copy" in by_testid(page, "mg-progress-text").inner_text()
            shoot(page, "tab-running")
            shot_running = True
        if phase == "Succeeded":
            break
        time.sleep(0.5)
    assert by_testid(page, "mg-phase").inner_text() == "Succeeded", seen
    assert shot_running, f"no progress figure seen while Running: {seen}"
    assert any(0 < v < 100 for v in seen), seen
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    by_testid(page, "mg-progress-text").filter(has_text="copied").wait_for(timeout=10_000)
    assert by_testid(page, "mg-progress").get_attribute("aria-valuenow") == "100"
    assert by_testid(page, "mg-route").inner_text() == f"{source} → {target}"
    assert by_testid(page, "mg-requested-by").inner_text() == "alice"
    assert by_testid(page, "mg-abort").count() == 0
    shoot(page, "tab-succeeded")
    assert cluster.vmi(ns, "ui-vm")["status"]["nodeName"] == target

    # --- another one, started from the dialog and aborted from the tab -------------------------------
    _open(page, url, "dialog", ns, "long-vm")
    by_testid(page, "mg-nodes").wait_for(timeout=30_000)
    page.locator(f'[data-testid="mg-node-{target}"] input').check()
    by_testid(page, "mg-apply").click()
    by_testid(page, "mg-started").wait_for(timeout=30_000)
    _open(page, url, "tab", ns, "long-vm")
    by_testid(page, "mg-phase").filter(has_text="Running").wait_for(timeout=60_000)
    by_testid(page, "mg-abort").click()
    confirm = by_testid(page, "mg-abort-confirm")
    assert f"keeps running on {source}" in confirm.inner_text()
    shoot(page, "tab-abort-confirm")
    by_testid(page, "mg-abort-yes").click()
    assert "was deleted" in by_testid(page, "mg-aborted").inner_text(timeout=30_000)
    why = by_testid(page, "mg-why")
    why.filter(has_text="abort").wait_for(timeout=60_000)
    by_testid(page, "mg-phase").filter(has_text="Failed").wait_for(timeout=60_000)
    assert by_testid(page, "mg-abort").count() == 0
    shoot(page, "tab-aborted")

    def gone():
        items = cluster.get(kubevirt_path(ns, "virtualmachineinstancemigrations"))["items"]
        return not [m for m in items if m["spec"]["vmiName"] == "long-vm"]

    cluster.wait_for("virt-controller to finish the abort", gone, 60)
    assert cluster.vmi(ns, "long-vm")["status"]["nodeName"] == source
