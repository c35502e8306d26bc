"""Front-proxy authentication as k8s.io/apiserver does it: the ConfigMap, the headers, the chain."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiClient, Configuration

from extension.auth import Authenticator, Credentials
from extension.frontproxy import (
    BadRequestHeaderConfig,
    RequestHeaderConfig,
    check_common_name,
    identity,
    parse_configmap,
)
from extension.user import AuthError
from webhook.admission.connection import PeerCertificate
from webhook.cluster.kubeapi import Kube

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
DATA = {
    "requestheader-client-ca-file": CA,
    "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
    "requestheader-username-headers": json.dumps(["X-Remote-User"]),
    "requestheader-uid-headers": json.dumps(["X-Remote-Uid"]),
    "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
    "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"]),
    "client-ca-file": CA,
}
CONFIG = parse_configmap(DATA)


def test_configmap_as_kube_apiserver_publishes_it():
    expected = RequestHeaderConfig(
        CA,
        ("front-proxy-client",),
        ("X-Remote-User",),
        ("X-Remote-Uid",),
        ("X-Remote-Group",),
        ("X-Remote-Extra-",),
    )
    assert parse_configmap(DATA) == expected


def test_no_requestheader_ca_means_no_front_proxy():
    assert parse_configmap({"client-ca-file": CA}) is None
    assert parse_configmap(None) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"requestheader-client-ca-file": "not a cert"}, "holds no PEM certificate"),
        ({"requestheader-allowed-names": "front-proxy-client"}, "is not a JSON list"),
        ({"requestheader-group-headers": '{"a": 1}'}, "must be a JSON list of strings"),
        ({"requestheader-username-headers": "[]"}, "names no header"),
    ],
)
def test_a_bad_configmap_names_the_key(change, message):
    with pytest.raises(BadRequestHeaderConfig, match=message) as info:
        parse_configmap(DATA | change)
    assert next(iter(change)) in str(info.value)


def test_groups_are_every_value_of_every_header_never_split_on_commas():
    headers = [
        ("X-REMOTE-USER", "u-abc"),
        ("X-REMOTE-UID", "uid-123"),
        ("X-REMOTE-GROUP", "CN=Domain Users,DC=ad"),
        ("X-REMOTE-GROUP", "system:authenticated"),
        ("X-REMOTE-EXTRA-PRINCIPALID", "local://u-abc"),
        ("X-REMOTE-EXTRA-AUTHENTICATION.KUBERNETES.IO%2FPOD-NAME", "p1"),
        ("X-Remote-Extra-Scopes", "a"),
        ("x-remote-extra-scopes", "b"),
    ]
    user = identity(CONFIG, headers)
    assert user is not None
    assert (user.username, user.uid) == ("u-abc", "uid-123")
    assert user.groups == ("CN=Domain Users,DC=ad", "system:authenticated")
    assert user.extra == {
        "principalid": ["local://u-abc"],
        "authentication.kubernetes.io/pod-name": ["p1"],
        "scopes": ["a", "b"],
    }


def test_the_first_non_empty_username_header_wins_and_none_means_no_user():
    config = RequestHeaderConfig(CA, username_headers=("X-Remote-User", "X-Other-User"))
    assert identity(config, [("X-Other-User", "b"), ("X-Remote-User", " ")]).username == "b"
    assert identity(config, [("X-Remote-Group", "g")]) is None


def test_an_undecodable_extra_key_is_kept_as_sent():
    user = identity(CONFIG, [("X-Remote-User", "u"), ("X-Remote-Extra-K%FF", "v")])
    assert user is not None and user.extra == {"k%ff": ["v"]}


def test_common_name_must_be_allowed_when_names_are_listed():
    check_common_name(CONFIG, "front-proxy-client")
    with pytest.raises(AuthError, match=r"CN=intruder is not in the front proxy's allowed names"):
        check_common_name(CONFIG, "intruder")
    check_common_name(RequestHeaderConfig(CA, username_headers=("X-Remote-User",)), "anyone")


def authenticator(config: RequestHeaderConfig | None) -> Authenticator:
    configuration = Configuration()
    configuration.host = "https://127.0.0.1:1"  # a Bearer token would be reviewed: unreachable
    return Authenticator(Kube(ApiClient(configuration)), front_proxy=lambda: config)


PROXY = PeerCertificate("front-proxy-client", CA)
ALICE = [("X-Remote-User", "alice"), ("X-Remote-Group", "system:authenticated")]


def test_a_verified_front_proxy_names_the_user():
    user = authenticator(CONFIG).authenticate(Credentials(peer=PROXY, headers=ALICE))
    assert (user.username, user.groups) == ("alice", ("system:authenticated",))


@pytest.mark.parametrize(
    ("config", "credentials", "message"),
    [
        (CONFIG, Credentials(headers=ALICE), "ignored without a front-proxy client certificate"),
        (None, Credentials(headers=ALICE), "ignored without a front-proxy client certificate"),
        (
            CONFIG,
            Credentials(peer=PeerCertificate("intruder", CA), headers=ALICE),
            "CN=intruder is not in the front proxy's allowed names",
        ),
        (
            CONFIG,
            Credentials(peer=PeerCertificate("front-proxy-client", "old CA"), headers=ALICE),
            "no longer trusted",
        ),
        (None, Credentials(peer=PROXY, headers=ALICE), "no longer trusted"),
        (CONFIG, Credentials(peer=PROXY, headers=[]), "names no user"),
        (CONFIG, Credentials(), "missing Authorization header"),
    ],
)
def test_identity_headers_without_a_trusted_certificate_are_refused_naming_why(
    config, credentials, message
):
    with pytest.raises(AuthError, match=message) as info:
        authenticator(config).authenticate(credentials)
    assert info.value.status == 401
