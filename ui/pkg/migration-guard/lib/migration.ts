// `GET .../migration` (docs/extension.md), as the Migration tab shows it.

import { Countdown, countdown, formatDuration, liveElapsed } from './time';
import { Progress, progress } from './progress';

export interface KubeVirtLimits {
  dataBytes?: number;
  completionTimeoutSeconds?: number;
  progressTimeoutSeconds?: number;
  completionAction?: string;
  source?: string;
}

export interface MigrationStatus {
  name?: string | null;
  uid?: string | null;
  phase?: string | null;
  final?: boolean | null;
  sourceNode?: string | null;
  targetNode?: string | null;
  startTimestamp?: string | null;
  endTimestamp?: string | null;
  elapsedSeconds?: number | null;
  completionDeadline?: string | null;
  completionTimeoutSeconds?: number | null;
  progressTimeoutSeconds?: number | null;
  kubevirt?: KubeVirtLimits | null;
  kubevirtCompletionDeadline?: string | null;
  firesFirst?: { completion?: string; progress?: string } | null;
  dataRemainingBytes?: number | null;
  requestedBy?: string | null;
  failureReason?: string | null;
  abortStatus?: string | null;
  abort?: Record<string, unknown> | null;
  conditions?: Record<string, unknown>[];
  why?: string | null;
}

/** Phases in which deleting the VMIM aborts the migration (extension/status.py). */
export const ABORTABLE_PHASES = ['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'];

export interface DeadlineView {
  who: 'migration-guard' | 'KubeVirt';
  deadline: string;
  timeoutSeconds: number | null;
  /** What happens then: migration-guard aborts; KubeVirt aborts, or switches to post-copy or pauses. */
  action: string;
  /** null once the migration is over: no countdown then. */
  countdown: Countdown | null;
  firesFirst: boolean;
}

export interface MigrationView {
  name: string;
  phase: string;
  final: boolean;
  succeeded: boolean;
  failed: boolean;
  abortable: boolean;
  sourceNode: string;
  targetNode: string;
  elapsedText: string;
  deadlines: DeadlineView[];
  progress: Progress;
  why: string | null;
  requestedBy: string | null;
}

function first(firesFirst: MigrationStatus['firesFirst'], who: 'migration-guard' | 'kubevirt'): boolean {
  const said = firesFirst?.completion;

  return said === who || said === 'same';
}

export function migrationView(m: MigrationStatus, fetchedAtMs: number, nowMs: number): MigrationView {
  const phase = m.phase || 'Unknown';
  const final = m.final === true || phase === 'Succeeded' || phase === 'Failed';
  const elapsed = liveElapsed(m.elapsedSeconds, final, fetchedAtMs, nowMs);
  const deadlines: DeadlineView[] = [];

  if (m.completionDeadline) {
    deadlines.push({
      who:            'migration-guard',
      deadline:       m.completionDeadline,
      timeoutSeconds: m.completionTimeoutSeconds ?? null,
      action:         'abort',
      countdown:      final ? null : countdown(m.completionDeadline, nowMs),
      firesFirst:     !m.firesFirst || first(m.firesFirst, 'migration-guard'),
    });
  }
  if (m.kubevirtCompletionDeadline) {
    deadlines.push({
      who:            'KubeVirt',
      deadline:       m.kubevirtCompletionDeadline,
      timeoutSeconds: m.kubevirt?.completionTimeoutSeconds ?? null,
      action:         m.kubevirt?.completionAction || 'abort',
      countdown:      final ? null : countdown(m.kubevirtCompletionDeadline, nowMs),
      firesFirst:     first(m.firesFirst, 'kubevirt'),
    });
  }

  return {
    name:        m.name || '(VMIM gone)',
    phase,
    final,
    succeeded:   phase === 'Succeeded',
    failed:      phase === 'Failed',
    abortable:   !final && ABORTABLE_PHASES.includes(phase),
    sourceNode:  m.sourceNode || '—',
    targetNode:  m.targetNode || 'not chosen yet',
    elapsedText: elapsed === null ? 'not started' : formatDuration(elapsed),
    deadlines,
    progress:    progress(m.dataRemainingBytes, m.kubevirt?.dataBytes, phase),
    why:         m.why || null,
    requestedBy: m.requestedBy || null,
  };
}
