"""Pure parts of authentication: the bearer header, review bodies, and the token cache."""

from __future__ import annotations

import pytest

from extension.auth import (
    CREATE_VMIMS,
    GET_VMS,
    AuthError,
    TokenCache,
    User,
    access_review,
    bearer_token,
    token_key,
    user_from_review,
)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic abc", "unsupported authorization scheme 'Basic'"),
        ("Bearer   ", "empty bearer token"),
    ],
)
def test_bad_headers_are_401_naming_the_problem(header, message):
    with pytest.raises(AuthError, match=message) as info:
        bearer_token(header)
    assert info.value.status == 401


def test_bearer_token_is_read_case_insensitively():
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer abc ") == "abc"


def test_review_user_is_read_only_when_authenticated():
    ok = {"status": {"authenticated": True, "user": {"username": "alice", "groups": ["g"]}}}
    assert user_from_review(ok) == User("alice", "", ("g",))
    assert user_from_review({"status": {"authenticated": False}}) is None
    assert user_from_review({"status": {"authenticated": True, "user": {}}}) is None
    assert user_from_review({}) is None


def test_access_review_carries_user_groups_and_resource():
    user = User("alice", "uid-1", ("mg:users",), {"scopes": ["x"]})
    review = access_review(user, "ns1", GET_VMS, "vm1")
    spec = review["spec"]
    assert spec["user"] == "alice"
    assert spec["uid"] == "uid-1"
    assert spec["groups"] == ["mg:users"]
    assert spec["extra"] == {"scopes": ["x"]}
    assert spec["resourceAttributes"] == {
        "namespace": "ns1",
        "verb": "get",
        "group": "kubevirt.io",
        "resource": "virtualmachines",
        "name": "vm1",
    }
    no_name = access_review(user, "ns1", CREATE_VMIMS, None)["spec"]["resourceAttributes"]
    assert "name" not in no_name
    assert no_name["resource"] == "virtualmachineinstancemigrations"


def test_token_cache_expires_after_ttl_and_never_stores_the_token():
    now = [100.0]
    cache = TokenCache(ttl=10, clock=lambda: now[0])
    key = token_key("secret-token")
    assert "secret-token" not in key
    cache.put(key, User("alice"))
    assert cache.get(key) == (True, User("alice"))
    now[0] += 9.9
    assert cache.get(key)[0] is True
    now[0] += 0.2
    assert cache.get(key) == (False, None)


def test_token_cache_remembers_rejections():
    cache = TokenCache(ttl=10, clock=lambda: 0.0)
    cache.put("k", None)
    assert cache.get("k") == (True, None)
