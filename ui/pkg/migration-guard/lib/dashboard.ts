// The client as the dashboard (Rancher, or Harvester's own UI) provides it: requests through the
// store of the current product (Harvester's is `harvester`), the URL base from the store's
// `isMultiCluster` and `clusterId` getters.

import { MigrationGuardClient, storeTransport } from './client';
import { ClusterContext } from './paths';

export interface StoreLike {
  getters: Record<string, any>;
  dispatch: (action: string, payload?: any) => Promise<any>;
}

export function clusterContext(store: StoreLike): ClusterContext {
  return { isMultiCluster: !!store.getters['isMultiCluster'], clusterId: store.getters['clusterId'] || null };
}

export function clientFromStore(store: StoreLike): MigrationGuardClient {
  const inStore = store.getters['currentProduct']?.inStore || 'cluster';

  return new MigrationGuardClient(storeTransport((a, p) => store.dispatch(a, p), inStore), clusterContext(store));
}

/** namespace/name of the VM a component shows: its resource, else the detail page's route. */
export function vmRef(resource: any, route: any): { namespace: string, name: string } | null {
  const namespace = resource?.metadata?.namespace || route?.params?.namespace;
  const name = resource?.metadata?.name || route?.params?.id;

  return namespace && name ? { namespace, name } : null;
}
