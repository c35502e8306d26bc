import { apiRoot, clusterPrefix, vmSubresourceUrl } from '../lib/paths';
import { causesOf, describeError, serverMessage } from '../lib/errors';
import {
  canMigrate, codeTitle, CODE_TITLES, nodeRows, summaryLine
} from '../lib/report';
import { countdown, formatDuration, liveElapsed } from '../lib/time';
import { formatBytes, progress } from '../lib/progress';
import { migrationView } from '../lib/migration';
import { ApiError, fetchTransport, MigrationGuardClient, storeTransport } from '../lib/client';
import { clientFromStore, vmRef } from '../lib/dashboard';
import {
  BLOCKERS, cdromReport, FakeApi, NODE_REASONS, reportWithEveryReason, runningMigration, status, T0
} from './fixtures';

const STANDALONE = { isMultiCluster: false };
const RANCHER = { isMultiCluster: true, clusterId: 'c-m-7x2kq' };

describe('paths: the URL base', () => {
  it('is /apis on a standalone Harvester', () => {
    expect(clusterPrefix(STANDALONE)).toBe('');
    expect(apiRoot(STANDALONE)).toBe('/apis/subresources.migration-guard.io/v1');
    expect(vmSubresourceUrl(STANDALONE, 'default', 'clean-vm', 'migrationtargets'))
      .toBe('/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migrationtargets');
  });

  it('goes through Rancher\'s cluster proxy when Harvester is managed by Rancher', () => {
    expect(vmSubresourceUrl(RANCHER, 'vms', 'db-1', 'abortmigration'))
      .toBe('/k8s/clusters/c-m-7x2kq/apis/subresources.migration-guard.io/v1/namespaces/vms/virtualmachines/db-1/abortmigration');
  });

  it('escapes what it puts in a path, and refuses what it cannot address', () => {
    expect(vmSubresourceUrl({ isMultiCluster: true, clusterId: 'a/b' }, 'n s', 'v?m', 'migration'))
      .toBe('/k8s/clusters/a%2Fb/apis/subresources.migration-guard.io/v1/namespaces/n%20s/virtualmachines/v%3Fm/migration');
    expect(() => clusterPrefix({ isMultiCluster: true, clusterId: null })).toThrow(/no cluster id/);
    expect(() => vmSubresourceUrl(STANDALONE, '', 'vm', 'migration')).toThrow(/namespace and a name/);
  });
});

describe('errors: an answer in words', () => {
  it.each([
    [401, /not signed in/, /sign in again/],
    [403, /may not read where this VM may migrate/, /view role/],
    [503, /cache is syncing, try again/, /few seconds/],
    [502, /unexpected error/, /log/],
    [0, /could not be reached/, /connection/],
    [418, /HTTP 418/, /log/],
  ])('%i', (code, title, hint) => {
    const view = describeError(code, status(code, 'X', 'the server said so'), 'targets');

    expect(view.title).toMatch(title);
    expect(view.hint).toMatch(hint);
    expect(view.status).toBe(code);
  });

  it('keeps the server\'s message: migration-guard\'s error, a Status message, or a text body', () => {
    expect(serverMessage(status(403, 'Forbidden', "user 'bob' may not get virtualmachines.kubevirt.io 'vm1' in namespace 'ns1'")))
      .toBe("user 'bob' may not get virtualmachines.kubevirt.io 'vm1' in namespace 'ns1'");
    expect(serverMessage({ kind: 'Status', message: 'virtualmachines.subresources.migration-guard.io "vm1" is forbidden' }))
      .toMatch(/is forbidden/);
    expect(serverMessage('service unavailable\n')).toBe('service unavailable');
    expect(serverMessage({ data: 'service unavailable' })).toBe('service unavailable');
    expect(serverMessage(null)).toBe('');
  });

  it('names the migrate role for a refused migrate or abort', () => {
    expect(describeError(403, status(403, 'Forbidden', 'no'), 'migrate').hint).toMatch(/migration-guard:migrate/);
    expect(describeError(403, status(403, 'Forbidden', 'no'), 'abort').title).toMatch(/abort this VM's migration/);
  });

  it('tells an unknown VM, a VM that never migrated and an API that is not installed apart', () => {
    expect(describeError(404, status(404, 'NotFound', 'VirtualMachine default/x not found'), 'targets').title).toMatch(/Virtual machine not found/);
    expect(describeError(404, status(404, 'NotFound', 'VirtualMachine default/x has never migrated'), 'migration').title).toMatch(/No migration to show/);
    expect(describeError(404, status(404, 'NotFound', 'the server could not find the requested resource'), 'migration').title).toMatch(/not installed/);
  });

  it('lists every cause of a refusal, from migration-guard\'s causes or a Status\'s details', () => {
    const body = status(422, 'Invalid', 'live migration of VM default/cdrom-vm is not allowed', {
      causes: [
        {
          code: 'CDROMVolume', message: BLOCKERS.CDROMVolume.message, field: 'spec.domain.devices.disks[1]'
        },
        {
          code: 'TargetNotEligible', message: "target node 'harvester-node-1' cannot receive VM default/cdrom-vm", field: null
        },
      ]
    });
    const view = describeError(422, body, 'migrate');

    expect(view.title).toMatch(/refused/);
    expect(view.causes.map((c) => c.code)).toEqual(['CDROMVolume', 'TargetNotEligible']);
    expect(view.causes[0].field).toBe('spec.domain.devices.disks[1]');
    expect(causesOf({
      details: {
        causes: [{
          reason: 'FieldValueInvalid', message: 'bad', field: 'spec.vmiName'
        }]
      }
    }))
      .toEqual([{
        code: 'FieldValueInvalid', message: 'bad', field: 'spec.vmiName'
      }]);
  });

  it('409 on abort says there is nothing to abort', () => {
    expect(describeError(409, status(409, 'Conflict', 'no migration in progress'), 'abort').title).toMatch(/no migration to abort/);
  });
});

describe('report: nodes and blockers', () => {
  it('puts the eligible nodes first, then the excluded ones, each by name', () => {
    const names = nodeRows(reportWithEveryReason()).map((r) => `${ r.name }:${ r.eligible }`);

    expect(names.slice(0, 2)).toEqual(['node-a:true', 'node-z:true']);
    expect(names.slice(2).every((n) => n.endsWith(':false'))).toBe(true);
    expect(names.slice(2)).toEqual([...names.slice(2)].sort());
  });

  it('sorts node names as numbers where they are numbers', () => {
    const rows = nodeRows({
      ...cdromReport(),
      nodes: [{
        name: 'node-10', eligible: true, reasons: []
      }, {
        name: 'node-9', eligible: true, reasons: []
      }]
    });

    expect(rows.map((r) => r.name)).toEqual(['node-9', 'node-10']);
  });

  it('has a title for every node reason and blocker code, and shows unknown codes as they are', () => {
    for (const code of [...Object.keys(NODE_REASONS), ...Object.keys(BLOCKERS)]) {
      expect(CODE_TITLES[code]).toBeTruthy();
    }
    expect(codeTitle('SomethingNew')).toBe('SomethingNew');
  });

  it('cannot migrate with a blocker or without an eligible node, unless the VM is exempt', () => {
    expect(canMigrate(cdromReport())).toBe(false);
    expect(canMigrate(reportWithEveryReason())).toBe(true);
    expect(canMigrate({ ...reportWithEveryReason(), eligibleNodes: [] })).toBe(false);
    expect(canMigrate({ ...cdromReport(), exemption: 'label migration-guard.io/exempt=true' })).toBe(true);
  });

  it('says in one line what the list means', () => {
    expect(summaryLine(cdromReport())).toBe('This VM cannot live-migrate until this blocker is removed:');
    expect(summaryLine({ ...cdromReport(), blockers: [{ code: 'A', message: 'a' }, { code: 'B', message: 'b' }] })).toMatch(/these 2 blockers are/);
    expect(summaryLine(reportWithEveryReason())).toBe(`2 of ${ Object.keys(NODE_REASONS).length + 2 } nodes can receive this VM.`);
    expect(summaryLine({ ...reportWithEveryReason(), eligibleNodes: [] })).toMatch(/None of the 17 nodes/);
    expect(summaryLine({
      ...cdromReport(), blockers: [], nodesEvaluated: false, nodes: []
    })).toMatch(/not running/);
    expect(summaryLine({ ...cdromReport(), exemption: 'namespace legacy is exempt' })).toMatch(/does not check this VM: namespace legacy/);
  });
});

describe('time', () => {
  it.each([
    [0, '0s'], [45, '45s'], [725, '12m 05s'], [3725, '1h 02m 05s'], [183600, '2d 03h 00m'], [-5, '0s'],
  ])('formatDuration(%i) = %s', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });

  it('counts down to a deadline, and says when it has passed', () => {
    expect(countdown('2026-05-04T10:20:50Z', T0)).toEqual({
      secondsLeft: 1250, overdue: false, text: 'in 20m 50s'
    });
    expect(countdown('2026-05-04T09:59:48Z', T0)).toEqual({
      secondsLeft: -12, overdue: true, text: 'passed 12s ago'
    });
    expect(countdown(null, T0)).toBeNull();
    expect(countdown('not a time', T0)).toBeNull();
  });

  it('runs the elapsed time on while the migration runs, and stops it when it is over', () => {
    expect(liveElapsed(100, false, T0, T0 + 7500)).toBe(107);
    expect(liveElapsed(100, true, T0, T0 + 7500)).toBe(100);
    expect(liveElapsed(null, false, T0, T0)).toBeNull();
  });
});

describe('progress', () => {
  it('is the copied share of the data', () => {
    const p = progress(2147483648, 8589934592, 'Running');

    expect(p.fraction).toBeCloseTo(0.75);
    expect(p.percent).toBe(75);
    expect(p.text).toBe('2 GiB of 8 GiB left to copy (75% copied)');
  });

  it('counts more remaining than the total (memory dirtied meanwhile) as nothing copied', () => {
    expect(progress(9e9, 8589934592, 'Running').fraction).toBe(0);
  });

  it('is complete once the migration succeeded', () => {
    expect(progress(123, 8589934592, 'Succeeded')).toMatchObject({
      fraction: 1, percent: 100, text: 'all 8 GiB copied'
    });
  });

  it('without a total or without a figure, says what it knows', () => {
    expect(progress(1610612736, null, 'Running')).toMatchObject({ fraction: null, text: '1.5 GiB left to copy' });
    expect(progress(null, 8589934592, 'Running').text).toMatch(/no progress figure/);
  });

  it.each([[0, '0 B'], [1023, '1023 B'], [1536, '1.5 KiB'], [8589934592, '8 GiB'], [157286400000, '146 GiB']])('formatBytes(%i) = %s', (b, t) => {
    expect(formatBytes(b)).toBe(t);
  });
});

describe('migration view', () => {
  it('shows a running migration with both deadlines, KubeVirt\'s first', () => {
    const v = migrationView(runningMigration(), T0, T0 + 2000);

    expect(v).toMatchObject({
      phase: 'Running', final: false, abortable: true, sourceNode: 'harvester-node-0', targetNode: 'harvester-node-3', elapsedText: '1m 42s', requestedBy: 'alice'
    });
    expect(v.deadlines.map((d) => [d.who, d.countdown?.text, d.firesFirst, d.action])).toEqual([
      ['migration-guard', 'in 1h 44m 58s', false, 'abort'],
      ['KubeVirt', 'in 20m 48s', true, 'abort'],
    ]);
    expect(v.progress.percent).toBe(75);
  });

  it('has no countdown and no abort once the migration is over', () => {
    const v = migrationView(runningMigration({
      phase: 'Failed', final: true, why: 'aborted by migration-guard (ProgressTimeout): no progress for 150s'
    }), T0, T0 + 60000);

    expect(v.abortable).toBe(false);
    expect(v.failed).toBe(true);
    expect(v.deadlines.every((d) => d.countdown === null)).toBe(true);
    expect(v.elapsedText).toBe('1m 40s');
    expect(v.why).toMatch(/ProgressTimeout/);
  });

  it('shows what it can of a migration whose VMIM is gone', () => {
    const v = migrationView({
      phase: null, sourceNode: 'n0', why: null
    }, T0, T0);

    expect(v).toMatchObject({
      name: '(VMIM gone)', phase: 'Unknown', abortable: false, targetNode: 'not chosen yet', elapsedText: 'not started', deadlines: []
    });
  });

  it('a Pending migration without a target yet is abortable', () => {
    expect(migrationView({ phase: 'Pending', final: false }, T0, T0).abortable).toBe(true);
  });
});

describe('client', () => {
  it('makes the four calls with the right method, URL and body', async() => {
    const api = new FakeApi()
      .on('GET', 'migrationtargets', { status: 200, body: cdromReport() })
      .on('GET', 'migration', { status: 200, body: { vm: 'default/clean-vm', migration: runningMigration() } })
      .on('PUT', 'migrate', { status: 201, body: { name: 'clean-vm-abcde' } })
      .on('PUT', 'abortmigration', { status: 200, body: { aborted: 'clean-vm-abcde' } });
    const client = new MigrationGuardClient(api.transport, RANCHER);

    expect((await client.targets('default', 'cdrom-vm')).vm).toBe('default/cdrom-vm');
    expect((await client.migration('default', 'clean-vm')).phase).toBe('Running');
    expect((await client.migrate('default', 'clean-vm', 'harvester-node-3')).name).toBe('clean-vm-abcde');
    expect((await client.abort('default', 'clean-vm')).aborted).toBe('clean-vm-abcde');
    expect(api.calls.map((c) => [c.method, c.url, c.data])).toEqual([
      ['GET', '/k8s/clusters/c-m-7x2kq/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/cdrom-vm/migrationtargets', undefined],
      ['GET', '/k8s/clusters/c-m-7x2kq/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migration', undefined],
      ['PUT', '/k8s/clusters/c-m-7x2kq/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migrate', { nodeName: 'harvester-node-3' }],
      ['PUT', '/k8s/clusters/c-m-7x2kq/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/abortmigration', {}],
    ]);
  });

  it('turns an error answer into ApiError, and no answer into status 0', async() => {
    const api = new FakeApi()
      .on('GET', 'migrationtargets', { status: 503, body: status(503, 'ServiceUnavailable', 'the cluster cache is still loading; retry in a few seconds') })
      .on('GET', 'migration', { networkError: 'connection refused' } as any);
    const client = new MigrationGuardClient(api.transport, STANDALONE);

    await expect(client.targets('default', 'vm')).rejects.toMatchObject({ status: 503, op: 'targets' });
    await expect(client.migration('default', 'vm')).rejects.toMatchObject({ status: 0, body: { error: 'connection refused' } });
    await expect(client.targets('default', 'vm')).rejects.toBeInstanceOf(ApiError);
  });

  it('fetchTransport sends JSON and reads JSON or text back', async() => {
    const seen: any[] = [];
    const fakeFetch: any = (url: string, init: any) => {
      seen.push([url, init]);
      const text = init.method === 'PUT' ? 'service unavailable' : '{"ok":true}';

      return Promise.resolve({ status: init.method === 'PUT' ? 503 : 200, text: () => Promise.resolve(text) });
    };
    const t = fetchTransport(fakeFetch);

    expect(await t({ method: 'GET', url: '/apis/x' })).toEqual({ status: 200, body: { ok: true } });
    expect(await t({
      method: 'PUT', url: '/apis/y', data: { nodeName: 'n1' }
    })).toEqual({ status: 503, body: 'service unavailable' });
    expect(seen[0][1].body).toBeUndefined();
    expect(seen[1][1]).toMatchObject({
      method: 'PUT', body: '{"nodeName":"n1"}', headers: { 'Content-Type': 'application/json' }
    });
  });

  it('storeTransport reads the dashboard store\'s answers and rejections', async() => {
    const ok: any = { vm: 'default/x' };

    Object.defineProperty(ok, '_status', { value: 200 });
    const refused: any = status(403, 'Forbidden', 'no');

    Object.defineProperty(refused, '_status', { value: 403 });
    const dispatched: any[] = [];
    const answers = [Promise.resolve(ok), Promise.reject(refused), Promise.reject(new Error('Network Error'))];
    const t = storeTransport((action, payload) => {
      dispatched.push([action, payload]);

      return answers.shift() as Promise<any>;
    }, 'harvester');

    expect(await t({ method: 'GET', url: '/k8s/clusters/c1/apis/a' })).toEqual({ status: 200, body: ok });
    expect(await t({
      method: 'PUT', url: '/k8s/clusters/c1/apis/b', data: { nodeName: 'n' }
    })).toEqual({ status: 403, body: refused });
    await expect(t({ method: 'GET', url: '/c' })).rejects.toThrow('Network Error');
    expect(dispatched[0]).toEqual(['harvester/request', {
      url: '/k8s/clusters/c1/apis/a', method: 'GET', data: undefined, redirectUnauthorized: false
    }]);
  });

  it('clientFromStore uses the current product\'s store and the cluster getters', async() => {
    const dispatched: string[] = [];
    const store = {
      getters: {
        isMultiCluster: true, clusterId: 'c-m-1', currentProduct: { inStore: 'harvester' }
      },
      dispatch: (action: string, payload: any) => {
        dispatched.push(`${ action } ${ payload.url }`);

        return Promise.resolve({ vm: 'x' });
      },
    };

    await clientFromStore(store).targets('ns', 'vm');
    expect(dispatched).toEqual(['harvester/request /k8s/clusters/c-m-1/apis/subresources.migration-guard.io/v1/namespaces/ns/virtualmachines/vm/migrationtargets']);
  });

  it('vmRef reads the resource, else the detail page\'s route', () => {
    expect(vmRef({ metadata: { namespace: 'a', name: 'b' } }, null)).toEqual({ namespace: 'a', name: 'b' });
    expect(vmRef(null, { params: { namespace: 'c', id: 'd' } })).toEqual({ namespace: 'c', name: 'd' });
    expect(vmRef(null, { params: {} })).toBeNull();
  });
});
