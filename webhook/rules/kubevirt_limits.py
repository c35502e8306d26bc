"""KubeVirt's own migration limits for a VMI, and which of KubeVirt's and migration-guard's fires first.

KubeVirt (v1.8.2) aborts migrations itself; this module predicts when, from plain dicts:
- Cluster values: defaults `MigrationCompletionTimeoutPerGiB` = 150 and `MigrationProgressTimeout`
  = 150, allowPostCopy false (pkg/virt-config/virt-config.go), overlaid field by field with the
  KubeVirt CR's `spec.configuration.migrations` (configuration.go `setConfigFromKubeVirt`: a JSON
  unmarshal over the defaults). Only a CR with a `status.phase` and no deletionTimestamp counts
  (`GetConfigFromKubeVirtCR`). `allowWorkloadDisruption` unset follows `allowPostCopy`
  (`GetMigrationConfiguration`).
- MigrationPolicy (migrations.kubevirt.io/v1alpha1, cluster-scoped): virt-controller
  (watch/migration/migrationpolicy.go `matchPolicy`) takes the policy whose selectors all match
  and that matches the most labels (VMI + namespace; a tie on the total goes to more VMI labels,
  then to the lexicographically smallest name). A policy sets completionTimeoutPerGiB,
  allowPostCopy, allowWorkloadDisruption (unset: follows its allowPostCopy), allowAutoConverge,
  bandwidthPerMigration (types.go `GetMigrationConfByPolicy`); it has no progressTimeout.
- At the target pod's hand-off (migration.go `handleTargetPodHandoff`, `matchMigrationPolicy`)
  virt-controller writes the result into the VMI's `status.migrationState.migrationConfiguration`
  (and `migrationPolicyName` when a policy changed it); virt-handler passes that to the launcher
  (migration-source.go). Once it is there it is what KubeVirt applies, so it wins here.
- Completion limit = completionTimeoutPerGiB x data in decimal GB, rounded up
  (virtwrap/manager.go `getVMIMigrationDataSize`: guest memory, else requested memory; plus, for a
  BlockMigration, the files of the launcher's ephemeral-disk folder; plus the source PVCs of a
  volume migration, `status.migratedVolumes`; `ScaledValue(resource.Giga)` rounds up). The
  launcher aborts when the elapsed whole seconds exceed it, unless allowWorkloadDisruption: then
  it switches to post-copy (allowPostCopy) or pauses the guest and aborts at twice the limit
  (live-migration-source.go `processInflightMigration`). 0 disables it.
- Progress limit: data remaining did not go down for more than progressTimeout seconds
  (`isMigrationProgressing`); 0 disables it; not checked in post-copy.
Malformed KubeVirt CRs, policies or fields are ignored with a note; nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from webhook.errors import InputError
from webhook.rules import access as a
from webhook.rules.identity_memo import IdentityMemo
from webhook.rules.model import GUARD, KUBEVIRT, SAME, KubeVirtTimeouts, Timeouts, TimeoutSettings
from webhook.rules.timeouts import memory_data_bytes

DEFAULT_COMPLETION_PER_GIB = 150  # MigrationCompletionTimeoutPerGiB
DEFAULT_PROGRESS_SECONDS = 150  # MigrationProgressTimeout
GB = 10**9  # KubeVirt's "GiB" in completionTimeoutPerGiB is resource.Giga
GIB = 2**30


@dataclass(frozen=True)
class MigrationConfig:
    """The part of KubeVirt's MigrationConfiguration that decides when a migration is stopped."""

    completion_per_gib: int = DEFAULT_COMPLETION_PER_GIB
    progress_seconds: int = DEFAULT_PROGRESS_SECONDS
    allow_post_copy: bool = False
    allow_workload_disruption: bool | None = None  # None: follows allow_post_copy

    @property
    def workload_disruption(self) -> bool:
        if self.allow_workload_disruption is None:
            return self.allow_post_copy
        return self.allow_workload_disruption


@dataclass(frozen=True)
class Effective:
    """The configuration KubeVirt applies to one VMI's migration, and where it comes from."""

    config: MigrationConfig
    source: str  # "default" | "kubevirt" | "policy" | "migrationState"
    kubevirt: str | None
    policy: str | None
    notes: tuple[str, ...]


_FIELDS = (
    ("completionTimeoutPerGiB", "completion_per_gib", int),
    ("progressTimeout", "progress_seconds", int),
    ("allowPostCopy", "allow_post_copy", bool),
    ("allowWorkloadDisruption", "allow_workload_disruption", bool),
)
# What a MigrationPolicy's spec may set of those (no progressTimeout).
_POLICY_FIELDS = _FIELDS[:1] + _FIELDS[2:]


def _ref(obj: dict) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if ns else str(name)


def _overlay(
    config: MigrationConfig, values: Any, fields: tuple, where: str, notes: list[str]
) -> tuple[MigrationConfig, bool]:
    """`config` with the fields `values` sets (a bad one noted and skipped); whether any was set."""
    if not isinstance(values, dict):
        if values is not None:
            notes.append(f"{where} is not a map: ignored")
        return config, False
    changes: dict[str, Any] = {}
    for key, attr, typ in fields:
        value = values.get(key)
        if value is None:
            continue
        ok = isinstance(value, typ) and (typ is bool or not isinstance(value, bool))
        if ok and typ is int and value < 0:
            ok = False
        if not ok:
            notes.append(f"{where}.{key}={value!r} is not valid: ignored")
            continue
        changes[attr] = value
    return (replace(config, **changes), True) if changes else (config, False)


@dataclass(frozen=True)
class ClusterConfig:
    """KubeVirt's cluster-wide migration configuration and the CR it was read from."""

    config: MigrationConfig
    kubevirt: str | None  # "namespace/name" of the CR read, None: no deployed CR
    from_cr: bool  # the CR sets one of the limits' fields
    notes: tuple[str, ...]
    # what applies to a VMI without policy or migrationState (`effective_config`), made once
    unchanged: Effective


def _cluster(
    config: MigrationConfig, kubevirt: str | None, from_cr: bool, notes: tuple[str, ...]
) -> ClusterConfig:
    source = "kubevirt" if from_cr else "default"
    unchanged = Effective(config, source, kubevirt, None, notes)
    return ClusterConfig(config, kubevirt, from_cr, notes, unchanged)


def _deployed(kubevirts: list[dict]) -> list[dict]:
    """The CRs KubeVirt reads, sorted: not being deleted, deployed (the last one is read)."""
    live = []
    for kv in kubevirts:
        meta = kv.get("metadata") if isinstance(kv.get("metadata"), dict) else {}
        status = kv.get("status") if isinstance(kv.get("status"), dict) else {}
        if meta.get("deletionTimestamp") or not status.get("phase"):
            continue  # KubeVirt ignores a CR being deleted or not deployed yet
        live.append(kv)
    return sorted(live, key=_ref)


def kubevirt_configuration(kubevirts: list[dict]) -> dict:
    """`spec.configuration` of the KubeVirt CR KubeVirt reads, or {} (no deployed CR)."""
    live = _deployed(kubevirts)
    spec = live[-1].get("spec") if live and isinstance(live[-1].get("spec"), dict) else {}
    configuration = spec.get("configuration")
    return configuration if isinstance(configuration, dict) else {}


def cluster_config(kubevirts: list[dict]) -> ClusterConfig:
    """KubeVirt's defaults overlaid with the KubeVirt CR's `spec.configuration.migrations`."""
    notes: list[str] = []
    live = _deployed(kubevirts)
    if not live:
        return _cluster(MigrationConfig(), None, False, ())
    if len(live) > 1:
        names = ", ".join(_ref(k) for k in live)
        notes.append(f"several KubeVirt CRs are deployed ({names}): {_ref(live[-1])} is read")
    ref = _ref(live[-1])
    configuration = kubevirt_configuration(live)
    where = f"KubeVirt {ref}: spec.configuration.migrations"
    config, set_any = _overlay(
        MigrationConfig(), configuration.get("migrations"), _FIELDS, where, notes
    )
    return _cluster(config, ref, set_any, tuple(notes))


def _labels(obj: Any) -> dict[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def _selector(sel: Any) -> dict[str, str] | None:
    if sel is None:
        return None
    if not isinstance(sel, dict) or not all(isinstance(v, str) for v in sel.values()):
        raise InputError("a selector is not a map of strings")
    return sel


def match_policy(
    policies: list[dict],
    vmi_labels: dict[str, str],
    namespace_labels: dict[str, str] | None,
    notes: list[str] | None = None,
) -> dict | None:
    """The MigrationPolicy virt-controller's `matchPolicy` picks for a VMI, or None.

    A policy matches when every label of its virtualMachineInstanceSelector is on the VMI and
    every label of its namespaceSelector on the namespace; the best has the most matching labels
    (VMI + namespace), a tie goes to more VMI labels, then to the smallest name. As in KubeVirt
    (`countLabelsHelper` runs only when the VMI has labels), a VMI without labels matches every
    policy that has selectors, with no label counted. `namespace_labels` None: the namespace is
    unknown, a policy with a namespaceSelector does not match (noted).
    """
    notes = notes if notes is not None else []
    best: tuple[int, int] | None = None
    matching: list[tuple[str, dict]] = []
    for policy in policies:
        name = _ref(policy)
        try:
            selectors = a.get(policy, "spec.selectors", dict, f"MigrationPolicy {name}")
            if selectors is None:
                continue  # no selectors: matches nothing
            vmi_sel = _selector(selectors.get("virtualMachineInstanceSelector"))
            ns_sel = _selector(selectors.get("namespaceSelector"))
        except InputError as exc:
            notes.append(f"MigrationPolicy {name} is malformed ({exc}): ignored")
            continue
        vmi_count = ns_count = 0
        if vmi_labels:  # KubeVirt compares only when the VMI's labels are not nil
            if vmi_sel:
                if any(vmi_labels.get(k) != v for k, v in vmi_sel.items()):
                    continue
                vmi_count = len(vmi_sel)
            if ns_sel:
                if namespace_labels is None:
                    notes.append(
                        f"MigrationPolicy {name} selects namespaces by label, and the VM's "
                        "namespace is not known: the policy is not matched"
                    )
                    continue
                if any(namespace_labels.get(k) != v for k, v in ns_sel.items()):
                    continue
                ns_count = len(ns_sel)
        score = (vmi_count + ns_count, vmi_count)
        if best is None or score > best:
            best, matching = score, [(name, policy)]
        elif score == best:
            matching.append((name, policy))
    if not matching:
        return None
    return min(matching, key=lambda m: m[0])[1]


def _apply_policy(
    config: MigrationConfig, policy: dict, notes: list[str]
) -> tuple[MigrationConfig, bool]:
    """`GetMigrationConfByPolicy`: the policy's fields over the cluster's; whether it changed any.

    allowAutoConverge and bandwidthPerMigration count as a change too (KubeVirt then records the
    policy), though they do not move a deadline.
    """
    spec = policy.get("spec") if isinstance(policy.get("spec"), dict) else {}
    where = f"MigrationPolicy {_ref(policy)}: spec"
    out, changed = _overlay(config, spec, _POLICY_FIELDS, where, notes)
    if spec.get("allowWorkloadDisruption") is None and isinstance(spec.get("allowPostCopy"), bool):
        out = replace(out, allow_workload_disruption=spec["allowPostCopy"])
    other = any(spec.get(k) is not None for k in ("allowAutoConverge", "bandwidthPerMigration"))
    return out, changed or other


def _state_config(vmi: dict, migration_uid: str | None) -> tuple[dict, dict] | None:
    """(migrationState, its migrationConfiguration) when that is what applies: the migration it
    describes is `migration_uid`, or (no uid asked) is still in flight."""
    state = (vmi.get("status") or {}).get("migrationState") if isinstance(vmi, dict) else None
    if not isinstance(state, dict):
        return None
    mc = state.get("migrationConfiguration")
    if not isinstance(mc, dict) or not mc:
        return None
    if migration_uid is not None:
        return (state, mc) if state.get("migrationUid") == migration_uid else None
    ended = state.get("completed") is True or state.get("failed") is True
    return None if ended or state.get("endTimestamp") else (state, mc)


def effective_config(
    vmi: dict,
    kubevirts: list[dict] | ClusterConfig,
    policies: list[dict],
    namespace_labels: dict[str, str] | None,
    migration_uid: str | None = None,
) -> Effective:
    """KubeVirt's configuration for a migration of `vmi` (see the module docstring for the order).

    `kubevirts`: the KubeVirt CRs, or their `cluster_config` (ClusterState keeps it, so a
    decision does not read the CR again). `migration_uid`: the migration asked about
    (`GET .../migration`); without it the VMI's migrationState counts only while its migration
    is in flight.
    """
    cluster = kubevirts if isinstance(kubevirts, ClusterConfig) else cluster_config(kubevirts)
    found = _state_config(vmi, migration_uid)
    if found is None and not policies:
        return cluster.unchanged
    notes = list(cluster.notes)
    config, kv_ref = cluster.config, cluster.kubevirt
    if found is not None:
        state, mc = found
        where = "the VMI's status.migrationState.migrationConfiguration"
        from_state, _ = _overlay(config, mc, _FIELDS, where, notes)
        policy = state.get("migrationPolicyName")
        return Effective(
            from_state,
            "migrationState",
            kv_ref,
            policy if isinstance(policy, str) and policy else None,
            tuple(notes),
        )
    policy = match_policy(policies, _labels(vmi), namespace_labels, notes)
    if policy is not None:
        with_policy, changed = _apply_policy(config, policy, notes)
        if changed:
            return Effective(with_policy, "policy", kv_ref, _ref(policy), tuple(notes))
    return replace(cluster.unchanged, notes=tuple(notes))


def kubevirt_data_bytes(vmi: dict) -> tuple[int, list[str]]:
    """What the launcher counts (`getVMIMigrationDataSize`), as far as the API shows it.

    Guest memory (else requested memory), plus the source PVCs of a volume migration
    (`status.migratedVolumes[].sourcePVCInfo`, the smaller of capacity and request, as
    `GetDiskCapacity`). A BlockMigration also counts the launcher's ephemeral-disk files, which
    the API does not show (noted). Not the block-migrated PVCs migration-guard counts.
    """
    notes: list[str] = []
    ctx = a.describe(vmi, "VirtualMachineInstance")
    total = memory_data_bytes(vmi)
    for i, mv in a.dicts(vmi, "status.migratedVolumes", ctx):
        info = a.get(mv, "sourcePVCInfo", dict, ctx, None, f"status.migratedVolumes[{i}]")
        if info is None:
            continue
        base = f"status.migratedVolumes[{i}].sourcePVCInfo"
        cap = a.get(info, "capacity.storage", object, ctx, None, base)
        req = a.get(info, "requests.storage", object, ctx, None, base)
        if cap is not None and req is not None:
            total += min(a.mem(cap, ctx, base + ".capacity"), a.mem(req, ctx, base + ".requests"))
    if a.get(vmi, "status.migrationMethod", str, ctx) == "BlockMigration":
        notes.append(
            "KubeVirt also counts the launcher's ephemeral disk files of a BlockMigration "
            "(container disk overlays, cloud-init), which the API does not show: its completion "
            "limit may be a little longer"
        )
    return total, notes


def first_to_fire(guard_seconds: int, kubevirt_seconds: int) -> str:
    """Who acts first on one limit: KubeVirt's 0 means it has none."""
    if kubevirt_seconds <= 0 or guard_seconds < kubevirt_seconds:
        return GUARD
    return SAME if guard_seconds == kubevirt_seconds else KUBEVIRT


def kubevirt_timeouts(
    vmi: dict,
    guard: Timeouts,
    kubevirts: list[dict] | ClusterConfig,
    policies: list[dict],
    namespace_labels: dict[str, str] | None,
    migration_uid: str | None = None,
    data: tuple[int, list[str]] | None = None,
) -> Timeouts:
    """`guard` with KubeVirt's limits for `vmi` and who fires first (malformed memory: raises
    InputError, as compute_timeouts does for the same field). `kubevirts`: as `effective_config`
    takes them; `data`: `kubevirt_data_bytes(vmi)` when the caller has it (VMIFacts)."""
    eff = effective_config(vmi, kubevirts, policies, namespace_labels, migration_uid)
    data_bytes, data_notes = data if data is not None else kubevirt_data_bytes(vmi)
    if not isinstance(kubevirts, ClusterConfig) or eff is not kubevirts.unchanged:
        return _with_kubevirt(guard, eff, data_bytes, data_notes)
    # The common case (no policy, no migration in flight) depends on the cluster's configuration
    # and the VM's size alone: the Timeouts of equal inputs are made once (VMs come in a few
    # sizes; `guard` is one object for equal inputs too: timeouts.compute_timeouts).
    found = _UNCHANGED.get((eff, guard), (data_bytes, *data_notes))
    if found is not None:
        return found
    out = _with_kubevirt(guard, eff, data_bytes, data_notes)
    return _UNCHANGED.put((eff, guard), (data_bytes, *data_notes), out)


# Timeouts by (the cluster's unchanged Effective, guard Timeouts; data, notes).
_UNCHANGED: IdentityMemo[Timeouts] = IdentityMemo()


def _with_kubevirt(
    guard: Timeouts, eff: Effective, data_bytes: int, data_notes: list[str]
) -> Timeouts:
    gb = -(-data_bytes // GB)
    cfg = eff.config
    completion = cfg.completion_per_gib * gb
    kv = KubeVirtTimeouts(
        data_bytes=data_bytes,
        data_gb=gb,
        completion_timeout_per_gib=cfg.completion_per_gib,
        completion_timeout_seconds=completion,
        progress_timeout_seconds=cfg.progress_seconds,
        allow_post_copy=cfg.allow_post_copy,
        allow_workload_disruption=cfg.workload_disruption,
        source=eff.source,
        kubevirt=eff.kubevirt,
        policy=eff.policy,
        completion_first=first_to_fire(guard.completion_timeout_seconds, completion),
        progress_first=first_to_fire(guard.progress_timeout_seconds, cfg.progress_seconds),
        notes=eff.notes + tuple(data_notes),
    )
    return guard.with_kubevirt(kv)


# ---- cluster-wide comparison (the enforcer's start-up check) --------------------------------
@dataclass(frozen=True)
class ShorterLimit:
    """A KubeVirt limit shorter than migration-guard's: the enforcer cannot act on it."""

    limit: str  # "completion" | "progress"
    source: str  # "kubevirt" (the CR or KubeVirt's default) | "policy"
    name: str  # the KubeVirt CR ("default" when none), or the policy
    kubevirt_seconds: float  # per GiB for completion (converted from per GB), else seconds
    guard_seconds: int

    @property
    def message(self) -> str:
        who = f"MigrationPolicy {self.name}" if self.source == "policy" else f"KubeVirt {self.name}"
        if self.limit == "completion":
            return (
                f"{who} aborts migrations after {self.kubevirt_seconds:g} s per GiB "
                f"(completionTimeoutPerGiB counts decimal GB), before migration-guard's "
                f"{self.guard_seconds} s per GiB: the enforcer's completion timeout cannot act"
            )
        return (
            f"{who} aborts migrations without progress after {self.kubevirt_seconds:g} s, before "
            f"migration-guard's {self.guard_seconds} s: the enforcer's progress timeout cannot act"
        )

    def to_dict(self) -> dict:
        return {
            "limit": self.limit,
            "source": self.source,
            "name": self.name,
            "kubevirtSeconds": self.kubevirt_seconds,
            "migrationGuardSeconds": self.guard_seconds,
            "message": self.message,
        }


def per_gib(per_gb: int) -> float:
    """KubeVirt's seconds per decimal GB as seconds per GiB (x 1.073741824), for comparison."""
    return round(per_gb * GIB / GB, 2)


def _completion_shorter(per_gb: int, guard_per_gib: int) -> bool:
    return per_gb > 0 and per_gb * GIB < guard_per_gib * GB


def shorter_limits(
    settings: TimeoutSettings, kubevirts: list[dict], policies: list[dict]
) -> tuple[list[ShorterLimit], list[str]]:
    """KubeVirt's cluster-wide limits (the CR, else its defaults) and every MigrationPolicy's
    completionTimeoutPerGiB that are shorter than migration-guard's settings; and notes."""
    cluster = cluster_config(kubevirts)
    config, notes = cluster.config, list(cluster.notes)
    name = cluster.kubevirt or "default"
    out = []
    guard_c, guard_p = settings.completion_timeout_per_gib, settings.progress_timeout_seconds
    if _completion_shorter(config.completion_per_gib, guard_c):
        out.append(
            ShorterLimit(
                "completion", "kubevirt", name, per_gib(config.completion_per_gib), guard_c
            )
        )
    if 0 < config.progress_seconds < guard_p:
        out.append(ShorterLimit("progress", "kubevirt", name, config.progress_seconds, guard_p))
    for policy in sorted(policies, key=_ref):
        spec = policy.get("spec") if isinstance(policy.get("spec"), dict) else {}
        value = spec.get("completionTimeoutPerGiB")
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            notes.append(
                f"MigrationPolicy {_ref(policy)}: completionTimeoutPerGiB={value!r} ignored"
            )
            continue
        if _completion_shorter(value, guard_c):
            out.append(ShorterLimit("completion", "policy", _ref(policy), per_gib(value), guard_c))
    return out, notes


def cluster_summary(kubevirts: list[dict]) -> dict:
    """KubeVirt's cluster-wide limits for readiness detail."""
    cluster = cluster_config(kubevirts)
    config = cluster.config
    return {
        "kubevirt": cluster.kubevirt,
        "source": "kubevirt" if cluster.from_cr else "default",
        "completionTimeoutPerGiB": config.completion_per_gib,
        "completionTimeoutPerGiBInGiB": per_gib(config.completion_per_gib),
        "progressTimeout": config.progress_seconds,
        "allowPostCopy": config.allow_post_copy,
        "allowWorkloadDisruption": config.workload_disruption,
    }
