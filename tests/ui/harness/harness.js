// Mounts the bundle's Migrate dialog or Migration tab, as Rancher would after loading the
// extension, with the client over fetch: same origin, so `/apis/...` goes through kubectl proxy
// to kube-apiserver's aggregation layer (a standalone Harvester's URL base).
(function() {
  const params = new URLSearchParams(window.location.search);
  const id = Object.keys(window).find((k) => /^migration-guard-\d/.test(k));
  const mod = window[id];
  const view = params.get('view') || 'dialog';
  const vm = { metadata: { namespace: params.get('ns'), name: params.get('vm') } };
  const client = new mod.MigrationGuardClient(mod.fetchTransport(window.fetch.bind(window)), { isMultiCluster: false });
  const events = [];

  window.mgEvents = events;
  document.getElementById('where').textContent = `${ id }: ${ view } of ${ vm.metadata.namespace }/${ vm.metadata.name }`;
  const props = view === 'tab' ? {
    resource: vm, client, pollSeconds: Number(params.get('poll') || 3), idleSeconds: Number(params.get('poll') || 3), onAborted: (r) => events.push(['aborted', r])
  } : {
    resources: [vm], client, onClose: () => events.push(['close']), onMigrated: (r) => events.push(['migrated', r])
  };

  window.Vue.createApp(view === 'tab' ? mod.MigrationTab : mod.MigrateDialog, props).mount('#app');
})();
