"""A stand-in for KubeVirt's virt-handler, the only KubeVirt piece that cannot run here (it needs
libvirt, a guest and a real node). Everything else is the real virt-controller and virt-api.

It plays every node's virt-handler, writing as `system:serviceaccount:kubevirt:kubevirt-handler`
impersonated with the user extra `authentication.kubernetes.io/node-name=<node>`, so virt-api's
VMI mutator keeps its status writes and its NodeRestriction check judges them as it judges a real
handler's: the source node's handler writes the source side, the target node's the target side.
What it stands in for (kubevirt.io/kubevirt v1.8.2, pkg/virt-handler):
- VMI start (vm.go, the domain appearing): a VMI virt-controller has Scheduled on a node becomes
  Running, with `LiveMigratable=True` (calculateLiveMigrationCondition; tests mark a VMI not
  migratable with `set_not_migratable`), `selinuxContext: none`, the resolved machine type
  (nodes.MACHINE_TYPE), `migrationMethod: LiveMigration`, `migrationTransport: Unix`.
- the migration target (migration-target.go): once virt-controller has handed the migration off
  (`migrationState.targetNode`, `targetPod`) and the target pod runs, it advertises
  `targetNodeAddress` and ports (updateStatus); when the domain arrives, `targetNodeDomainDetected`;
  after the source completes, `targetNodeDomainReadyTimestamp` and the ack (ackMigrationCompletion:
  `nodeName`, the `kubevirt.io/nodeName` label, no `migrationTargetNodeName` label, no
  `evacuationNodeName`, no `launcherContainerImageVersion`).
- the migration source (migration-source.go): `startTimestamp` and `mode` once the target is
  ready; data remaining as the test's `Scenario` says; `mode: PostCopy` when the Scenario says
  the source switched to post-copy (virt-launcher's migration monitor calls
  MigrateStartPostCopy at its completion limit when allowPostCopy is set, and the handler copies
  the mode from the domain's migration metadata: setMigrationProgressStatus); `completed` and
  `endTimestamp` when it is done; on virt-controller's `abortRequested` (the VMIM was deleted),
  `abortStatus: Aborting` while the Scenario's `abort_seconds` last (cancelMigration marks the
  abort in progress, libvirt's job cancel takes its time), then `abortStatus: Succeeded` with
  `failed`, `completed` and `endTimestamp` (handleMigrationAbort, asyncMigrationAbort). The
  virt-launcher whose domain left exits, and its pod is Succeeded: the source's after a completed
  migration, the target's after an aborted one.
- virt-handler's migration metrics (pkg/monitoring/metrics/virt-handler): data remaining,
  processed and total per migrating VMI, on 127.0.0.1.
Timestamps are RFC3339 with whole seconds, as metav1.Time serialises them.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from kubernetes.client import ApiClient

from tests.harness.kubevirt import HANDLER
from tests.harness.nodes import MACHINE_TYPE
from webhook.cluster.kubeapi import Kube, KubeError, call
from webhook.quantity import memory_bytes

if TYPE_CHECKING:
    from tests.harness.controlplane import ControlPlane

log = logging.getLogger("tests.virt_handler")

VMIS = "/apis/kubevirt.io/v1/virtualmachineinstances"
NODE_NAME_LABEL = "kubevirt.io/nodeName"
TARGET_NODE_LABEL = "kubevirt.io/migrationTargetNodeName"
MIGRATION_PORT = "49152"
ABORTED = "operation aborted: migration out job: canceled by client"
WORKERS = 8


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@dataclass(frozen=True)
class Scenario:
    """Data transfer after the migration starts: a straight line from all data to none over
    `transfer_seconds`, cut short at `stall_after` (flat from then on); it succeeds when the line
    reaches zero if `completes`. `post_copy_after`: seconds after the start when the source
    reports `mode: PostCopy` (the transfer goes on). `abort_seconds`: how long an abort requested
    by virt-controller stays `abortStatus: Aborting` before it succeeds."""

    name: str
    transfer_seconds: float
    stall_after: float | None = None
    completes: bool = True
    post_copy_after: float | None = None
    abort_seconds: float = 0.0

    @classmethod
    def succeed(cls, seconds: float = 1.5) -> Scenario:
        return cls("succeed", seconds)

    @classmethod
    def overrun(cls, would_take: float = 600.0, abort_seconds: float = 0.0) -> Scenario:
        return cls("overrun", would_take, completes=False, abort_seconds=abort_seconds)

    @classmethod
    def post_copy(cls, after: float, seconds: float) -> Scenario:
        """Switched to post-copy `after` seconds in, done at `seconds`."""
        return cls("post-copy", seconds, post_copy_after=after)

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

    def in_post_copy(self, elapsed: float) -> bool:
        return self.post_copy_after is not None and elapsed >= self.post_copy_after


@dataclass
class Transfer:
    """One migration as the source handler sees it: what the metrics report."""

    namespace: str
    vmi: str
    source: str
    scenario: Scenario
    total_bytes: int
    started_at: float
    remaining: int


def render_metrics(transfers: list[Transfer]) -> str:
    """virt-handler's migration metrics, in the Prometheus text format."""
    families = {
        "remaining": "The remaining guest OS data to be migrated to the new VM.",
        "processed": "The total Guest OS data processed and migrated to the new VM.",
        "total": "The total Guest OS data to be migrated to the new VM.",
    }
    lines: list[str] = []
    for family, help_text in families.items():
        metric = f"kubevirt_vmi_migration_data_{family}_bytes"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for t in transfers:
            value = {
                "remaining": t.remaining,
                "processed": t.total_bytes - t.remaining,
                "total": t.total_bytes,
            }[family]
            labels = f'name="{t.vmi}",namespace="{t.namespace}",node="{t.source}"'
            lines.append(f"{metric}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


def _guest_bytes(vmi: dict) -> int:
    domain = (vmi.get("spec") or {}).get("domain") or {}
    guest = (domain.get("memory") or {}).get("guest")
    requested = ((domain.get("resources") or {}).get("requests") or {}).get("memory")
    return memory_bytes(guest or requested or "1Gi")


def _set_condition(
    status: dict, type_: str, value: str, reason: str = "", message: str = ""
) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    condition = {"type": type_, "status": value, "lastProbeTime": None, "lastTransitionTime": None}
    if reason:
        condition |= {"reason": reason, "message": message}
    status["conditions"] = [*conditions, condition]


class VirtHandler:
    """Polls every VMI and plays the handler of its source and target nodes."""

    def __init__(self, plane: ControlPlane, poll_seconds: float = 0.2):
        self.plane = plane
        self.poll_seconds = poll_seconds
        self.admin = plane.api_client()
        self.errors: list[str] = []
        self.scenarios: dict[tuple[str, str], Scenario] = {}
        self.not_migratable: dict[tuple[str, str], tuple[str, str]] = {}
        self.default_scenario = Scenario.succeed(1.0)
        self.transfers: dict[str, Transfer] = {}  # by migration UID
        self.aborting: dict[str, float] = {}  # migration UID -> when its abort began
        self._clients: dict[str, ApiClient] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self.metrics_url = ""

    # ------------------------------------------------------------------ public
    def set_scenario(self, namespace: str, vmi: str, scenario: Scenario) -> None:
        with self._lock:
            self.scenarios[(namespace, vmi)] = scenario

    def set_not_migratable(self, namespace: str, vmi: str, reason: str, message: str) -> None:
        """The VMI starts with `LiveMigratable=False`, as virt-handler reports for, say, a
        bridge on the pod network."""
        with self._lock:
            self.not_migratable[(namespace, vmi)] = (reason, message)

    def metrics_text(self) -> str:
        """What virt-handler's metrics endpoint serves now."""
        with self._lock:
            return render_metrics(list(self.transfers.values()))

    def start(self) -> VirtHandler:
        handler = self

        class Metrics(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = handler.metrics_text().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
        self._httpd.daemon_threads = True
        self.metrics_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/metrics"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="virt-handler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        # one handler per node acts in parallel on a real cluster: VMIs are synced side by side
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            while not self._stop.is_set():
                try:
                    list(
                        pool.map(
                            self._sync_safely, call(self.admin, "GET", VMIS).get("items") or []
                        )
                    )
                except KubeError as err:
                    self.errors.append(str(err))
                self._stop.wait(self.poll_seconds)

    def _sync_safely(self, vmi: dict) -> None:
        try:
            self._sync(vmi)
        except KubeError as err:  # a conflict or a race with a delete: retried next poll
            if err.status not in (404, 409):
                self.errors.append(str(err))
        except Exception as err:
            log.exception("virt-handler stand-in failed")
            self.errors.append(repr(err))

    def _sync(self, vmi: dict) -> None:
        status = vmi.get("status") or {}
        if vmi["metadata"].get("deletionTimestamp"):
            return
        if status.get("phase") == "Scheduled" and status.get("nodeName"):
            self._start_vmi(vmi)
        elif status.get("phase") == "Running":
            state = status.get("migrationState") or {}
            if state.get("migrationUid") and state.get("targetNode"):
                self._migrate(vmi, state)

    def _client(self, node: str) -> ApiClient:
        """An API client that is node `node`'s virt-handler."""
        with self._lock:
            return self._clients.get(node) or self._new_client(node)

    def _new_client(self, node: str) -> ApiClient:
        api = self.plane.api_client()
        api.set_default_header("Impersonate-User", HANDLER)
        api.set_default_header("Impersonate-Group", "system:masters")
        api.set_default_header("Impersonate-Extra-authentication.kubernetes.io%2Fnode-name", node)
        self._clients[node] = api
        return api

    def _update(self, node: str, vmi: dict, change) -> None:
        """`change(copy)` then an update as `node`'s handler; the resourceVersion guards it."""
        body = copy.deepcopy(vmi)
        body.setdefault("status", {})
        change(body)
        meta = vmi["metadata"]
        path = f"/apis/kubevirt.io/v1/namespaces/{meta['namespace']}/virtualmachineinstances/{meta['name']}"
        call(self._client(node), "PUT", path, body)

    # ------------------------------------------------------------------ VMI start
    def _start_vmi(self, vmi: dict) -> None:
        key = (vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        with self._lock:
            not_migratable = self.not_migratable.get(key)

        def running(body: dict) -> None:
            status = body["status"]
            status |= {
                "phase": "Running",
                "selinuxContext": "none",
                "machine": {"type": MACHINE_TYPE},
                "migrationMethod": "LiveMigration",
                "migrationTransport": "Unix",
            }
            if not_migratable:
                _set_condition(status, "LiveMigratable", "False", *not_migratable)
            else:
                _set_condition(status, "LiveMigratable", "True")

        self._update(vmi["status"]["nodeName"], vmi, running)

    # ------------------------------------------------------------------ migration
    def _migrate(self, vmi: dict, state: dict) -> None:
        uid, source, target = state["migrationUid"], vmi["status"]["nodeName"], state["targetNode"]
        meta = vmi["metadata"]
        if state.get("completed"):
            if state.get("failed"):
                self._launcher_exits(meta["namespace"], state.get("targetPod"))
            elif source != target:
                self._ack(vmi, target)
            with self._lock:
                self.transfers.pop(uid, None)
            return
        if state.get("abortRequested"):
            self._abort(vmi, source, uid, state)
            return
        if not state.get("targetNodeAddress"):
            if self._pod_running(meta["namespace"], state.get("targetPod")):
                self._advertise_target(vmi, target)
            return
        if not state.get("startTimestamp"):
            self._start_transfer(vmi, source, uid)
            return
        if not state.get("targetNodeDomainDetected"):
            self._update(target, vmi, lambda b: b["status"]["migrationState"].update(
                targetNodeDomainDetected=True))  # fmt: skip
            return
        self._progress(vmi, source, uid)

    def _pod_running(self, namespace: str, pod: str | None) -> bool:
        found = (
            Kube(self.admin).get_or_none(f"/api/v1/namespaces/{namespace}/pods/{pod}")
            if pod
            else None
        )
        return ((found or {}).get("status") or {}).get("phase") == "Running"

    def _node_address(self, node: str) -> str:
        try:
            found = call(self.admin, "GET", f"/api/v1/nodes/{node}")
        except KubeError:
            return "127.0.0.1"
        for address in (found.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return address["address"]
        return "127.0.0.1"

    def _advertise_target(self, vmi: dict, target: str) -> None:
        address = self._node_address(target)

        def listening(body: dict) -> None:
            state = body["status"]["migrationState"]
            state["targetNodeAddress"] = address
            state["targetDirectMigrationNodePorts"] = {MIGRATION_PORT: 0}
            if state.get("targetState") is not None:
                state["targetState"] |= {
                    "nodeAddress": address,
                    "directMigrationNodePorts": {MIGRATION_PORT: 0},
                }

        self._update(target, vmi, listening)

    def _scenario(self, vmi: dict) -> Scenario:
        with self._lock:
            key = (vmi["metadata"]["namespace"], vmi["metadata"]["name"])
            return self.scenarios.get(key, self.default_scenario)

    def _start_transfer(self, vmi: dict, source: str, uid: str) -> None:
        now = time.time()

        def started(body: dict) -> None:
            body["status"]["migrationState"] |= {"startTimestamp": rfc3339(now), "mode": "PreCopy"}

        self._update(source, vmi, started)
        self._record(vmi, source, uid, now)

    def _record(self, vmi: dict, source: str, uid: str, started_at: float) -> Transfer:
        total = _guest_bytes(vmi)
        meta = vmi["metadata"]
        transfer = Transfer(
            meta["namespace"], meta["name"], source, self._scenario(vmi), total, started_at, total
        )
        with self._lock:
            self.transfers[uid] = transfer
        return transfer

    def _progress(self, vmi: dict, source: str, uid: str) -> None:
        with self._lock:
            transfer = self.transfers.get(uid)
        if transfer is None:  # started before this stand-in did: take it up from now
            transfer = self._record(vmi, source, uid, time.time())
        elapsed = time.time() - transfer.started_at
        with self._lock:
            transfer.remaining = transfer.scenario.remaining(transfer.total_bytes, elapsed)
        mode = ((vmi.get("status") or {}).get("migrationState") or {}).get("mode")
        if transfer.scenario.in_post_copy(elapsed) and mode != "PostCopy":
            self._update(source, vmi, lambda b: b["status"]["migrationState"].update(
                mode="PostCopy"))  # fmt: skip
            return
        if not transfer.scenario.finished(elapsed):
            return

        def ended(body: dict) -> None:
            body["status"]["migrationState"] |= {"completed": True, "endTimestamp": rfc3339()}

        self._update(source, vmi, ended)

    def _abort(self, vmi: dict, source: str, uid: str, state: dict) -> None:
        """Aborting for the Scenario's `abort_seconds`, then aborted."""
        took = self._scenario(vmi).abort_seconds
        if took > 0:
            with self._lock:
                began = self.aborting.setdefault(uid, time.time())
            if state.get("abortStatus") != "Aborting":
                self._update(source, vmi, lambda b: b["status"]["migrationState"].update(
                    abortStatus="Aborting"))  # fmt: skip
                return
            if time.time() - began < took:
                return

        def aborted(body: dict) -> None:
            body["status"]["migrationState"] |= {
                "abortStatus": "Succeeded",
                "completed": True,
                "failed": True,
                "endTimestamp": rfc3339(),
                "failureReason": ABORTED,
            }

        self._update(source, vmi, aborted)
        with self._lock:
            self.transfers.pop(uid, None)
            self.aborting.pop(uid, None)

    def _ack(self, vmi: dict, target: str) -> None:
        """The target handler takes the VMI over; the source virt-launcher exits."""
        source_pod = self._source_pod(vmi)

        def acked(body: dict) -> None:
            status, labels = body["status"], body["metadata"].setdefault("labels", {})
            status["migrationState"]["targetNodeDomainReadyTimestamp"] = rfc3339()
            status |= {
                "nodeName": target,
                "evacuationNodeName": "",
                "launcherContainerImageVersion": "",
                "migrationTransport": "Unix",
            }
            labels[NODE_NAME_LABEL] = target
            labels.pop(TARGET_NODE_LABEL, None)

        self._update(target, vmi, acked)
        self._launcher_exits(vmi["metadata"]["namespace"], source_pod)

    def _launcher_exits(self, namespace: str, pod: str | None) -> None:
        """A virt-launcher whose domain left (source after success, target after an abort) exits: kubelet reports its pod Succeeded."""
        if not self._pod_running(namespace, pod):
            return
        call(
            self.admin,
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
            {"status": {"phase": "Succeeded"}},
            content_type="application/merge-patch+json",
        )

    def _source_pod(self, vmi: dict) -> str | None:
        """The running launcher pod of the VMI on its source node."""
        meta, node = vmi["metadata"], vmi["status"]["nodeName"]
        pods = call(
            self.admin,
            "GET",
            f"/api/v1/namespaces/{meta['namespace']}/pods",
            query=[("labelSelector", f"kubevirt.io/created-by={meta['uid']}")],
        )
        for pod in pods.get("items") or []:
            if (pod.get("spec") or {}).get("nodeName") == node and (pod.get("status") or {}).get(
                "phase"
            ) == "Running":
                return pod["metadata"]["name"]
        return None
