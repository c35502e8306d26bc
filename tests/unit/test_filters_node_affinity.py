"""Node selector, required node affinity and tolerations against tables of scheduler behaviour."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.rules.filters.node_affinity import (
    expression_matches,
    node_selector_matches,
    selector_mismatches,
)
from webhook.rules.filters.taints import tolerates, untolerated_taints, with_default_tolerations

LABELS = {"zone": "a", "gpu": "t4", "cores": "16", "weird": "1.5"}


def req(key, op, *values):
    out = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


# (requirement, matches LABELS) as kube-scheduler decides
EXPRESSIONS = [
    (req("zone", "In", "a", "b"), True),
    (req("zone", "In", "b"), False),
    (req("missing", "In", "a"), False),
    (req("zone", "In"), False),  # In needs values
    (req("zone", "NotIn", "b"), True),
    (req("zone", "NotIn", "a"), False),
    (req("missing", "NotIn", "a"), True),  # absent label satisfies NotIn
    (req("zone", "Exists"), True),
    (req("missing", "Exists"), False),
    (req("zone", "Exists", "a"), False),  # Exists takes no values
    (req("zone", "DoesNotExist"), False),
    (req("missing", "DoesNotExist"), True),
    (req("cores", "Gt", "8"), True),
    (req("cores", "Gt", "16"), False),
    (req("cores", "Lt", "32"), True),
    (req("cores", "Lt", "16"), False),
    (req("cores", "Gt", "-1"), True),
    (req("weird", "Gt", "1"), False),  # non-integer label never matches
    (req("zone", "Lt", "5"), False),
    (req("missing", "Gt", "1"), False),
    (req("cores", "Gt", "x"), False),  # invalid requirement
    (req("cores", "Gt", "1", "2"), False),
    (req("cores", "Gt", "99999999999999999999"), False),  # overflows int64
    (req("zone", "Bogus", "a"), False),
]


@pytest.mark.parametrize(("expr", "expected"), EXPRESSIONS)
def test_expression_table(expr, expected):
    assert expression_matches(expr, LABELS) is expected


def term(*exprs, fields=()):
    out = {}
    if exprs:
        out["matchExpressions"] = list(exprs)
    if fields:
        out["matchFields"] = list(fields)
    return out


# (terms, node name, matches) for a node labelled LABELS
TERMS = [
    ([], "n1", False),  # empty term list matches nothing
    ([{}], "n1", False),  # a term with no requirements matches nothing
    ([term(req("zone", "In", "a"))], "n1", True),
    ([term(req("zone", "In", "a"), req("gpu", "In", "a100"))], "n1", False),  # ANDed
    ([term(req("zone", "In", "b")), term(req("gpu", "In", "t4"))], "n1", True),  # ORed
    ([{}, term(req("gpu", "Exists"))], "n1", True),
    ([term(fields=[req("metadata.name", "In", "n1")])], "n1", True),
    ([term(fields=[req("metadata.name", "In", "n1")])], "n2", False),
    ([term(fields=[req("metadata.name", "NotIn", "n1")])], "n2", True),
    ([term(req("zone", "In", "a"), fields=[req("metadata.name", "In", "n2")])], "n1", False),
    ([term(req("zone", "In", "a"), fields=[req("metadata.name", "In", "n1")])], "n1", True),
    ([term(fields=[req("metadata.uid", "In", "n1")])], "n1", False),  # only metadata.name
    ([term(fields=[req("metadata.name", "Exists")])], "n1", False),
    ([term(fields=[req("metadata.name", "In", "n1", "n2")])], "n1", False),  # exactly one value
]


@pytest.mark.parametrize(("terms", "name", "expected"), TERMS)
def test_node_selector_terms_table(terms, name, expected):
    assert node_selector_matches(terms, LABELS, name) is expected


def test_node_selector_mismatches():
    assert selector_mismatches({"zone": "a"}, LABELS) == []
    assert selector_mismatches({"zone": "b", "gpu": "t4", "x": "y"}, LABELS) == ["zone", "x"]


def tol(key=None, op=None, value=None, effect=None):
    return {
        k: v
        for k, v in {"key": key, "operator": op, "value": value, "effect": effect}.items()
        if v is not None
    }


TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
# (toleration, tolerates TAINT) as Toleration.ToleratesTaint decides
TOLERATIONS = [
    (tol("dedicated", "Equal", "gpu", "NoSchedule"), True),
    (tol("dedicated", None, "gpu", "NoSchedule"), True),  # operator defaults to Equal
    (tol("dedicated", "Equal", "cpu", "NoSchedule"), False),
    (tol("dedicated", "Equal", None, "NoSchedule"), False),
    (tol("dedicated", "Exists", None, "NoSchedule"), True),
    (tol("dedicated", "Exists"), True),  # empty effect matches all effects
    (tol("dedicated", "Exists", None, "NoExecute"), False),
    (tol(None, "Exists"), True),  # empty key with Exists tolerates everything
    (tol(None, "Exists", None, "NoExecute"), False),
    (tol("other", "Exists"), False),
    (tol("dedicated", "Bogus", "gpu"), False),
]


@pytest.mark.parametrize(("toleration", "expected"), TOLERATIONS)
def test_toleration_table(toleration, expected):
    assert tolerates(toleration, TAINT) is expected


def test_prefer_no_schedule_never_excludes():
    taints = [
        {"key": "a", "effect": "PreferNoSchedule"},
        {"key": "b", "effect": "NoSchedule"},
        {"key": "c", "effect": "NoExecute"},
    ]
    assert [t["key"] for t in untolerated_taints(taints, [])] == ["b", "c"]
    assert untolerated_taints(taints, [tol(None, "Exists")]) == []
    assert [t["key"] for t in untolerated_taints(taints, [tol("b", "Exists")])] == ["c"]


# ---- properties: the matcher agrees with the tables above, recombined ------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(EXPRESSIONS), min_size=1, max_size=4))
def test_term_is_and_of_its_expressions(rows):
    exprs = [r[0] for r in rows]
    assert node_selector_matches([term(*exprs)], LABELS, "n1") is all(r[1] for r in rows)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(EXPRESSIONS), min_size=1, max_size=3), max_size=4))
def test_terms_are_or_of_terms(groups):
    terms = [term(*[r[0] for r in g]) for g in groups]
    expected = any(all(r[1] for r in g) for g in groups)
    assert node_selector_matches(terms, LABELS, "n1") is expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOLERATIONS), max_size=4))
def test_taint_excluded_unless_some_toleration_matches(rows):
    tolerations = [r[0] for r in rows]
    excluded = untolerated_taints([TAINT], tolerations) == [TAINT]
    assert excluded is not any(r[1] for r in rows)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2", "x"])),
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.sampled_from(["1", "2", "x"]), min_size=1, max_size=3),
)
def test_in_and_notin_are_complements_when_label_present(labels, key, values):
    if key in labels:
        assert expression_matches(req(key, "In", *values), labels) is not expression_matches(
            req(key, "NotIn", *values), labels
        )
    else:
        assert expression_matches(req(key, "In", *values), labels) is False
        assert expression_matches(req(key, "NotIn", *values), labels) is True


def test_default_tolerations_added_as_the_api_server_adds_them():
    added = with_default_tolerations([])
    assert [(t["key"], t["effect"]) for t in added] == [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    ]
    everything = [{"operator": "Exists"}]
    assert with_default_tolerations(everything) == everything
