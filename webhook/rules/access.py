"""Typed reads of plain-dict Kubernetes objects that fail as `InputError` naming object and field.

Rules read objects only through these helpers, so a malformed object (a string where a map is
expected, a number where a name is expected) becomes one clear error instead of a TypeError deep in
a rule. A missing field or JSON null reads as the default.
"""

from __future__ import annotations

import functools
from typing import Any

from webhook.errors import InputError
from webhook.quantity import InvalidQuantity, cpu_millis, memory_bytes

_TYPE_NAMES = {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}


def describe(obj: Any, kind: str | None = None) -> str:
    """ "Node node-1" / "VirtualMachineInstance default/vm1", for messages (never raises)."""
    if not isinstance(obj, dict):
        return kind or "object"
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, ns = meta.get("name"), meta.get("namespace")
    kind = kind or (obj.get("kind") if isinstance(obj.get("kind"), str) else None) or "object"
    if not isinstance(name, str):
        return kind
    return f"{kind} {ns}/{name}" if isinstance(ns, str) and ns else f"{kind} {name}"


@functools.lru_cache(maxsize=1024)
def _keys(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def get(obj: Any, path: str, typ: type, ctx: str, default: Any = None, base: str = "") -> Any:
    """Value at dotted `path`; `base` is where `obj` sits in its object, for messages."""
    # Every rule reads through here, for every node of every request: messages are built only
    # on error, and an exact type match skips the general check.
    cur = obj
    keys = _keys(path)
    for i, key in enumerate(keys):
        if cur is None:
            return default
        if not isinstance(cur, dict):
            walked = [base, *keys[:i]] if base else list(keys[:i])
            where = ".".join(walked) or "the object"
            raise InputError(f"{ctx}: {where} must be a map, got {_kind_of(cur)}")
        cur = cur.get(key)
    if cur is None:
        return default
    if type(cur) is typ or typ is object:
        return cur
    return check(cur, typ, ctx, f"{base}.{path}" if base else path)


def check(value: Any, typ: type, ctx: str, path: str) -> Any:
    """`value` if it has type `typ` (bool is not an int), else InputError naming `path`."""
    ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
    if not ok:
        want = _TYPE_NAMES.get(typ, typ.__name__)
        raise InputError(f"{ctx}: {path} must be {want}, got {_kind_of(value)}")
    return value


def dicts(obj: Any, path: str, ctx: str, base: str = "") -> list[tuple[int, dict]]:
    """(index, item) of the list at `path`; every item must be a map."""
    items = get(obj, path, list, ctx, [], base)
    where = f"{base}.{path}" if base else path
    return [(i, check(item, dict, ctx, f"{where}[{i}]")) for i, item in enumerate(items)]


def str_map(obj: Any, path: str, ctx: str, base: str = "") -> dict[str, str]:
    """A map of strings such as labels, annotations or a nodeSelector."""
    value = get(obj, path, dict, ctx, {}, base)
    # Fast path (labels are read for every node on every request): the item-by-item loop below
    # only names the first bad entry.
    if is_str_map(value):
        return value
    where = f"{base}.{path}" if base else path
    for key, item in value.items():
        check(key, str, ctx, where + " key")
        check(item, str, ctx, f"{where}[{key!r}]")
    return value


def is_str_map(value: dict) -> bool:
    """Whether every key and value of the map is a string (type checks in C)."""
    return {*map(type, value), *map(type, value.values())} <= {str}


def name_of(obj: Any, ctx: str) -> str:
    return get(obj, "metadata.name", str, ctx, "")


def namespace_of(obj: Any, ctx: str) -> str:
    return get(obj, "metadata.namespace", str, ctx, "")


def cpu(value: Any, ctx: str, path: str) -> int:
    try:
        return cpu_millis(value)
    except InvalidQuantity as exc:
        raise InputError(f"{ctx}: {path}: {exc}") from None


def mem(value: Any, ctx: str, path: str) -> int:
    try:
        return memory_bytes(value)
    except InvalidQuantity as exc:
        raise InputError(f"{ctx}: {path}: {exc}") from None


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, (str, int, float)):
        text = repr(value)
        return f"{type(value).__name__} {text[:40]}"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
