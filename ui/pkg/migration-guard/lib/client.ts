// The four calls the UI makes, over a transport that is the dashboard's store in Rancher and
// Harvester, or `fetch` in the harness page.

import { ClusterContext, vmSubresourceUrl } from './paths';
import { Operation } from './errors';
import { Report } from './report';
import { MigrationStatus } from './migration';

export interface HttpRequest {
  method: 'GET' | 'PUT';
  url: string;
  data?: unknown;
}

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** Resolves every HTTP answer, success or not; rejects only when there is no answer. */
export type Transport = (req: HttpRequest) => Promise<HttpAnswer>;

export class ApiError extends Error {
  status: number;
  body: unknown;
  op: Operation;

  constructor(status: number, body: unknown, op: Operation) {
    super(`HTTP ${ status }`);
    this.status = status;
    this.body = body;
    this.op = op;
  }
}

export interface Started {
  name: string;
  namespace: string;
  uid: string;
  vmiName: string;
  targetNode: string | null;
  timeouts: Record<string, unknown> | null;
}

export interface Aborted {
  aborted: string;
  uid: string;
  phase: string;
  vm: string;
}

export class MigrationGuardClient {
  constructor(private transport: Transport, private cluster: ClusterContext) {}

  private async call(op: Operation, method: HttpRequest['method'], namespace: string, name: string, sub: Parameters<typeof vmSubresourceUrl>[3], data?: unknown) {
    const url = vmSubresourceUrl(this.cluster, namespace, name, sub);
    let answer: HttpAnswer;

    try {
      answer = await this.transport({
        method, url, data
      });
    } catch (err: unknown) {
      throw new ApiError(0, { error: err instanceof Error ? err.message : String(err) }, op);
    }
    if (answer.status < 200 || answer.status >= 300) {
      throw new ApiError(answer.status, answer.body, op);
    }

    return answer.body;
  }

  async targets(namespace: string, name: string): Promise<Report> {
    return await this.call('targets', 'GET', namespace, name, 'migrationtargets') as Report;
  }

  async migration(namespace: string, name: string): Promise<MigrationStatus> {
    const body = await this.call('migration', 'GET', namespace, name, 'migration') as { migration?: MigrationStatus } | null;

    return body?.migration || {};
  }

  async migrate(namespace: string, name: string, nodeName: string): Promise<Started> {
    return await this.call('migrate', 'PUT', namespace, name, 'migrate', { nodeName }) as Started;
  }

  async abort(namespace: string, name: string): Promise<Aborted> {
    return await this.call('abort', 'PUT', namespace, name, 'abortmigration', {}) as Aborted;
  }
}

function parseBody(textBody: string): unknown {
  if (!textBody) {
    return {};
  }
  try {
    return JSON.parse(textBody);
  } catch (e) {
    return textBody;
  }
}

/** A transport over `fetch` (the harness page; same-origin cookies, JSON in and out). */
export function fetchTransport(fetchFn: typeof fetch, headers: Record<string, string> = {}): Transport {
  return async({ method, url, data }) => {
    const res = await fetchFn(url, {
      method,
      credentials: 'same-origin',
      headers:     {
        Accept: 'application/json', ...(data === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers
      },
      body: data === undefined ? undefined : JSON.stringify(data),
    });

    return { status: res.status, body: parseBody(await res.text()) };
  };
}

/**
 * A transport over the dashboard store's `request` action (Rancher adds the session and CSRF
 * header). It resolves with the body and rejects with the error body, both carrying `_status`;
 * a rejection without one had no answer (axios' error with no `response`).
 */
export function storeTransport(dispatch: (action: string, payload: unknown) => Promise<unknown>, storeName: string): Transport {
  return async({ method, url, data }) => {
    try {
      const out = await dispatch(`${ storeName }/request`, {
        url, method, data, redirectUnauthorized: false
      }) as { _status?: number } | null;

      return { status: out?._status || 200, body: out };
    } catch (err: unknown) {
      const e = (err || {}) as { _status?: number, status?: number, response?: { status?: number, data?: unknown } };
      const status = e._status || e.response?.status || e.status;

      if (!status) {
        throw err;
      }

      return { status, body: e.response?.data ?? err };
    }
  };
}
