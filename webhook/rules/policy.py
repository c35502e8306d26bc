"""Policy: what each of migration-guard's own rules does, per Harvester version, and who is exempt.

Only the rules migration-guard adds on purpose can be set (POLICY_CODES): the four restrictions of
Harvester's live-migration page and Harvester's node rules. What KubeVirt or kube-scheduler decide
(a full node, a CPU model, a running migration, ...) is not a choice: a migration they refuse never
runs, so it stays a denial.

Each code's action, in order of precedence:
1. `--rule-actions CODE=ACTION,...` (deny, warn or off);
2. the Harvester profile: Harvester v1.8 removed its CD-ROM and container-disk checks (CD-ROMs
   became hotplug volumes; KubeVirt migrates container disks), so from v1.8 those two warn;
   earlier versions deny all four. `--harvester-version auto` reads Harvester's own version (the
   `server-version` Setting of harvesterhci.io); a cluster that does not publish one gets the
   earliest profile, and the policy says so;
3. deny.
`--policy-mode audit` then turns every denial, of any rule, into a warning (Kyverno's Audit).
Exemptions leave a VM alone: its namespace is in `--exempt-namespaces` or matches
`--exempt-namespace-selector`, or the VM carries the label `migration-guard.io/exempt=true`.

Pure: settings in, a `Policy` out; `Policy.split` sorts problems into denials and warnings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from webhook.errors import InputError
from webhook.rules.filters.pod_affinity import label_selector_matches
from webhook.rules.model import Problem
from webhook.rules.selector import parse_selector

DENY, WARN, OFF = "deny", "warn", "off"
ACTIONS = (DENY, WARN, OFF)
ENFORCE, AUDIT = "enforce", "audit"
AUTO = "auto"
EXEMPT_LABEL = "migration-guard.io/exempt"

RESTRICTIONS = (
    "ManagementNetworkBridge",
    "CDROMVolume",
    "ContainerDiskVolume",
    "PCIDevicePassthrough",
)
HARVESTER_NODE_RULES = (
    "NodeNotReady",
    "NodeCordoned",
    "NodeInMaintenance",
    "WitnessNode",
    "NetworkUnavailable",
)
POLICY_CODES = RESTRICTIONS + HARVESTER_NODE_RULES
# The profile's changes from the all-deny defaults, by the first Harvester minor version they hold.
PROFILES: tuple[tuple[tuple[int, int], dict[str, str]], ...] = (
    ((1, 8), {"CDROMVolume": WARN, "ContainerDiskVolume": WARN}),
)
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?")


def parse_version(text: str, setting: str = "--harvester-version") -> tuple[int, int]:
    """(major, minor) of "v1.8.0", "1.7", "v1.8.0-rc1"; InputError naming `setting` otherwise."""
    m = _VERSION.fullmatch(text.strip())
    if m is None:
        raise InputError(f"{setting}: {text!r} is not a Harvester version such as v1.8.0 or auto")
    return int(m[1]), int(m[2])


def parse_rule_actions(items: Iterable[str], setting: str = "--rule-actions") -> dict[str, str]:
    """{code: action} of "CODE=ACTION" items; InputError naming the bad item."""
    out: dict[str, str] = {}
    for item in items:
        code, sep, action = (part.strip() for part in item.partition("="))
        if not sep or not code or not action:
            raise InputError(f"{setting}: {item!r} is not CODE=ACTION (e.g. CDROMVolume=warn)")
        if code not in POLICY_CODES:
            raise InputError(
                f"{setting}: {code!r} is not a rule migration-guard may relax; the rules are "
                f"{', '.join(POLICY_CODES)} (KubeVirt's and kube-scheduler's verdicts stay denials)"
            )
        if action.lower() not in ACTIONS:
            raise InputError(f"{setting}: {item!r}: the action must be deny, warn or off")
        out[code] = action.lower()
    return out


@dataclass(frozen=True)
class PolicySettings:
    """The policy as configured (webhook.admission.settings, `check`, `policy`): validated."""

    harvester_version: str = AUTO
    rule_actions: dict[str, str] = field(default_factory=dict)
    mode: str = ENFORCE
    exempt_namespaces: tuple[str, ...] = ()
    exempt_namespace_selector: dict | None = None  # a metav1.LabelSelector; None: none

    @classmethod
    def parse(  # the settings' attribute names (webhook.admission.settings.POLICY_FLAGS)
        cls,
        harvester_version: str = AUTO,
        rule_actions: Iterable[str] = (),
        policy_mode: str = ENFORCE,
        exempt_namespaces: Iterable[str] = (),
        exempt_namespace_selector: str = "",
    ) -> PolicySettings:
        """From the settings' text; InputError naming the setting that cannot work."""
        if harvester_version.strip().lower() != AUTO:
            parse_version(harvester_version)
        selector = None
        if exempt_namespace_selector.strip():
            selector = parse_selector(exempt_namespace_selector, "--exempt-namespace-selector")
        return cls(
            harvester_version=harvester_version.strip().lower()
            if harvester_version.strip().lower() == AUTO
            else harvester_version.strip(),
            rule_actions=parse_rule_actions(rule_actions),
            mode=policy_mode,
            exempt_namespaces=tuple(exempt_namespaces),
            exempt_namespace_selector=selector,
        )


@dataclass(frozen=True)
class RuleAction:
    """One row of the policy table: a rule, what it does, and why."""

    code: str
    action: str
    why: str  # "default", "profile v1.8", "--rule-actions"


@dataclass(frozen=True)
class Policy:
    """The policy in force: every POLICY_CODES action, the mode, the exemptions, the profile."""

    rules: tuple[RuleAction, ...]
    mode: str = ENFORCE
    profile: str = "v1.7"  # the profile applied, e.g. "v1.8"
    profile_source: str = "default"  # how it was chosen: "auto: server-version v1.8.1", ...
    exempt_namespaces: tuple[str, ...] = ()
    exempt_namespace_selector: dict | None = None

    def action(self, code: str) -> str:
        for rule in self.rules:
            if rule.code == code:
                return rule.action
        return DENY

    @cached_property
    def relaxed(self) -> frozenset[str]:
        """The codes that do not deny."""
        return frozenset(r.code for r in self.rules if r.action != DENY)

    @property
    def relaxes_node_rules(self) -> bool:
        return not self.relaxed.isdisjoint(HARVESTER_NODE_RULES)

    @property
    def exempts(self) -> bool:
        """Whether any VM can be exempt besides by its label (checked for every VM)."""
        return bool(self.exempt_namespaces) or self.exempt_namespace_selector is not None

    def split(self, problems: Iterable[Problem]) -> tuple[list[Problem], list[Problem]]:
        """(denials, warnings) of `problems` by their rule's action; `off` drops a problem."""
        if not self.relaxed:
            return list(problems), []
        denials, warnings = [], []
        for p in problems:
            action = self.action(p.code)
            if action == DENY:
                denials.append(p)
            elif action == WARN:
                warnings.append(p)
        return denials, warnings

    def exemption(
        self, namespace: str, namespace_labels: dict[str, str] | None, vm_labels: dict[str, str]
    ) -> str | None:
        """Why a VM is left alone, or None."""
        if vm_labels.get(EXEMPT_LABEL) == "true":
            return f"the VM has the label {EXEMPT_LABEL}=true"
        if namespace in self.exempt_namespaces:
            return f"namespace '{namespace}' is in --exempt-namespaces"
        selector = self.exempt_namespace_selector
        if selector is not None and label_selector_matches(selector, namespace_labels or {}):
            return f"namespace '{namespace}' matches --exempt-namespace-selector"
        return None

    @property
    def audit(self) -> bool:
        return self.mode == AUDIT

    def to_dict(self) -> dict:
        return {
            "profile": self.profile,
            "profileSource": self.profile_source,
            "mode": self.mode,
            "rules": [{"code": r.code, "action": r.action, "why": r.why} for r in self.rules],
            "exemptNamespaces": list(self.exempt_namespaces),
            "exemptNamespaceSelector": self.exempt_namespace_selector,
            "exemptLabel": f"{EXEMPT_LABEL}=true",
        }


def profile_of(version: tuple[int, int] | None) -> tuple[str, dict[str, str]]:
    """The profile's name and its actions for a Harvester (major, minor); None: the earliest."""
    name, actions = "v1.7", {}
    for since, changes in PROFILES:
        if version is not None and version >= since:
            name, actions = f"v{since[0]}.{since[1]}", {**actions, **changes}
    return name, actions


def resolve(settings: PolicySettings, server_version: str | None) -> Policy:
    """The Policy in force; `server-version` is what Harvester publishes (None: nothing)."""
    if settings.harvester_version != AUTO:
        version, source = parse_version(settings.harvester_version), "--harvester-version"
    elif server_version:
        try:
            version = parse_version(server_version, "server-version")
            source = f"auto: Harvester's server-version is {server_version}"
        except InputError:
            version, source = (
                None,
                f"auto: Harvester's server-version {server_version!r} is unreadable",
            )
    else:
        version, source = None, "auto: the cluster publishes no Harvester server-version"
    profile, actions = profile_of(version)
    rules = []
    for code in POLICY_CODES:
        if code in settings.rule_actions:
            rules.append(RuleAction(code, settings.rule_actions[code], "--rule-actions"))
        elif code in actions:
            rules.append(RuleAction(code, actions[code], f"profile {profile}"))
        else:
            rules.append(RuleAction(code, DENY, "default"))
    return Policy(
        rules=tuple(rules),
        mode=settings.mode,
        profile=profile,
        profile_source=source,
        exempt_namespaces=settings.exempt_namespaces,
        exempt_namespace_selector=settings.exempt_namespace_selector,
    )


# Every rule denies: what callers get that pass no policy (the behaviour before policies).
ALL_DENY = Policy(rules=tuple(RuleAction(code, DENY, "default") for code in POLICY_CODES))


class PolicySource:
    """The Policy in force, resolved again only when Harvester's version changes (an upgrade);
    `on_change(policy)` then runs (the webhook's metric)."""

    def __init__(
        self, settings: PolicySettings, on_change: Callable[[Policy], None] = lambda _p: None
    ) -> None:
        self.settings = settings
        self._on_change = on_change
        self._current: tuple[str | None, Policy] | None = None

    def policy(self, server_version: str | None) -> Policy:
        current = self._current
        if current is not None and current[0] == server_version:
            return current[1]
        policy = resolve(self.settings, server_version)
        self._current = (server_version, policy)
        self._on_change(policy)
        return policy
