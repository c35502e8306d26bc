"""The enforcer loop: every check interval, sample progress, decide each migration, act if leader.

Thin on purpose: what to do comes from `decisions.plan` and `judge` (`decide` in two steps, so
the part that depends on the objects alone runs once per object change), how to abort from
`actions.abort`. This module owns only the state a decision needs across checks: progress samples per migration (taken by
this process, since the migration started), the UIDs already aborted (never twice), the UIDs whose
"not aborted" record was made (once), and whether the progress source is reachable (one log line
when that changes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes.client import ApiClient

from webhook.cluster.kubeapi import KubeError
from webhook.cluster.state import ClusterState
from webhook.enforcer import actions
from webhook.enforcer.decisions import (
    ABORT,
    FINAL_PHASES,
    HOLD,
    IGNORE,
    WATCH,
    Decision,
    Plan,
    Sample,
    judge,
    parse_time,
    plan,
    prune_samples,
)
from webhook.enforcer.leader import LeaseElector
from webhook.enforcer.metrics import EnforcerMetrics
from webhook.enforcer.settings import EnforcerSettings
from webhook.errors import InputError
from webhook.progress import ProgressSource, ProgressUnavailable
from webhook.rules.model import TimeoutSettings
from webhook.rules.timeouts import compute_timeouts

log = logging.getLogger("migration_guard.enforcer")

ABORTED_MEMORY_SECONDS = 3600.0  # how long an aborted UID is remembered after it left the cache


@dataclass
class ProgressState:
    """Whether the progress source answered at the last check, and why not."""

    description: str
    up: bool | None = None  # None: not asked yet
    error: str | None = None
    since: float | None = None

    def to_dict(self) -> dict:
        return {
            "source": self.description,
            "up": bool(self.up),
            "error": self.error,
            "enforced": ["completion", "progress"] if self.up else ["completion"],
        }


@dataclass
class CheckResult:
    """One check: the decisions taken, for logs and tests."""

    at: float
    leader: bool
    synced: bool
    decisions: list[tuple[dict, Decision]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)


class _Tracked:
    """One migration as last planned: the objects its plan was made from, and the plan."""

    __slots__ = ("namespace", "plan", "sampled", "settings", "vm", "vmi", "vmi_name", "vmim")

    def __init__(self, vmim: dict, namespace: str) -> None:
        self.vmim = vmim
        self.namespace = namespace
        self.vmi_name: str = (vmim.get("spec") or {}).get("vmiName") or ""
        self.vmi: dict | None = None
        self.vm: dict | None = None
        self.settings: TimeoutSettings | None = None
        self.plan: Plan | None = None
        # (key of the VMI in the progress values, start time) once the migration started on it
        self.sampled: tuple[tuple[str, str], float | None] | None = None


def _sampling(uid: str, vmi: dict | None) -> tuple[tuple[str, str], float | None] | None:
    """(key of the VMI in the progress values, start time) once the migration started on it."""
    if vmi is None:
        return None
    migration = (vmi.get("status") or {}).get("migrationState") or {}
    if migration.get("migrationUid") != uid or not migration.get("startTimestamp"):
        return None
    meta = vmi.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name")), parse_time(migration.get("startTimestamp"))


def _ref(vmim: dict) -> str:
    meta = vmim.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class Enforcer:
    """State across checks plus the `check_once` step; `run` loops it until stopped."""

    def __init__(
        self,
        settings: EnforcerSettings,
        api: ApiClient,
        state: ClusterState,
        synced: Callable[[], bool],
        source: ProgressSource | None,
        elector: LeaseElector | None,
        metrics: EnforcerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.api = api
        self.state = state
        self.synced = synced
        self.source = source
        self.elector = elector
        self.metrics = metrics or EnforcerMetrics()
        self.clock = clock
        self.samples: dict[str, list[Sample]] = {}
        self.aborted: dict[str, float] = {}  # uid -> when it left the cache (0 while present)
        self.held: set[str] = set()  # overdue but held: recorded (or found recorded) once
        self.progress = ProgressState(source.description if source else "none configured")
        self.last_check: float | None = None
        self.last_result: CheckResult | None = None
        self._unsynced_logged = False
        self._bad: set[str] = set()
        # Objects in the state are replaced, never changed, so a migration is planned (deadlines
        # included) only when its VMIM, VMI, VM or the settings change.
        self._tracked: dict[str, _Tracked] = {}
        self._settings: TimeoutSettings | None = None

    # -- progress ---------------------------------------------------------------------------
    def _poll_progress(self) -> dict[tuple[str, str], int]:
        if self.source is None:
            if self.progress.up is None:
                log.warning("no progress source configured: only completion timeouts are enforced")
                self.progress.up, self.progress.error = False, "no progress source configured"
            self.metrics.progress_source_up.set(0)
            return {}
        try:
            values = self.source.fetch()
        except ProgressUnavailable as err:
            if self.progress.up is not False:
                log.warning(
                    "progress source %s unreachable (%s): only completion timeouts are enforced",
                    self.source.description,
                    err,
                )
                self.progress.since = self.clock()
            self.progress.up, self.progress.error = False, str(err)
            self.metrics.progress_source_up.set(0)
            return {}
        if self.progress.up is not True:
            log.info(
                "progress source %s reachable: progress timeouts are enforced",
                self.source.description,
            )
            self.progress.since = self.clock()
        self.progress.up, self.progress.error = True, None
        self.metrics.progress_source_up.set(1)
        return values

    # -- one check --------------------------------------------------------------------------
    def check_once(self) -> CheckResult:
        """Sample, decide, and (leader, synced, not dry-run) abort what is overdue."""
        values = self._poll_progress()
        now = self.clock()
        synced = bool(self.synced())
        leader = self.elector.is_leader() if self.elector is not None else True
        result = CheckResult(now, leader, synced)
        self.metrics.synced.set(1 if synced else 0)
        self.metrics.leader.set(1 if leader else 0)
        settings = self.settings.timeout_settings()
        if settings == self._settings:
            settings = self._settings  # the same object: plans compare settings by identity
        self._settings = settings
        live_uids: set[str] = set()
        running = 0
        nearest: float | None = None
        vmi_of, vm_of = self.state.vmi, self.state.vm
        for vmim in self.state.vmims():
            meta = vmim.get("metadata") or {}
            uid = meta.get("uid") or ""
            t = self._tracked.get(uid)
            if t is None or t.vmim is not vmim:
                if ((vmim.get("status") or {}).get("phase")) in FINAL_PHASES:
                    continue
                t = _Tracked(vmim, meta.get("namespace") or "")
                self._tracked[uid] = t
            live_uids.add(uid)
            vmi = vmi_of(t.namespace, t.vmi_name)
            vm = vm_of(t.namespace, t.vmi_name)
            try:
                if (
                    t.plan is None
                    or t.vmi is not vmi
                    or t.vm is not vm
                    or t.settings is not settings
                ):
                    t.vmi, t.vm, t.settings, t.plan = vmi, vm, settings, None
                    t.sampled = _sampling(uid, vmi)
                if t.sampled is not None:
                    self._sample(uid, t.sampled, values, now)
                if t.plan is None:  # raises again at every check while the VMI is malformed
                    timeouts = compute_timeouts(vmi, settings, vm) if vmi is not None else None
                    t.plan = plan(vmim, vmi, vm, settings, timeouts)
                decision = judge(t.plan, self.samples.get(uid, ()), now, self.aborted)
            except InputError as err:  # one malformed VMI must not stop the others
                if uid not in self._bad:
                    log.warning("cannot judge %s: %s", meta.get("name"), err)
                    self._bad.add(uid)
                continue
            result.decisions.append((vmim, decision))
            if decision.action in (WATCH, ABORT):
                running += 1
                deadline = decision.nearest_deadline
                if deadline is not None:
                    nearest = deadline if nearest is None else min(nearest, deadline)
            if decision.action == ABORT and self._act(vmim, vmi, vm, decision, now, leader, synced):
                result.aborted.append(uid)
            elif decision.action == HOLD and decision.held is not None and uid not in self.held:
                self._record_hold(vmim, vmi, decision, now, leader, synced)
        self._forget(live_uids, now)
        self.metrics.migrations_watched.set(len(live_uids))
        self.metrics.migrations_running.set(running)
        self.metrics.seconds_to_deadline.set(float("nan") if nearest is None else nearest - now)
        self.last_check, self.last_result = now, result
        return result

    def _sample(
        self, uid: str, sampled: tuple[tuple[str, str], float | None], values: dict, now: float
    ) -> None:
        """Record data remaining for a migration that has started on its VMI."""
        key, started = sampled
        value = values.get(key)
        if value is None:
            return
        kept = self.samples.get(uid, [])
        kept.append(Sample(now, value))
        self.samples[uid] = prune_samples(kept, now if started is None else started)

    def _act(
        self,
        vmim: dict,
        vmi: dict | None,
        vm: dict | None,
        decision: Decision,
        now: float,
        leader: bool,
        synced: bool,
    ) -> bool:
        meta = vmim.get("metadata") or {}
        uid, ref = meta.get("uid") or "", f"{meta.get('namespace')}/{meta.get('name')}"
        if not synced:
            if not self._unsynced_logged:
                log.warning(
                    "caches not synced: cannot confirm state, aborting nothing (%s overdue)", ref
                )
                self._unsynced_logged = True
            return False
        self._unsynced_logged = False
        if not leader:
            log.debug("%s overdue (%s) but this replica is not the leader", ref, decision.reason)
            return False
        if self.settings.dry_run:
            self.aborted[uid] = 0.0
            self.metrics.aborts.labels(reason=decision.reason, dry_run="true").inc()
            log.warning("dry-run: would abort %s (%s): %s", ref, decision.reason, decision.message)
            return True
        try:
            outcome = actions.abort(self.api, vmim, vmi, vm, decision, now, self.settings.identity)
        except KubeError as err:
            self.metrics.abort_errors.inc()
            log.warning("aborting %s failed, retrying at the next check: %s", ref, err)
            return False
        if not outcome.aborted:
            log.info("not aborting %s: %s", ref, outcome.detail)
            return False
        self.aborted[uid] = 0.0
        self.metrics.aborts.labels(reason=decision.reason, dry_run="false").inc()
        log.warning("aborted %s (%s): %s", ref, decision.reason, decision.message)
        return True

    def _record_hold(
        self,
        vmim: dict,
        vmi: dict | None,
        decision: Decision,
        now: float,
        leader: bool,
        synced: bool,
    ) -> None:
        """Say once why an overdue migration is left alone: a log line, the counter, a Normal
        Event on the VMI. The Event's name is per migration, so after a restart or a takeover
        the API's 409 says it was recorded before: then one log line, no count, no second Event.
        """
        uid, ref = (vmim.get("metadata") or {}).get("uid") or "", _ref(vmim)
        if not synced or not leader or vmi is None:
            return  # the leader, with synced caches, speaks for the enforcer
        self.held.add(uid)
        created = True
        if not self.settings.dry_run:  # dry-run writes nothing
            try:
                created = actions.record_not_aborted(
                    self.api, vmi, uid, decision, now, self.settings.identity
                )
            except KubeError as err:
                log.warning("recording why %s is not aborted failed: %s", ref, err)
        if not created:
            log.info(
                "not aborting %s (%s), recorded before: %s", ref, decision.reason, decision.why
            )
            return
        self.metrics.not_aborted.labels(reason=decision.reason).inc()
        log.info("not aborting %s (%s): %s", ref, decision.reason, decision.message)

    def _forget(self, live_uids: set[str], now: float) -> None:
        for uid in list(self.samples):
            if uid not in live_uids:
                del self.samples[uid]
        self.held &= live_uids
        for uid in list(self._tracked):
            if uid not in live_uids:
                del self._tracked[uid]
        for uid, gone_at in list(self.aborted.items()):
            if uid in live_uids:
                self.aborted[uid] = 0.0
            elif gone_at == 0.0:
                self.aborted[uid] = now
            elif now - gone_at > ABORTED_MEMORY_SECONDS:
                del self.aborted[uid]

    # -- loop and health --------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Check every interval until `stop` is set; a failing check is logged, never fatal."""
        interval = self.settings.check_interval_seconds
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.check_once()
            except Exception:
                log.exception("check failed")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def alive(self) -> bool:
        """The loop checked recently (liveness)."""
        if self.last_check is None:
            return True
        return self.clock() - self.last_check < max(30.0, 5 * self.settings.check_interval_seconds)

    def status(self) -> dict:
        """Readiness detail: ready when caches are synced and the loop runs."""
        synced = bool(self.synced())
        ready = synced and self.last_check is not None and self.alive()
        elector = self.elector
        decisions = self.last_result.decisions if self.last_result else []
        return {
            "ready": ready,
            "informersSynced": synced,
            "lastCheck": self.last_check,
            "dryRun": self.settings.dry_run,
            "leader": elector.is_leader() if elector else True,
            "lease": None
            if elector is None
            else {
                "namespace": elector.namespace,
                "name": elector.name,
                "identity": elector.identity,
                "holder": elector.holder,
                "error": elector.last_error,
            },
            "progressSource": self.progress.to_dict(),
            "migrationsWatched": sum(1 for _, d in decisions if d.action != IGNORE),
            "held": {
                _ref(vmim): {"reason": d.reason, "why": d.why, "overdue": d.held}
                for vmim, d in decisions
                if d.action == HOLD
            },
        }
