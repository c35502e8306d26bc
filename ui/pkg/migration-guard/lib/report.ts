// The report of `GET .../migrationtargets` (DESIGN.md "Report"), as the Migrate dialog shows it.

export interface Problem {
  code: string;
  message: string;
  field?: string | null;
}

export interface NodeVerdict {
  name: string;
  eligible: boolean;
  reasons: Problem[];
  warnings?: Problem[];
}

export interface Report {
  vm: string;
  sourceNode: string | null;
  target: string | null;
  allowed: boolean;
  blockers: Problem[];
  nodes: NodeVerdict[];
  eligibleNodes: string[];
  timeouts: Record<string, unknown> | null;
  problems?: Problem[];
  notes?: string[];
  nodesEvaluated?: boolean;
  warnings?: Problem[];
  exemption?: string | null;
}

/** A short title for each code the rule engine produces; the message says the rest. */
export const CODE_TITLES: Record<string, string> = {
  // VM blockers
  ManagementNetworkBridge: 'Bridge on the management network',
  CDROMVolume:             'CD-ROM inserted',
  ContainerDiskVolume:     'Container disk',
  PCIDevicePassthrough:    'Passthrough device',
  NodePinned:              'Pinned to a node',
  VMINotRunning:           'Not running',
  MigrationInProgress:     'Migration in progress',
  NotLiveMigratable:       'Not live-migratable (KubeVirt)',
  // node reasons
  SourceNode:              'Runs the VM now',
  NodeNotReady:            'Not ready',
  NodeCordoned:            'Cordoned',
  NodeInMaintenance:       'In maintenance',
  WitnessNode:             'Witness node',
  NotSchedulable:          'Not schedulable for VMs',
  NodeSelectorMismatch:    'Node selector does not match',
  NodeAffinityMismatch:    'Node affinity does not match',
  TaintNotTolerated:       'Taint not tolerated',
  NetworkUnavailable:      'Cluster network missing',
  CPUModelUnsupported:     'CPU model or features missing',
  MachineTypeUnsupported:  'Machine type unsupported',
  InsufficientResources:   'Not enough CPU or memory',
  PodAntiAffinityConflict: 'Pod anti-affinity conflict',
  PodAffinityUnsatisfied:  'Pod affinity not satisfied',
  // whole-migration problems (a refusal's causes)
  TargetNotEligible:       'Target node not eligible',
  TargetNotFound:          'Target node does not exist',
  NoEligibleTarget:        'No node can receive the VM',
  InvalidObject:           'Unreadable object',
};

export function codeTitle(code: string): string {
  return CODE_TITLES[code] || code;
}

export interface ProblemView extends Problem {
  title: string;
}

export function problemView(p: Problem): ProblemView {
  return {
    code: p.code, message: p.message, field: p.field || null, title: codeTitle(p.code)
  };
}

export interface NodeRow {
  name: string;
  eligible: boolean;
  isSource: boolean;
  reasons: ProblemView[];
  warnings: ProblemView[];
}

const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name, undefined, { numeric: true });

/** Every node: the eligible ones first, then the excluded ones, each group by name. */
export function nodeRows(report: Report): NodeRow[] {
  const rows = (report.nodes || []).map((n) => ({
    name:     n.name,
    eligible: !!n.eligible,
    isSource: n.name === report.sourceNode,
    reasons:  (n.reasons || []).map(problemView),
    warnings: (n.warnings || []).map(problemView),
  }));

  return [...rows.filter((r) => r.eligible).sort(byName), ...rows.filter((r) => !r.eligible).sort(byName)];
}

export function blockerViews(report: Report): ProblemView[] {
  return (report.blockers || []).map(problemView);
}

export function warningViews(report: Report): ProblemView[] {
  return (report.warnings || []).map(problemView);
}

/** Whether Apply can succeed at all: no blocker stands (an exempt VM has none that count). */
export function canMigrate(report: Report): boolean {
  if (report.exemption) {
    return true;
  }

  return !(report.blockers || []).length && (report.eligibleNodes || []).length > 0;
}

/** One line above the list: why nothing can be chosen, or how many nodes can. */
export function summaryLine(report: Report): string {
  const eligible = (report.eligibleNodes || []).length;
  const total = (report.nodes || []).length;

  if (report.exemption) {
    return `migration-guard does not check this VM: ${ report.exemption }`;
  }
  if ((report.blockers || []).length) {
    const n = report.blockers.length;

    return `This VM cannot live-migrate until ${ n === 1 ? 'this blocker is' : `these ${ n } blockers are` } removed:`;
  }
  if (report.nodesEvaluated === false) {
    return 'The nodes could not be evaluated (the VM is not running).';
  }
  if (!eligible) {
    return `None of the ${ total } nodes can receive this VM: see each node's reasons.`;
  }

  return `${ eligible } of ${ total } nodes can receive this VM.`;
}
