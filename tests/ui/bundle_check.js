// Loads the built extension bundle as a browser does (a script after Vue's global build, in
// jsdom), calls its plugin function with a recording plugin, and mounts the Migrate dialog
// from the bundle against a canned report. Prints what it saw as JSON (tests/ui/test_bundle.py).
const fs = require('fs');
const path = require('path');

const [ui, bundle, name] = process.argv.slice(2);
const { JSDOM } = require(path.join(ui, 'node_modules', 'jsdom'));
const dom = new JSDOM('<!doctype html><html><head></head><body><div id="app"></div></body></html>', { runScripts: 'outside-only', pretendToBeVisual: true });
const win = dom.window;

win.eval(fs.readFileSync(path.join(ui, 'node_modules', 'vue', 'dist', 'vue.global.prod.js'), 'utf8'));
win.eval(fs.readFileSync(bundle, 'utf8'));
const mod = win[name];
const calls = [];
const plugin = {
  register:  (type, id, fn) => calls.push({ call: 'register', type, id, fn: typeof fn }),
  addAction: (where, when, action) => calls.push({ call: 'addAction', where, when, label: action.label, invoke: typeof action.invoke }),
  addTab:    (where, when, tab) => calls.push({ call: 'addTab', where, when, name: tab.name, label: tab.label, component: typeof tab.component }),
};

mod.default(plugin);

const report = JSON.parse(process.env.MG_REPORT);
const requests = [];
const transport = (req) => {
  requests.push(req);

  return Promise.resolve({ status: 200, body: report });
};
const client = new mod.MigrationGuardClient(transport, { isMultiCluster: false });
const app = win.Vue.createApp(mod.MigrateDialog, { resources: [{ metadata: { namespace: 'default', name: 'cdrom-vm' } }], client });

app.mount(win.document.getElementById('app'));
setTimeout(() => {
  const doc = win.document;

  process.stdout.write(JSON.stringify({
    exports:  Object.keys(mod).sort(),
    metadata: plugin.metadata && { name: plugin.metadata.name, version: plugin.metadata.version },
    calls,
    requests,
    blockers: [...doc.querySelectorAll('[data-testid="mg-blocker"]')].map((e) => e.getAttribute('data-code')),
    nodes:    [...doc.querySelectorAll('[data-testid^="mg-node-"]')].map((e) => [e.getAttribute('data-testid'), e.getAttribute('data-eligible')]),
    text:     doc.getElementById('app').textContent,
  }));
}, 200);
