"""Result types of the rule engine: problems, node verdicts, timeouts and the report.

`Report.problems()` is the single list every caller shows: the webhook denies with it, the CLI
prints it, the extension explains with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# How many ineligible nodes a NoEligibleTarget message spells out; the rest are counted, so a
# denial on a 1,000-node cluster stays readable (every node's reasons remain in `Report.nodes`).
MAX_NODES_IN_MESSAGE = 50


@dataclass(frozen=True)
class Problem:
    """One VM blocker or one node reason: a stable code, a message a person can act on, a field."""

    code: str
    message: str
    field: str | None = None

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        # What the generated frozen __init__ does, without its three object.__setattr__ calls
        # (~1 us): a lookup builds one per reason of each of thousands of nodes.
        d = self.__dict__
        d["code"], d["message"], d["field"] = code, message, field

    def to_dict(self) -> dict:
        out: dict = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        return cls(d["code"], d["message"], d.get("field"))


@dataclass(frozen=True)
class NodeVerdict:
    """Whether one node may receive the VM, and every reason it may not."""

    name: str
    reasons: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()  # reasons the policy only warns about (rules.policy)

    def __init__(
        self, name: str, reasons: tuple[Problem, ...] = (), warnings: tuple[Problem, ...] = ()
    ) -> None:
        # As Problem's: a lookup builds one per node, 5,000 of them at issue 18's scale.
        d = self.__dict__
        d["name"], d["reasons"], d["warnings"] = name, reasons, warnings

    @property
    def eligible(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "eligible": self.eligible,
            "reasons": [r.to_dict() for r in self.reasons],
        }
        if self.warnings:
            out["warnings"] = [w.to_dict() for w in self.warnings]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> NodeVerdict:
        return cls(
            d["name"],
            tuple(Problem.from_dict(r) for r in d["reasons"]),
            tuple(Problem.from_dict(w) for w in d.get("warnings") or []),
        )


class Reason(NamedTuple):
    """A node reason without the node: nodes whose labels and taints read the same share one
    (rules.node_groups); `node_problem` makes it the Problem of one node."""

    code: str
    text: str  # the message after "node '<name>' "
    field: str | None = None


def node_problem(node: str, reason: Reason) -> Problem:
    """`reason` as the Problem of node `node`."""
    return Problem(reason[0], f"node '{node}' {reason[1]}", reason[2])


@dataclass(frozen=True)
class TimeoutSettings:
    """Cluster-wide defaults; a VM or VMI may override them by annotation."""

    completion_timeout_per_gib: int = 800
    progress_timeout_seconds: int = 150


# Who acts first on a limit (webhook.rules.kubevirt_limits.first_to_fire).
GUARD, KUBEVIRT, SAME = "migration-guard", "kubevirt", "same"


@dataclass(frozen=True)
class KubeVirtTimeouts:
    """KubeVirt's own limits for one VM's migration, and where they come from.

    KubeVirt's launcher counts `completionTimeoutPerGiB` per decimal GB (10^9 bytes, rounded up),
    despite the name; 0 means no limit. `source` is "default", "kubevirt" (the KubeVirt CR),
    "policy" (a MigrationPolicy changed the cluster value) or "migrationState" (what virt-controller
    wrote into the VMI for the migration in flight: what KubeVirt applies).
    """

    data_bytes: int
    data_gb: int
    completion_timeout_per_gib: int
    completion_timeout_seconds: int
    progress_timeout_seconds: int
    allow_post_copy: bool
    allow_workload_disruption: bool
    source: str
    kubevirt: str | None = None  # "namespace/name" of the KubeVirt CR read
    policy: str | None = None  # the MigrationPolicy that changed the configuration
    completion_first: str = GUARD  # GUARD, KUBEVIRT or SAME
    progress_first: str = GUARD
    notes: tuple[str, ...] = ()

    @property
    def completion_action(self) -> str:
        """What KubeVirt does at its completion limit (live-migration-source.go,
        processInflightMigration): abort, or with allowWorkloadDisruption switch to post-copy
        (allowPostCopy) or pause the guest (and abort at twice the limit)."""
        if not self.allow_workload_disruption:
            return "abort"
        return "post-copy" if self.allow_post_copy else "pause"

    def fires_first(self) -> dict[str, str]:
        """Who acts first on each limit (GUARD, KUBEVIRT or SAME), as the report shows it."""
        return {"completion": self.completion_first, "progress": self.progress_first}

    def to_dict(self) -> dict:
        return {
            "dataBytes": self.data_bytes,
            "dataGB": self.data_gb,
            "completionTimeoutPerGiB": self.completion_timeout_per_gib,
            "completionTimeoutSeconds": self.completion_timeout_seconds,
            "progressTimeoutSeconds": self.progress_timeout_seconds,
            "allowPostCopy": self.allow_post_copy,
            "allowWorkloadDisruption": self.allow_workload_disruption,
            "completionAction": self.completion_action,
            "source": self.source,
            "kubevirt": self.kubevirt,
            "migrationPolicy": self.policy,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict, fires_first: dict[str, str]) -> KubeVirtTimeouts:
        return cls(
            data_bytes=d["dataBytes"],
            data_gb=d["dataGB"],
            completion_timeout_per_gib=d["completionTimeoutPerGiB"],
            completion_timeout_seconds=d["completionTimeoutSeconds"],
            progress_timeout_seconds=d["progressTimeoutSeconds"],
            allow_post_copy=d["allowPostCopy"],
            allow_workload_disruption=d["allowWorkloadDisruption"],
            source=d["source"],
            kubevirt=d["kubevirt"],
            policy=d["migrationPolicy"],
            completion_first=fires_first["completion"],
            progress_first=fires_first["progress"],
            notes=tuple(d["notes"]),
        )


@dataclass(frozen=True)
class Timeouts:
    """The deadlines that apply to one VM's migration: migration-guard's, and KubeVirt's own."""

    data_bytes: int
    data_gib: int
    completion_timeout_seconds: int
    progress_timeout_seconds: int
    kubevirt: KubeVirtTimeouts | None = None

    def __init__(
        self,
        data_bytes: int,
        data_gib: int,
        completion_timeout_seconds: int,
        progress_timeout_seconds: int,
        kubevirt: KubeVirtTimeouts | None = None,
    ) -> None:
        # As Problem's: every decision makes one or two.
        d = self.__dict__
        d["data_bytes"], d["data_gib"] = data_bytes, data_gib
        d["completion_timeout_seconds"] = completion_timeout_seconds
        d["progress_timeout_seconds"], d["kubevirt"] = progress_timeout_seconds, kubevirt

    def with_kubevirt(self, kubevirt: KubeVirtTimeouts) -> Timeouts:
        """These deadlines with KubeVirt's (built directly: every decision makes one, and
        dataclasses.replace costs several times more)."""
        return Timeouts(
            self.data_bytes,
            self.data_gib,
            self.completion_timeout_seconds,
            self.progress_timeout_seconds,
            kubevirt,
        )

    def to_dict(self) -> dict:
        out: dict = {
            "dataBytes": self.data_bytes,
            "dataGiB": self.data_gib,
            "completionTimeoutSeconds": self.completion_timeout_seconds,
            "progressTimeoutSeconds": self.progress_timeout_seconds,
        }
        kv = self.kubevirt
        if kv is not None:
            out["kubevirt"] = kv.to_dict()
            out["firesFirst"] = kv.fires_first()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Timeouts:
        kv = d.get("kubevirt")
        return cls(
            data_bytes=d["dataBytes"],
            data_gib=d["dataGiB"],
            completion_timeout_seconds=d["completionTimeoutSeconds"],
            progress_timeout_seconds=d["progressTimeoutSeconds"],
            kubevirt=KubeVirtTimeouts.from_dict(kv, d["firesFirst"]) if kv else None,
        )


@dataclass(frozen=True)
class Report:
    """The whole decision for one VM (and, when given, one target node).

    `nodes` holds every node when no target is given, only the target node when one is (empty if
    the target does not exist), and nothing when the VMI is missing (`nodes_evaluated` False).
    """

    vm: str
    source_node: str | None
    target: str | None
    blockers: tuple[Problem, ...]
    nodes: tuple[NodeVerdict, ...]
    timeouts: Timeouts | None
    nodes_evaluated: bool = True
    notes: tuple[str, ...] = ()  # what the decision could not judge, and why
    warnings: tuple[Problem, ...] = ()  # blockers the policy only warns about (rules.policy)
    exemption: str | None = None  # why the policy leaves this VM alone: nothing then denies

    def __init__(
        self,
        vm: str,
        source_node: str | None,
        target: str | None,
        blockers: tuple[Problem, ...],
        nodes: tuple[NodeVerdict, ...],
        timeouts: Timeouts | None,
        nodes_evaluated: bool = True,
        notes: tuple[str, ...] = (),
        warnings: tuple[Problem, ...] = (),
        exemption: str | None = None,
    ) -> None:
        # As Problem's: every decision makes one (the frozen __init__ sets each field through
        # object.__setattr__).
        d = self.__dict__
        d["vm"], d["source_node"], d["target"] = vm, source_node, target
        d["blockers"], d["nodes"], d["timeouts"] = blockers, nodes, timeouts
        d["nodes_evaluated"], d["notes"], d["warnings"] = nodes_evaluated, notes, warnings
        d["exemption"] = exemption

    @property
    def eligible_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if n.eligible]

    @property
    def allowed(self) -> bool:
        return not self.problems()

    def target_verdict(self) -> NodeVerdict | None:
        for verdict in self.nodes:
            if verdict.name == self.target:
                return verdict
        return None

    def all_warnings(self) -> list[Problem]:
        """What the policy warns about: the VM's warned blockers, then the target's warned
        reasons (an admitted migration shows them)."""
        verdict = self.target_verdict() if self.target is not None else None
        return list(self.warnings) + list(verdict.warnings if verdict is not None else ())

    def problems(self) -> list[Problem]:
        """Everything a denial lists: blockers, then the target's or the nodes' problem; nothing
        for an exempt VM."""
        if self.exemption is not None:
            return []
        out = list(self.blockers)
        if not self.nodes_evaluated:
            return out
        if self.target is not None:
            verdict = self.target_verdict()
            if verdict is None:
                out.append(
                    Problem(
                        "TargetNotFound",
                        f"target node '{self.target}' does not exist: "
                        "choose an existing node, or leave the target empty",
                    )
                )
            elif not verdict.eligible:
                reasons = "; ".join(r.message for r in verdict.reasons)
                out.append(
                    Problem(
                        "TargetNotEligible",
                        f"target node '{self.target}' cannot receive VM {self.vm}: {reasons}",
                    )
                )
        elif not self.eligible_nodes:
            out.append(Problem("NoEligibleTarget", self._no_target_message()))
        return out

    def _no_target_message(self) -> str:
        if not self.nodes:
            return f"no node can receive VM {self.vm}: the cluster has no nodes"
        shown = self.nodes[:MAX_NODES_IN_MESSAGE]
        parts = [f"{n.name}: " + "; ".join(r.message for r in n.reasons) for n in shown]
        more = len(self.nodes) - len(shown)
        tail = f" (and {more} more nodes)" if more else ""
        return f"no node can receive VM {self.vm}: " + " | ".join(parts) + tail

    def to_dict(self) -> dict:
        """The report JSON of DESIGN ("vm", "sourceNode", "target", "allowed", ...)."""
        return {
            "vm": self.vm,
            "sourceNode": self.source_node,
            "target": self.target,
            "allowed": self.allowed,
            "blockers": [b.to_dict() for b in self.blockers],
            "nodes": [n.to_dict() for n in self.nodes],
            "eligibleNodes": self.eligible_nodes,
            "timeouts": self.timeouts.to_dict() if self.timeouts else None,
            "problems": [p.to_dict() for p in self.problems()],
            "notes": list(self.notes),
            "nodesEvaluated": self.nodes_evaluated,
            "warnings": [w.to_dict() for w in self.warnings],
            "exemption": self.exemption,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        """The Report a `to_dict` answer came from (what the kubectl plugin prints); KeyError or
        TypeError on a document of another shape."""
        return cls(
            vm=d["vm"],
            source_node=d["sourceNode"],
            target=d["target"],
            blockers=tuple(Problem.from_dict(b) for b in d["blockers"]),
            nodes=tuple(NodeVerdict.from_dict(n) for n in d["nodes"]),
            timeouts=Timeouts.from_dict(d["timeouts"]) if d["timeouts"] else None,
            nodes_evaluated=d["nodesEvaluated"],
            notes=tuple(d["notes"]),
            warnings=tuple(Problem.from_dict(w) for w in d["warnings"]),
            exemption=d["exemption"],
        )
