"""Events the webhook records where operators look, written off the request path.

Why a queue and a thread: a denial must not wait for an API write, and KubeVirt retries what the
webhook denies (a workload update almost at once), so the same Event would be written hundreds of
times a second. Like client-go's EventCorrelator, repeats of one Event (same object, reason and
message) are counted and written as one Event whose `count` grows, at most once per `interval`
per Event; at most `max_events` distinct Events are remembered and at most `max_pending` records
wait, the rest are dropped and counted. As in client-go, a process counts only its own repeats: a
restarted webhook (or a second replica) starts new Events, named with its own start time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes.client import ApiClient

from webhook.cluster.kubeapi import KubeError, call

log = logging.getLogger("migration_guard.events")

COMPONENT = "migration-guard-webhook"
# core/v1 accepts longer messages, but events.k8s.io/v1 notes stop at 1 kB; kubectl shows it all.
MAX_MESSAGE_CHARS = 1024


@dataclass(frozen=True)
class Involved:
    """The object an Event is about (its involvedObject)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None  # None for cluster-scoped objects such as Nodes
    uid: str | None = None

    @property
    def event_namespace(self) -> str:
        """Where its Events live: its namespace, `default` for cluster-scoped objects (as kubelet)."""
        return self.namespace or "default"

    def to_dict(self) -> dict:
        out = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.uid:
            out["uid"] = self.uid
        return out


@dataclass(frozen=True)
class Record:
    involved: Involved
    type: str  # Normal or Warning
    reason: str
    message: str

    def event_name(self, nonce: str) -> str:
        """One name per Event and process (`nonce`): the repeats it counts update that Event."""
        who = self.involved
        said = "\0".join((nonce, who.kind, who.name, who.uid or "", self.reason, self.message))
        digest = hashlib.sha256(said.encode()).hexdigest()[:16]
        return f"{self.involved.name[:200]}.{digest}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def clip(message: str) -> str:
    return (
        message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."
    )


@dataclass
class _Tally:
    pending: int = 0  # repeats not written yet
    written: int = 0  # the count the API has
    last_write: float = float("-inf")
    first_seen: float = 0.0


class EventRecorder:
    """Records core/v1 Events from one thread (see the module docstring)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        instance: str = "",
        interval: float = 60.0,
        max_events: int = 2048,
        max_pending: int = 4096,
        on_drop: Callable[[], None] | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.instance = instance
        self.interval = interval
        self.max_events = max_events
        self._queue: queue.Queue[Record] = queue.Queue(max_pending)
        self._tallies: OrderedDict[Record, _Tally] = OrderedDict()
        self._on_drop = on_drop or (lambda: None)
        self._on_write = on_write or (lambda: None)
        self._nonce = f"{time.time_ns():x}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, involved: Involved, type_: str, reason: str, message: str) -> None:
        """Queue one Event; never blocks (dropped and counted when the queue is full)."""
        try:
            self._queue.put_nowait(Record(involved, type_, reason, clip(message)))
        except queue.Full:
            self._on_drop()

    def start(self) -> EventRecorder:
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self._take(self._queue.get(timeout=0.5))
            while True:  # everything queued meanwhile, then the writes that are due
                try:
                    self._take(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.flush(time.time())

    def _take(self, rec: Record) -> None:
        tally = self._tallies.get(rec)
        if tally is None:
            tally = self._tallies[rec] = _Tally(first_seen=time.time())
            while len(self._tallies) > self.max_events:
                self._tallies.popitem(last=False)
        else:
            self._tallies.move_to_end(rec)
        tally.pending += 1

    def flush(self, now: float) -> None:
        """Write every Event with unwritten repeats whose interval has passed."""
        for rec, tally in list(self._tallies.items()):
            if tally.pending and now - tally.last_write >= self.interval:
                try:
                    self._write(rec, tally, now)
                except KubeError as err:
                    log.warning("could not record %s event on %s %s: %s", rec.reason,
                                rec.involved.kind, rec.involved.name, err)  # fmt: skip
                    tally.last_write = now  # retried after the interval, not in a loop

    def _write(self, rec: Record, tally: _Tally, now: float) -> None:
        ns, name = rec.involved.event_namespace, rec.event_name(self._nonce)
        path = f"/api/v1/namespaces/{ns}/events"
        count = tally.written + tally.pending
        if tally.written:
            try:
                self._patch(path, name, count, now)
            except KubeError as err:
                if err.status != 404:
                    raise
                tally.written = 0  # the Event expired (kube-apiserver keeps them 1 h): anew
        if not tally.written:
            count = tally.pending
            call(self.api, "POST", path, self._body(rec, name, count, tally.first_seen, now))
        tally.written, tally.pending, tally.last_write = count, 0, now
        self._on_write()

    def _patch(self, path: str, name: str, count: int, now: float) -> None:
        body = {"count": count, "lastTimestamp": _stamp(now)}
        call(self.api, "PATCH", f"{path}/{name}", body, content_type="application/merge-patch+json")

    def _body(self, rec: Record, name: str, count: int, first: float, now: float) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": rec.involved.event_namespace},
            "involvedObject": rec.involved.to_dict(),
            "reason": rec.reason,
            "message": rec.message,
            "type": rec.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": _stamp(first),
            "lastTimestamp": _stamp(now),
            "count": count,
        }
