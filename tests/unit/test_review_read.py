"""review.read_review: the one-step read of a well-formed AdmissionReview agrees with
parse_review(json.loads(...)), and leaves everything else to it (so errors name the field)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests import webhook_objects as o
from webhook.admission.review import MalformedReview, parse_review, read_review


def vmim_review(**request: object) -> dict:
    body = o.review(o.vmim("ns", "m1", "vm1"))
    body["request"].update(request)
    return body


def test_a_well_formed_review_reads_as_parse_review_reads_it():
    for body in (
        vmim_review(),
        vmim_review(dryRun=True, userInfo={"username": "system:serviceaccount:kubevirt:x"}),
        vmim_review(operation="DELETE", object=None, oldObject={"kind": "x"}),
        vmim_review(resource=None, userInfo=None, dryRun=None, namespace=None, name=None),
    ):
        assert read_review(json.dumps(body).encode()) == parse_review(body)


def test_anything_parse_review_refuses_or_reads_differently_is_left_to_it():
    for raw in (
        b"not json",
        b"[]",
        json.dumps(vmim_review(uid="")).encode(),
        json.dumps(vmim_review(uid=5)).encode(),
        json.dumps(vmim_review(object=None)).encode(),  # CREATE without an object
        json.dumps(vmim_review(kind={"group": None, "kind": "X"})).encode(),  # null reads as ""
        json.dumps({**vmim_review(), "apiVersion": "v1"}).encode(),
        json.dumps({**vmim_review(), "kind": "Review"}).encode(),
        json.dumps(vmim_review(object={"deep": [[[[[]]]]]}))
        .encode()
        .replace(
            b"[[[[[]]]]]", b"[" * 5000 + b"]" * 5000
        ),  # msgspec's recursion limit: json.loads then says it is nested too deeply
    ):
        assert read_review(raw) is None, raw


_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.just({}), st.just([])
)
_fields = ("uid", "operation", "kind", "resource", "namespace", "name", "object", "dryRun")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_fields), _values), st.sampled_from(_fields))
def test_read_review_never_disagrees_with_parse_review(changes, dropped):
    body = vmim_review(**changes)
    body["request"].pop(dropped, None)
    read = read_review(json.dumps(body).encode())
    try:
        parsed = parse_review(body)
    except MalformedReview:
        assert read is None
        return
    assert read is None or read == parsed
