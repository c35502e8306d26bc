// An error answer of the aggregated API, in words a person can act on.
//
// migration-guard answers errors as Kubernetes Status objects that also carry `error` (and, for a
// refused migration, `causes`: [{code, message, field}]; docs/extension.md). kube-apiserver answers
// some itself: an RBAC denial (Status, reason Forbidden), an unknown group (Status NotFound "the
// server could not find the requested resource"), an unavailable APIService (plain text
// "service unavailable"). Rancher's proxy adds its own 401 when the session is gone.

export type Operation = 'targets' | 'migration' | 'migrate' | 'abort';

export interface Cause {
  code: string;
  message: string;
  field?: string | null;
}

export interface ErrorView {
  status: number;
  /** One line: what happened. */
  title: string;
  /** What the server said, or what went wrong on the way. */
  message: string;
  /** What to do about it. */
  hint: string;
  /** Every cause of a refusal (422), in the server's order. */
  causes: Cause[];
  /** The same request may succeed later unchanged. */
  retry: boolean;
}

type Body = unknown;

function asObject(value: unknown): Record<string, unknown> | null {
  return value && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : null;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/** The server's own message: migration-guard's `error`, a Status `message`, or a text body. */
export function serverMessage(body: Body): string {
  if (typeof body === 'string') {
    return body.trim();
  }
  const obj = asObject(body);

  if (!obj) {
    return '';
  }

  return text(obj.error) || text(obj.message) || text(obj.data);
}

function toCause(raw: unknown): Cause | null {
  const c = asObject(raw);

  if (!c) {
    return null;
  }

  return {
    code:    text(c.code) || text(c.reason) || 'Denied',
    message: text(c.message),
    field:   text(c.field) || null,
  };
}

function causeList(raw: unknown): Cause[] {
  return Array.isArray(raw) ? raw.map(toCause).filter((c): c is Cause => c !== null) : [];
}

/** Every cause a body names: migration-guard's `causes`, else a Status's `details.causes`. */
export function causesOf(body: Body): Cause[] {
  const obj = asObject(body);

  if (!obj) {
    return [];
  }
  const own = causeList(obj.causes);

  return own.length ? own : causeList(asObject(obj.details)?.causes);
}

/** A refused target node's own reasons (migration-guard's `targetReasons`). */
export function targetReasonsOf(body: Body): Cause[] {
  return causeList(asObject(body)?.targetReasons);
}

const NOT_SERVED = /could not find the requested resource|404 page not found/i;

const WHAT: Record<Operation, string> = {
  targets:   'read where this VM may migrate',
  migration: 'read this VM\'s migration',
  migrate:   'migrate this VM',
  abort:     'abort this VM\'s migration',
};

/**
 * The words for an error answer. `status` 0 means no answer at all (network error); `body` is the
 * parsed JSON, or the text, of the answer.
 */
export function describeError(status: number, body: Body, op: Operation): ErrorView {
  const message = serverMessage(body);
  const causes = causesOf(body);
  const base = {
    status, message, causes, retry: false
  };

  switch (status) {
  case 0:
    return {
      ...base,
      title:   'The cluster could not be reached',
      message: message || 'no answer from the server',
      hint:    'Check your connection to Rancher or Harvester, then try again.',
      retry:   true,
    };
  case 401:
    return {
      ...base,
      title: 'You are not signed in (401 Unauthorized)',
      hint:  'Your session has ended or carries no identity the cluster accepts: sign in again.',
    };
  case 403:
    return {
      ...base,
      title: `You may not ${ WHAT[op] } (403 Forbidden)`,
      hint:  op === 'migrate' || op === 'abort' ? 'Ask a cluster administrator for the ClusterRole migration-guard:migrate and KubeVirt\'s kubevirt.io:migrate in this namespace.' : 'Ask a cluster administrator for the view role (or migration-guard:view) in this namespace.',
    };
  case 404:
    if (NOT_SERVED.test(message)) {
      return {
        ...base,
        title: 'migration-guard is not installed on this cluster (404)',
        hint:  'The API subresources.migration-guard.io/v1 is not served: install the migration-guard chart with aggregatedApi.enabled=true.',
      };
    }
    if (op === 'migration') {
      return {
        ...base,
        title: 'No migration to show (404)',
        hint:  'This VM has never migrated, or it no longer exists.',
      };
    }

    return {
      ...base,
      title: 'Virtual machine not found (404)',
      hint:  'It may have been deleted: reload the list.',
    };
  case 409:
    return {
      ...base,
      title: op === 'abort' ? 'There is no migration to abort (409 Conflict)' : 'The migration changed meanwhile (409 Conflict)',
      hint:  'Reload to see the migration as it is now.',
      retry: true,
    };
  case 422:
    return {
      ...base,
      title: op === 'migrate' ? 'The migration was refused (422)' : 'The request was refused (422)',
      hint:  causes.length ? 'Fix every cause below, or choose another node.' : 'Fix what the message says, then try again.',
    };
  case 503:
    return {
      ...base,
      title: 'migration-guard is not ready: its cache is syncing, try again (503)',
      hint:  'Try again in a few seconds. If it lasts, check the migration-guard pods and `kubectl get apiservice v1.subresources.migration-guard.io`.',
      retry: true,
    };
  case 502:
    return {
      ...base,
      title: 'The Kubernetes API answered migration-guard with an unexpected error (502)',
      hint:  'Try again; if it lasts, look at the migration-guard server\'s log.',
      retry: true,
    };
  default:
    return {
      ...base,
      title: `Unexpected answer from the cluster (HTTP ${ status })`,
      hint:  'Try again; if it lasts, look at the migration-guard server\'s log.',
      retry: status >= 500,
    };
  }
}
