// Answers of migration-guard's aggregated API, shaped as extension/api.py writes them and with
// messages as webhook/rules writes them.
import { HttpAnswer, HttpRequest, Transport } from '../lib/client';

/** Every reason the rule engine gives a node (tests/unit/test_ui_codes.py keeps this list whole). */
export const NODE_REASONS: Record<string, { message: string, field?: string }> = {
  SourceNode:              { message: "node 'n-source' is where the VM runs now: choose another node" },
  NodeNotReady:            { message: "node 'n-notready' is not ready (Ready=False, KubeletNotReady): wait or pick another" },
  NodeCordoned:            { message: "node 'n-cordoned' is cordoned: uncordon it or pick another node" },
  NodeInMaintenance:       { message: "node 'n-maintenance' is in maintenance mode (harvesterhci.io/maintain-status=completed): end maintenance or pick another node" },
  WitnessNode:             { message: "node 'n-witness' is a witness node and runs no VMs" },
  NotSchedulable:          { message: "node 'n-unschedulable' is not schedulable for VMs (label kubevirt.io/schedulable is false; virt-handler sets it to 'true' when healthy)" },
  NodeSelectorMismatch:    { message: "node 'n-selector' does not match the VM's nodeSelector (disk=ssd): label the node or change the selector", field: 'spec.nodeSelector' },
  NodeAffinityMismatch:    { message: "node 'n-affinity' does not match the VM's required node affinity: label the node or change the affinity", field: 'spec.affinity.nodeAffinity' },
  TaintNotTolerated:       { message: "node 'n-taint' has taint dedicated=db:NoSchedule that the VM does not tolerate: add a toleration to the VM or remove the taint", field: 'spec.tolerations' },
  NetworkUnavailable:      { message: "node 'n-network' lacks cluster network 'data' needed by network 'nic-1' (default/vlan100); label network.harvesterhci.io/data=true is missing", field: 'spec.networks[1]' },
  CPUModelUnsupported:     { message: "node 'n-cpu' lacks CPU model 'Cascadelake-Server' (cpu-model.node.kubevirt.io/Cascadelake-Server=true): pick a node with a compatible CPU or change the VM's CPU model", field: 'spec.domain.cpu' },
  MachineTypeUnsupported:  { message: "node 'n-machine' does not support the VM's machine type 'q35' (machine-type.node.kubevirt.io/q35=true): pick a node whose QEMU offers it", field: 'spec.domain.machine.type' },
  InsufficientResources:   { message: "node 'n-full' lacks room for the virt-launcher pod (memory: needs 8.2Gi, 2Gi free of 62.7Gi allocatable): free resources on it or choose another node" },
  PodAntiAffinityConflict: { message: "node 'n-anti' runs a pod the VM's required anti-affinity excludes (topology kubernetes.io/hostname=n-anti): pick a node in another domain or change the anti-affinity", field: 'spec.affinity.podAntiAffinity' },
  PodAffinityUnsatisfied:  { message: "node 'n-podaffinity' is in no topology.kubernetes.io/zone domain that runs a pod the VM's required pod affinity asks for: pick a node next to those pods or change the affinity", field: 'spec.affinity.podAffinity' },
};

/** Every VM blocker (DESIGN.md "VM blockers"). */
export const BLOCKERS: Record<string, { message: string, field?: string }> = {
  ManagementNetworkBridge: { message: "interface 'default' uses bridge binding on the management (pod) network: change it to masquerade binding (or move the VM to a VLAN network)", field: 'spec.domain.devices.interfaces[0]' },
  CDROMVolume:             { message: "CD-ROM 'cdrom-0' has PVC 'cdrom-vm-cdrom-0-ubuntu-iso' inserted: eject the CD-ROM before migrating", field: 'spec.domain.devices.disks[1]' },
  ContainerDiskVolume:     { message: "volume 'boot' is a containerDisk (image quay.io/containerdisks/fedora): remove the volume before migrating", field: 'spec.volumes[0]' },
  PCIDevicePassthrough:    { message: "host device 'gpu1' (nvidia.com/TU104GL) is passed through to the VM: remove the device before migrating", field: 'spec.domain.devices.hostDevices[0]' },
  NodePinned:              { message: "the VM is pinned to node 'harvester-node-0' by nodeSelector kubernetes.io/hostname: remove the pin to migrate it", field: 'spec.nodeSelector[kubernetes.io/hostname]' },
  VMINotRunning:           { message: 'the VM is not running (VMI phase Scheduling): start the VM first', field: 'status.phase' },
  MigrationInProgress:     { message: "migration 'vm-abcde' (phase Running) is still in progress: wait for it to finish, or abort it (kubectl delete vmim -n default vm-abcde)" },
  NotLiveMigratable:       { message: 'KubeVirt reports the VM is not live-migratable (DisksNotLiveMigratable: PVC disk-0 is not shared): fix what KubeVirt names', field: 'status.conditions[1]' },
};

export const TIMEOUTS = {
  dataBytes:                8589934592,
  dataGiB:                  8,
  completionTimeoutSeconds: 6400,
  progressTimeoutSeconds:   150,
};

/** One node per reason code, plus two eligible ones (named so that sorting by name interleaves them). */
export function reportWithEveryReason(): any {
  const excluded = Object.entries(NODE_REASONS).map(([code, r], i) => ({
    name:     `node-${ String.fromCharCode(98 + i) }`,
    eligible: false,
    reasons:  [{
      code, message: r.message, ...(r.field ? { field: r.field } : {})
    }],
  }));

  return {
    vm:         'default/clean-vm',
    sourceNode: 'node-b',
    target:     null,
    allowed:    true,
    blockers:   [],
    nodes:      [{
      name: 'node-z', eligible: true, reasons: []
    }, ...excluded, {
      name: 'node-a', eligible: true, reasons: []
    }],
    eligibleNodes:  ['node-z', 'node-a'],
    timeouts:       TIMEOUTS,
    problems:       [],
    notes:          [],
    nodesEvaluated: true,
    warnings:       [],
    exemption:      null,
  };
}

/** The demo cluster's cdrom-vm: one blocker, every node excluded (as `migration-guard check` prints it). */
export function cdromReport(): any {
  return {
    vm:         'default/cdrom-vm',
    sourceNode: 'harvester-node-0',
    target:     null,
    allowed:    false,
    blockers:   [{ code: 'CDROMVolume', ...BLOCKERS.CDROMVolume }],
    nodes:      [
      {
        name: 'harvester-node-0', eligible: false, reasons: [{ code: 'SourceNode', message: "node 'harvester-node-0' is where the VM runs now: choose another node" }]
      },
      {
        name: 'harvester-node-1', eligible: false, reasons: [{ code: 'NodeCordoned', message: "node 'harvester-node-1' is cordoned: uncordon it or pick another node" }]
      },
      {
        name:     'harvester-node-2',
        eligible: false,
        reasons:  [
          { code: 'NodeCordoned', message: "node 'harvester-node-2' is cordoned: uncordon it or pick another node" },
          { code: 'NodeInMaintenance', message: "node 'harvester-node-2' is in maintenance mode (harvesterhci.io/maintain-status=completed): end maintenance or pick another node" },
        ]
      },
      {
        name: 'harvester-node-3', eligible: true, reasons: []
      },
    ],
    eligibleNodes:  ['harvester-node-3'],
    timeouts:       TIMEOUTS,
    problems:       [{ code: 'CDROMVolume', ...BLOCKERS.CDROMVolume }],
    notes:          [],
    nodesEvaluated: true,
    warnings:       [],
    exemption:      null,
  };
}

/** A Kubernetes Status as migration-guard writes errors (extension/api.py error_response). */
export function status(code: number, reason: string, message: string, extra: Record<string, any> = {}): any {
  return {
    kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, error: message, ...extra
  };
}

export const T0 = Date.parse('2026-05-04T10:00:00Z');

/** A migration 100 s into its run, 6 of 8 GiB copied, KubeVirt's deadline first. */
export function runningMigration(extra: Record<string, any> = {}): any {
  return {
    name:                     'clean-vm-x7k2p',
    uid:                      '6f1c2a4e-0000-4000-8000-000000000001',
    phase:                    'Running',
    final:                    false,
    sourceNode:               'harvester-node-0',
    targetNode:               'harvester-node-3',
    startTimestamp:           '2026-05-04T09:58:20Z',
    endTimestamp:             null,
    elapsedSeconds:           100,
    completionDeadline:       '2026-05-04T11:45:00Z',
    completionTimeoutSeconds: 6400,
    progressTimeoutSeconds:   150,
    kubevirt:                 {
      dataBytes: 8589934592, dataGB: 9, completionTimeoutPerGiB: 150, completionTimeoutSeconds: 1350, progressTimeoutSeconds: 150, allowPostCopy: false, allowWorkloadDisruption: false, completionAction: 'abort', source: 'default', kubevirt: null, migrationPolicy: null, notes: []
    },
    kubevirtCompletionDeadline: '2026-05-04T10:20:50Z',
    firesFirst:                 { completion: 'kubevirt', progress: 'same' },
    dataRemainingBytes:         2147483648,
    requestedBy:                'alice',
    failureReason:              null,
    abortStatus:                null,
    abort:                      null,
    conditions:                 [],
    why:                        null,
    ...extra,
  };
}

/**
 * A fake aggregated API: answers queued per "METHOD subresource"; the last answer of a queue
 * repeats. Every request is recorded.
 */
export class FakeApi {
  calls: HttpRequest[] = [];
  private queues: Record<string, HttpAnswer[]> = {};

  on(method: string, sub: string, ...answers: HttpAnswer[]): this {
    this.queues[`${ method } ${ sub }`] = answers;

    return this;
  }

  transport: Transport = (req) => {
    this.calls.push(req);
    const sub = req.url.split('/').pop();
    const queue = this.queues[`${ req.method } ${ sub }`];

    if (!queue || !queue.length) {
      return Promise.reject(new Error(`no answer for ${ req.method } ${ req.url }`));
    }
    const answer = queue.length > 1 ? queue.shift() as HttpAnswer : queue[0];

    if ((answer as any).networkError) {
      return Promise.reject(new Error((answer as any).networkError));
    }

    return Promise.resolve(answer);
  };

  callsTo(method: string, sub: string): HttpRequest[] {
    return this.calls.filter((c) => c.method === method && c.url.endsWith(`/${ sub }`));
  }
}
