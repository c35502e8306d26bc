import { flushPromises, mount } from '@vue/test-utils';
import MigrateDialog from '../dialog/MigrationGuardMigrateDialog.vue';
import { MigrationGuardClient } from '../lib/client';
import {
  BLOCKERS, cdromReport, FakeApi, NODE_REASONS, reportWithEveryReason, status
} from './fixtures';

const VM = { metadata: { namespace: 'default', name: 'clean-vm' } };

async function open(api: FakeApi, vm: any = VM) {
  const wrapper = mount(MigrateDialog, { props: { resources: [vm], client: new MigrationGuardClient(api.transport, { isMultiCluster: false }) } });

  await flushPromises();

  return wrapper;
}

function nodeNames(wrapper: any): string[] {
  return wrapper.findAll('[data-testid^="mg-node-"]').map((n: any) => n.attributes('data-testid').replace('mg-node-', ''));
}

describe('Migrate (checked) dialog: the node list', () => {
  it('asks for the VM\'s report and lists every node, eligible ones first and selectable', async() => {
    const api = new FakeApi().on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() });
    const w = await open(api);

    expect(api.calls[0].url).toBe('/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migrationtargets');
    const names = nodeNames(w);

    expect(names).toHaveLength(Object.keys(NODE_REASONS).length + 2);
    expect(names.slice(0, 2)).toEqual(['node-a', 'node-z']);
    for (const name of ['node-a', 'node-z']) {
      const row = w.find(`[data-testid="mg-node-${ name }"]`);

      expect(row.classes()).not.toContain('mg-excluded');
      expect(row.find('input').element.disabled).toBe(false);
      expect(row.text()).toContain('eligible');
    }
    expect(w.find('[data-testid="mg-summary"]').text()).toBe('2 of 17 nodes can receive this VM.');
    expect(w.find('[data-testid="mg-nodes"]').classes()).not.toContain('mg-blocked');
    expect(w.find('[data-testid="mg-blockers"]').exists()).toBe(false);
  });

  it.each(Object.entries(NODE_REASONS))('greys a node excluded for %s and shows the reason\'s message and code', async(code, reason) => {
    const api = new FakeApi().on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() });
    const w = await open(api);
    const item = w.find(`[data-testid="mg-reason"][data-code="${ code }"]`);

    expect(item.exists()).toBe(true);
    expect(item.text()).toContain(reason.message);
    expect(item.find('code').text()).toBe(code);
    const row = w.findAll('[data-testid^="mg-node-"]').find((r: any) => r.find(`[data-code="${ code }"]`).exists()) as any;

    expect(row.classes()).toContain('mg-excluded');
    expect(row.attributes('data-eligible')).toBe('false');
    expect(row.find('input').element.disabled).toBe(true);
  });

  it('shows every reason of a node excluded for several', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: cdromReport() }));
    const node2 = w.find('[data-testid="mg-node-harvester-node-2"]');

    expect(node2.findAll('[data-testid="mg-reason"]').map((r: any) => r.attributes('data-code'))).toEqual(['NodeCordoned', 'NodeInMaintenance']);
    expect(node2.text()).toContain('harvesterhci.io/maintain-status=completed');
  });

  it('shows what the policy only warns about, on the VM and on a node', async() => {
    const report = reportWithEveryReason();

    report.warnings = [{ code: 'CDROMVolume', message: BLOCKERS.CDROMVolume.message }];
    report.nodes[0].warnings = [{ code: 'NodeCordoned', message: "node 'node-z' is cordoned: uncordon it or pick another node" }];
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: report }));

    expect(w.find('[data-testid="mg-warnings"]').text()).toContain('eject the CD-ROM');
    expect(w.find('[data-testid="mg-node-node-z"] [data-testid="mg-node-warning"]').attributes('data-code')).toBe('NodeCordoned');
    // a warning does not exclude the node
    expect(w.find('[data-testid="mg-node-node-z"] input').element.disabled).toBe(false);
  });
});

describe('Migrate (checked) dialog: blockers', () => {
  it('shows the blocker with its remedy above the list, and nothing can be chosen', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: cdromReport() }), { metadata: { namespace: 'default', name: 'cdrom-vm' } });
    const blockers = w.find('[data-testid="mg-blockers"]');

    expect(blockers.exists()).toBe(true);
    expect(blockers.text()).toContain('eject the CD-ROM before migrating');
    expect(blockers.text()).toContain('CDROMVolume');
    expect(blockers.text()).toContain('spec.domain.devices.disks[1]');
    // above the list
    const html = w.html();

    expect(html.indexOf('mg-blockers')).toBeLessThan(html.indexOf('mg-nodes'));
    expect(w.find('[data-testid="mg-summary"]').text()).toBe('This VM cannot live-migrate until this blocker is removed:');
    // harvester-node-3 is eligible in itself, but the blocker stands
    expect(w.find('[data-testid="mg-node-harvester-node-3"] input').element.disabled).toBe(true);
    expect(w.find('[data-testid="mg-nodes"]').classes()).toContain('mg-blocked');
    expect(w.find('[data-testid="mg-apply"]').element.disabled).toBe(true);
  });

  it.each(Object.entries(BLOCKERS))('shows blocker %s with its message', async(code, b) => {
    const report = { ...cdromReport(), blockers: [{ code, ...b }] };
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: report }));
    const item = w.find(`[data-testid="mg-blocker"][data-code="${ code }"]`);

    expect(item.text()).toContain(b.message);
    if (b.field) {
      expect(item.text()).toContain(b.field);
    }
  });

  it('lists every blocker at once', async() => {
    const report = { ...cdromReport(), blockers: Object.entries(BLOCKERS).map(([code, b]) => ({ code, ...b })) };
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: report }));

    expect(w.findAll('[data-testid="mg-blocker"]').map((b: any) => b.attributes('data-code'))).toEqual(Object.keys(BLOCKERS));
    expect(w.find('[data-testid="mg-summary"]').text()).toMatch(/these 8 blockers are removed/);
  });

  it('lets an exempt VM migrate despite its blockers', async() => {
    const report = { ...cdromReport(), exemption: 'the VM has label migration-guard.io/exempt=true' };
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 200, body: report }));

    expect(w.find('[data-testid="mg-summary"]').text()).toContain('does not check this VM');
    expect(w.find('[data-testid="mg-node-harvester-node-3"] input').element.disabled).toBe(false);
  });
});

describe('Migrate (checked) dialog: Apply', () => {
  it('is disabled until a node is chosen, then calls PUT migrate with that node', async() => {
    const api = new FakeApi()
      .on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() })
      .on('PUT', 'migrate', {
        status: 201,
        body:   {
          name: 'clean-vm-x7k2p', namespace: 'default', uid: 'u1', vmiName: 'clean-vm', targetNode: 'node-z', timeouts: null
        }
      });
    const w = await open(api);
    const apply = w.find('[data-testid="mg-apply"]');

    expect(apply.element.disabled).toBe(true);
    await w.find('[data-testid="mg-node-node-z"] input').setValue(true);
    expect(apply.element.disabled).toBe(false);
    await apply.trigger('click');
    await flushPromises();

    const put = api.callsTo('PUT', 'migrate');

    expect(put).toHaveLength(1);
    expect(put[0].url).toBe('/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migrate');
    expect(put[0].data).toEqual({ nodeName: 'node-z' });
    expect(w.find('[data-testid="mg-started"]').text()).toContain('Migration clean-vm-x7k2p of default/clean-vm to node-z started');
    expect(w.emitted('migrated')?.[0]?.[0]).toMatchObject({ name: 'clean-vm-x7k2p' });
    expect(w.find('[data-testid="mg-apply"]').exists()).toBe(false);
    expect(w.find('[data-testid="mg-cancel"]').text()).toBe('Close');
  });

  it('shows every cause of a refusal (422), and the refused node\'s own reasons', async() => {
    const refusal = status(422, 'Invalid', 'live migration of VM default/clean-vm is not allowed', {
      causes: [
        {
          code: 'TargetNotEligible', message: "target node 'node-z' cannot receive VM default/clean-vm: node 'node-z' is cordoned: uncordon it or pick another node", field: null
        },
        {
          code: 'MigrationInProgress', message: BLOCKERS.MigrationInProgress.message, field: null
        },
      ],
      target:        'node-z',
      targetReasons: [{ code: 'NodeCordoned', message: "node 'node-z' is cordoned: uncordon it or pick another node" }],
    });
    const api = new FakeApi()
      .on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() })
      .on('PUT', 'migrate', { status: 422, body: refusal });
    const w = await open(api);

    await w.find('[data-testid="mg-node-node-z"] input').setValue(true);
    await w.find('[data-testid="mg-apply"]').trigger('click');
    await flushPromises();
    const error = w.find('[data-testid="mg-apply-error"]');

    expect(error.text()).toContain('The migration was refused (422)');
    expect(error.text()).toContain('live migration of VM default/clean-vm is not allowed');
    expect(error.findAll('[data-testid="mg-apply-error-cause"]').map((c: any) => c.find('code').text())).toEqual(['TargetNotEligible', 'MigrationInProgress']);
    expect(error.text()).toContain('kubectl delete vmim -n default vm-abcde');
    expect(error.find('[data-testid="mg-apply-error-target-reason"]').text()).toContain('NodeCordoned');
    expect(w.find('[data-testid="mg-started"]').exists()).toBe(false);
    // Apply stays available for another choice
    expect(w.find('[data-testid="mg-apply"]').element.disabled).toBe(false);
  });

  it('shows a refusal the API server relayed with its message as the one cause', async() => {
    const relayed = status(422, 'Invalid', 'the API server refused the migration of VM default/clean-vm: admission webhook "vmim.migration-guard.io" denied the request', {
      causes: [{
        code: 'Forbidden', message: 'admission webhook "vmim.migration-guard.io" denied the request', field: null
      }]
    });
    const w = await open(new FakeApi()
      .on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() })
      .on('PUT', 'migrate', { status: 422, body: relayed }));

    await w.find('[data-testid="mg-node-node-a"] input').setValue(true);
    await w.find('[data-testid="mg-apply"]').trigger('click');
    await flushPromises();
    expect(w.find('[data-testid="mg-apply-error-cause"]').text()).toContain('Forbidden admission webhook "vmim.migration-guard.io" denied the request');
  });

  it('says in words when the user may not migrate (403)', async() => {
    const w = await open(new FakeApi()
      .on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() })
      .on('PUT', 'migrate', { status: 403, body: status(403, 'Forbidden', "user 'bob' may not create virtualmachineinstancemigrations.kubevirt.io in namespace 'default'") }));

    await w.find('[data-testid="mg-node-node-a"] input').setValue(true);
    await w.find('[data-testid="mg-apply"]').trigger('click');
    await flushPromises();
    const error = w.find('[data-testid="mg-apply-error"]');

    expect(error.text()).toContain('You may not migrate this VM (403 Forbidden)');
    expect(error.text()).toContain("user 'bob' may not create");
    expect(error.text()).toContain('migration-guard:migrate');
  });

  it('Cancel closes the dialog without migrating', async() => {
    const api = new FakeApi().on('GET', 'migrationtargets', { status: 200, body: reportWithEveryReason() });
    const w = await open(api);

    await w.find('[data-testid="mg-cancel"]').trigger('click');
    expect(w.emitted('close')).toHaveLength(1);
    expect(api.callsTo('PUT', 'migrate')).toHaveLength(0);
  });
});

describe('Migrate (checked) dialog: errors reading the report', () => {
  it('401: not signed in', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 401, body: status(401, 'Unauthorized', 'no identity: send a bearer token or come through kube-apiserver') }));
    const e = w.find('[data-testid="mg-load-error"]');

    expect(e.attributes('data-status')).toBe('401');
    expect(e.text()).toContain('You are not signed in (401 Unauthorized)');
    expect(e.text()).toContain('sign in again');
    expect(w.find('[data-testid="mg-nodes"]').exists()).toBe(false);
  });

  it('403 from kube-apiserver\'s RBAC: its message and which role to ask for', async() => {
    const rbac = {
      kind:       'Status',
      apiVersion: 'v1',
      status:     'Failure',
      reason:     'Forbidden',
      code:       403,
      message:    'virtualmachines.subresources.migration-guard.io "clean-vm" is forbidden: User "bob" cannot get resource "virtualmachines/migrationtargets" in API group "subresources.migration-guard.io" in the namespace "default"',
    };
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 403, body: rbac }));
    const e = w.find('[data-testid="mg-load-error"]');

    expect(e.text()).toContain('You may not read where this VM may migrate (403 Forbidden)');
    expect(e.text()).toContain('User "bob" cannot get resource "virtualmachines/migrationtargets"');
    expect(e.text()).toContain('view role');
  });

  it('404: the API is not installed', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 404, body: status(404, 'NotFound', 'the server could not find the requested resource') }));

    expect(w.find('[data-testid="mg-load-error"]').text()).toContain('migration-guard is not installed on this cluster');
  });

  it('503: the cache is syncing; Try again reads it again', async() => {
    const api = new FakeApi().on('GET', 'migrationtargets',
      { status: 503, body: status(503, 'ServiceUnavailable', 'the cluster cache is still loading; retry in a few seconds') },
      { status: 200, body: reportWithEveryReason() });
    const w = await open(api);
    const e = w.find('[data-testid="mg-load-error"]');

    expect(e.text()).toContain('cache is syncing, try again (503)');
    expect(e.text()).toContain('the cluster cache is still loading');
    await w.find('[data-testid="mg-load-error-retry"]').trigger('click');
    await flushPromises();
    expect(api.callsTo('GET', 'migrationtargets')).toHaveLength(2);
    expect(w.find('[data-testid="mg-load-error"]').exists()).toBe(false);
    expect(nodeNames(w)).toHaveLength(17);
  });

  it('503 with kube-aggregator\'s text body (the APIService has no ready server)', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { status: 503, body: 'service unavailable\n' }));

    expect(w.find('[data-testid="mg-load-error"]').text()).toContain('service unavailable');
  });

  it('no answer at all', async() => {
    const w = await open(new FakeApi().on('GET', 'migrationtargets', { networkError: 'Network Error' } as any));

    expect(w.find('[data-testid="mg-load-error"]').text()).toContain('The cluster could not be reached');
    expect(w.find('[data-testid="mg-load-error"]').text()).toContain('Network Error');
  });
});

describe('Migrate (checked) dialog in the dashboard', () => {
  it('without a client, calls through the current product\'s store with Rancher\'s cluster path', async() => {
    const dispatched: any[] = [];
    const $store = {
      getters: {
        isMultiCluster: true, clusterId: 'c-m-abc12', currentProduct: { inStore: 'harvester' }
      },
      dispatch: (action: string, payload: any) => {
        dispatched.push([action, payload.method, payload.url]);

        return Promise.resolve(cdromReport());
      },
    };
    const w = mount(MigrateDialog, { props: { resources: [VM] }, global: { mocks: { $store } } });

    await flushPromises();
    expect(dispatched).toEqual([['harvester/request', 'GET', '/k8s/clusters/c-m-abc12/apis/subresources.migration-guard.io/v1/namespaces/default/virtualmachines/clean-vm/migrationtargets']]);
    expect(w.find('[data-testid="mg-blockers"]').exists()).toBe(true);
  });
});
