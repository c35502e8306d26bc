"""Kubernetes resource quantities, parsed the way apimachinery's `resource.ParseQuantity` does.

Accepted: an optional sign, digits with an optional fraction (`1.5`, `.5`, `1.`), then one suffix:
decimal SI (`n u m "" k M G T P E`), binary SI (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent
(`e3`, `E-2`, `e+6`). Values are exact (`Fraction`); `cpu_millis` and `memory_bytes` round up like
`Quantity.MilliValue()` and `Quantity.Value()`.

Deviations, on purpose: a string without any digit (`"-"`, `"."`) is rejected although Kubernetes'
fast path reads it as 0, and exponents beyond +-1000 are rejected so a hostile value cannot make us
compute a number with billions of digits.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_MAX_EXPONENT = 1000

QuantityLike = str | int | float


class InvalidQuantity(ValueError):
    """A value that is not a Kubernetes quantity; the message quotes it."""


def parse_quantity(value: QuantityLike) -> Fraction:
    """Exact value of a quantity such as "1.5Gi", "500m", "1e3" or a plain number."""
    if isinstance(value, bool):
        raise InvalidQuantity(f"invalid quantity {value!r}: expected a string or number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidQuantity(f"invalid quantity {value!r}: not a finite number")
        return Fraction(value)
    if not isinstance(value, str):
        raise InvalidQuantity(
            f"invalid quantity {value!r}: expected a string or number, got {type(value).__name__}"
        )
    match = _NUMBER.match(value)
    assert match is not None  # every part of the pattern is optional
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    if not whole and not frac:
        raise InvalidQuantity(f"invalid quantity {value!r}: no digits")
    number = Fraction(int(whole or "0")) + (
        Fraction(int(frac), 10 ** len(frac)) if frac else Fraction(0)
    )
    suffix = value[match.end() :]
    if suffix in _SUFFIXES:
        multiplier = _SUFFIXES[suffix]
    else:
        exp = _EXPONENT.fullmatch(suffix)
        if exp is None:
            raise InvalidQuantity(
                f"invalid quantity {value!r}: unknown suffix {suffix!r} "
                "(use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"
            )
        power = int(exp.group(1))
        if abs(power) > _MAX_EXPONENT:
            raise InvalidQuantity(f"invalid quantity {value!r}: exponent out of range")
        multiplier = Fraction(10) ** power
    result = number * multiplier
    return -result if sign == "-" else result


def cpu_millis(value: QuantityLike) -> int:
    """CPU in millicores, rounded up ("100m" -> 100, "1.5" -> 1500, "1u" -> 1)."""
    if type(value) is str:
        return _cpu_millis_str(value)
    return math.ceil(parse_quantity(value) * 1000)


def memory_bytes(value: QuantityLike) -> int:
    """Memory in bytes, rounded up ("1Gi" -> 1073741824, "1.5k" -> 1500)."""
    if type(value) is str:
        return _memory_bytes_str(value)
    return math.ceil(parse_quantity(value))


# Rules read the same few strings ("16", "64Gi") on every node of every request; exact Fraction
# parsing costs ~20 us each, so parsed strings are remembered (errors are raised, never cached).
@functools.lru_cache(maxsize=4096)
def _cpu_millis_str(value: str) -> int:
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=4096)
def _memory_bytes_str(value: str) -> int:
    return math.ceil(parse_quantity(value))


def format_bytes(n: int) -> str:
    """Human units for messages: 1073741824 -> "1Gi", 1536 -> "1.5Ki"."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, size in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if n >= size:
            return f"{sign}{_trim(n / size)}{unit}"
    if n >= 1024:
        return f"{sign}{_trim(n / 1024)}Ki"
    return f"{sign}{n}"


def format_millis(m: int) -> str:
    """Human CPU for messages: 1500 -> "1.5 CPU", 250 -> "250m"."""
    if abs(m) >= 1000:
        return f"{_trim(m / 1000)} CPU"
    return f"{m}m"


def _trim(x: float) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return text
