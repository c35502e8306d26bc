"""`migration-guard`: the `check` command, and the entry point of the three servers.

`check` runs the same rule engine as the webhook on cluster state read from YAML/JSON files (or a
live cluster with --kubeconfig; KubeVirt CRs, MigrationPolicies and Namespaces in the state give
KubeVirt's own limits, else KubeVirt's defaults are shown) and exits 0 when the migration is allowed, 1 when it is denied,
2 on bad input (one line naming the file and the problem). `webhook`, `extension` and `enforcer`
are imported only when asked for, so `check` needs none of the server dependencies.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import yaml

from webhook import flags
from webhook.admission.settings import POLICY_FLAGS
from webhook.cluster.resources import RESOURCES
from webhook.cluster.state import HARVESTER_SETTING, SERVER_VERSION, ClusterState
from webhook.errors import InputError
from webhook.rules import Report, TimeoutSettings, compute_timeouts, evaluate_migration
from webhook.rules import access as a
from webhook.rules.drain import HOLDS, DrainPlan, drain_plan
from webhook.rules.model import GUARD, KUBEVIRT, SAME, Timeouts
from webhook.rules.policy import EXEMPT_LABEL, Policy, PolicySettings, resolve

DELEGATES = {
    "webhook": ("webhook.admission.serve", "run the validating admission webhook (HTTPS)"),
    "extension": ("extension.serve", "run the UI extension backend (target lookup, migrate)"),
    "enforcer": ("webhook.enforcer.serve", "run the migration timeout enforcer"),
}
STATE_SUFFIXES = (".yaml", ".yml", ".json")


# (kind, group, version, plural) read by --kubeconfig; group "" is the core API.
# ---- reading state ---------------------------------------------------------------------------
def _documents(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, object) for every object in one file; `kind: List` is expanded."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
    except (yaml.YAMLError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(
            f"{path}: invalid {'JSON' if path.suffix == '.json' else 'YAML'}: {detail}"
        ) from None
    for i, doc in enumerate(docs):
        where = f"{path} (document {i + 1})" if len(docs) > 1 else str(path)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(f"{where}: expected a Kubernetes object, got {type(doc).__name__}")
        if doc.get("kind") == "List" or (
            isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") and "items" in doc
        ):
            items = a.get(doc, "items", list, where, [])
            item_kind = doc["kind"][: -len("List")] or None
            for j, item in enumerate(items):
                a.check(item, dict, where, f"items[{j}]")
                if item_kind and "kind" not in item:
                    item = {**item, "kind": item_kind}
                yield f"{where} items[{j}]", item
        else:
            yield where, doc


def state_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in STATE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: folder has no .yaml, .yml or .json files")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return [path]


def load_state(path: str | Path, origins: dict[str, str] | None = None) -> ClusterState:
    """ClusterState from a file or folder; InputError names the file (and document) at fault.

    `origins`, when given, receives "Kind ns/name" -> where it was read, so errors found later
    by the rules can name the file too.
    """
    state = ClusterState()
    for file in state_files(Path(path)):
        for where, obj in _documents(file):
            try:
                state.apply(obj)
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            if origins is not None and isinstance(obj.get("kind"), str):
                meta = obj.get("metadata") or {}
                ns = meta.get("namespace") or ("" if obj["kind"] == "Node" else "default")
                origins[
                    a.describe({"kind": obj["kind"], "metadata": {**meta, "namespace": ns}})
                ] = where
    return state


def _with_origin(exc: InputError, origins: dict[str, str], source: str) -> str:
    """The error prefixed with the file of the object it names (else the --state path)."""
    text = str(exc)
    names = [n for n in origins if text.startswith(n + ":")]
    where = origins[max(names, key=len)] if names else source
    return text if text.startswith(where) else f"{where}: {text}"


def load_live_state(kubeconfig: str) -> ClusterState:
    """ClusterState listed from the cluster of `kubeconfig` (official Kubernetes client)."""
    from kubernetes import config
    from kubernetes.client.rest import ApiException

    try:
        api = config.new_client_from_config(config_file=kubeconfig)
    except Exception as exc:  # the client raises many types for a bad kubeconfig
        detail = " ".join(str(exc).split())
        raise InputError(f"{kubeconfig}: cannot use kubeconfig: {detail}") from None
    state = ClusterState()
    with api:
        for r in RESOURCES.values():
            try:
                selector = {"field_selector": r.field_selector} if r.field_selector else {}
                resp = r.list_fn(api)(_preload_content=False, _request_timeout=30, **selector)
                listed = json.loads(resp.data)
            except ApiException as exc:
                if exc.status == 404 and r.group:
                    continue  # CRD not installed (e.g. no multus): nothing of that kind
                raise InputError(f"{kubeconfig}: listing {r.plural} failed: {exc.reason}") from None
            except Exception as exc:  # connection refused, TLS, timeouts
                detail = " ".join(str(exc).split())
                raise InputError(f"{kubeconfig}: cannot reach the cluster: {detail}") from None
            items = [{**item, "kind": r.kind} for item in listed.get("items") or []]
            state.replace_all(r.kind, items)
    return state


# ---- output ------------------------------------------------------------------------------------
def format_text(report: Report) -> str:
    """Blockers, then a table of nodes with eligibility and reasons, then the timeouts."""
    lines = [
        f"VM:      {report.vm}" + (f" (on {report.source_node})" if report.source_node else ""),
        f"Target:  {report.target or 'any eligible node'}",
        f"Result:  {'ALLOWED' if report.allowed else 'DENIED'}",
        "",
    ]
    if report.blockers:
        lines.append(f"Blockers ({len(report.blockers)}):")
        for b in report.blockers:
            where = f" [{b.field}]" if b.field else ""
            lines.append(f"  - {b.code}{where}: {b.message}")
    else:
        lines.append("Blockers: none")
    if report.nodes_evaluated:
        lines += ["", "Nodes:"]
        rows = [("NODE", "ELIGIBLE", "REASONS")]
        for n in report.nodes:
            reasons = [f"{r.code}: {r.message}" for r in n.reasons]
            reasons += [f"{w.code} (warn): {w.message}" for w in n.warnings]
            reasons = reasons or ["-"]
            rows.append((n.name, "yes" if n.eligible else "no", reasons[0]))
            rows += [("", "", r) for r in reasons[1:]]
        width = max(len(r[0]) for r in rows) + 2
        for name, ok, reason in rows:
            lines.append(f"  {name:<{width}}{ok:<10}{reason}".rstrip())
        if not report.nodes:
            lines.append("  (no node evaluated)")
        lines.append(f"Eligible nodes: {', '.join(report.eligible_nodes) or 'none'}")
    if report.warnings:
        lines += ["", f"Warnings, allowed by the policy ({len(report.warnings)}):"]
        for w in report.warnings:
            where = f" [{w.field}]" if w.field else ""
            lines.append(f"  - {w.code}{where}: {w.message}")
    if report.exemption:
        lines.append(f"Exempt: {report.exemption}: migration-guard does not check this VM")
    others = report.problems()[len(report.blockers) :]
    for p in others:
        text = "no node can receive the VM (see each node's reasons above)"
        lines.append(f"Denied: {p.code}: {text if p.code == 'NoEligibleTarget' else p.message}")
    for note in report.notes:
        lines.append(f"Note: {note}")
    if report.timeouts is not None:
        t = report.timeouts
        lines += [
            "",
            f"Timeouts: {t.data_gib} GiB to copy; completion timeout "
            f"{t.completion_timeout_seconds} s, progress timeout {t.progress_timeout_seconds} s",
        ]
        if t.kubevirt is not None:
            lines += _kubevirt_lines(t)
    return "\n".join(lines) + "\n"


def _seconds(value: int) -> str:
    return f"{value} s" if value else "none"


def _kubevirt_lines(t: Timeouts) -> list[str]:
    """KubeVirt's own limits, where they come from, and who acts first on each."""
    kv = t.kubevirt
    assert kv is not None
    source = {
        "default": "KubeVirt's defaults (no KubeVirt CR sets them)",
        "kubevirt": f"KubeVirt CR {kv.kubevirt}",
        "policy": f"MigrationPolicy {kv.policy} over KubeVirt CR {kv.kubevirt or '(defaults)'}",
        "migrationState": "the VMI's status.migrationState.migrationConfiguration"
        + (f" (MigrationPolicy {kv.policy})" if kv.policy else ""),
    }[kv.source]
    first = {GUARD: "migration-guard", KUBEVIRT: "KubeVirt", SAME: "both at once"}
    lines = [
        f"KubeVirt: {kv.data_gb} GB counted; completion timeout "
        f"{_seconds(kv.completion_timeout_seconds)} ({kv.completion_timeout_per_gib} s per GB, "
        f"then {kv.completion_action}), progress timeout {_seconds(kv.progress_timeout_seconds)}; "
        f"allowPostCopy {str(kv.allow_post_copy).lower()}, allowWorkloadDisruption "
        f"{str(kv.allow_workload_disruption).lower()}",
        f"  from {source}",
        f"Fires first: completion: {first[kv.completion_first]}; "
        f"progress: {first[kv.progress_first]}",
    ]
    lines += [f"Note: {note}" for note in kv.notes]
    return lines


# ---- commands ----------------------------------------------------------------------------------
def _parse_vm(text: str) -> tuple[str, str]:
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise InputError(f"--vm {text!r}: expected namespace/name, e.g. default/my-vm")
    return ns, name


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def read_migration(path: str) -> dict:
    """The one VirtualMachineInstanceMigration in `path` (YAML or JSON)."""
    docs = list(_documents(Path(path)))
    kinds = [doc.get("kind") for _, doc in docs]
    if kinds != ["VirtualMachineInstanceMigration"]:
        raise InputError(
            f"--migration {path}: expected one VirtualMachineInstanceMigration, got "
            f"{', '.join(map(str, kinds)) or 'nothing'}"
        )
    where, vmim = docs[0]
    ctx = f"{where}: VirtualMachineInstanceMigration"
    if not a.get(vmim, "spec.vmiName", str, ctx):
        raise InputError(f"{ctx}: spec.vmiName is required")
    return vmim


def _subject(args: argparse.Namespace) -> tuple[str, str, dict | None]:
    """(namespace, VM name, the VMIM to evaluate or None) from --vm / --migration."""
    if args.migration is None:
        if args.vm is None:
            raise InputError("give --vm NS/NAME, or --migration FILE")
        return (*_parse_vm(args.vm), None)
    if args.target is not None:
        raise InputError(
            "--target and --migration exclude each other: the migration names its target"
        )
    vmim = read_migration(args.migration)
    ns = (vmim.get("metadata") or {}).get("namespace") or "default"
    name = vmim["spec"]["vmiName"]
    if args.vm is not None and _parse_vm(args.vm) != (ns, name):
        raise InputError(f"--vm {args.vm} is not the VM of --migration ({ns}/{name})")
    return ns, name, vmim


def run_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    origins: dict[str, str] = {}
    source = args.state or args.kubeconfig
    try:
        ns, name, vmim = _subject(args)
        state = load_state(args.state, origins) if args.state else load_live_state(args.kubeconfig)
        if state.vmi(ns, name) is None and state.vm(ns, name) is None:
            raise InputError(f"{source}: VM {ns}/{name} is not in the state")
        if state.count("Node") == 0:
            raise InputError(f"{source}: the state has no nodes")
        settings = TimeoutSettings(
            completion_timeout_per_gib=args.completion_timeout_per_gib,
            progress_timeout_seconds=args.progress_timeout_seconds,
        )
        policy = resolve(policy_settings(args), state.harvester_server_version())
        report = evaluate_migration(
            state, ns, name, vmim=vmim, target=args.target, settings=settings, policy=policy
        )
        vmi = state.vmi(ns, name)
        if vmi is not None:
            try:
                compute_timeouts(vmi, settings, state.vm(ns, name), strict=True)
            except InputError as exc:
                err.write(f"warning: {_with_origin(exc, origins, source)}; the default applies\n")
    except InputError as exc:
        err.write(f"error: {_with_origin(exc, origins, source)}\n")
        return 2
    if args.output == "json":
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.write(format_text(report))
        if policy.audit and not report.allowed:
            out.write("Audit mode: the webhook admits it, with these problems as warnings\n")
    return 0 if report.allowed or policy.audit else 1


def policy_settings(args: argparse.Namespace) -> PolicySettings:
    """The policy flags of `check` and `policy`, each falling back to its MIGRATION_GUARD_*
    variable, as the webhook reads them (InputError naming a bad one)."""
    return PolicySettings.parse(**flags.values_of(args, POLICY_FLAGS, os.environ))


def format_policy(policy: Policy) -> str:
    """The policy table: each rule, its action, and why (profile, setting or default)."""
    lines = [
        f"Profile: Harvester {policy.profile} ({policy.profile_source})",
        f"Mode:    {policy.mode}" + (" (every denial becomes a warning)" if policy.audit else ""),
        "",
    ]
    rows = [("RULE", "ACTION", "WHY"), *((r.code, r.action, r.why) for r in policy.rules)]
    width = max(len(r[0]) for r in rows) + 2
    lines += [f"  {code:<{width}}{action:<8}{why}" for code, action, why in rows]
    lines.append("  (KubeVirt's and kube-scheduler's verdicts always deny)")
    exempt = [f"VMs labelled {EXEMPT_LABEL}=true"]
    if policy.exempt_namespaces:
        exempt.append(f"namespaces {', '.join(policy.exempt_namespaces)}")
    if policy.exempt_namespace_selector is not None:
        exempt.append(f"namespaces matching {json.dumps(policy.exempt_namespace_selector)}")
    lines += ["", "Exempt (not checked): " + "; ".join(exempt)]
    return "\n".join(lines) + "\n"


ALTERNATIVES_SHOWN = 3  # the JSON lists them all


def format_drain_plan(plan: DrainPlan) -> str:
    """One line per VM: what the drain does to it, where it goes, or why it holds the drain."""
    held = sum(1 for p in plan.vms if p.outcome == HOLDS)
    lines = [
        f"Node:    {plan.node}",
        "Result:  " + ("every VM leaves" if plan.drainable else f"{held} VM(s) hold the drain"),
        f"Waves:   {min(plan.parallel_per_node, plan.parallel_per_cluster)} migrations at a time "
        f"(parallelOutboundMigrationsPerNode {plan.parallel_per_node}, "
        f"parallelMigrationsPerCluster {plan.parallel_per_cluster})",
        "",
    ]
    if not plan.vms:
        return "\n".join([*lines, "No VM runs on the node."]) + "\n"
    rows = [("VM", "EVICTION", "OUTCOME", "WAVE", "TARGET / WHY")]
    for p in plan.vms:
        if p.outcome == "migrates":
            shown = ", ".join(p.alternatives[:ALTERNATIVES_SHOWN])
            more = len(p.alternatives) - ALTERNATIVES_SHOWN
            alt = f"; or {shown}" + (f" and {more} more" if more > 0 else "") if shown else ""
            what = [f"{p.target} (score {p.score}{alt})"]
            what += [f"{w.code} (warn): {w.message}" for w in p.warnings]
        else:
            what = [f"{r.code}: {r.message}" for r in p.reasons] or ["-"]
        wave = str(p.wave) if p.wave else "-"
        rows.append((p.vm, p.eviction_strategy, p.outcome, wave, what[0]))
        rows += [("", "", "", "", w) for w in what[1:]]
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(4)]
    for row in rows:
        cells = "".join(f"{c:<{w}}" for c, w in zip(row[:4], widths, strict=True))
        lines.append(f"  {cells}{row[4]}".rstrip())
    return "\n".join(lines) + "\n"


def run_drain_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`migration-guard drain-plan NODE`: 0 every VM can leave, 1 not, 2 bad input."""
    source = args.state or args.kubeconfig
    try:
        policy_config = policy_settings(args)
        state = load_state(args.state) if args.state else load_live_state(args.kubeconfig)
        if state.node(args.node) is None:
            raise InputError(f"{source}: node {args.node!r} is not in the state")
        policy = resolve(policy_config, state.harvester_server_version())
        plan = drain_plan(state, args.node, policy=policy)
    except InputError as exc:
        err.write(f"error: {exc}\n")
        return 2
    if args.output == "json":
        out.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    else:
        out.write(format_drain_plan(plan))
    return 0 if plan.drainable else 1


def _server_version(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(Harvester's server-version, whether a cluster was read) for `policy`."""
    if args.state:
        return load_state(args.state).harvester_server_version(), True
    if not args.kubeconfig:
        return None, False
    from kubernetes import config

    from webhook.cluster.kubeapi import Kube, KubeError

    try:
        kube = Kube(config.new_client_from_config(config_file=args.kubeconfig))
        setting = kube.get_or_none(RESOURCES[HARVESTER_SETTING].path(name=SERVER_VERSION))
    except KubeError as exc:
        raise InputError(f"{args.kubeconfig}: cannot read the server-version: {exc}") from None
    except Exception as exc:  # a bad kubeconfig
        raise InputError(f"{args.kubeconfig}: cannot use kubeconfig: {exc}") from None
    return (setting or {}).get("value") or (setting or {}).get("default"), True


def run_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`migration-guard policy`: the effective policy; 0, or 2 on a bad setting."""
    try:
        settings = policy_settings(args)
        version, read = _server_version(args)
        policy = resolve(settings, version)
        if not read and settings.harvester_version == "auto":
            policy = dataclasses.replace(
                policy, profile_source="auto: no cluster read (give --kubeconfig or --state)"
            )
    except InputError as exc:
        err.write(f"error: {exc}\n")
        return 2
    out.write(
        json.dumps(policy.to_dict(), indent=2) + "\n"
        if args.output == "json"
        else format_policy(policy)
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migration-guard",
        description="Makes Harvester's live-migration rules hold everywhere a migration can start.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="decide whether a VM may live-migrate, from state files or a live cluster",
        description="Exit 0 allowed, 1 denied, 2 bad input.",
    )
    src = check.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--state",
        metavar="PATH",
        help="YAML/JSON file (multi-document or kind: List) or a folder of such files",
    )
    src.add_argument("--kubeconfig", metavar="FILE", help="read the state from a live cluster")
    check.add_argument("--vm", metavar="NS/NAME", help="the VM (or VMI) to check")
    check.add_argument(
        "--migration",
        metavar="FILE",
        help="a VirtualMachineInstanceMigration (YAML or JSON), evaluated as the webhook would "
        "(its addedNodeSelector, the VMI's target annotation)",
    )
    check.add_argument("--target", metavar="NODE", help="the node to migrate to (default: any)")
    check.add_argument("--output", choices=("text", "json"), default="text")
    defaults = TimeoutSettings()
    check.add_argument(
        "--completion-timeout-per-gib",
        type=_positive,
        default=defaults.completion_timeout_per_gib,
        metavar="SECONDS",
    )
    check.add_argument(
        "--progress-timeout-seconds",
        type=_positive,
        default=defaults.progress_timeout_seconds,
        metavar="SECONDS",
    )
    flags.add_flags(check, POLICY_FLAGS)
    policy = sub.add_parser(
        "policy",
        help="print the policy in force: each rule's action and why",
        description="The webhook's policy from the same flags and MIGRATION_GUARD_* variables; "
        "with --kubeconfig or --state, the Harvester version for --harvester-version auto.",
    )
    source = policy.add_mutually_exclusive_group()
    source.add_argument("--state", metavar="PATH", help="state files (their Harvester Setting)")
    source.add_argument("--kubeconfig", metavar="FILE", help="read Harvester's version live")
    policy.add_argument("-o", "--output", choices=("text", "json"), default="text")
    flags.add_flags(policy, POLICY_FLAGS)
    drain = sub.add_parser(
        "drain-plan",
        help="what draining a node does to each VM on it: where it goes, or what holds the drain",
        description="Exit 0 when every VM can leave the node, 1 when not, 2 bad input.",
    )
    drain.add_argument("node", metavar="NODE")
    drain_source = drain.add_mutually_exclusive_group(required=True)
    drain_source.add_argument("--state", metavar="PATH", help="YAML/JSON state files")
    drain_source.add_argument("--kubeconfig", metavar="FILE", help="read a live cluster")
    drain.add_argument("-o", "--output", choices=("text", "json"), default="text")
    flags.add_flags(drain, POLICY_FLAGS)
    for name, (_, help_text) in DELEGATES.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `migration-guard`; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATES:
        module = importlib.import_module(DELEGATES[args_list[0]][0])
        return int(module.main(args_list[1:]) or 0)
    args = build_parser().parse_args(args_list)
    if args.command == "policy":
        return run_policy(args, sys.stdout, sys.stderr)
    if args.command == "drain-plan":
        return run_drain_plan(args, sys.stdout, sys.stderr)
    return run_check(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
