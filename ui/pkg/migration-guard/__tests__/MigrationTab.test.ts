import { flushPromises, mount } from '@vue/test-utils';
import MigrationTab from '../components/MigrationTab.vue';
import { MigrationGuardClient } from '../lib/client';
import { FakeApi, runningMigration, status, T0 } from './fixtures';

const VM = { metadata: { namespace: 'default', name: 'clean-vm' } };
const GiB = 1024 ** 3;

function answer(m: any) {
  return { status: 200, body: { vm: 'default/clean-vm', migration: m } };
}

async function show(api: FakeApi, props: Record<string, any> = {}) {
  const wrapper = mount(MigrationTab, {
    props: {
      resource: VM, client: new MigrationGuardClient(api.transport, { isMultiCluster: false }), ...props
    },
  });

  await flushPromises();

  return wrapper;
}

async function advance(seconds: number) {
  for (let i = 0; i < seconds; i++) {
    jest.advanceTimersByTime(1000);
    await flushPromises();
  }
}

const text = (w: any, id: string) => w.find(`[data-testid="${ id }"]`).text();

beforeEach(() => {
  jest.useFakeTimers();
  jest.setSystemTime(T0);
});

afterEach(() => {
  jest.useRealTimers();
});

describe('Migration tab: a running migration', () => {
  it('shows phase, source and target, elapsed time, who asked', async() => {
    const api = new FakeApi().on('GET', 'migration', answer(runningMigration()));
    const w = await show(api);

    expect(api.calls[0].url).toBe('/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migration');
    expect(text(w, 'mg-name')).toBe('clean-vm-x7k2p');
    expect(text(w, 'mg-phase')).toBe('Running');
    expect(text(w, 'mg-route')).toBe('harvester-node-0 → harvester-node-3');
    expect(text(w, 'mg-elapsed')).toBe('1m 40s');
    expect(text(w, 'mg-requested-by')).toBe('alice');
    expect(w.find('[data-testid="mg-why"]').exists()).toBe(false);
  });

  it('counts down to both completion deadlines, KubeVirt\'s acting first', async() => {
    const w = await show(new FakeApi().on('GET', 'migration', answer(runningMigration())));
    const guard = w.find('[data-testid="mg-deadline-migration-guard"]');
    const kubevirt = w.find('[data-testid="mg-deadline-KubeVirt"]');

    expect(guard.find('[data-testid="mg-countdown"]').text()).toBe('in 1h 45m 00s');
    expect(guard.text()).toContain('2026-05-04T11:45:00Z');
    expect(guard.text()).toContain('6400 s after the start');
    expect(guard.find('[data-testid="mg-fires-first"]').exists()).toBe(false);
    expect(kubevirt.find('[data-testid="mg-countdown"]').text()).toBe('in 20m 50s');
    expect(kubevirt.text()).toContain('1350 s after the start');
    expect(kubevirt.text()).toContain('then KubeVirt will abort');
    expect(kubevirt.find('[data-testid="mg-fires-first"]').exists()).toBe(true);

    await advance(2);
    expect(w.find('[data-testid="mg-deadline-KubeVirt"] [data-testid="mg-countdown"]').text()).toBe('in 20m 48s');
    expect(text(w, 'mg-elapsed')).toBe('1m 42s');
  });

  it('shows only migration-guard\'s deadline when the report has no KubeVirt limits', async() => {
    const m = runningMigration({
      kubevirt: null, kubevirtCompletionDeadline: null, firesFirst: null
    });
    const w = await show(new FakeApi().on('GET', 'migration', answer(m)));

    expect(w.find('[data-testid="mg-deadline-KubeVirt"]').exists()).toBe(false);
    expect(w.find('[data-testid="mg-deadline-migration-guard"] [data-testid="mg-countdown"]').text()).toBe('in 1h 45m 00s');
  });

  it('shows a deadline that has passed', async() => {
    const m = runningMigration({ kubevirtCompletionDeadline: '2026-05-04T09:59:30Z' });
    const w = await show(new FakeApi().on('GET', 'migration', answer(m)));
    const c = w.find('[data-testid="mg-deadline-KubeVirt"] [data-testid="mg-countdown"]');

    expect(c.text()).toBe('passed 30s ago');
    expect(c.classes()).toContain('text-error');
  });

  it('shows data remaining as a progress bar, and follows it as the migration goes on', async() => {
    const api = new FakeApi().on('GET', 'migration',
      answer(runningMigration({ dataRemainingBytes: 6 * GiB })),
      answer(runningMigration({ dataRemainingBytes: 2 * GiB, elapsedSeconds: 103 })),
      answer(runningMigration({
        phase: 'Succeeded', final: true, dataRemainingBytes: 0, elapsedSeconds: 110, endTimestamp: '2026-05-04T10:00:10Z'
      })));
    const w = await show(api, { pollSeconds: 3 });

    expect(w.find('[data-testid="mg-progress"]').attributes('aria-valuenow')).toBe('25');
    expect(w.find('[data-testid="mg-progress-bar"]').attributes('style')).toContain('width: 25%');
    expect(text(w, 'mg-progress-text')).toBe('6 GiB of 8 GiB left to copy (25% copied)');

    await advance(3);
    expect(api.callsTo('GET', 'migration')).toHaveLength(2);
    expect(w.find('[data-testid="mg-progress-bar"]').attributes('style')).toContain('width: 75%');
    expect(text(w, 'mg-progress-text')).toBe('2 GiB of 8 GiB left to copy (75% copied)');

    await advance(3);
    expect(text(w, 'mg-phase')).toBe('Succeeded');
    expect(w.find('[data-testid="mg-phase"]').classes()).toContain('text-success');
    expect(w.find('[data-testid="mg-progress-bar"]').attributes('style')).toContain('width: 100%');
    expect(text(w, 'mg-progress-text')).toBe('all 8 GiB copied');
    // over: no countdown, no abort, and the elapsed time stays
    expect(w.find('[data-testid="mg-countdown"]').exists()).toBe(false);
    expect(w.find('[data-testid="mg-abort"]').exists()).toBe(false);
    await advance(5);
    expect(text(w, 'mg-elapsed')).toBe('1m 50s');
    // and it reads less often
    expect(api.callsTo('GET', 'migration')).toHaveLength(3);
  });

  it('says when there is no progress figure', async() => {
    const w = await show(new FakeApi().on('GET', 'migration', answer(runningMigration({ dataRemainingBytes: null }))));

    expect(text(w, 'mg-progress-text')).toMatch(/no progress figure/);
    expect(w.find('[data-testid="mg-progress"]').attributes('aria-valuenow')).toBeUndefined();
  });
});

describe('Migration tab: why it failed or was aborted', () => {
  it('shows why migration-guard aborted it', async() => {
    const m = runningMigration({
      phase: 'Failed',
      final: true,
      abort: {
        reason: 'ProgressTimeout', message: 'data remaining stayed at 2147483648 bytes for 150s (limit 150s)', migration: 'clean-vm-x7k2p'
      },
      abortStatus: 'Succeeded',
      why:         'aborted by migration-guard (ProgressTimeout): data remaining stayed at 2147483648 bytes for 150s (limit 150s)',
    });
    const w = await show(new FakeApi().on('GET', 'migration', answer(m)));
    const why = w.find('[data-testid="mg-why"]');

    expect(why.text()).toBe('Why: aborted by migration-guard (ProgressTimeout): data remaining stayed at 2147483648 bytes for 150s (limit 150s)');
    expect(why.classes()).toContain('error');
    expect(w.find('[data-testid="mg-phase"]').classes()).toContain('text-error');
    expect(w.find('[data-testid="mg-abort"]').exists()).toBe(false);
  });

  it('shows KubeVirt\'s failure reason', async() => {
    const m = runningMigration({
      phase: 'Failed', final: true, failureReason: 'Live migration failed: target pod was not scheduled', why: 'failure reason: Live migration failed: target pod was not scheduled'
    });
    const w = await show(new FakeApi().on('GET', 'migration', answer(m)));

    expect(text(w, 'mg-why')).toContain('target pod was not scheduled');
  });
});

describe('Migration tab: Abort', () => {
  it('asks first; "Keep migrating" does nothing', async() => {
    const api = new FakeApi().on('GET', 'migration', answer(runningMigration()));
    const w = await show(api);

    await w.find('[data-testid="mg-abort"]').trigger('click');
    expect(text(w, 'mg-abort-confirm')).toContain('Abort migration clean-vm-x7k2p?');
    expect(text(w, 'mg-abort-confirm')).toContain('keeps running on harvester-node-0');
    await w.find('[data-testid="mg-abort-no"]').trigger('click');
    expect(w.find('[data-testid="mg-abort-confirm"]').exists()).toBe(false);
    expect(api.callsTo('PUT', 'abortmigration')).toHaveLength(0);
  });

  it('on confirmation calls PUT abortmigration and shows the migration as it is then', async() => {
    const api = new FakeApi()
      .on('GET', 'migration', answer(runningMigration()), answer(runningMigration({
        phase: 'Failed', final: true, abortStatus: 'Succeeded', why: 'abort requested (abort status Succeeded)'
      })))
      .on('PUT', 'abortmigration', {
        status: 200,
        body:   {
          aborted: 'clean-vm-x7k2p', uid: 'u1', phase: 'Running', vm: 'clean-vm'
        }
      });
    const w = await show(api);

    await w.find('[data-testid="mg-abort"]').trigger('click');
    await w.find('[data-testid="mg-abort-yes"]').trigger('click');
    await flushPromises();
    const put = api.callsTo('PUT', 'abortmigration');

    expect(put).toHaveLength(1);
    expect(put[0].url).toBe('/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/abortmigration');
    expect(text(w, 'mg-aborted')).toContain('migration clean-vm-x7k2p (phase Running) was deleted');
    expect(text(w, 'mg-phase')).toBe('Failed');
    expect(text(w, 'mg-why')).toContain('abort requested');
    expect(w.emitted('aborted')).toHaveLength(1);
  });

  it('409: there was nothing left to abort', async() => {
    const api = new FakeApi()
      .on('GET', 'migration', answer(runningMigration()))
      .on('PUT', 'abortmigration', { status: 409, body: status(409, 'Conflict', 'migration clean-vm-x7k2p of VM default/clean-vm is already Succeeded') });
    const w = await show(api);

    await w.find('[data-testid="mg-abort"]').trigger('click');
    await w.find('[data-testid="mg-abort-yes"]').trigger('click');
    await flushPromises();
    const e = w.find('[data-testid="mg-abort-error"]');

    expect(e.text()).toContain('There is no migration to abort (409 Conflict)');
    expect(e.text()).toContain('is already Succeeded');
  });

  it('403: may not abort', async() => {
    const api = new FakeApi()
      .on('GET', 'migration', answer(runningMigration()))
      .on('PUT', 'abortmigration', { status: 403, body: status(403, 'Forbidden', "user 'bob' may not delete virtualmachineinstancemigrations.kubevirt.io in namespace 'default'") });
    const w = await show(api);

    await w.find('[data-testid="mg-abort"]').trigger('click');
    await w.find('[data-testid="mg-abort-yes"]').trigger('click');
    await flushPromises();
    expect(text(w, 'mg-abort-error')).toContain("You may not abort this VM's migration (403 Forbidden)");
    expect(text(w, 'mg-abort-error')).toContain("user 'bob' may not delete");
  });
});

describe('Migration tab: errors', () => {
  it('404: the VM never migrated', async() => {
    const w = await show(new FakeApi().on('GET', 'migration', { status: 404, body: status(404, 'NotFound', 'VirtualMachine default/clean-vm has never migrated') }));
    const e = w.find('[data-testid="mg-migration-error"]');

    expect(e.text()).toContain('No migration to show (404)');
    expect(e.text()).toContain('has never migrated');
    expect(e.classes()).toContain('info');
    expect(w.find('[data-testid="mg-phase"]').exists()).toBe(false);
  });

  it('401: not signed in', async() => {
    const w = await show(new FakeApi().on('GET', 'migration', { status: 401, body: status(401, 'Unauthorized', 'no identity') }));

    expect(text(w, 'mg-migration-error')).toContain('You are not signed in (401 Unauthorized)');
  });

  it('403: may not read the migration', async() => {
    const w = await show(new FakeApi().on('GET', 'migration', { status: 403, body: status(403, 'Forbidden', "user 'bob' may not get virtualmachines.kubevirt.io 'clean-vm' in namespace 'default'") }));

    expect(text(w, 'mg-migration-error')).toContain("You may not read this VM's migration (403 Forbidden)");
  });

  it('503 while the cache syncs, then the migration once it answers', async() => {
    const api = new FakeApi().on('GET', 'migration',
      { status: 503, body: status(503, 'ServiceUnavailable', 'the cluster cache is still loading; retry in a few seconds') },
      answer(runningMigration()));
    const w = await show(api);

    expect(text(w, 'mg-migration-error')).toContain('cache is syncing, try again (503)');
    await w.find('[data-testid="mg-migration-error-retry"]').trigger('click');
    await flushPromises();
    expect(w.find('[data-testid="mg-migration-error"]').exists()).toBe(false);
    expect(text(w, 'mg-phase')).toBe('Running');
  });

  it('keeps showing the migration when a later read fails, with the error', async() => {
    const api = new FakeApi().on('GET', 'migration', answer(runningMigration()), { status: 502, body: status(502, 'InternalError', 'Kubernetes API answered 500: etcdserver: request timed out') });
    const w = await show(api, { pollSeconds: 2 });

    await advance(2);
    expect(text(w, 'mg-phase')).toBe('Running');
    expect(text(w, 'mg-migration-error')).toContain('etcdserver: request timed out');
  });

  it('stops reading when the tab goes away', async() => {
    const api = new FakeApi().on('GET', 'migration', answer(runningMigration()));
    const w = await show(api, { pollSeconds: 1 });

    w.unmount();
    await advance(5);
    expect(api.callsTo('GET', 'migration')).toHaveLength(1);
  });
});

describe('Migration tab on the detail page', () => {
  it('finds the VM in the route when the page passes no resource', async() => {
    const api = new FakeApi().on('GET', 'migration', answer(runningMigration()));

    mount(MigrationTab, {
      props:  { client: new MigrationGuardClient(api.transport, { isMultiCluster: true, clusterId: 'c-m-abc12' }) },
      global: {
        mocks: {
          $route: {
            params: {
              cluster: 'c-m-abc12', namespace: 'vms', id: 'db-1'
            }
          }
        }
      },
    });
    await flushPromises();
    expect(api.calls[0].url).toBe('/k8s/clusters/c-m-abc12/apis/subresources.migration-guard.io/v1/namespaces/vms/virtualmachines/db-1/migration');
  });
});
