// How much of a migration's data is copied, from KubeVirt's data-remaining figure.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 8589934592 -> "8 GiB", 1610612736 -> "1.5 GiB". */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;

  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = value >= 100 || unit === 0 ? Math.round(value).toString() : (Math.round(value * 10) / 10).toString();

  return `${ shown } ${ UNITS[unit] }`;
}

export interface Progress {
  /** Copied share, 0..1; null when the total is not known. */
  fraction: number | null;
  percent: number | null;
  remainingBytes: number | null;
  totalBytes: number | null;
  text: string;
}

/**
 * `remaining` bytes still to copy of `total` (the data the migration copies). Guest memory is
 * dirtied while it is copied, so remaining may exceed total early on: that counts as nothing
 * copied yet. A Succeeded migration is complete whatever the last figure said.
 */
export function progress(remaining: number | null | undefined, total: number | null | undefined, phase?: string | null): Progress {
  const rem = typeof remaining === 'number' && remaining >= 0 ? remaining : null;
  const tot = typeof total === 'number' && total > 0 ? total : null;

  if (phase === 'Succeeded') {
    return {
      fraction: 1, percent: 100, remainingBytes: 0, totalBytes: tot, text: tot ? `all ${ formatBytes(tot) } copied` : 'all data copied'
    };
  }
  if (rem === null) {
    return {
      fraction: null, percent: null, remainingBytes: null, totalBytes: tot, text: 'no progress figure (no progress source for migration-guard)'
    };
  }
  if (tot === null) {
    return {
      fraction: null, percent: null, remainingBytes: rem, totalBytes: null, text: `${ formatBytes(rem) } left to copy`
    };
  }
  const fraction = Math.min(1, Math.max(0, 1 - rem / tot));
  const percent = Math.floor(fraction * 100);

  return {
    fraction, percent, remainingBytes: rem, totalBytes: tot, text: `${ formatBytes(rem) } of ${ formatBytes(tot) } left to copy (${ percent }% copied)`
  };
}
