// migration-guard's Rancher UI extension: on Harvester's virtual machines, a "Migrate (checked)"
// row action and a "Migration" tab on the detail page. Both call migration-guard's aggregated
// API (subresources.migration-guard.io/v1) through kube-apiserver.
import { IPlugin, ActionLocation, ActionOpts, TabLocation } from '@shell/core/types';
import MigrateDialog from './dialog/MigrationGuardMigrateDialog.vue';
import MigrationTab from './components/MigrationTab.vue';

// Harvester's product and its VM type, in Rancher (Virtualization Management) and standalone.
export const PRODUCT = 'harvester';
export const VM_TYPE = 'kubevirt.io.virtualmachine';
export const DIALOG = 'MigrationGuardMigrateDialog';
export const TAB = 'migration-guard-migration';

const where = { product: [PRODUCT], resource: [VM_TYPE] };

export default function(plugin: IPlugin): void {
  plugin.metadata = require('./package.json');

  // PromptModal finds dialogs by name among the extensions' registered ones.
  plugin.register('dialog', DIALOG, () => Promise.resolve(MigrateDialog));

  plugin.addAction(ActionLocation.TABLE, { ...where }, {
    label:    'Migrate (checked)',
    icon:     'icon-copy',
    multiple: false,
    invoke(_opts: ActionOpts, resources: Array<{ $dispatch:(action: string, payload: unknown) => unknown }>) {
      const vm = resources[0];

      vm.$dispatch('promptModal', {
        resources:  [vm],
        component:  DIALOG,
        modalWidth: '760px',
      });
    },
  });

  plugin.addTab(TabLocation.RESOURCE_DETAIL, { ...where }, {
    name:       TAB,
    label:      'Migration',
    weight:     -20,
    showHeader: false,
    component:  () => Promise.resolve(MigrationTab),
  });
}

// For the harness page (tests/ui), which mounts the components outside a dashboard.
export { MigrateDialog, MigrationTab };
export {
  MigrationGuardClient, fetchTransport, storeTransport, ApiError
} from './lib/client';
