// The client as the dashboard (Rancher, or Harvester's own UI) provides it: requests through the
// store of the current product (Harvester's is `harvester`), the URL base from the store's
// `isMultiCluster` and `clusterId` getters.

import { MigrationGuardClient, storeTransport } from './client';
import { ClusterContext } from './paths';

export interface StoreLike {
  getters: Record<string, unknown>;
  dispatch: (action: string, payload?: unknown) => Promise<unknown>;
}

export function clusterContext(store: StoreLike): ClusterContext {
  return { isMultiCluster: !!store.getters['isMultiCluster'], clusterId: (store.getters['clusterId'] as string | undefined) || null };
}

export function clientFromStore(store: StoreLike): MigrationGuardClient {
  const inStore = (store.getters['currentProduct'] as { inStore?: string } | undefined)?.inStore || 'cluster';

  return new MigrationGuardClient(storeTransport((a, p) => store.dispatch(a, p), inStore), clusterContext(store));
}

/** namespace/name of the VM a component shows: its resource, else the detail page's route. */
interface Named { metadata?: { namespace?: string, name?: string } }
interface RouteLike { params?: Record<string, string | string[] | undefined> }

export function vmRef(resource: Named | null | undefined, route: RouteLike | null | undefined): { namespace: string, name: string } | null {
  const param = (key: string) => {
    const value = route?.params?.[key];

    return Array.isArray(value) ? value[0] : value;
  };
  const namespace = resource?.metadata?.namespace || param('namespace');
  const name = resource?.metadata?.name || param('id');

  return namespace && name ? { namespace, name } : null;
}
