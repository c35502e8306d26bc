"""Front-proxy (requestheader) authentication, as k8s.io/apiserver does it for aggregated APIs.

kube-apiserver authenticates and authorizes the user, then proxies the request to this backend
over TLS with a client certificate (`--proxy-client-cert-file`) and the user's identity in
headers. The identity is believed only when that certificate chains to the requestheader CA
published in ConfigMap `kube-system/extension-apiserver-authentication` (the TLS layer checks the
chain: that CA is the only client CA the serving context trusts) and, when the ConfigMap lists
allowed names, its Common Name is one of them (checked here, per request, as k8s.io/apiserver's
`x509.Verifier` does).

Pure: the ConfigMap's data and a request's raw headers in, a `RequestHeaderConfig` or a `User`
out. Header handling follows `headerrequest.requestHeaderAuthRequestHandler`: the user is the
first non-empty username header, every value of every group header is one group (never split on
commas: group names such as LDAP DNs contain them), and extra keys are lowercased then
percent-decoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from extension.user import AuthError, User

CA_KEY = "requestheader-client-ca-file"
_LIST_KEYS = {
    "allowed_names": "requestheader-allowed-names",
    "username_headers": "requestheader-username-headers",
    "uid_headers": "requestheader-uid-headers",
    "group_headers": "requestheader-group-headers",
    "extra_prefixes": "requestheader-extra-headers-prefix",
}


class BadRequestHeaderConfig(ValueError):
    """The ConfigMap cannot configure front-proxy authentication; the message names the key."""


@dataclass(frozen=True)
class RequestHeaderConfig:
    """kube-apiserver's `--requestheader-*` settings, as it publishes them."""

    ca_pem: str
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ()
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()


def parse_configmap(data: Mapping[str, str] | None) -> RequestHeaderConfig | None:
    """The config in `data` (a ConfigMap's data); None when it sets no requestheader CA, which
    is how a kube-apiserver without front-proxy flags publishes it."""
    data = data or {}
    ca = data.get(CA_KEY) or ""
    if not ca.strip():
        return None
    if "-----BEGIN CERTIFICATE-----" not in ca:
        raise BadRequestHeaderConfig(f"{CA_KEY} holds no PEM certificate")
    lists: dict[str, tuple[str, ...]] = {}
    for field, key in _LIST_KEYS.items():
        raw = data.get(key)
        if raw is None or raw == "":
            lists[field] = ()
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            raise BadRequestHeaderConfig(f"{key} is not a JSON list: {raw[:60]!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequestHeaderConfig(f"{key} must be a JSON list of strings")
        lists[field] = tuple(v for v in value if v)
    if not lists["username_headers"]:
        raise BadRequestHeaderConfig(f"{_LIST_KEYS['username_headers']} names no header")
    return RequestHeaderConfig(ca, **lists)


def check_common_name(config: RequestHeaderConfig, common_name: str | None) -> None:
    """AuthError(401) unless the proxy's certificate CN is allowed (any, when none are listed)."""
    if config.allowed_names and common_name not in config.allowed_names:
        allowed = ", ".join(config.allowed_names)
        raise AuthError(
            401,
            f"the client certificate's subject CN={common_name or ''} is not in the front "
            f"proxy's allowed names ({allowed}): its identity headers are not trusted",
        )


def _values(headers: Sequence[tuple[str, str]], names: Sequence[str]) -> list[str]:
    wanted = {n.lower() for n in names}
    return [v.strip() for k, v in headers if k.lower() in wanted and v.strip()]


def _extra_key(escaped: str) -> str:
    """client-go percent-encodes extra keys into header names; Go keeps a key it cannot decode."""
    try:
        return unquote(escaped.lower(), errors="strict")
    except UnicodeDecodeError:
        return escaped.lower()


def identity(config: RequestHeaderConfig, headers: Sequence[tuple[str, str]]) -> User | None:
    """The user the front proxy names in `headers` (raw, repeats kept); None: it names none."""
    users = [v for name in config.username_headers for v in _values(headers, [name])]
    if not users:
        return None
    uids = [v for name in config.uid_headers for v in _values(headers, [name])]
    groups = tuple(v for name in config.group_headers for v in _values(headers, [name]))
    extra: dict[str, list[str]] = {}
    for prefix in config.extra_prefixes:
        low = prefix.lower()
        for name, value in headers:
            if name.lower().startswith(low) and len(name) > len(prefix):
                extra.setdefault(_extra_key(name[len(prefix) :]), []).append(value.strip())
    return User(users[0], uids[0] if uids else "", groups, extra)
