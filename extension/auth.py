"""Who is calling and what they may do: front proxy or TokenReview, then SubjectAccessReview.

The extension acts with its own service account, so it must check each caller itself, exactly as
the API server would. Callers come two ways, tried in k8s.io/apiserver's order:
- through kube-apiserver's aggregator (the UI, `kubectl get --raw`): a front-proxy client
  certificate with the user in headers (extension.frontproxy);
- directly with `Authorization: Bearer <token>` (API clients): the token is reviewed by the API
  server (TokenReview; answers cached for a few seconds under a hash of the token, never the
  token itself).
Every call is then authorized with a SubjectAccessReview in the VM's namespace. Permission is
checked before the VM is looked up, so a caller learns nothing about namespaces they may not read.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from extension.frontproxy import RequestHeaderConfig, check_common_name, identity
from extension.user import AuthError, User
from webhook.admission.connection import PeerCertificate
from webhook.cluster.kubeapi import Kube, KubeError

TOKEN_CACHE_TTL_S = 10.0
TOKEN_CACHE_MAX = 4096


@dataclass(frozen=True)
class Permission:
    """One resource verb checked with a SubjectAccessReview."""

    verb: str
    resource: str
    group: str = "kubevirt.io"

    def describe(self) -> str:
        return f"{self.verb} {self.resource}.{self.group}"


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its Authorization header, its verified client certificate (None
    when it sent none) and its headers as received (repeats kept)."""

    authorization: str | None = None
    peer: PeerCertificate | None = None
    headers: Sequence[tuple[str, str]] = ()


GET_VMS = Permission("get", "virtualmachines")
CREATE_VMIMS = Permission("create", "virtualmachineinstancemigrations")
DELETE_VMIMS = Permission("delete", "virtualmachineinstancemigrations")
LIST_VMIS = Permission("list", "virtualmachineinstances")  # a drain plan shows every VM of a node


MISSING_BEARER = "missing Authorization header: send 'Authorization: Bearer <token>'"
DEFAULT_USER_HEADERS = ("X-Remote-User",)  # to name a forged identity when no proxy is trusted


def _names_a_user(headers: Sequence[tuple[str, str]], config: RequestHeaderConfig | None) -> bool:
    names = {h.lower() for h in (config.username_headers if config else DEFAULT_USER_HEADERS)}
    return any(k.lower() in names and v.strip() for k, v in headers)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthError(401) naming the problem."""
    if not header:
        raise AuthError(401, MISSING_BEARER)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(401, f"unsupported authorization scheme {scheme!r}: use 'Bearer <token>'")
    token = token.strip()
    if not token:
        raise AuthError(401, "empty bearer token")
    return token


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_review(token: str) -> dict:
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


def user_from_review(review: dict) -> User | None:
    """The authenticated user of a TokenReview answer, None when the token is not valid."""
    status = review.get("status") if isinstance(review, dict) else None
    if not isinstance(status, dict) or status.get("authenticated") is not True:
        return None
    user = status.get("user") if isinstance(status.get("user"), dict) else {}
    name = user.get("username")
    if not isinstance(name, str) or not name:
        return None
    groups = tuple(g for g in user.get("groups") or [] if isinstance(g, str))
    extra = user.get("extra") if isinstance(user.get("extra"), dict) else {}
    return User(name, str(user.get("uid") or ""), groups, dict(extra))


def access_review(user: User, namespace: str, permission: Permission, name: str | None) -> dict:
    attributes = {
        "namespace": namespace,
        "verb": permission.verb,
        "group": permission.group,
        "resource": permission.resource,
    }
    if name:
        attributes["name"] = name
    spec: dict = {
        "user": user.username,
        "groups": list(user.groups),
        "resourceAttributes": attributes,
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = user.extra
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class TokenCache:
    """TokenReview answers for `ttl` seconds, keyed by the token's SHA-256 (bounded, thread-safe)."""

    def __init__(
        self, ttl: float = TOKEN_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, User | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, User | None]:
        """(hit, user); a hit with user None is a cached rejection."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if self.clock() >= entry[0]:
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: str, user: User | None) -> None:
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, user)
            self._entries.move_to_end(key)
            while len(self._entries) > TOKEN_CACHE_MAX:
                self._entries.popitem(last=False)


class Authenticator:
    """Checks callers against the API server the extension talks to.

    `front_proxy`: the current front-proxy settings (extension.trust.FrontProxyTrust.config), or
    None when no front proxy is trusted.
    """

    def __init__(
        self,
        kube: Kube,
        cache: TokenCache | None = None,
        front_proxy: Callable[[], RequestHeaderConfig | None] = lambda: None,
    ) -> None:
        self.kube = kube
        self.cache = cache or TokenCache()
        self.front_proxy = front_proxy
        self.reviews = 0  # TokenReviews sent (the cache keeps this low)

    def authenticate(self, credentials: Credentials) -> User:
        """The caller: the front proxy's user, else the bearer token's, else AuthError(401)
        naming why neither was accepted."""
        refused = None
        if credentials.peer is not None:
            user, refused = self._front_proxy_user(credentials)
            if user is not None:
                return user
        if credentials.authorization:
            return self._token_user(credentials.authorization)
        if refused is None and _names_a_user(credentials.headers, self.front_proxy()):
            refused = (
                "identity headers (X-Remote-User) are ignored without a front-proxy client "
                "certificate: call through kube-apiserver, or send 'Authorization: Bearer <token>'"
            )
        raise AuthError(401, refused or MISSING_BEARER)

    def _front_proxy_user(self, credentials: Credentials) -> tuple[User | None, str | None]:
        """(user, None), or (None, why the certificate's identity is not believed)."""
        peer = credentials.peer
        assert peer is not None
        config = self.front_proxy()
        if config is None or peer.client_ca != config.ca_pem:
            return None, (
                "the client certificate was verified with a front-proxy CA that is no longer "
                "trusted (kube-apiserver's requestheader CA changed): reconnect"
            )
        try:
            check_common_name(config, peer.common_name)
        except AuthError as exc:
            return None, exc.message
        user = identity(config, credentials.headers)
        if user is None:
            names = ", ".join(config.username_headers)
            return None, f"the front proxy's request names no user (no {names} header)"
        return user, None

    def _token_user(self, header: str) -> User:
        token = bearer_token(header)
        key = token_key(token)
        hit, user = self.cache.get(key)
        if not hit:
            try:
                review = self.kube.post(
                    "/apis/authentication.k8s.io/v1/tokenreviews", token_review(token)
                )
            except KubeError as exc:
                raise AuthError(503, f"cannot review the token: {exc.message}") from None
            self.reviews += 1
            user = user_from_review(review)
            self.cache.put(key, user)
        if user is None:
            raise AuthError(401, "invalid or expired bearer token")
        return user

    def authorize(
        self, user: User, namespace: str, permission: Permission, name: str | None = None
    ) -> None:
        """AuthError(403) unless `user` may do `permission` in `namespace`."""
        try:
            review = self.kube.post(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                access_review(user, namespace, permission, name),
            )
        except KubeError as exc:
            raise AuthError(503, f"cannot check permissions: {exc.message}") from None
        status = review.get("status") or {}
        if status.get("allowed") is True and status.get("denied") is not True:
            return
        what = f"{permission.describe()}" + (f" '{name}'" if name else "")
        where = f"in namespace '{namespace}'" if namespace else "in every namespace"
        raise AuthError(403, f"user '{user.username}' may not {what} {where}")
