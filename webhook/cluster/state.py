"""ClusterState: the in-memory copy of the objects the rules read, shared by threads.

Fed by informers (webhook, enforcer, extension) or by files (CLI). Lookups the rules make per
request are O(1): objects by namespace/name, migrations by VMI, the virt-launcher pod by VMI, and
the requests and pod count already bound to each node (kept up to date on every apply / remove /
replace_all, so capacity never walks all pods), and the bound pods pod affinity reads: by
namespace, by `kubevirt.io/created-by`, and the required anti-affinity terms of bound pods indexed
by one label they select. Objects are slimmed on apply to keep 10,000 VMIs small.
Returned dicts are shared: callers must not modify them.
"""

from __future__ import annotations

import copy
import gc
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from webhook.errors import InputError
from webhook.rules import access as a
from webhook.rules.filters.pod_affinity import PodRef, Term, resolve_term
from webhook.rules.filters.resources import (
    NONZERO_DEFAULTS,
    Resources,
    is_terminated,
    nonzero_requests,
    pod_requests,
)
from webhook.rules.kubevirt_limits import ClusterConfig, cluster_config
from webhook.rules.node_eligibility import NodeFacts, Usage, read_node
from webhook.rules.target_pod import CREATED_BY, SourcePod, read_source_pod
from webhook.rules.vmi_facts import VMIFacts, read_vmi

NODE = "Node"
VMI = "VirtualMachineInstance"
VM = "VirtualMachine"
VMIM = "VirtualMachineInstanceMigration"
NAD = "NetworkAttachmentDefinition"
POD = "Pod"
KUBEVIRT = "KubeVirt"
MIGRATION_POLICY = "MigrationPolicy"
NAMESPACE = "Namespace"
HARVESTER_SETTING = "Setting"  # harvesterhci.io: only `server-version` is cached (rules.policy)
SERVER_VERSION = "server-version"
KINDS = (NODE, VMI, VM, VMIM, NAD, POD, KUBEVIRT, MIGRATION_POLICY, NAMESPACE, HARVESTER_SETTING)
# Stored without a namespace (a MigrationPolicy is cluster-scoped, as Nodes and Namespaces are).
CLUSTER_SCOPED = frozenset({NODE, MIGRATION_POLICY, NAMESPACE, HARVESTER_SETTING})
LAUNCHER_LABEL = "kubevirt.io"
LAUNCHER_VALUE = "virt-launcher"
VMI_NAME_LABEL = "vm.kubevirt.io/name"
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
# What rules read of a node's status; the rest (images, nodeInfo, addresses...) is most of a Node.
_NODE_STATUS_KEPT = ("allocatable", "conditions")
# VMI status fields no rule reads (the rules read phase, nodeName, conditions, migrationState,
# migrationMethod, volumeStatus).
_VMI_STATUS_DROPPED = frozenset(
    {
        "activePods",
        "currentCPUTopology",
        "guestOSInfo",
        "interfaces",
        "kernelBootStatus",
        "launcherContainerImageVersion",
        "qosClass",
        "selinuxContext",
        "virtualMachineRevisionName",
    }
)
ANTI_AFFINITY_PATH = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"
_INTERN_MAX = 96

Key = tuple[str, str]  # (namespace, name); namespace "" for nodes


class Slim(dict):
    """A map `slim` returned: what the state keeps of an object.

    `slim` returns one as it is (objects in the state are never modified), so an object is slimmed
    once: the informer slims each list page and each watch event, and `apply` / `replace_all`
    store what it slimmed instead of a second copy (two copies of a 100,000-pod list at once
    were the peak of the server's memory).
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> tuple:
        # A copy (copy.copy, copy.deepcopy, pickle) is a plain dict: whoever changes it gets it
        # slimmed and checked again when it is applied.
        return (dict, (dict(self),))


def slim(obj: dict) -> Slim:
    """A copy of `obj` without what no rule reads (managedFields; most of a pod); `obj` if slim.

    Raises InputError when the object has no kind or name, or a pod's fields are malformed.
    """
    if type(obj) is Slim:
        return obj
    if not isinstance(obj, dict):
        raise InputError(f"object must be a map, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InputError(f"{a.describe(obj)}: kind must be a non-empty string")
    ctx = a.describe(obj)
    meta = dict(a.get(obj, "metadata", dict, ctx, {}))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{kind} object: metadata.name must be a non-empty string")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise InputError(f"{ctx}: metadata.namespace must be a string")
    if kind not in CLUSTER_SCOPED and not ns:
        meta["namespace"] = "default"
    if kind in CLUSTER_SCOPED:
        meta.pop("namespace", None)
    meta.pop("managedFields", None)
    if kind == VMI:  # nothing reads who owns a VMI or what holds its deletion
        meta.pop("ownerReferences", None)
        meta.pop("finalizers", None)
    ctx = a.describe({**obj, "metadata": meta})
    a.str_map(meta, "labels", ctx, "metadata")
    a.str_map(meta, "annotations", ctx, "metadata")
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and any(k in annotations for k in _DROPPED_ANNOTATIONS):
        meta["annotations"] = {
            k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS
        }
    if kind == POD:
        return _slim_pod(obj, meta, ctx)
    if kind == NAMESPACE:  # policies select namespaces by label: nothing else is read
        kept = {k: meta[k] for k in ("name", "labels") if k in meta}
        return _compact_top({"apiVersion": "v1", "kind": NAMESPACE, "metadata": kept})
    if kind == KUBEVIRT:
        return _compact_top(_slim_kubevirt(obj, meta))
    if kind == HARVESTER_SETTING:  # a Setting's value is top-level: "v1.8.0"
        kept = {"name": meta["name"]}
        values = {k: obj[k] for k in ("value", "default") if isinstance(obj.get(k), str)}
        return {"apiVersion": obj.get("apiVersion"), "kind": kind, "metadata": kept, **values}
    out = dict(obj)
    out["metadata"] = meta
    status = out.get("status")
    if kind == NODE and isinstance(status, dict):
        out["status"] = {k: status[k] for k in _NODE_STATUS_KEPT if k in status}
    elif kind == VMI and isinstance(status, dict):
        out["status"] = {k: v for k, v in status.items() if k not in _VMI_STATUS_DROPPED}
    slimmed = _compact_top(out)
    if kind == VMI:
        _share_vmi_parts(slimmed)
    return slimmed


# Parts of a VMI's spec that VMs made from one template have equal (a VM's own names are in its
# metadata, volumes and firmware): kept once for all of them (`_Parts`), in the new copy.
_VMI_SPEC_PARTS = ("networks", "tolerations", "affinity", "nodeSelector")
_VMI_DOMAIN_PARTS = ("devices", "resources", "cpu", "memory", "features", "machine", "clock")


def _share_vmi_parts(vmi: dict) -> None:
    spec = vmi.get("spec")
    if type(spec) is not dict:
        return
    for key in _VMI_SPEC_PARTS:
        if key in spec:
            spec[key] = _VMI_PARTS.share(spec[key])
    domain = spec.get("domain")
    if type(domain) is dict:  # a map of its own (`_compact_top` made it): its parts are shared
        for key in _VMI_DOMAIN_PARTS:
            if key in domain:
                domain[key] = _VMI_PARTS.share(domain[key])


def _compact_top(obj: dict) -> Slim:
    return Slim((sys.intern(k) if type(k) is str else k, _compact(v)) for k, v in obj.items())


def _compact(value: Any) -> Any:
    """A deep copy sharing one copy of each key and short string across all cached objects.

    Objects decoded from JSON each carry their own copies of the same keys and label strings
    ("cpu-feature.node.kubevirt.io/avx2", "true", "Running"): with thousands of nodes and pods
    those copies, not the values, are most of the cache.
    """
    if type(value) is dict:
        return {(sys.intern(k) if type(k) is str else k): _compact(v) for k, v in value.items()}
    if type(value) is list:
        return [_compact(v) for v in value]
    if type(value) is str and len(value) <= _INTERN_MAX:
        return sys.intern(value)
    return value


def _frozen(value: Any) -> Any:
    """A hashable key equal for equal JSON values (types kept apart: 1, 1.0 and True differ;
    maps in another key order get another key, which only shares less)."""
    if type(value) is dict:
        if {*map(type, value), *map(type, value.values())} <= {str}:  # the usual: in C
            return ("d", *value.items())
        return ("d", *((k, _frozen(v)) for k, v in value.items()))
    if type(value) is list:
        return ("l", *(_frozen(v) for v in value))
    return value if type(value) is str else (type(value).__name__, value)


class _Parts:
    """One compacted copy of each equal part (a pod's containers with their resources, labels,
    phase and overhead; a VMI's devices, networks, resources...) for all the objects that have
    it: the pods of one Deployment, or the launchers and VMIs of VMs of one template, differ in
    names, node and a few labels. A part is kept once it is seen a second time (a launcher's
    labels, unique to its VM, never are), at most `limit` of them; past that each object keeps
    its own copy. Parts are never modified (the state's objects are read-only)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.kept: dict[Any, Any] = {}
        self.seen: set[int] = set()

    def share(self, value: Any, frozen: Any = _frozen) -> Any:
        try:
            key = frozen(value)
            found = self.kept.get(key)
        except TypeError:  # an unhashable value in a malformed field: its own copy
            return _compact(value)
        if found is not None:
            return found
        value = _compact(value)
        seen = hash(key)  # the hash only: a unique part's key is not kept alive by the table
        if seen in self.seen:
            if len(self.kept) < self.limit:
                self.kept.setdefault(key, value)
        else:
            if len(self.seen) >= 4 * self.limit:
                self.seen.clear()
            self.seen.add(seen)
        return value

    def holds(self, part: Any, frozen: Any = _frozen) -> bool:
        """Whether `part` is one this table keeps."""
        try:
            return self.kept.get(frozen(part)) is part
        except TypeError:
            return False


_CONTAINERS, _LABELS, _SMALL, _VMI_PARTS = _Parts(), _Parts(), _Parts(), _Parts()


def _containers_key(items: list[dict]) -> tuple:
    """`_frozen` of a slim pod's containers (`_slim_pod` builds them: maps of a name, maybe
    resources with requests and limits, maybe a restart policy), without its recursion."""
    out: list[Any] = []
    for item in items:
        res = item.get("resources")
        out.append(
            (
                _frozen(item["name"]),
                _frozen(item["restartPolicy"]) if "restartPolicy" in item else None,
                None
                if res is None
                else (
                    _frozen(res["requests"]) if "requests" in res else None,
                    _frozen(res["limits"]) if "limits" in res else None,
                ),
            )
        )
    return tuple(out)


def _slim_pod(pod: dict, meta: dict, ctx: str) -> Slim:
    spec = a.get(pod, "spec", dict, ctx, {})

    def containers(field: str) -> list[dict]:
        out = []
        for i, c in a.dicts(pod, f"spec.{field}", ctx):
            item: dict = {"name": c.get("name")}
            resources = a.get(c, "resources", dict, ctx, None, f"spec.{field}[{i}]")
            if resources:
                item["resources"] = {
                    k: a.get(resources, k, dict, ctx, {}, f"spec.{field}[{i}].resources")
                    for k in ("requests", "limits")
                    if resources.get(k)
                }
            if c.get("restartPolicy") is not None:
                item["restartPolicy"] = c["restartPolicy"]
            out.append(item)
        return _CONTAINERS.share(out, _containers_key)

    slim_spec: dict = {"containers": containers("containers")}
    if spec.get("initContainers"):
        slim_spec["initContainers"] = containers("initContainers")
    node = spec.get("nodeName")
    if node is not None:
        slim_spec["nodeName"] = _compact(node)
    if spec.get("nodeSelector") is not None:
        slim_spec["nodeSelector"] = _compact(spec["nodeSelector"])
    if spec.get("overhead") is not None:
        slim_spec["overhead"] = _SMALL.share(spec["overhead"])
    anti = a.get(pod, ANTI_AFFINITY_PATH, list, ctx)
    if anti:  # what other pods' anti-affinity is judged by; the rest of an affinity is not read
        slim_spec["affinity"] = {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": _compact(anti)}
        }
    slim_meta = {k: _compact(meta[k]) for k in ("name", "namespace") if k in meta}
    # Labels are kept: pod affinity and anti-affinity select pods by them.
    if meta.get("labels"):
        slim_meta["labels"] = _LABELS.share(meta["labels"])
    phase = a.get(pod, "status.phase", str, ctx)
    # Built compacted (interned keys, shared parts), so no second deep copy: _compact_top
    # would copy the shared parts apart again.
    return Slim(
        apiVersion="v1",
        kind=POD,
        metadata=slim_meta,
        spec=slim_spec,
        status=_SMALL.share({"phase": phase} if phase else {}),
    )


def _slim_kubevirt(kv: dict, meta: dict) -> dict:
    """What is read of KubeVirt's CR: the migrations configuration (limits, parallelism), the
    cluster's eviction strategy, the phase."""
    spec = kv.get("spec") if isinstance(kv.get("spec"), dict) else {}
    configuration = spec.get("configuration") if isinstance(spec.get("configuration"), dict) else {}
    status = kv.get("status") if isinstance(kv.get("status"), dict) else {}
    kept = {k: meta[k] for k in ("name", "namespace", "deletionTimestamp") if k in meta}
    out: dict = {"apiVersion": kv.get("apiVersion"), "kind": KUBEVIRT, "metadata": kept}
    kept_config = {
        k: copy.deepcopy(configuration[k])
        for k in ("migrations", "evictionStrategy")
        if k in configuration
    }
    if kept_config:  # the migration limits, and the drain plan's cluster-wide eviction strategy
        out["spec"] = {"configuration": kept_config}
    if "phase" in status:
        out["status"] = {"phase": status["phase"]}
    return out


def freeze_cached() -> None:
    """Take every object alive now out of the cyclic garbage collector's generations.

    Called once a cache has listed (Informer): the cached objects then live until replaced,
    but every full collection walked all of them (30-50 ms pauses with 1,000 nodes and 10,000
    VMIs cached, the slowest admission and lookup answers). `gc.freeze` moves them to the
    permanent generation (still freed by reference counting when replaced; our objects hold no
    cycles); `gc.collect` first so no garbage is frozen with them.
    """
    gc.collect()
    gc.freeze()


def _anti_key(term: Term) -> tuple[str, str] | None:
    """The label a term selects by matchLabels (its first), or None: what `_anti` indexes."""
    match = (term.selector or {}).get("matchLabels") or {}
    return next(iter(sorted(match.items())), None)


def _discard(index: dict, key: Any, member: Any) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(member, None)
        if not bucket:
            del index[key]


def _key(obj: dict) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _same_content(old: dict, new: dict) -> bool:
    """Equal but for metadata.resourceVersion: what a status heartbeat the slimming drops leaves."""
    if old.keys() != new.keys():
        return False
    for field, value in new.items():
        if field != "metadata":
            if old[field] != value:
                return False
        elif _without_version(old[field]) != _without_version(value):
            return False
    return True


def _without_version(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "resourceVersion"}


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What a pod contributes to the indexes (a terminated pod contributes nothing)."""

    launcher: Key | None  # the VMI whose virt-launcher it is
    ref: PodRef | None  # set when the pod is bound to a node
    requests: Resources
    anti_terms: tuple[Term, ...]  # its required pod anti-affinity
    source: SourcePod | None = None  # a launcher's part of its VMI's migration target pod
    nonzero: Resources | None = None  # cpu and memory as the scheduler's scores count them


_NO_POD = PodFacts(None, None, {}, ())
_NO_REQUESTS: Resources = {}


@dataclass(slots=True)
class VMIView:
    """What a decision reads of one VMI and the objects its migration depends on, taken under one
    lock: those reads see one state of the cluster (no watch event between two of them), for one
    lock instead of a dozen. The target node, NADs and bound pods are read apart."""

    vmi: dict | None
    facts: VMIFacts | None  # None for a malformed VMI: evaluating it raises, naming the field
    vmims: list[dict]  # the VMI's migrations
    vm: dict | None
    launcher: dict | None  # its virt-launcher pod (`launcher_pod`)
    launcher_facts: SourcePod | None  # that pod's `read_source_pod` (None: none, or malformed)
    source_facts: NodeFacts | None  # the facts of the node in `facts.node_name`, when known
    config: ClusterConfig  # `migration_inputs(namespace)`
    policies: list[dict]
    namespace_labels: dict[str, str] | None


def _source_pod(launcher: dict, requests: Resources) -> SourcePod | None:
    """`read_source_pod`, None when the pod is malformed (evaluating a migration of its VMI then
    raises the error, naming the field)."""
    try:
        return read_source_pod(launcher, requests)
    except InputError:
        return None


AntiEntry = tuple[PodRef, Term]
# pod_requests and nonzero_requests of the shared parts they read (slim keeps equal containers
# once): the parts, kept alive by the entry so their ids stay theirs, and the results (never
# modified)
_REQUESTS: dict[tuple[int, int, int], tuple[Any, Any, Any, Resources, Resources | None]] = {}
_REQUESTS_MAX = 4096


def _requests(pod: dict) -> tuple[Resources, Resources | None]:
    """`pod_requests(pod)` and `nonzero_requests`, computed once for all the pods whose
    containers, init containers and overhead are the same shared objects."""
    spec = pod.get("spec")
    if type(spec) is not dict:
        requests = pod_requests(pod)
        return requests, nonzero_requests(pod, requests)
    parts = spec.get("containers"), spec.get("initContainers"), spec.get("overhead")
    key = (id(parts[0]), id(parts[1]), id(parts[2]))
    found = _REQUESTS.get(key)
    if found is not None and all(x is y for x, y in zip(found, parts, strict=False)):
        return found[3], found[4]
    requests = pod_requests(pod)  # raises for a malformed pod: nothing remembered
    nonzero = nonzero_requests(pod, requests)
    if len(_REQUESTS) < _REQUESTS_MAX and all(_is_shared(p) for p in parts):
        _REQUESTS[key] = (*parts, requests, nonzero)
    return requests, nonzero


def _is_shared(part: Any) -> bool:
    """Whether `part` is a kept part (or absent): only those are worth remembering."""
    if part is None:
        return True
    if type(part) is list:
        return _CONTAINERS.holds(part, _containers_key)
    return _SMALL.holds(part)


def _labels_of(namespace: dict | None) -> dict[str, str] | None:
    """A cached Namespace's labels (None: not cached)."""
    if namespace is None:
        return None
    labels = namespace["metadata"].get("labels")
    return labels if isinstance(labels, dict) else {}


class ClusterState:
    """Thread-safe store of Nodes, VMIs, VMs, VMIMs, NADs, Pods and what KubeVirt's own migration
    limits read (KubeVirt CRs, MigrationPolicies, Namespace labels), with the indexes rules need."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objs: dict[str, dict[Key, dict]] = {k: {} for k in KINDS}
        self._vmims_by_vmi: dict[Key, dict[str, dict]] = {}
        self._vmim_vmi: dict[Key, Key] = {}
        self._launchers: dict[Key, dict[str, dict]] = {}
        self._pod_facts: dict[Key, PodFacts] = {}
        self._requested: dict[str, dict[str, int]] = {}
        self._pod_count: dict[str, int] = {}
        # per node, what the scheduler's scores count beyond `_requested` (pods with containers
        # that request no cpu or memory: rules.filters.resources.nonzero_requests)
        self._nonzero_extra: dict[str, dict[str, int]] = {}
        self._bound_by_ns: dict[str, dict[str, PodRef]] = {}
        self._created_by: dict[tuple[str, str], dict[str, PodRef]] = {}
        self._anti: dict[tuple[str, str] | None, dict[Key, list[AntiEntry]]] = {}
        self._node_facts: dict[str, NodeFacts] = {}
        self._vmi_facts: dict[Key, VMIFacts] = {}
        self._kubevirt_config: ClusterConfig | None = None  # None: read it again
        # Grows whenever what the rules read changes (not on a new resourceVersion alone), so a
        # decision computed at one generation holds while it is current (webhook.admission.memo).
        self.generation = 0

    # ---- writes -------------------------------------------------------------------------
    def apply(self, obj: dict) -> None:
        """Add or replace one object; kinds the rules do not read are ignored."""
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if isinstance(kind, str) and kind not in KINDS:
            return
        slimmed = slim(obj)
        prepared = self._prepare(slimmed)
        with self._lock:
            if self._differs(slimmed):
                self.generation += 1
            self._put(slimmed, prepared)

    def remove(self, kind: str, namespace: str | None, name: str) -> None:
        """Forget one object (no error if it is unknown)."""
        if kind not in KINDS:
            return
        key = ("" if kind in CLUSTER_SCOPED else (namespace or "default"), name)
        with self._lock:
            if key in self._objs[kind]:
                self.generation += 1
            self._drop(kind, key)

    def replace_all(self, kind: str, objs: list[dict]) -> None:
        """Replace every object of `kind` (after a list); nothing changes if one is malformed."""
        if kind not in KINDS:
            return
        ready = []
        for obj in objs:
            if not isinstance(obj, dict) or obj.get("kind") in (None, ""):
                obj = {**obj, "kind": kind} if isinstance(obj, dict) else obj
            slimmed = slim(obj)
            if slimmed["kind"] != kind:
                raise InputError(f"{a.describe(slimmed)}: listed as {kind}")
            ready.append((slimmed, self._prepare(slimmed)))
        with self._lock:
            listed = {_key(slimmed) for slimmed, _ in ready}
            if listed != self._objs[kind].keys() or any(self._differs(x) for x, _ in ready):
                self.generation += 1  # a relist that found what the cache had changes nothing
            for key in list(self._objs[kind]):
                self._drop(kind, key)
            for slimmed, prepared in ready:
                self._put(slimmed, prepared)

    @classmethod
    def from_objects(cls, objs: Iterable[dict]) -> ClusterState:
        """A state holding `objs` (a `kind: List` is expanded)."""
        state = cls()
        for obj in objs:
            if isinstance(obj, dict) and obj.get("kind") == "List":
                items = a.get(obj, "items", list, "List", [])
                for i, item in enumerate(items):
                    state.apply(a.check(item, dict, "List", f"items[{i}]"))
            else:
                state.apply(obj)
        return state

    def _prepare(self, obj: dict) -> PodFacts | NodeFacts | VMIFacts | None:
        """What a pod, node or VMI contributes to the indexes, computed before the lock (may raise)."""
        if obj["kind"] == NODE:
            try:
                return read_node(obj)
            except InputError:  # evaluating this node raises it, naming the field
                return None
        if obj["kind"] == VMI:
            try:
                return read_vmi(obj)
            except InputError:  # evaluating a migration of this VMI raises it, naming the field
                return None
        if obj["kind"] != POD:
            if obj["kind"] == VMIM:
                ctx = a.describe(obj)
                a.get(obj, "spec.vmiName", str, ctx)
            return None
        ctx = a.describe(obj)
        labels = a.str_map(obj, "metadata.labels", ctx)
        node = a.get(obj, "spec.nodeName", str, ctx)
        if is_terminated(obj):
            return _NO_POD
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        launcher = None
        if labels.get(LAUNCHER_LABEL) == LAUNCHER_VALUE and labels.get(VMI_NAME_LABEL):
            launcher = (ns, labels[VMI_NAME_LABEL])
        terms = [resolve_term(t, ns, labels) for _, t in a.dicts(obj, ANTI_AFFINITY_PATH, ctx)]
        ref = PodRef(ns, name, labels, node) if node else None
        anti = tuple(t for t in terms if t is not None)
        requests, nonzero = _requests(obj)
        source = _source_pod(obj, requests) if launcher is not None else None
        return PodFacts(launcher, ref, requests, anti, source, nonzero)

    def _differs(self, obj: dict) -> bool:
        """Whether storing `obj` changes what the rules read (the generation's test)."""
        old = self._objs[obj["kind"]].get(_key(obj))
        return old is None or not _same_content(old, obj)

    def _put(self, obj: dict, prepared: PodFacts | NodeFacts | VMIFacts | None) -> None:
        kind, key = obj["kind"], _key(obj)
        self._drop(kind, key)
        self._objs[kind][key] = obj
        if kind == NODE:
            if isinstance(prepared, NodeFacts):
                self._node_facts[key[1]] = prepared
        elif kind == VMI:
            if isinstance(prepared, VMIFacts):
                self._vmi_facts[key] = prepared
        elif kind == KUBEVIRT:
            self._kubevirt_config = None
        elif kind == VMIM:
            vmi_key = (key[0], (obj.get("spec") or {}).get("vmiName") or "")
            self._vmims_by_vmi.setdefault(vmi_key, {})[key[1]] = obj
            self._vmim_vmi[key] = vmi_key
        elif kind == POD and isinstance(prepared, PodFacts):
            self._pod_facts[key] = prepared
            if prepared.launcher is not None:
                self._launchers.setdefault(prepared.launcher, {})[key[1]] = obj
            ref = prepared.ref
            if ref is not None:
                # a new map each time (never changed once stored): node_usage hands it out as is
                total = dict(self._requested.get(ref.node, _NO_REQUESTS))
                for res, n in prepared.requests.items():
                    total[res] = total.get(res, 0) + n
                self._requested[ref.node] = total
                self._pod_count[ref.node] = self._pod_count.get(ref.node, 0) + 1
                if prepared.nonzero is not None:
                    extra = self._nonzero_extra.setdefault(ref.node, {})
                    for res, n in prepared.nonzero.items():
                        extra[res] = extra.get(res, 0) + n - prepared.requests.get(res, 0)
                self._bound_by_ns.setdefault(ref.namespace, {})[ref.name] = ref
                creator = ref.labels.get(CREATED_BY)
                if creator:
                    self._created_by.setdefault((ref.namespace, creator), {})[ref.name] = ref
                for term in prepared.anti_terms:
                    self._anti.setdefault(_anti_key(term), {}).setdefault(key, []).append(
                        (ref, term)
                    )

    def _drop(self, kind: str, key: Key) -> None:
        if self._objs[kind].pop(key, None) is None:
            return
        if kind == NODE:
            self._node_facts.pop(key[1], None)
        elif kind == VMI:
            self._vmi_facts.pop(key, None)
        elif kind == KUBEVIRT:
            self._kubevirt_config = None
        elif kind == VMIM:
            vmi_key = self._vmim_vmi.pop(key)
            bucket = self._vmims_by_vmi.get(vmi_key, {})
            bucket.pop(key[1], None)
            if not bucket:
                self._vmims_by_vmi.pop(vmi_key, None)
        elif kind == POD:
            facts = self._pod_facts.pop(key, _NO_POD)
            if facts.launcher is not None:
                _discard(self._launchers, facts.launcher, key[1])
            ref = facts.ref
            if ref is not None:
                total = dict(self._requested[ref.node])
                for res, n in facts.requests.items():
                    total[res] -= n
                    if not total[res]:
                        del total[res]
                if total:
                    self._requested[ref.node] = total
                else:
                    del self._requested[ref.node]
                self._pod_count[ref.node] -= 1
                if not self._pod_count[ref.node]:
                    del self._pod_count[ref.node]
                if facts.nonzero is not None:
                    extra = self._nonzero_extra[ref.node]
                    for res, n in facts.nonzero.items():
                        extra[res] -= n - facts.requests.get(res, 0)
                    if not any(extra.values()):
                        del self._nonzero_extra[ref.node]
                _discard(self._bound_by_ns, ref.namespace, ref.name)
                creator = ref.labels.get(CREATED_BY)
                if creator:
                    _discard(self._created_by, (ref.namespace, creator), ref.name)
                for term in facts.anti_terms:
                    _discard(self._anti, _anti_key(term), key)

    # ---- reads --------------------------------------------------------------------------
    def _get(self, kind: str, ns: str, name: str) -> dict | None:
        with self._lock:
            return self._objs[kind].get((ns, name))

    def nodes(self) -> list[dict]:
        with self._lock:
            return list(self._objs[NODE].values())

    def node(self, name: str) -> dict | None:
        return self._get(NODE, "", name)

    def nodes_with_facts(self) -> list[tuple[dict, NodeFacts | None]]:
        """Every node with its `read_node` facts (None for a malformed node: evaluating raises)."""
        with self._lock:
            facts = self._node_facts
            return [(n, facts.get(name)) for (_, name), n in self._objs[NODE].items()]

    def node_facts(self, name: str) -> NodeFacts | None:
        with self._lock:
            return self._node_facts.get(name)

    def vmi(self, ns: str, name: str) -> dict | None:
        return self._get(VMI, ns, name)

    def vmi_with_facts(self, ns: str, name: str) -> tuple[dict | None, VMIFacts | None]:
        """The VMI and its `read_vmi` facts (None for a malformed VMI: evaluating raises)."""
        with self._lock:
            key = (ns, name)
            return self._objs[VMI].get(key), self._vmi_facts.get(key)

    def vmi_view(self, ns: str, name: str) -> VMIView:
        """The VMI, its facts and what its decisions read with them (see VMIView)."""
        key = (ns, name)
        with self._lock:
            facts = self._vmi_facts.get(key)
            vmims = self._vmims_by_vmi.get(key)
            pod, pod_facts = self._launcher(ns, name)
            source = facts.node_name if facts is not None else None
            policies = self._objs[MIGRATION_POLICY]
            return VMIView(
                self._objs[VMI].get(key),
                facts,
                list(vmims.values()) if vmims else [],
                self._objs[VM].get(key),
                pod,
                pod_facts.source if pod_facts is not None else None,
                self._node_facts.get(source) if source else None,
                self._cluster_config(),
                list(policies.values()) if policies else [],
                _labels_of(self._objs[NAMESPACE].get(("", ns))),
            )

    def node_view(self, name: str) -> tuple[dict | None, NodeFacts | None, Usage]:
        """A node, its facts and its `node_usage`, under one lock (a decision's target)."""
        with self._lock:
            return (
                self._objs[NODE].get(("", name)),
                self._node_facts.get(name),
                (self._requested.get(name, _NO_REQUESTS), self._pod_count.get(name, 0)),
            )

    def vmis(self) -> list[dict]:
        with self._lock:
            return list(self._objs[VMI].values())

    def vm(self, ns: str, name: str) -> dict | None:
        return self._get(VM, ns, name)

    def nad(self, ns: str, name: str) -> dict | None:
        return self._get(NAD, ns, name)

    def vmim(self, ns: str, name: str) -> dict | None:
        return self._get(VMIM, ns, name)

    def vmims(self) -> list[dict]:
        with self._lock:
            return list(self._objs[VMIM].values())

    def pod(self, ns: str, name: str) -> dict | None:
        return self._get(POD, ns, name)

    def launcher_pod(self, ns: str, vmi_name: str) -> dict | None:
        """The VMI's non-terminated virt-launcher pod, preferring the one on the VMI's node."""
        return self._launcher(ns, vmi_name)[0]

    def launcher_pod_and_requests(
        self, ns: str, vmi_name: str
    ) -> tuple[dict, Resources] | tuple[None, None]:
        """`launcher_pod` and its `pod_requests` (computed when the pod was stored)."""
        pod, facts = self._launcher(ns, vmi_name)
        return (pod, facts.requests) if facts is not None else (None, None)

    def _launcher(self, ns: str, vmi_name: str) -> tuple[dict, PodFacts] | tuple[None, None]:
        with self._lock:
            pods = self._launchers.get((ns, vmi_name))
            if not pods:
                return None, None
            name = next(iter(pods)) if len(pods) == 1 else self._preferred(ns, vmi_name, pods)
            return pods[name], self._pod_facts[(ns, name)]

    def _preferred(self, ns: str, vmi_name: str, pods: dict[str, dict]) -> str:
        """Of several launcher pods of a VMI (a migration's target, a pod being replaced), the one
        on the VMI's node, else the first by name."""
        vmi = self._objs[VMI].get((ns, vmi_name))
        status = vmi.get("status") if isinstance(vmi, dict) else None
        source = status.get("nodeName") if isinstance(status, dict) else None
        return min(pods, key=lambda name: (pods[name]["spec"].get("nodeName") != source, name))

    def node_requested(self, node_name: str) -> Resources:
        """What the non-terminated pods bound to the node request, per resource."""
        return self.node_usage(node_name)[0]

    def node_nonzero_requested(self, node_name: str) -> Resources:
        """cpu and memory of the node's pods as kube-scheduler's LeastAllocated score counts them
        (NodeInfo.NonZeroRequested: a container without a request counts a default)."""
        with self._lock:
            requested = self._requested.get(node_name, {})
            extra = self._nonzero_extra.get(node_name, {})
            return {r: requested.get(r, 0) + extra.get(r, 0) for r in NONZERO_DEFAULTS}

    def launcher_nonzero_requests(self, ns: str, vmi_name: str) -> Resources | None:
        """`nonzero_requests` of the VMI's launcher pod: None when it is its requests, or when
        there is no launcher pod."""
        _, facts = self._launcher(ns, vmi_name)
        return facts.nonzero if facts is not None else None

    def node_usage(self, node_name: str) -> Usage:
        """(`node_requested`, how many non-terminated pods are bound to the node)."""
        with self._lock:
            # not a copy: a node's map is replaced, never changed (_put, _drop); read-only
            return self._requested.get(node_name, _NO_REQUESTS), self._pod_count.get(node_name, 0)

    def usage_by_node(self) -> tuple[dict[str, Resources], dict[str, int]]:
        """`node_usage` of every node at once, taken under one lock: what a lookup over every
        node reads (one view of the cluster, without a call and a lock per node)."""
        with self._lock:
            # copies of the maps, not of their values: a node's map is replaced, never changed
            return dict(self._requested), dict(self._pod_count)

    def bound_pods(self, term: Term) -> list[PodRef]:
        """Bound pods that may match `term`: by `kubevirt.io/created-by` when the term selects
        it, else every bound pod in the term's namespaces."""
        creator = ((term.selector or {}).get("matchLabels") or {}).get(CREATED_BY)
        with self._lock:
            if creator:
                spaces = (
                    term.namespaces
                    if term.namespaces is not None
                    else {ns for ns, _ in self._created_by}
                )
                return [
                    ref for ns in spaces for ref in self._created_by.get((ns, creator), {}).values()
                ]
            spaces = term.namespaces if term.namespaces is not None else list(self._bound_by_ns)
            return [ref for ns in spaces for ref in self._bound_by_ns.get(ns, {}).values()]

    def anti_affinity_of_others(self, labels: dict[str, str]) -> list[AntiEntry]:
        """Bound pods' required anti-affinity terms that may select a pod with `labels`."""
        with self._lock:
            out: list[AntiEntry] = []
            if not self._anti:  # no bound pod keeps others away
                return out
            for key in (None, *labels.items()):
                for entries in self._anti.get(key, {}).values():
                    out += entries
            return out

    def kubevirts(self) -> list[dict]:
        """The KubeVirt CRs (KubeVirt reads the deployed one's migration configuration)."""
        with self._lock:
            return list(self._objs[KUBEVIRT].values())

    def _cluster_config(self) -> ClusterConfig:
        if self._kubevirt_config is None:
            self._kubevirt_config = cluster_config(list(self._objs[KUBEVIRT].values()))
        return self._kubevirt_config

    def migration_inputs(
        self, namespace: str
    ) -> tuple[ClusterConfig, list[dict], dict[str, str] | None]:
        """KubeVirt's configuration (`cluster_config` of the KubeVirt CRs, read again only after one
        of them changed), `migration_policies()` and `namespace_labels(namespace)` under
        one lock: what KubeVirt's configuration for a VMI's migration is made of (every decision
        reads them)."""
        with self._lock:
            policies = self._objs[MIGRATION_POLICY]
            return (
                self._cluster_config(),
                list(policies.values()) if policies else [],
                _labels_of(self._objs[NAMESPACE].get(("", namespace))),
            )

    def migration_policies(self) -> list[dict]:
        with self._lock:
            return list(self._objs[MIGRATION_POLICY].values())

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        """The labels of a cached Namespace (MigrationPolicy namespaceSelector); None if unknown."""
        return _labels_of(self._get(NAMESPACE, "", name))

    def harvester_server_version(self) -> str | None:
        """Harvester's version as its `server-version` Setting says (rules.policy's profile)."""
        setting = self._get(HARVESTER_SETTING, "", SERVER_VERSION)
        if setting is None:
            return None
        return setting.get("value") or setting.get("default") or None

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self._objs.get(kind, {}))
