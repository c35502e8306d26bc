// Durations and countdowns, from RFC 3339 timestamps as the backend writes them.

const pad = (n: number) => String(n).padStart(2, '0');

/** 45 -> "45s", 725 -> "12m 05s", 3725 -> "1h 02m 05s", 183600 -> "2d 03h 00m". */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;

  if (days) {
    return `${ days }d ${ pad(hours) }h ${ pad(minutes) }m`;
  }
  if (hours) {
    return `${ hours }h ${ pad(minutes) }m ${ pad(seconds) }s`;
  }
  if (minutes) {
    return `${ minutes }m ${ pad(seconds) }s`;
  }

  return `${ seconds }s`;
}

export function parseTime(value: string | null | undefined): number | null {
  if (!value) {
    return null;
  }
  const ms = Date.parse(value);

  return Number.isNaN(ms) ? null : ms;
}

export interface Countdown {
  /** Whole seconds until the deadline; negative once it has passed. */
  secondsLeft: number;
  overdue: boolean;
  /** "in 1h 46m 40s", or "passed 12s ago". */
  text: string;
}

/** Time left until `deadline` at `nowMs`; null without a deadline. */
export function countdown(deadline: string | null | undefined, nowMs: number): Countdown | null {
  const at = parseTime(deadline);

  if (at === null) {
    return null;
  }
  const secondsLeft = Math.floor((at - nowMs) / 1000);
  const overdue = secondsLeft < 0;

  return {
    secondsLeft,
    overdue,
    text: overdue ? `passed ${ formatDuration(-secondsLeft) } ago` : `in ${ formatDuration(secondsLeft) }`,
  };
}

/**
 * Elapsed seconds of a migration shown live: the server's `elapsedSeconds` at `fetchedAtMs`, plus
 * the time since while it runs. A finished one stays as the server said.
 */
export function liveElapsed(elapsedSeconds: number | null | undefined, final: boolean | null | undefined, fetchedAtMs: number, nowMs: number): number | null {
  if (typeof elapsedSeconds !== 'number') {
    return null;
  }
  if (final) {
    return elapsedSeconds;
  }

  return elapsedSeconds + Math.max(0, Math.floor((nowMs - fetchedAtMs) / 1000));
}
