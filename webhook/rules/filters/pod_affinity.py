"""InterPodAffinity: required pod affinity and anti-affinity, as kube-scheduler filters them.

Three checks for a candidate node (pkg/scheduler/framework/plugins/interpodaffinity, v1.35):
- the incoming pod's required anti-affinity: no matching pod may run in the node's topology domain
  (a node without the topology label is never in a domain);
- the incoming pod's required affinity: every term needs a matching pod in the node's domain, unless
  no pod matches any term and the pod matches all of its own terms (the first of a group);
- existing pods' required anti-affinity: no pod whose term matches the incoming pod may run in the
  node's domain for that term.
A term's namespaces: `namespaces`, else the owner's namespace; an empty `namespaceSelector` means
every namespace. A non-empty `namespaceSelector` is not judged yet (the cache holds Namespace
labels now, for MigrationPolicies): such a term never refuses a node, and the report says so. `matchLabelKeys` / `mismatchLabelKeys`
add the owner's values to the selector as the API server does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from webhook.rules.model import Problem

ALL_NAMESPACES = None  # a scope meaning every namespace


@dataclass(frozen=True, slots=True)
class PodRef:
    """What a bound pod brings to pod affinity: who it is, its labels and where it runs."""

    namespace: str
    name: str
    labels: dict[str, str]
    node: str


@dataclass(frozen=True, slots=True)
class Term:
    """A PodAffinityTerm resolved against its owner: selector, namespace scope, topology key."""

    selector: dict | None
    namespaces: frozenset[str] | None  # None: every namespace
    topology_key: str
    judged: bool = True


def label_selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector: null matches nothing, empty matches everything."""
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            ok = False
        if not ok:
            return False
    return True


def resolve_term(term: dict, owner_namespace: str, owner_labels: dict[str, str]) -> Term | None:
    """The term as the scheduler applies it; None for one without a topology key (invalid)."""
    if not isinstance(term, dict) or not isinstance(term.get("topologyKey"), str):
        return None
    selector = term.get("labelSelector")
    extra = [
        {"key": k, "operator": op, "values": [owner_labels[k]]}
        for keys, op in (
            (term.get("matchLabelKeys"), "In"),
            (term.get("mismatchLabelKeys"), "NotIn"),
        )
        for k in keys or []
        if k in owner_labels
    ]
    if extra and isinstance(selector, dict):
        selector = {
            **selector,
            "matchExpressions": [*(selector.get("matchExpressions") or []), *extra],
        }
    ns_selector = term.get("namespaceSelector")
    names = frozenset(term.get("namespaces") or [])
    judged = True
    if ns_selector is None:
        scope: frozenset[str] | None = names or frozenset({owner_namespace})
    elif not ns_selector:
        scope = ALL_NAMESPACES
    else:
        scope, judged = names, False
    return Term(selector, scope, term["topologyKey"], judged)


def term_matches_pod(t: Term, namespace: str, labels: dict[str, str]) -> bool:
    in_scope = t.namespaces is ALL_NAMESPACES or namespace in t.namespaces
    return in_scope and label_selector_matches(t.selector, labels)


class PodAffinityContext:
    """Per request: the topology domains each check refuses or requires, computed once."""

    __slots__ = ("forbidden", "required", "unjudged")

    def __init__(self) -> None:  # not a dataclass: its default factories cost a decision 2 us
        # (topology key, value) -> the pod that makes the domain forbidden, for the message
        self.forbidden: dict[tuple[str, str], tuple[str, str]] = {}
        self.required: list[tuple[str, set[str]]] = []
        self.unjudged: list[str] = []

    @property
    def empty(self) -> bool:
        return not self.forbidden and not self.required


def build_context(
    namespace: str,
    labels: dict[str, str],
    affinity_terms: Iterable[Term],
    anti_affinity_terms: Iterable[Term],
    candidates: Callable[[Term], Iterable[PodRef]],
    existing_anti: Iterable[tuple[PodRef, Term]],
    node_labels: Callable[[str], dict[str, str] | None],
) -> PodAffinityContext:
    """Domains for the incoming pod (`namespace`, `labels`).

    `candidates(term)`: bound pods that may match the term (a superset is fine);
    `existing_anti`: bound pods' required anti-affinity terms that may match the incoming pod.
    """
    ctx = PodAffinityContext()

    def domain_of(pod: PodRef, key: str) -> str | None:
        return (node_labels(pod.node) or {}).get(key)

    for t in anti_affinity_terms:
        if not t.judged:
            ctx.unjudged.append("a required pod anti-affinity term with a namespaceSelector")
        for pod in candidates(t):
            value = domain_of(pod, t.topology_key)
            if value is not None and term_matches_pod(t, pod.namespace, pod.labels):
                ctx.forbidden.setdefault(
                    (t.topology_key, value), ("own", f"{pod.namespace}/{pod.name}")
                )
    for pod, t in existing_anti:
        value = domain_of(pod, t.topology_key)
        if value is not None and term_matches_pod(t, namespace, labels):
            ctx.forbidden.setdefault(
                (t.topology_key, value), ("theirs", f"{pod.namespace}/{pod.name}")
            )

    terms = list(affinity_terms)
    any_match = False
    for t in terms:
        if not t.judged:
            ctx.unjudged.append("a required pod affinity term with a namespaceSelector")
            continue
        values: set[str] = set()
        for pod in candidates(t):
            if term_matches_pod(t, pod.namespace, pod.labels):
                any_match = True
                value = domain_of(pod, t.topology_key)
                if value is not None:
                    values.add(value)
        ctx.required.append((t.topology_key, values))
    if not any_match and all(term_matches_pod(t, namespace, labels) for t in terms):
        ctx.required = []  # the first pod of its group may go anywhere
    return ctx


def pod_affinity_problems(
    node: str, labels: dict[str, str], c: PodAffinityContext
) -> list[Problem]:
    """PodAntiAffinityConflict / PodAffinityUnsatisfied for one node."""
    out = []
    for (key, value), (whose, pod) in c.forbidden.items():
        if labels.get(key) == value:
            if whose == "own":
                why = f"runs pod {pod}, which the VM's pod anti-affinity keeps it away from"
            else:
                why = f"runs pod {pod}, whose pod anti-affinity keeps the VM away"
            out.append(
                Problem(
                    "PodAntiAffinityConflict",
                    f"node '{node}' {why} (topology {key}={value}): pick a node in another "
                    "domain or change the anti-affinity",
                    "spec.affinity.podAntiAffinity",
                )
            )
    for key, values in c.required:
        if labels.get(key) not in values:
            out.append(
                Problem(
                    "PodAffinityUnsatisfied",
                    f"node '{node}' is in no {key} domain that runs a pod the VM's required pod "
                    "affinity asks for: pick a node next to those pods or change the affinity",
                    "spec.affinity.podAffinity",
                )
            )
    return out
