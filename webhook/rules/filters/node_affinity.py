"""NodeAffinity: the pod's nodeSelector and required node affinity, as kube-scheduler evaluates them.

- nodeSelector: every entry must equal the node's label.
- requiredDuringSchedulingIgnoredDuringExecution: the terms are ORed; inside a term all
  matchExpressions and all matchFields are ANDed. A term with neither matches nothing, and so does
  an empty term list. An invalid term (unknown operator, In without values, Gt with a non-integer)
  matches nothing, as the scheduler treats a term it cannot parse.
- Operators: In, NotIn (also true when the label is absent), Exists, DoesNotExist, Gt, Lt (the
  node's label must parse as an integer, else no match). matchFields supports only
  `metadata.name` with In / NotIn.
"""

from __future__ import annotations

import re

_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def selector_mismatches(selector: dict[str, str], labels: dict[str, str]) -> list[str]:
    """The keys of `selector` whose value the node's labels lack (empty: it matches)."""
    if selector.items() <= labels.items():  # the usual case, checked in C: run for every node
        return []
    return [k for k, v in selector.items() if labels.get(k) != v]


def expression_matches(expr: dict, labels: dict[str, str]) -> bool:
    """One NodeSelectorRequirement against the node's labels."""
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if not isinstance(key, str) or not isinstance(values, list):
        return False
    if not all(isinstance(v, str) for v in values):
        return False
    present = key in labels
    if op == "In":
        return bool(values) and present and labels[key] in values
    if op == "NotIn":
        return bool(values) and (not present or labels[key] not in values)
    if op == "Exists":
        return not values and present
    if op == "DoesNotExist":
        return not values and not present
    if op in ("Gt", "Lt"):
        if len(values) != 1 or not _INT.fullmatch(values[0]) or not present:
            return False
        if not _INT.fullmatch(labels[key]):
            return False
        have, want = int(labels[key]), int(values[0])
        if not (_INT64_MIN <= have <= _INT64_MAX and _INT64_MIN <= want <= _INT64_MAX):
            return False  # strconv.ParseInt(..., 64) fails, so the scheduler does not match
        return have > want if op == "Gt" else have < want
    return False


def field_matches(expr: dict, node_name: str) -> bool:
    """One matchFields requirement; only metadata.name with In / NotIn and one value is valid."""
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if key != "metadata.name" or not isinstance(values, list) or len(values) != 1:
        return False
    if op == "In":
        return values[0] == node_name
    if op == "NotIn":
        return values[0] != node_name
    return False


def term_matches(term: dict, labels: dict[str, str], node_name: str) -> bool:
    """A NodeSelectorTerm: all expressions and all fields hold; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not isinstance(exprs, list) or not isinstance(fields, list):
        return False
    if not exprs and not fields:
        return False
    if not all(isinstance(e, dict) for e in exprs + fields):
        return False
    return all(expression_matches(e, labels) for e in exprs) and all(
        field_matches(f, node_name) for f in fields
    )


def node_selector_matches(terms: list[dict], labels: dict[str, str], node_name: str) -> bool:
    """A NodeSelector (terms ORed); an empty list of terms matches nothing."""
    return any(term_matches(t, labels, node_name) for t in terms if isinstance(t, dict))
