"""The migration target pod as KubeVirt v1.8 renders it, reduced to what kube-scheduler reads.

virt-controller (pkg/virt-controller/watch/migration/migration.go, createTargetPod) renders the
target virt-launcher pod afresh from the VMI (services.RenderMigrationManifest), then adds:
- `spec.addedNodeSelector` for keys the rendered pod does not set (the VMI's value wins);
- for CPU model host-model: the source pod's `cpu-model-migration.node.kubevirt.io/*` and
  `cpu-feature.node.kubevirt.io/*` selector entries when it has any (the VM migrated before), else
  the source node's `host-model-cpu.node.kubevirt.io/<M>` as `cpu-model-migration...<M>` and its
  `host-model-required-features.node.kubevirt.io/<f>` as `cpu-feature...<f>`; a source node without
  a host model makes the render fail (the migration never gets a target pod);
- the source node's `cpu-vendor.node.kubevirt.io/*` label unless the pod selects a vendor already;
- a required pod anti-affinity to pods labelled `kubevirt.io/created-by=<VMI uid>` per hostname.
The rendered part (services/template.go, nodeselectorrenderer.go): nodeSelector
`kubevirt.io/schedulable=true`, the architecture, the VMI's nodeSelector, `cpumanager` for dedicated
CPUs, the named CPU model and required features, the machine type (`status.machine.type`, else the
spec); the VMI's affinity plus `DoesNotExist` terms for the obsolete-host-model label (model empty or
host-model) and each forbidden feature; the VMI's tolerations, schedulerName and priorityClassName.

What is taken from the source launcher pod, because rendering it needs KubeVirt's configuration:
its resource requests (memory overhead, device-plugin resources, hugepages) and the selector
entries of KubeVirt features read from that configuration (`_FROM_SOURCE_POD`). Without a launcher
pod, requests are rendered from the VMI (`rendered` is True and the report says so).
Not judged here: the KubeVirt CR's cluster-wide `developerConfiguration.nodeSelectors` (the CR is
cached, its selectors not applied yet), topology spread constraints, and preemption by priority
(docs/internals.md).

Split for speed: `read_vmi_pod` is the VMI's part (computed once per VMI object, in VMIFacts),
`read_source_pod` the launcher pod's (once per pod object, in ClusterState's pod facts);
`render_pod` adds those, the source node and the VMIM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webhook.rules import access as a
from webhook.rules.filters.pod_affinity import Term, resolve_term
from webhook.rules.filters.resources import Resources, amount, pod_requests
from webhook.rules.filters.taints import with_default_tolerations
from webhook.rules.model import Problem
from webhook.rules.target import HOSTNAME_LABEL, added_node_selector

SCHEDULABLE = "kubevirt.io/schedulable"
ARCH = "kubernetes.io/arch"
CPU_MANAGER = "cpumanager"
CPU_MODEL = "cpu-model.node.kubevirt.io/"
CPU_FEATURE = "cpu-feature.node.kubevirt.io/"
HOST_MODEL_CPU = "host-model-cpu.node.kubevirt.io/"
HOST_MODEL_FEATURE = "host-model-required-features.node.kubevirt.io/"
HOST_MODEL_MIGRATION = "cpu-model-migration.node.kubevirt.io/"
CPU_VENDOR = "cpu-vendor.node.kubevirt.io/"
MACHINE_TYPE = "machine-type.node.kubevirt.io/"
OBSOLETE_HOST_MODEL = "node-labeller.kubevirt.io/obsolete-host-model"
CREATED_BY = "kubevirt.io/created-by"
HOST_MODEL = "host-model"
DEFAULT_SCHEDULER = "default-scheduler"
# Selector entries KubeVirt renders from its configuration (Hyper-V strict check, TSC frequency,
# realtime, SEV, TDX): copied from the source pod, which was rendered with the same configuration.
_FROM_SOURCE_POD = (
    "hyperv.node.kubevirt.io/",
    "scheduling.node.kubevirt.io/",
    "kubevirt.io/realtime",
    "kubevirt.io/sev",
    "kubevirt.io/tdx",
    "kubevirt.io/secureexecution",
)

# Equal small maps many VMIs or nodes carry (a selector part, requests, a host model) are kept
# once: a cache of 20,000 VMIs holds a few kinds of them. Read-only by contract, like all cached
# objects; bounded, beyond which values are simply not shared.
_SHARED: dict[tuple, dict] = {}
_SHARED_MAX = 4096


def _shared(value: dict) -> dict:
    key = (type(value), *value.items())
    found = _SHARED.get(key)
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_MAX:
        _SHARED[key] = value
    return value


# Where a nodeSelector entry of the target pod comes from, for the reasons a node fails it.
VM, MIGRATION, KUBEVIRT = "vm", "migration", "kubevirt"
FROM_HOST_MODEL, FROM_VENDOR, FROM_MACHINE_TYPE, FROM_CPU = "host-model", "vendor", "machine", "cpu"


@dataclass(slots=True)
class TargetPod:
    """What kube-scheduler reads of the target pod; `origin` says who asked for each selector key.

    Made per decision and only read (not frozen: the frozen __init__'s setattr calls cost
    about a microsecond, for every decision)."""

    namespace: str
    labels: dict[str, str]
    node_selector: dict[str, str]
    layers: tuple  # what `node_selector` is made of (`_layers`), for `origin`
    vm_affinity_terms: list[dict] | None  # the VMI's required node affinity (None: none)
    rejected_labels: dict[str, str]  # label KubeVirt's DoesNotExist terms reject -> why
    tolerations: list[dict]
    requests: Resources
    affinity_terms: tuple[Term, ...]
    anti_affinity_terms: tuple[Term, ...]
    scheduler_name: str
    rendered: bool  # requests rendered from the VMI: no launcher pod was known
    source_node_known: bool
    problems: tuple[Problem, ...]  # why KubeVirt cannot render it at all
    _origin: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def origin(self) -> dict[str, str]:
        """Who asked for each selector key: read only for a node that fails one, so made then."""
        if self._origin is None:
            self._origin = _layers(*self.layers, origin=True)
        return self._origin

    @property
    def by_kube_scheduler(self) -> bool:
        """Whether kube-scheduler places the pod, so its filters can be predicted."""
        return self.scheduler_name == DEFAULT_SCHEDULER


def _vmi_requests(vmi: dict, ctx: str) -> Resources:
    """Requests as the launcher's compute container gets them, without KubeVirt's overhead."""
    resources = a.get(vmi, "spec.domain.resources", dict, ctx, {})
    base = "spec.domain.resources"
    out: Resources = {}
    for part in ("limits", "requests"):
        for name, value in a.get(resources, part, dict, ctx, {}, base).items():
            out[name] = amount(name, value, ctx, f"{base}.{part}.{name}")
    if "memory" not in out:
        guest = a.get(vmi, "spec.domain.memory.guest", object, ctx)
        if guest is not None:
            out["memory"] = amount("memory", guest, ctx, "spec.domain.memory.guest")
    page = a.get(vmi, "spec.domain.memory.hugepages.pageSize", str, ctx)
    if page and "memory" in out:
        out[f"hugepages-{page}"] = out["memory"]
    out["devices.kubevirt.io/kvm"] = 1
    if a.dicts(vmi, "spec.domain.devices.interfaces", ctx):
        out["devices.kubevirt.io/tun"] = 1
        out["devices.kubevirt.io/vhost-net"] = 1
    out["pods"] = 0
    return out


def _machine_type(vmi: dict, ctx: str) -> str:
    return a.get(vmi, "status.machine.type", str, ctx, "") or a.get(
        vmi, "spec.domain.machine.type", str, ctx, ""
    )


Selector = tuple[dict[str, str], dict[str, str]]  # (key -> value, key -> origin)


def _rendered_selector(vmi: dict, ctx: str) -> tuple[Selector, Selector]:
    """The VMI's part of NodeSelectorRenderer.Render as (head, tail): the source pod's
    configuration entries (`_FROM_SOURCE_POD`) go between the two."""
    head: Selector = ({SCHEDULABLE: "true"}, {SCHEDULABLE: KUBEVIRT})
    tail: Selector = ({}, {})

    def put(part: Selector, key: str, value: str, origin: str) -> None:
        part[0][key], part[1][key] = value, origin

    arch = a.get(vmi, "spec.architecture", str, ctx, "")
    if arch:
        put(head, ARCH, arch.lower(), KUBEVIRT)
    for k, v in a.str_map(vmi, "spec.nodeSelector", ctx).items():
        put(head, k, v, VM)
    if a.get(vmi, "spec.domain.cpu.dedicatedCpuPlacement", bool, ctx, False):
        put(tail, CPU_MANAGER, "true", KUBEVIRT)
    model = a.get(vmi, "spec.domain.cpu.model", str, ctx, "")
    if model and model not in (HOST_MODEL, "host-passthrough"):
        put(tail, CPU_MODEL + model, "true", FROM_CPU)
    machine = _machine_type(vmi, ctx)
    if machine:
        put(tail, MACHINE_TYPE + machine, "true", FROM_MACHINE_TYPE)
    if model:  # CPUModelLabelFromCPUModel fails without a model, and then no feature is added
        for i, feature in a.dicts(vmi, "spec.domain.cpu.features", ctx):
            path = f"spec.domain.cpu.features[{i}]"
            name = a.get(feature, "name", str, ctx, "", path)
            if name and a.get(feature, "policy", str, ctx, "", path) in ("", "require"):
                put(tail, CPU_FEATURE + name, "true", FROM_CPU)
    return (_shared(head[0]), _shared(head[1])), (_shared(tail[0]), _shared(tail[1]))


@dataclass(frozen=True, slots=True)
class VMIPod:
    """What the target pod takes from the VMI alone: read once per VMI object (VMIFacts), so
    a decision renders only what depends on the launcher pod, the source node and the VMIM."""

    namespace: str
    uid: str
    head: Selector
    tail: Selector
    model: str
    vm_terms: list[dict] | None
    rejected_labels: dict[str, str]
    tolerations: list[dict]
    labels: dict[str, str]  # the VMI's own, for a pod rendered without a launcher
    requests: Resources  # rendered from the VMI, for a pod without a launcher
    affinity: tuple[dict, ...]  # required podAffinity terms, resolved against the pod's labels
    anti_affinity: tuple[dict, ...]
    scheduler_name: str
    selects_vendor: bool  # its selector names a CPU vendor, so the source node's is not added
    rendered: Selector  # head and tail together: the selector without source pod entries


def read_vmi_pod(vmi: dict) -> VMIPod:
    """The VMI's part of its target pod; raises InputError on malformed fields."""
    ctx = a.describe(vmi, "VirtualMachineInstance")
    head, tail = _rendered_selector(vmi, ctx)
    terms = a.get(
        vmi, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution", dict, ctx
    )
    vm_terms = None
    if terms is not None:
        vm_terms = [
            t for _, t in a.dicts(terms, "nodeSelectorTerms", ctx, "spec.affinity.nodeAffinity")
        ]
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    return VMIPod(
        namespace=a.namespace_of(vmi, ctx) or "default",
        uid=a.get(vmi, "metadata.uid", str, ctx, ""),
        head=head,
        tail=tail,
        model=a.get(vmi, "spec.domain.cpu.model", str, ctx, ""),
        vm_terms=vm_terms,
        rejected_labels=_shared(_rejected_labels(vmi, ctx)),
        tolerations=_tolerations(vmi, ctx),
        labels=a.str_map(vmi, "metadata.labels", ctx),
        requests=_shared(_vmi_requests(vmi, ctx)),
        affinity=tuple(t for _, t in a.dicts(vmi, f"spec.affinity.podAffinity.{required}", ctx)),
        anti_affinity=tuple(
            t for _, t in a.dicts(vmi, f"spec.affinity.podAntiAffinity.{required}", ctx)
        ),
        scheduler_name=a.get(vmi, "spec.schedulerName", str, ctx, "") or DEFAULT_SCHEDULER,
        selects_vendor=vendor_key(head[0]) is not None or vendor_key(tail[0]) is not None,
        rendered=(_shared({**head[0], **tail[0]}), _shared({**head[1], **tail[1]})),
    )


_DEFAULT_TOLERATIONS_ONLY = with_default_tolerations([])


def _tolerations(vmi: dict, ctx: str) -> list[dict]:
    """The VMI's tolerations and the API server's defaults (one shared list when it has none)."""
    own = [t for _, t in a.dicts(vmi, "spec.tolerations", ctx)]
    return with_default_tolerations(own) if own else _DEFAULT_TOLERATIONS_ONLY


def _rejected_labels(vmi: dict, ctx: str) -> dict[str, str]:
    model = a.get(vmi, "spec.domain.cpu.model", str, ctx, "")
    out: dict[str, str] = {}
    if model in ("", HOST_MODEL):
        out[OBSOLETE_HOST_MODEL] = "its host CPU model is obsolete for host-model VMs"
    for i, feature in a.dicts(vmi, "spec.domain.cpu.features", ctx):
        path = f"spec.domain.cpu.features[{i}]"
        if a.get(feature, "policy", str, ctx, "", path) == "forbid":
            name = a.get(feature, "name", str, ctx, "", path)
            out[CPU_FEATURE + name] = f"it has CPU feature '{name}', which the VM forbids"
    return out


@dataclass(frozen=True)
class SourceNode:
    """What a migration from a node reads of it, read once per node object (NodeFacts)."""

    host_model: dict[str, str] | None  # its host model as the target pod selects it; None: none
    vendor: str | None  # its `cpu-vendor.node.kubevirt.io/<V>` label


def source_node(labels: dict[str, str]) -> SourceNode:
    """prepareNodeSelectorForHostCpuModel's entries from the node's host-model labels, and its
    vendor: `host-model-cpu...<M>` becomes `cpu-model-migration...<M>`,
    `host-model-required-features...<f>` becomes `cpu-feature...<f>`."""
    entries: dict[str, str] = {}
    model = None
    for k, v in labels.items():
        if k.startswith(HOST_MODEL_CPU):
            model = (k[len(HOST_MODEL_CPU) :], v)
        elif k.startswith(HOST_MODEL_FEATURE):
            entries[CPU_FEATURE + k[len(HOST_MODEL_FEATURE) :]] = v
    host_model = None
    if model is not None:
        host_model = _shared({**entries, HOST_MODEL_MIGRATION + model[0]: model[1]})
    return SourceNode(host_model, vendor_key(labels))


def vendor_key(labels: dict[str, str]) -> str | None:
    return next((k for k in labels if k.startswith(CPU_VENDOR)), None)


@dataclass(frozen=True, slots=True)
class SourcePod:
    """What the target pod takes from the VMI's virt-launcher pod: read once per pod object
    (ClusterState keeps it with the pod's facts), so a decision neither re-checks nor filters
    the pod's selector."""

    from_config: dict[str, str]  # its selector entries of KubeVirt's configuration
    host_model: dict[str, str]  # its host-model entries (empty: the VM has not migrated yet)
    host_model_vendor: bool  # one of those names a CPU vendor
    labels: dict[str, str]
    requests: Resources


def read_source_pod(pod: dict, requests: Resources | None = None) -> SourcePod:
    """The launcher pod's part of the target pod; raises InputError on malformed fields.
    `requests`: its `pod_requests` when the caller has them."""
    ctx = a.describe(pod, "Pod")
    selector = a.str_map(pod, "spec.nodeSelector", ctx)
    host = {k: v for k, v in selector.items() if CPU_FEATURE in k or HOST_MODEL_MIGRATION in k}
    return SourcePod(
        from_config=_shared({k: v for k, v in selector.items() if k.startswith(_FROM_SOURCE_POD)}),
        host_model=_shared(host),
        host_model_vendor=vendor_key(host) is not None,
        labels=a.str_map(pod, "metadata.labels", ctx),
        requests=requests if requests is not None else pod_requests(pod),
    )


def render_target_pod(
    vmi: dict,
    vmim: dict | None,
    source_pod: dict | None,
    source_node_labels: dict[str, str] | None,
    source_requests: Resources | None = None,
) -> TargetPod:
    """`render_pod` from the objects themselves; raises InputError on bad fields."""
    source = source_node(source_node_labels) if source_node_labels is not None else None
    pod_facts = read_source_pod(source_pod, source_requests) if source_pod is not None else None
    return render_pod(vmi, vmim, source_pod, source, pod_facts=pod_facts)


def _host_model(pod: SourcePod | None, source: SourceNode) -> tuple[dict[str, str] | None, bool]:
    """The source pod's host-model entries when it has any (the VM migrated before), else the
    source node's (None: neither names a host model); and whether they name a CPU vendor (the
    node's never do)."""
    if pod is not None and pod.host_model:
        return pod.host_model, pod.host_model_vendor
    return source.host_model, False


_EMPTY: dict[str, str] = {}


def _layers(
    v: VMIPod,
    from_pod: dict[str, str],
    host: dict[str, str] | None,
    vendor: str | None,
    added: dict[str, str],
    origin: bool,
) -> dict[str, str]:
    """The target pod's nodeSelector (`origin` False), or who asked for each of its keys (True):
    the VMI's entries, the source pod's configuration entries, the host model's, the vendor's,
    then the VMIM's where the pod sets none."""
    i = 1 if origin else 0
    if from_pod:
        middle = dict.fromkeys(from_pod, KUBEVIRT) if origin else from_pod
        out = {**v.head[i], **middle, **v.tail[i]}
    else:
        out = dict(v.rendered[i])
    if host:
        out.update(dict.fromkeys(host, FROM_HOST_MODEL) if origin else host)
    if vendor is not None:
        out[vendor] = FROM_VENDOR if origin else "true"
    for k, value in added.items():
        if k not in out:
            out[k] = MIGRATION if origin else value
    return out


def render_pod(
    vmi: dict,
    vmim: dict | None,
    source_pod: dict | None,
    source: SourceNode | None,
    vmi_pod: VMIPod | None = None,
    pod_facts: SourcePod | None = None,
    added: dict[str, str] | None = None,
) -> TargetPod:
    """The target pod of migrating `vmi` with `vmim`.

    `source_pod`: the VMI's virt-launcher pod (None: rendered from the VMI); `source`: the node
    the VMI runs on (None: unknown, so the host-model and vendor entries cannot be added and are
    not judged); `vmi_pod` and `pod_facts`: `read_vmi_pod(vmi)` and `read_source_pod(source_pod)`
    when the caller has them (VMIFacts, ClusterState's pod facts); `added`: the VMIM's
    `added_node_selector` when the caller has it.

    The VMIM's addedNodeSelector keys are added where the pod sets none (the VMI's value wins).
    KubeVirt adds them before the host-model and vendor entries: host-model entries overwrite
    (here: an added key they set is skipped), and the source's vendor is added only when no
    vendor is selected yet (here: not when the migration selects one).
    """
    v = vmi_pod if vmi_pod is not None else read_vmi_pod(vmi)
    p = pod_facts
    if p is None and source_pod is not None:
        p = read_source_pod(source_pod)
    if added is None:
        added = added_node_selector(vmim)
    from_pod = p.from_config if p is not None else _EMPTY
    problems: list[Problem] = []
    host: dict[str, str] | None = None
    vendor: str | None = None
    if source is not None:
        selects_vendor = v.selects_vendor
        if v.model == HOST_MODEL:
            host, host_vendor = _host_model(p, source)
            if host is None:
                problems.append(
                    Problem(
                        "CPUModelUnsupported",
                        "the VM's CPU model is host-model, but its node has no "
                        f"{HOST_MODEL_CPU}<model> label, so KubeVirt cannot render the target "
                        "pod: wait for virt-handler's node-labeller to label the node",
                        "spec.domain.cpu.model",
                    )
                )
            else:
                selects_vendor = selects_vendor or host_vendor
        # The configuration entries have other prefixes: they never name a vendor.
        if source.vendor is not None and not selects_vendor and vendor_key(added) is None:
            vendor = source.vendor
    layers = (v, from_pod, host, vendor, added)

    if p is None:
        labels, requests = {**v.labels, "kubevirt.io": "virt-launcher"}, v.requests
        if v.uid:
            labels[CREATED_BY] = v.uid
    else:
        labels, requests = p.labels, p.requests
        if v.uid and labels.get(CREATED_BY) != v.uid:  # KubeVirt labels its pods with it
            labels = {**labels, CREATED_BY: v.uid}

    def resolved(terms: tuple[dict, ...]) -> list[Term]:
        return [
            t for t in (resolve_term(raw, v.namespace, labels) for raw in terms) if t is not None
        ]

    anti = resolved(v.anti_affinity) if v.anti_affinity else []
    if v.uid:  # createMigrationPodAntiAffinityRule
        anti.append(
            Term({"matchLabels": {CREATED_BY: v.uid}}, frozenset({v.namespace}), HOSTNAME_LABEL)
        )
    return TargetPod(
        namespace=v.namespace,
        labels=labels,
        node_selector=_layers(*layers, origin=False),
        layers=layers,
        vm_affinity_terms=v.vm_terms,
        rejected_labels=v.rejected_labels,
        tolerations=v.tolerations,
        requests=requests,
        affinity_terms=tuple(resolved(v.affinity)) if v.affinity else (),
        anti_affinity_terms=tuple(anti),
        scheduler_name=v.scheduler_name,
        rendered=source_pod is None,
        source_node_known=source is not None,
        problems=tuple(problems),
    )
