// Where the browser reaches migration-guard's aggregated API (docs/extension.md).
//
// Harvester managed by Rancher: the dashboard talks to the downstream cluster through Rancher's
// proxy, /k8s/clusters/<cluster id>/... . Standalone Harvester: its own UI talks to its
// kube-apiserver paths directly, /apis/... . harvester-ui-extension decides the same way for
// subresources.kubevirt.io (the `isMultiCluster` and `clusterId` getters of the dashboard store).

export const GROUP = 'subresources.migration-guard.io';
export const VERSION = 'v1';

export type VmSubresource = 'migrationtargets' | 'migration' | 'migrate' | 'abortmigration';

export interface ClusterContext {
  /** The dashboard runs inside Rancher (several clusters), not as a standalone Harvester UI. */
  isMultiCluster: boolean;
  /** Rancher's id of the Harvester cluster (the `:cluster` route parameter). */
  clusterId?: string | null;
}

/** '' on standalone Harvester, '/k8s/clusters/<id>' under Rancher. */
export function clusterPrefix(ctx: ClusterContext): string {
  if (!ctx.isMultiCluster) {
    return '';
  }
  if (!ctx.clusterId) {
    throw new Error('no cluster id: the Harvester cluster is not known yet');
  }

  return `/k8s/clusters/${ encodeURIComponent(ctx.clusterId) }`;
}

/** The group-version root: `<prefix>/apis/subresources.migration-guard.io/v1`. */
export function apiRoot(ctx: ClusterContext): string {
  return `${ clusterPrefix(ctx) }/apis/${ GROUP }/${ VERSION }`;
}

/** One subresource of a VirtualMachine, e.g. `.../namespaces/ns/virtualmachines/vm/migrate`. */
export function vmSubresourceUrl(ctx: ClusterContext, namespace: string, name: string, sub: VmSubresource): string {
  if (!namespace || !name) {
    throw new Error('a VM needs a namespace and a name');
  }

  return `${ apiRoot(ctx) }/namespaces/${ encodeURIComponent(namespace) }/virtualmachines/${ encodeURIComponent(name) }/${ sub }`;
}
