"""IdentityMemo: a value made once for inputs that are shared objects, found again by identity.

Decisions share frozen objects (the cluster's KubeVirt configuration, the Timeouts of VMs of one
size), so what is derived from them alone can be made once per object instead of once per
decision. Hashing such an object by value costs about what deriving costs, so the key holds its
id; the objects are kept with the value, so an id is never reused while its entry lives.
Bounded: emptied when full (the objects come in a few kinds; a miss only costs the derivation).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    """Values by (the identities of `objs`, `values`); read-only values, shared by callers."""

    __slots__ = ("_max", "_table")

    def __init__(self, max_entries: int = 1024) -> None:
        self._table: dict[tuple, tuple[tuple[Any, ...], T]] = {}
        self._max = max_entries

    def get(self, objs: tuple[Any, ...], values: tuple[Hashable, ...] = ()) -> T | None:
        # No identity check needed: the kept objects are alive, so no other object has their id.
        found = self._table.get((*map(id, objs), *values))
        return found[1] if found is not None else None

    def put(self, objs: tuple[Any, ...], values: tuple[Hashable, ...], value: T) -> T:
        if len(self._table) >= self._max:
            self._table.clear()
        self._table[(*map(id, objs), *values)] = (objs, value)
        return value
