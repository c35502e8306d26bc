"""Leader election with a coordination.k8s.io/v1 Lease, so that only one enforcer replica aborts.

Protocol (the one client-go's leaderelection uses, written for this process):
- No Lease: create it with us as holder (a 409 means another replica was faster).
- We hold it: renew `renewTime` with a replace carrying the `resourceVersion` we read (optimistic
  concurrency: a 409 means someone else wrote it, so we are no longer sure to lead).
- Someone else holds it: take it over only when it has expired, i.e. its record did not change for
  `leaseDurationSeconds` as measured by *our* monotonic clock since we first saw that record (no
  trust in other machines' clocks), or its `renewTime` is older than the duration by our wall clock
  (fast start-up after a long outage), or the holder released it (empty `holderIdentity`).
  Takeover increments `leaseTransitions`.
- We act as leader only while our last successful renewal is younger than the renew deadline
  (2/3 of the duration), so an old leader stops acting before a new one can take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client import ApiClient

from webhook.cluster.kubeapi import KubeError, call
from webhook.enforcer.decisions import parse_time

log = logging.getLogger("migration_guard.enforcer.leader")


def micro_time(ts: float) -> str:
    """Unix seconds -> MicroTime as the API server writes it (RFC3339, 6 fraction digits)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """One replica's view of the Lease; call `step()` every retry period (or run `run()`)."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int = 15,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self.renew_deadline = duration_seconds * 2 / 3
        self.retry_period = max(0.2, min(2.0, duration_seconds / 5))
        self._wall = wall
        self._mono = mono
        self._lock = threading.Lock()
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._observed: tuple[str, str, int] | None = None  # holder, renewTime, transitions
        self._observed_at = 0.0
        self.last_error: str | None = None
        self.holder: str | None = None
        self.transitions = 0

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def is_leader(self) -> bool:
        """True while our last renewal is younger than the renew deadline."""
        with self._lock:
            return (
                self._renewed_at is not None
                and self._mono() - self._renewed_at < self.renew_deadline
            )

    def _spec(self, acquire_time: str, transitions: int) -> dict:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": acquire_time,
            "renewTime": micro_time(self._wall()),
            "leaseTransitions": transitions,
        }

    def _won(self, lease: dict) -> bool:
        with self._lock:
            self._renewed_at = self._mono()
        self.holder = self.identity
        self.transitions = int((lease.get("spec") or {}).get("leaseTransitions") or 0)
        self.last_error = None
        return True

    def _lost(self) -> bool:
        with self._lock:
            self._renewed_at = None
        return False

    def step(self) -> bool:
        """One attempt to acquire or renew; returns whether we lead afterwards."""
        try:
            lease = call(self.api, "GET", self.path)
        except KubeError as err:
            if err.status == 404:
                return self._create()
            self.last_error = str(err)
            log.warning("lease %s/%s: cannot read: %s", self.namespace, self.name, err)
            return self.is_leader()  # keep leading until the renew deadline passes
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self.holder = holder or None
        self.transitions = int(spec.get("leaseTransitions") or 0)
        record = (holder, str(spec.get("renewTime") or ""), self.transitions)
        now_mono = self._mono()
        if record != self._observed:
            self._observed, self._observed_at = record, now_mono
        if holder == self.identity:
            new_spec = self._spec(
                spec.get("acquireTime") or micro_time(self._wall()), self.transitions
            )
            return self._replace(lease, new_spec, "renew")
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        renew_time = parse_time(spec.get("renewTime"))
        expired = (
            not holder
            or now_mono - self._observed_at >= duration
            or (renew_time is not None and self._wall() - renew_time >= duration)
        )
        if not expired:
            return self._lost()
        new_spec = self._spec(micro_time(self._wall()), self.transitions + 1)
        if self._replace(lease, new_spec, "take over"):
            log.info(
                "lease %s/%s: %s took over from %r (transition %d)",
                self.namespace,
                self.name,
                self.identity,
                holder or None,
                self.transitions,
            )
            return True
        return False

    def _create(self) -> bool:
        now = micro_time(self._wall())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(now, 0),
        }
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        try:
            lease = call(self.api, "POST", path, body)
        except KubeError as err:
            self.last_error = str(err)
            if err.status != 409:
                log.warning("lease %s/%s: cannot create: %s", self.namespace, self.name, err)
            return self._lost()
        log.info("lease %s/%s: %s acquired it", self.namespace, self.name, self.identity)
        return self._won(lease)

    def _replace(self, lease: dict, spec: dict, what: str) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion"),
            },
            "spec": spec,
        }
        try:
            updated = call(self.api, "PUT", self.path, body)
        except KubeError as err:
            self.last_error = str(err)
            if err.status == 409:
                log.info(
                    "lease %s/%s: %s lost the race to %s",
                    self.namespace,
                    self.name,
                    self.identity,
                    what,
                )
                return self._lost()
            log.warning("lease %s/%s: cannot %s: %s", self.namespace, self.name, what, err)
            return self.is_leader()
        return self._won(updated)

    def release(self) -> None:
        """On shutdown: hand the Lease back (empty holder) so a standby takes over at once."""
        if not self.is_leader():
            return
        try:
            lease = call(self.api, "GET", self.path)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = ""
            spec["renewTime"] = micro_time(self._wall())
            spec["leaseDurationSeconds"] = 1
            self._replace_raw(lease, spec)
            log.info("lease %s/%s: %s released it", self.namespace, self.name, self.identity)
        except KubeError as err:
            log.warning("lease %s/%s: cannot release: %s", self.namespace, self.name, err)
        finally:
            self._lost()

    def _replace_raw(self, lease: dict, spec: dict) -> None:
        meta = lease.get("metadata") or {}
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": meta.get("resourceVersion"),
            },
            "spec": spec,
        }
        call(self.api, "PUT", self.path, body)

    def run(self, stop: threading.Event) -> None:
        """Step every retry period until `stop` is set."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # never let the elector thread die silently
                log.exception("lease %s/%s: unexpected error", self.namespace, self.name)
                self._lost()
            stop.wait(self.retry_period)
