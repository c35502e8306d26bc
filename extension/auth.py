"""Who is calling and what they may do: TokenReview and SubjectAccessReview against the API server.

The extension acts with its own service account, so it must check each caller itself, exactly as
the API server would: the bearer token is reviewed by the API server (TokenReview; answers cached
for a few seconds under a hash of the token, never the token itself), and every call is
authorized with a SubjectAccessReview in the VM's namespace. Permission is checked before the VM
is looked up, so a caller learns nothing about namespaces they may not read.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from webhook.cluster.kubeapi import Kube, KubeError

TOKEN_CACHE_TTL_S = 10.0
TOKEN_CACHE_MAX = 4096


class AuthError(Exception):
    """Authentication or authorization failed; `status` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class User:
    """The caller as the API server knows them (TokenReview `status.user`)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Permission:
    """One resource verb checked with a SubjectAccessReview."""

    verb: str
    resource: str
    group: str = "kubevirt.io"

    def describe(self) -> str:
        return f"{self.verb} {self.resource}.{self.group}"


GET_VMS = Permission("get", "virtualmachines")
CREATE_VMIMS = Permission("create", "virtualmachineinstancemigrations")
DELETE_VMIMS = Permission("delete", "virtualmachineinstancemigrations")


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthError(401) naming the problem."""
    if not header:
        raise AuthError(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
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
    """Checks callers against the API server the extension talks to."""

    def __init__(self, kube: Kube, cache: TokenCache | None = None) -> None:
        self.kube = kube
        self.cache = cache or TokenCache()
        self.reviews = 0  # TokenReviews sent (the cache keeps this low)

    def authenticate(self, header: str | None) -> User:
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
        raise AuthError(403, f"user '{user.username}' may not {what} in namespace '{namespace}'")
