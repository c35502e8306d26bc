"""`kubectl migration-guard`: the extension API from a terminal, as the user of the kubeconfig.

kubectl runs `kubectl-migration_guard` for `kubectl migration-guard ...`. The plugin calls the
aggregated API (extension.aggregated) through kube-apiserver with the kubeconfig's credentials
(tokens, client certificates, exec plugins: the official client handles them), so kube-apiserver
authenticates and authorizes the user exactly as for `kubectl get --raw`.

    kubectl migration-guard targets VM                 every node, eligible or why not
    kubectl migration-guard migrate VM [--node NODE]   start a migration (checked first)
    kubectl migration-guard abort VM                   abort the migration in progress
    kubectl migration-guard status VM                  the current or last migration

Exit status: 0 done / allowed, 1 refused or denied (the message says why), 2 bad usage or the
cluster cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from extension import aggregated
from webhook.cli import format_text
from webhook.cluster.kubeapi import Kube, KubeError
from webhook.rules.model import Report

PROG = "kubectl migration-guard"


class PluginError(Exception):
    """A failure to report on one line; `code` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _client(kubeconfig: str | None, context: str | None) -> tuple[Kube, str]:
    """The API client of the kubeconfig (KUBECONFIG, else ~/.kube/config) and its namespace."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c["name"] == context), None)
            if active is None:
                raise ValueError(f"it has no context {context!r}")
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # the client raises many types for a bad kubeconfig
        raise PluginError(f"cannot use the kubeconfig: {' '.join(str(exc).split())}", 2) from None
    namespace = (active.get("context") or {}).get("namespace") or "default"
    return Kube(api, timeout=30), namespace


def call(kube: Kube, method: str, path: str, body: dict | None = None) -> dict:
    """One request to kube-apiserver; PluginError with the server's words when refused."""
    try:
        return kube.request(method, path, body)
    except KubeError as exc:
        if exc.status == 0:
            raise PluginError(f"cannot reach the cluster: {exc.message}", 2) from None
        raise PluginError(_refusal(exc), 1 if exc.status < 500 else 2) from None


def _refusal(exc: KubeError) -> str:
    """The server's message (a Kubernetes Status), with every cause when there are any."""
    message = exc.message
    if exc.status == 503 and "service unavailable" in message.lower():
        message += " (is migration-guard running, and its APIService Available?)"
    causes = [c for c in exc.body.get("causes") or [] if isinstance(c, dict)]
    return "\n".join([message] + [f"  - {c.get('code')}: {c.get('message')}" for c in causes])


def _path(namespace: str, vm: str, sub: str) -> str:
    return f"{aggregated.PREFIX}/namespaces/{namespace}/virtualmachines/{vm}/{sub}"


# ---- what each command prints ------------------------------------------------------------------
def format_started(answer: dict) -> str:
    node = answer.get("targetNode") or "a node KubeVirt picks"
    lines = [f"migration {answer.get('namespace')}/{answer.get('name')} of VM started to {node}"]
    t = answer.get("timeouts")
    if t:
        lines.append(
            f"it must finish within {t['completionTimeoutSeconds']} s ({t['dataGiB']} GiB) and "
            f"make progress at least every {t['progressTimeoutSeconds']} s, or it is aborted"
        )
    return "\n".join(lines) + "\n"


def format_aborted(answer: dict) -> str:
    return f"aborted migration {answer.get('aborted')} (it was {answer.get('phase')})\n"


_STATUS_FIELDS = (
    ("Phase", "phase"),
    ("Source", "sourceNode"),
    ("Target", "targetNode"),
    ("Started", "startTimestamp"),
    ("Ended", "endTimestamp"),
    ("Elapsed", "elapsedSeconds"),
    ("Deadline", "completionDeadline"),
    ("KubeVirt's deadline", "kubevirtCompletionDeadline"),
    ("Data remaining", "dataRemainingBytes"),
    ("Requested by", "requestedBy"),
    ("Why", "why"),
)


def format_status(answer: dict) -> str:
    m = answer.get("migration") or {}
    lines = [f"VM:        {answer.get('vm')}", f"Migration: {m.get('name')}"]
    for label, key in _STATUS_FIELDS:
        value = m.get(key)
        if value is not None:
            unit = " s" if key == "elapsedSeconds" else " bytes" if key.endswith("Bytes") else ""
            lines.append(f"{label + ':':<10} {value}{unit}")
    return "\n".join(lines) + "\n"


# ---- commands ----------------------------------------------------------------------------------
def run(args: argparse.Namespace, out: TextIO) -> int:
    api, default_namespace = _client(args.kubeconfig, args.context)
    ns = args.namespace or default_namespace
    if args.command == "targets":
        answer = call(api, "GET", _path(ns, args.vm, "migrationtargets"))
        report = Report.from_dict(answer)
        out.write(
            json.dumps(answer, indent=2) + "\n" if args.output == "json" else format_text(report)
        )
        return 0 if report.allowed else 1
    if args.command == "migrate":
        answer = call(api, "PUT", _path(ns, args.vm, "migrate"), {"nodeName": args.node or ""})
        text = format_started(answer)
    elif args.command == "abort":
        answer = call(api, "PUT", _path(ns, args.vm, "abortmigration"), {})
        text = format_aborted(answer)
    else:
        answer = call(api, "GET", _path(ns, args.vm, "migration"))
        text = format_status(answer)
    out.write(json.dumps(answer, indent=2) + "\n" if args.output == "json" else text)
    return 0


def _common_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=default,
        help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument("--context", default=default, help="kubeconfig context (default: current)")
    parser.add_argument(
        "-n", "--namespace", default=default, help="the VM's namespace (default: the context's)"
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default=default or "text", help="text or json"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Live migration of Harvester VMs, checked by migration-guard.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[2],
    )
    _common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("targets", "every node, and whether the VM may move there or why not"),
        ("migrate", "start a live migration (refused with every reason when the rules deny it)"),
        ("abort", "abort the VM's migration in progress"),
        ("status", "the VM's current or last migration"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("vm", metavar="VM", help="the VirtualMachine's name")
        if name == "migrate":
            sub.add_argument("--node", help="the target node (default: any eligible node)")
        # as with kubectl, the options also go after the command; SUPPRESS keeps what was
        # given before it
        _common_options(sub, default=argparse.SUPPRESS)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, out)
    except PluginError as exc:
        err.write(f"error: {exc}\n")
        return exc.code
