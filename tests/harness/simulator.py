"""A KubeVirt simulator for tests: it behaves as KubeVirt's virt-controller and virt-handler do for
live migration, against the real API server, because KubeVirt itself cannot run here.

What it does, for every VMIM whose VMI has a scenario registered (`set_scenario`), and nothing else
(other tests' VMIMs are left alone):
- adds the finalizer `kubevirt.io/migrationJobFinalize` to the VMIM first, as virt-controller does;
- drives `status.phase` through Pending -> Scheduling -> Scheduled -> PreparingTarget ->
  TargetReady -> Running -> Succeeded/Failed, appending `status.phaseTransitionTimestamps`
  (`phase`, `phaseTransitionTimestamp`) at each step;
- at the hand-off (PreparingTarget) writes the VMI's `status.migrationState` (`migrationUid`,
  `sourceNode`, `targetNode`, `targetPod`), when the transfer starts (Running) adds
  `startTimestamp` and `mode: PreCopy`; on success sets `completed`, `endTimestamp`, and moves
  `status.nodeName` to the target; on failure sets `failed`;
- when the VMIM is deleted before it is final (KubeVirt's abort): sets `abortRequested`, then
  `abortStatus: Succeeded`, `failed: true`, `endTimestamp` on the VMI (which stays on its source
  node), the VMIM's phase to Failed, then removes the finalizer so the API server deletes it;
- serves virt-handler-style metrics on 127.0.0.1 (`/metrics`, Prometheus text format):
  `kubevirt_vmi_migration_data_remaining_bytes`, `kubevirt_vmi_migration_data_processed_bytes` and
  `kubevirt_vmi_migration_data_total_bytes`, labels `namespace`, `name` (the VMI) and `node`,
  while a migration transfers data.
Timestamps are RFC3339 with whole seconds, as metav1.Time serialises them.

Scenarios (`Scenario`): how data remaining evolves after the transfer starts. `succeed`,
`overrun` (steady progress that would finish long after the deadline), `stall` (progress, then
none) and `complete_at` (finishes at a given second, e.g. just before the deadline).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes.client import ApiClient

from webhook.kubeapi import KubeError, call

log = logging.getLogger("tests.simulator")

FINALIZER = "kubevirt.io/migrationJobFinalize"
PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running")
FINAL = ("Succeeded", "Failed")
KV = "/apis/kubevirt.io/v1"
GIB = 1024**3


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@dataclass(frozen=True)
class Scenario:
    """Data transfer after the migration starts: a straight line from all data to none over
    `transfer_seconds`, cut short at `stall_after` (flat from then on); it succeeds when the line
    reaches zero if `completes`."""

    name: str
    transfer_seconds: float
    stall_after: float | None = None
    completes: bool = True

    @classmethod
    def succeed(cls, seconds: float = 1.5) -> Scenario:
        return cls("succeed", seconds)

    @classmethod
    def overrun(cls, would_take: float = 600.0) -> Scenario:
        return cls("overrun", would_take, completes=False)

    @classmethod
    def stall(cls, after: float = 1.0, would_take: float = 600.0) -> Scenario:
        return cls("stall", would_take, stall_after=after, completes=False)

    @classmethod
    def complete_at(cls, seconds: float) -> Scenario:
        return cls("complete-just-before-deadline", seconds)

    def remaining(self, total: int, elapsed: float) -> int:
        moving = elapsed if self.stall_after is None else min(elapsed, self.stall_after)
        done = min(1.0, max(0.0, moving / self.transfer_seconds))
        return int(total * (1.0 - done))

    def finished(self, elapsed: float) -> bool:
        return self.completes and elapsed >= self.transfer_seconds


@dataclass
class _Migration:
    namespace: str
    name: str
    uid: str
    vmi: str
    scenario: Scenario
    total_bytes: int
    source: str
    target: str
    phase: str = ""
    phase_at: float = 0.0
    started_at: float | None = None
    timestamps: list[dict] = field(default_factory=list)
    remaining: int | None = None
    done: bool = False


class KubeVirtSimulator:
    """Polls VMIMs in the namespaces that have scenarios and plays KubeVirt's part for them."""

    def __init__(self, api: ApiClient, phase_seconds: float = 0.1, poll_seconds: float = 0.1):
        self.api = api
        self.phase_seconds = phase_seconds
        self.poll_seconds = poll_seconds
        self.scenarios: dict[tuple[str, str], Scenario] = {}
        self.migrations: dict[str, _Migration] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self.metrics_url = ""

    # ------------------------------------------------------------------ public
    def set_scenario(self, namespace: str, vmi: str, scenario: Scenario) -> None:
        with self._lock:
            self.scenarios[(namespace, vmi)] = scenario

    def start(self) -> KubeVirtSimulator:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = sim.render_metrics().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.metrics_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/metrics"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="kubevirt-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def render_metrics(self) -> str:
        """virt-handler's migration metrics for migrations transferring data now."""
        lines = {
            "remaining": [
                "# HELP kubevirt_vmi_migration_data_remaining_bytes "
                "The remaining guest OS data to be migrated to the new VM.",
                "# TYPE kubevirt_vmi_migration_data_remaining_bytes gauge",
            ],
            "processed": [
                "# HELP kubevirt_vmi_migration_data_processed_bytes "
                "The total Guest OS data processed and migrated to the new VM.",
                "# TYPE kubevirt_vmi_migration_data_processed_bytes gauge",
            ],
            "total": [
                "# HELP kubevirt_vmi_migration_data_total_bytes "
                "The total Guest OS data to be migrated to the new VM.",
                "# TYPE kubevirt_vmi_migration_data_total_bytes gauge",
            ],
        }
        with self._lock:
            running = [m for m in self.migrations.values() if m.phase == "Running"]
            for m in running:
                if m.remaining is None:
                    continue
                labels = f'name="{m.vmi}",namespace="{m.namespace}",node="{m.source}"'
                lines["remaining"].append(
                    f"kubevirt_vmi_migration_data_remaining_bytes{{{labels}}} {m.remaining}"
                )
                lines["processed"].append(
                    f"kubevirt_vmi_migration_data_processed_bytes{{{labels}}} "
                    f"{m.total_bytes - m.remaining}"
                )
                lines["total"].append(
                    f"kubevirt_vmi_migration_data_total_bytes{{{labels}}} {m.total_bytes}"
                )
        return "\n".join(lines["remaining"] + lines["processed"] + lines["total"]) + "\n"

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                namespaces = sorted({ns for ns, _ in self.scenarios})
            for namespace in namespaces:
                try:
                    self._tick(namespace)
                except KubeError as err:  # e.g. a 409 racing a delete: retried next poll
                    self.errors.append(str(err))
                except Exception as err:
                    log.exception("simulator tick failed")
                    self.errors.append(repr(err))
            self._stop.wait(self.poll_seconds)

    def _tick(self, namespace: str) -> None:
        listing = call(
            self.api, "GET", f"{KV}/namespaces/{namespace}/virtualmachineinstancemigrations"
        )
        for vmim in listing.get("items") or []:
            meta = vmim["metadata"]
            uid = meta["uid"]
            vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
            with self._lock:
                scenario = self.scenarios.get((namespace, vmi_name))
                migration = self.migrations.get(uid)
            if scenario is None:
                continue
            if migration is None:
                if (vmim.get("status") or {}).get("phase") in FINAL:
                    continue
                migration = self._new(vmim, scenario)
                if migration is None:
                    continue
            if migration.done:
                if meta.get("deletionTimestamp") and FINALIZER in (meta.get("finalizers") or []):
                    self._remove_finalizer(vmim)
                continue
            if meta.get("deletionTimestamp"):
                self._abort(migration, vmim)
            else:
                self._advance(migration, vmim)

    def _new(self, vmim: dict, scenario: Scenario) -> _Migration | None:
        meta = vmim["metadata"]
        namespace, vmi_name = meta["namespace"], vmim["spec"]["vmiName"]
        try:
            vmi = call(
                self.api, "GET", f"{KV}/namespaces/{namespace}/virtualmachineinstances/{vmi_name}"
            )
        except KubeError as err:
            if err.status == 404:
                return None  # KubeVirt leaves it Pending/fails; the tests never do this
            raise
        spec_domain = (vmi.get("spec") or {}).get("domain") or {}
        guest = ((spec_domain.get("memory") or {}).get("guest")) or "1Gi"
        total = _gib_quantity_bytes(guest)
        source = (vmi.get("status") or {}).get("nodeName") or "node-1"
        selector = (vmim.get("spec") or {}).get("addedNodeSelector") or {}
        target = selector.get("kubernetes.io/hostname") or (
            "node-2" if source != "node-2" else "node-1"
        )
        migration = _Migration(
            namespace, meta["name"], meta["uid"], vmi_name, scenario, total, source, target
        )
        with self._lock:
            self.migrations[migration.uid] = migration
        if FINALIZER not in (meta.get("finalizers") or []):
            finalizers = [*(meta.get("finalizers") or []), FINALIZER]
            self._patch_vmim(migration, {"metadata": {"finalizers": finalizers}})
        return migration

    def _set_phase(self, m: _Migration, phase: str, extra_status: dict | None = None) -> None:
        now = time.time()
        m.timestamps.append({"phase": phase, "phaseTransitionTimestamp": rfc3339(now)})
        status = {"phase": phase, "phaseTransitionTimestamps": list(m.timestamps)}
        status.update(extra_status or {})
        self._patch_vmim(m, {"status": status}, subresource="/status")
        m.phase, m.phase_at = phase, time.monotonic()

    def _advance(self, m: _Migration, vmim: dict) -> None:
        if not m.phase:
            self._set_phase(m, "Pending")
            return
        if m.phase in PHASES[:-1]:
            if time.monotonic() - m.phase_at < self.phase_seconds:
                return
            nxt = PHASES[PHASES.index(m.phase) + 1]
            if nxt == "PreparingTarget":
                self._patch_vmi_state(
                    m,
                    {
                        "migrationUid": m.uid,
                        "sourceNode": m.source,
                        "targetNode": m.target,
                        "targetPod": f"virt-launcher-{m.vmi}-{m.uid[:5]}",
                    },
                )
            if nxt == "Running":
                m.started_at = time.time()
                m.remaining = m.total_bytes
                self._patch_vmi_state(
                    m, {"startTimestamp": rfc3339(m.started_at), "mode": "PreCopy"}
                )
            self._set_phase(m, nxt)
            return
        if m.phase == "Running" and m.started_at is not None:
            elapsed = time.time() - m.started_at
            with self._lock:
                m.remaining = m.scenario.remaining(m.total_bytes, elapsed)
            if m.scenario.finished(elapsed):
                self._patch_vmi(
                    m,
                    {
                        "status": {
                            "nodeName": m.target,
                            "migrationState": {"completed": True, "endTimestamp": rfc3339()},
                        }
                    },
                )
                self._set_phase(m, "Succeeded")
                m.done = True
                self._remove_finalizer(vmim)

    def _abort(self, m: _Migration, vmim: dict) -> None:
        """VMIM deleted before it was final: what KubeVirt does to abort, then let it go."""
        if m.phase == "Running" or m.started_at is not None:
            self._patch_vmi_state(m, {"abortRequested": True, "abortStatus": "Aborting"})
            self._patch_vmi_state(
                m,
                {"abortStatus": "Succeeded", "failed": True, "endTimestamp": rfc3339()},
            )
        with contextlib.suppress(KubeError):
            self._set_phase(m, "Failed")
        m.done = True
        self._remove_finalizer(vmim)

    # ------------------------------------------------------------------ writes
    def _vmim_path(self, m: _Migration) -> str:
        return f"{KV}/namespaces/{m.namespace}/virtualmachineinstancemigrations/{m.name}"

    def _patch_vmim(self, m: _Migration, patch: dict, subresource: str = "") -> None:
        call(
            self.api,
            "PATCH",
            self._vmim_path(m) + subresource,
            patch,
            content_type="application/merge-patch+json",
        )

    def _patch_vmi(self, m: _Migration, patch: dict) -> None:
        call(
            self.api,
            "PATCH",
            f"{KV}/namespaces/{m.namespace}/virtualmachineinstances/{m.vmi}",  # no status subresource
            patch,
            content_type="application/merge-patch+json",
        )

    def _patch_vmi_state(self, m: _Migration, state: dict) -> None:
        self._patch_vmi(m, {"status": {"migrationState": state}})

    def _remove_finalizer(self, vmim: dict) -> None:
        meta = vmim["metadata"]
        remaining = [f for f in (meta.get("finalizers") or []) if f != FINALIZER]
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
        ]
        path = (
            f"{KV}/namespaces/{meta['namespace']}/virtualmachineinstancemigrations/{meta['name']}"
        )
        try:
            call(self.api, "PATCH", path, patch, content_type="application/json-patch+json")
        except KubeError as err:
            if err.status != 404:
                raise


def _gib_quantity_bytes(text: str) -> int:
    from webhook.quantity import memory_bytes

    return memory_bytes(text)


def create_vm(
    api: ApiClient,
    namespace: str,
    name: str,
    memory: str = "1Gi",
    node: str = "node-1",
    annotations: dict | None = None,
) -> tuple[dict, dict]:
    """A VM and its Running VMI on `node`, as KubeVirt would show them (VMI status written)."""
    template = {"spec": {"domain": {"memory": {"guest": memory}, "devices": {}}}}
    vm = call(
        api,
        "POST",
        f"{KV}/namespaces/{namespace}/virtualmachines",
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"runStrategy": "Always", "template": template},
        },
    )
    vmi = call(
        api,
        "POST",
        f"{KV}/namespaces/{namespace}/virtualmachineinstances",
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "kubevirt.io/v1",
                        "kind": "VirtualMachine",
                        "name": name,
                        "uid": vm["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        },
    )
    vmi = call(
        api,
        "PATCH",
        f"{KV}/namespaces/{namespace}/virtualmachineinstances/{name}",  # no status subresource
        {"status": {"phase": "Running", "nodeName": node, "migrationMethod": "LiveMigration"}},
        content_type="application/merge-patch+json",
    )
    return vm, vmi


def create_migration(api: ApiClient, namespace: str, vmi: str, name: str | None = None) -> dict:
    """A VMIM for `vmi`, as `kubectl create` or the Harvester UI would make it."""
    return call(
        api,
        "POST",
        f"{KV}/namespaces/{namespace}/virtualmachineinstancemigrations",
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name or f"{vmi}-migration", "namespace": namespace},
            "spec": {"vmiName": vmi},
        },
    )
