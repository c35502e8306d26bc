"""What the enforcer does with one migration, and why: a pure function of objects, samples and time.

Why pure: every timing rule of the enforcer (completion deadline, progress timeout, "never abort
early after a restart", "never touch a final or already-deleted migration") lives here, so unit tests
can drive it with plain dicts and a fake clock, and the I/O layers (runner, actions) stay thin.

Rules (DESIGN "Timeout enforcer contract"):
- The completion deadline counts from the VMI's `status.migrationState.startTimestamp`, and only
  when that state belongs to this VMIM (`migrationUid`). Its length comes from
  `webhook.rules.compute_timeouts` (data GiB x per-GiB setting, per-VM overrides included).
- The progress timeout is judged only from samples this process took since the migration started:
  the reference point is the last sample where data remaining went down (or the first sample), and
  the migration is stalled when the newest sample is `progress_timeout` or more after it. Time
  without samples proves nothing, so a restart or an unreachable source never aborts early.
- Never aborted (HOLD, `hold_reason`): a migration in post-copy (`migrationState.mode: PostCopy`:
  the guest already runs on the target, an abort would lose it), and one KubeVirt is already
  aborting (the VMIM is being deleted, `abortRequested`, or an `abortStatus`). Its deadlines are
  still computed, so a held migration that is overdue says which limit it passed (`held`).
- `mode: Paused` (allowWorkloadDisruption paused the guest) is still aborted: the guest resumes on
  the source. Its completion limit is doubled, as KubeVirt's migration monitor doubles its own
  when it pauses the guest; otherwise the enforcer would undo every pause the moment it happened.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from webhook.annotations import ABORT as ABORT_ANNOTATION
from webhook.rules.model import Timeouts, TimeoutSettings
from webhook.rules.timeouts import compute_timeouts

FINAL_PHASES = frozenset({"Succeeded", "Failed"})
REASON_TIMED_OUT = "MigrationTimedOut"
REASON_STALLED = "MigrationStalled"

IGNORE = "ignore"  # nothing to enforce: final, being deleted, already aborted, VMI gone
PENDING = "pending"  # not started yet (no migrationState for this VMIM): no deadline runs
WATCH = "watch"  # running within its limits
ABORT = "abort"  # overdue: record why, then delete the VMIM
HOLD = "hold"  # running, never aborted: post-copy, or KubeVirt is aborting it already

# Why a migration is held (a bounded metric label and the reason in the record)
HOLD_POST_COPY = "PostCopy"
HOLD_ABORTING = "AbortInProgress"
HOLD_REASONS = (HOLD_POST_COPY, HOLD_ABORTING)
REASON_NOT_ABORTED = "MigrationNotAborted"  # the Event recorded for an overdue held migration

# KubeVirt's MigrationMode values (kubevirt.io/api core/v1)
MODE_POST_COPY = "PostCopy"
MODE_PAUSED = "Paused"
PAUSED_COMPLETION_FACTOR = 2  # KubeVirt's monitor: acceptableCompletionTime *= 2 on pausing

GIB = 1024**3


@dataclass(frozen=True)
class Sample:
    """Data remaining of one migration, as this process saw it at `at` (unix seconds)."""

    at: float
    remaining_bytes: int


@dataclass(frozen=True)
class Decision:
    """The verdict for one VMIM at one instant, with everything a log line or event needs."""

    action: str
    why: str
    reason: str | None = None
    message: str = ""
    timeouts: Timeouts | None = None
    started_at: float | None = None
    completion_deadline: float | None = None
    progress_deadline: float | None = None
    remaining_bytes: int | None = None
    held: str | None = None  # HOLD: the abort reason it would otherwise get (a deadline passed)

    @property
    def nearest_deadline(self) -> float | None:
        """The earlier of the completion and progress deadlines (unix seconds), if any."""
        completion, progress = self.completion_deadline, self.progress_deadline
        if completion is None or progress is None:
            return progress if completion is None else completion
        return completion if completion <= progress else progress


def parse_time(value: object) -> float | None:
    """RFC3339 timestamp as the API writes it -> unix seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_time_str(value)


@functools.lru_cache(maxsize=32768)  # read for every running migration at every check
def _parse_time_str(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def point_and_latest(
    samples: Sequence[Sample], since: float
) -> tuple[Sample | None, Sample | None]:
    """Among samples at >= since: where data remaining last went down (or the first), and the
    newest. One walk, since it runs for every migration on every check."""
    point: Sample | None = None
    latest: Sample | None = None
    for sample in samples:
        if sample.at < since:
            continue
        if point is None or sample.remaining_bytes < point.remaining_bytes:
            point = sample
        if latest is None or sample.at > latest.at:
            latest = sample
    return point, latest


def progress_point(samples: Sequence[Sample], since: float) -> Sample | None:
    """The sample where data remaining last went down (or the first), among samples at >= since."""
    return point_and_latest(samples, since)[0]


def prune_samples(samples: Sequence[Sample], since: float) -> list[Sample]:
    """Only the samples that can still change a verdict: the progress point and the newest one.

    `decide` reads nothing else, and a sample between them can never become either (a later
    point needs less data remaining than the current one, a newer sample a later time), so the
    runner keeps at most two samples per migration however long it runs.
    """
    point, latest = point_and_latest(samples, since)
    if point is None or latest is None:
        return []
    return [point] if latest is point else [point, latest]


def format_bytes(value: int | None) -> str:
    """Bytes as GiB with two decimals ('unknown' without a value): what an operator reads."""
    if value is None:
        return "unknown"
    return f"{value / GIB:.2f} GiB"


_ALREADY_ABORTED = Decision(IGNORE, "migration was already aborted by this enforcer")
_BEING_DELETED = Decision(IGNORE, "migration is already being deleted")


@dataclass(frozen=True)
class Plan:
    """What `decide` reads from the VMIM, VMI and VM: computed once per change of those objects.

    Objects in the ClusterState are replaced, never modified, so the runner remembers one plan
    per migration while its objects are the same and judges it against samples and time on every
    check. `early` / `late`: the verdict when it depends on neither samples nor time (checked
    before / after the aborted-UID check); otherwise the deadlines' inputs.
    """

    uid: str
    early: Decision | None = None
    late: Decision | None = None
    timeouts: Timeouts | None = None
    started_at: float = 0.0
    name: str = ""
    vmi_name: str | None = None
    hold: str | None = None  # HOLD_POST_COPY / HOLD_ABORTING: never aborted
    hold_why: str = ""
    mode: str = ""  # migrationState.mode as the source handler reports it

    @property
    def paused(self) -> bool:
        """KubeVirt paused the guest to complete (allowWorkloadDisruption)."""
        return self.mode == MODE_PAUSED

    @property
    def completion_limit(self) -> int:
        """Seconds to complete, doubled while paused as KubeVirt doubles its own."""
        assert self.timeouts is not None
        factor = PAUSED_COMPLETION_FACTOR if self.paused else 1
        return self.timeouts.completion_timeout_seconds * factor


def hold_reason(vmim: dict, state: dict) -> tuple[str, str] | None:
    """(reason, why) when this started migration must not be aborted, else None.

    `state`: the VMI's `migrationState`, already known to belong to `vmim`. Post-copy comes
    first: it is the reason an abort would do harm, whatever else is going on.
    """
    if state.get("mode") == MODE_POST_COPY:
        return HOLD_POST_COPY, (
            "it is in post-copy: the guest already runs on the target, an abort would lose it"
        )
    if state.get("abortStatus"):
        return (
            HOLD_ABORTING,
            f"KubeVirt is already aborting it (abortStatus {state['abortStatus']})",
        )
    if state.get("abortRequested"):
        return HOLD_ABORTING, "KubeVirt is already aborting it (abortRequested)"
    if (vmim.get("metadata") or {}).get("deletionTimestamp"):
        return HOLD_ABORTING, "KubeVirt is already aborting it (the VMIM is being deleted)"
    return None


def aborted_by_annotation(vm: dict | None, uid: str) -> bool:
    """The VM's abort record (written before this enforcer's delete) names this migration:
    a restarted enforcer knows its own abort from one somebody else started."""
    text = (((vm or {}).get("metadata") or {}).get("annotations") or {}).get(ABORT_ANNOTATION)
    if not text:
        return False
    try:
        record = json.loads(text)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("migrationUID") == uid


def plan(
    vmim: dict,
    vmi: dict | None,
    vm: dict | None,
    settings: TimeoutSettings,
    timeouts: Timeouts | None = None,
) -> Plan:
    """Everything of `decide` that depends on the objects alone (see Plan).

    `timeouts`: `compute_timeouts(vmi, settings, vm)` when the caller already has it.
    """
    meta = vmim.get("metadata") or {}
    uid = meta.get("uid") or ""
    phase = (vmim.get("status") or {}).get("phase") or ""
    if phase in FINAL_PHASES:
        return Plan(uid, early=Decision(IGNORE, f"migration is final ({phase})"))
    deleting = bool(meta.get("deletionTimestamp"))
    if deleting and aborted_by_annotation(vm, uid):
        return Plan(uid, late=_ALREADY_ABORTED)
    if vmi is None:
        return Plan(uid, late=Decision(IGNORE, "VMI does not exist"))
    state = (vmi.get("status") or {}).get("migrationState") or {}
    if state.get("migrationUid") != uid:
        if deleting:
            return Plan(uid, late=_BEING_DELETED)
        return Plan(uid, late=Decision(PENDING, "migration has not started on the VMI yet"))
    if state.get("completed") or state.get("failed"):
        return Plan(uid, late=Decision(IGNORE, "migration finished on the VMI"))
    started_at = parse_time(state.get("startTimestamp"))
    if started_at is None:
        if deleting:
            return Plan(uid, late=_BEING_DELETED)
        return Plan(uid, late=Decision(PENDING, "migration has no startTimestamp yet"))
    if timeouts is None:
        timeouts = compute_timeouts(vmi, settings, vm)
    hold, hold_why = hold_reason(vmim, state) or (None, "")
    return Plan(
        uid,
        timeouts=timeouts,
        started_at=started_at,
        name=f"{meta.get('namespace')}/{meta.get('name')}",
        vmi_name=(vmi.get("metadata") or {}).get("name"),
        hold=hold,
        hold_why=hold_why,
        mode=state.get("mode") or "",
    )


def judge(p: Plan, samples: Sequence[Sample], now: float, aborted: Container[str] = ()) -> Decision:
    """The verdict of plan `p` at `now`, given this process's samples for its VMI."""
    if p.early is not None:
        return p.early
    if p.uid in aborted:
        return _ALREADY_ABORTED
    if p.late is not None:
        return p.late
    verdict = _by_deadlines(p, samples, now)
    return verdict if p.hold is None else _held(p, verdict, now)


def _by_deadlines(p: Plan, samples: Sequence[Sample], now: float) -> Decision:
    """ABORT when a deadline passed, else WATCH: the timing rules alone."""
    timeouts, started_at = p.timeouts, p.started_at
    assert timeouts is not None  # set whenever no verdict is settled
    limit = p.completion_limit
    completion_deadline = started_at + limit
    point, latest = point_and_latest(samples, started_at)
    progress_deadline = None if point is None else point.at + timeouts.progress_timeout_seconds
    remaining = None if latest is None else latest.remaining_bytes
    elapsed = now - started_at
    paused = " (doubled: KubeVirt paused the guest)" if p.paused else ""
    if now >= completion_deadline:
        message = (
            f"Migration {p.name} of VM {p.vmi_name} exceeded its completion timeout: "
            f"{timeouts.data_gib} GiB of data, limit {limit} s{paused}, "
            f"elapsed {elapsed:.0f} s, data remaining {format_bytes(remaining)}"
        )
        return Decision(
            ABORT,
            "completion deadline passed",
            REASON_TIMED_OUT,
            message,
            timeouts,
            started_at,
            completion_deadline,
            progress_deadline,
            remaining,
        )
    if point is not None and latest is not None and progress_deadline is not None:
        still = latest.at - point.at
        if latest.at >= progress_deadline:
            message = (
                f"Migration {p.name} of VM {p.vmi_name} made no progress for {still:.0f} s "
                f"(limit {timeouts.progress_timeout_seconds} s): {timeouts.data_gib} GiB of "
                f"data, completion limit {limit} s{paused}, "
                f"elapsed {elapsed:.0f} s, data remaining {format_bytes(remaining)}"
            )
            return Decision(
                ABORT,
                "no progress",
                REASON_STALLED,
                message,
                timeouts,
                started_at,
                completion_deadline,
                progress_deadline,
                remaining,
            )
    why = "within its limits"
    if paused:
        why = "guest paused by KubeVirt to complete: completion limit doubled, as KubeVirt does"
    return Decision(
        WATCH,
        why,
        None,
        "",
        timeouts,
        started_at,
        completion_deadline,
        progress_deadline,
        remaining,
    )


_PASSED = {REASON_TIMED_OUT: "completion deadline", REASON_STALLED: "progress deadline"}


def _held(p: Plan, verdict: Decision, now: float) -> Decision:
    """HOLD in place of `verdict`: the same deadlines; `held` and a message when one passed."""
    held = verdict.reason if verdict.action == ABORT else None
    if held is None:
        return replace(verdict, action=HOLD, why=p.hold_why, reason=p.hold)
    timeouts = verdict.timeouts
    assert timeouts is not None
    passed = _PASSED[held]
    deadline = (
        verdict.completion_deadline if held == REASON_TIMED_OUT else verdict.progress_deadline
    ) or now
    message = (
        f"Migration {p.name} of VM {p.vmi_name} was not aborted although its {passed} passed "
        f"{now - deadline:.0f} s ago (mode {p.mode or 'unknown'}): {p.hold_why}. "
        f"{timeouts.data_gib} GiB of data, completion limit {p.completion_limit} s, progress limit "
        f"{timeouts.progress_timeout_seconds} s, elapsed {now - p.started_at:.0f} s, "
        f"data remaining {format_bytes(verdict.remaining_bytes)}"
    )
    why = f"{p.hold_why}; {passed} passed"
    return replace(verdict, action=HOLD, why=why, reason=p.hold, message=message, held=held)


def decide(
    vmim: dict,
    vmi: dict | None,
    vm: dict | None,
    samples: Sequence[Sample],
    now: float,
    settings: TimeoutSettings,
    aborted: Container[str] = (),
    timeouts: Timeouts | None = None,
) -> Decision:
    """What to do with `vmim` at `now`; `samples` are this process's samples for its VMI.

    `timeouts`: `compute_timeouts(vmi, settings, vm)` when the caller already has it. The same as
    `judge(plan(...), ...)`, which the runner uses to plan once per object change.
    """
    return judge(plan(vmim, vmi, vm, settings, timeouts), samples, now, aborted)
