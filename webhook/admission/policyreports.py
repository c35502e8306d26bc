"""Every VM's migratability as PolicyReports (wgpolicyk8s.io/v1alpha2), where Kyverno's and
Policy Reporter's users already look: `kubectl get policyreports -A`.

One report per namespace, named `migration-guard`, with a result per running VM: `pass` (it can
live-migrate now), `warn` (it can, with what the policy only warns about), `fail` (its blockers,
each with what to do) or `skip` (the policy exempts it). Nodes are not judged, as for the gauges
(webhook.admission.migratability): room elsewhere is the drain plan's question.

`report_for` is pure. `PolicyReportWriter` writes what changed, at most `max_writes` a round
(bounded write rate: a cluster-wide change is spread over rounds), and deletes the report of a
namespace that has no VM left. Only the replica holding the reports Lease writes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from kubernetes.client import ApiClient

from webhook.cluster.kubeapi import KubeError, call
from webhook.rules.drain import Migratability

log = logging.getLogger("migration_guard.policyreports")

GROUP_VERSION = "wgpolicyk8s.io/v1alpha2"
NAME = "migration-guard"
POLICY = "migration-guard/live-migration"
RULE = "live-migratable"
MANAGED_BY = {"app.kubernetes.io/managed-by": "migration-guard"}
MAX_WRITES_PER_ROUND = 50


def _result(m: Migratability) -> dict:
    namespace, _, name = m.vm.partition("/")
    if m.exemption is not None:
        result, message = "skip", f"not checked: {m.exemption}"
    elif m.problems:
        result = "fail"
        message = "; ".join(f"{p.code}: {p.message}" for p in m.problems)
    elif m.warnings:
        result = "warn"
        message = "can live-migrate, with " + "; ".join(
            f"{w.code}: {w.message}" for w in m.warnings
        )
    else:
        result, message = "pass", "can live-migrate (the nodes are judged when it migrates)"
    return {
        "source": "migration-guard",
        "policy": POLICY,
        "rule": RULE,
        "category": "Live migration",
        "result": result,
        "message": message,
        "resources": [
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstance",
                "namespace": namespace,
                "name": name,
            }
        ],
        "properties": {"node": m.node, "blockers": ",".join(m.blockers)},
    }


def report_for(namespace: str, results: Iterable[Migratability]) -> dict:
    """The PolicyReport of one namespace (results sorted by VM, so equal input writes nothing)."""
    items = sorted((_result(m) for m in results), key=lambda r: r["resources"][0]["name"])
    summary = {k: 0 for k in ("pass", "fail", "warn", "error", "skip")}
    for item in items:
        summary[item["result"]] += 1
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PolicyReport",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "summary": summary,
        "results": items,
    }


def by_namespace(results: Iterable[Migratability]) -> dict[str, dict]:
    grouped: dict[str, list[Migratability]] = defaultdict(list)
    for m in results:
        grouped[m.vm.partition("/")[0]].append(m)
    return {ns: report_for(ns, items) for ns, items in grouped.items()}


def _path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/policyreports"
    return f"{base}/{name}" if name else base


class PolicyReportWriter:
    """Writes the desired reports that differ from what it wrote last, a bounded number a round."""

    def __init__(
        self,
        api: ApiClient,
        is_leader: Callable[[], bool] = lambda: True,
        max_writes: int = MAX_WRITES_PER_ROUND,
    ) -> None:
        self.api = api
        self.is_leader = is_leader
        self.max_writes = max_writes
        self._written: dict[str, dict] = {}  # namespace -> the report as last written
        self.writes = 0
        self.problem: str | None = None

    def sync(self, results: Iterable[Migratability]) -> int:
        """Write what changed (up to `max_writes`); how many namespaces are still to write."""
        if not self.is_leader():
            self._written.clear()  # another replica writes; start afresh when leading again
            return 0
        desired = by_namespace(results)
        todo = [(ns, None) for ns in sorted(self._written) if ns not in desired]
        todo += [(ns, r) for ns, r in sorted(desired.items()) if self._written.get(ns) != r]
        for ns, report in todo[: self.max_writes]:
            if report is None:
                self._delete(ns)
            else:
                self._write(report)
        return max(0, len(todo) - self.max_writes)

    def _write(self, report: dict) -> None:
        ns = report["metadata"]["namespace"]
        try:
            current = call(self.api, "GET", _path(ns, NAME))
        except KubeError as exc:
            if exc.status != 404:
                self._failed(ns, exc)
                return
            current = None
        try:
            if current is None:
                call(self.api, "POST", _path(ns), report)
            else:
                version = (current.get("metadata") or {}).get("resourceVersion")
                body = {**report, "metadata": {**report["metadata"], "resourceVersion": version}}
                call(self.api, "PUT", _path(ns, NAME), body)
        except KubeError as exc:  # 409: changed meanwhile; next round reads it again
            self._failed(ns, exc)
            return
        self._written[ns] = report
        self.writes += 1
        self.problem = None

    def _delete(self, ns: str) -> None:
        try:
            call(self.api, "DELETE", _path(ns, NAME))
        except KubeError as exc:
            if exc.status != 404:
                self._failed(ns, exc)
                return
        self._written.pop(ns, None)

    def _failed(self, ns: str, exc: KubeError) -> None:
        self.problem = f"PolicyReport {ns}/{NAME}: {exc.status} {exc.message}"
        log.warning("%s", self.problem)
