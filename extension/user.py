"""The caller as the API server knows them, and the error that refuses one."""

from __future__ import annotations

from dataclasses import dataclass, field


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
