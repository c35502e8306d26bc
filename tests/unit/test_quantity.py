from fractions import Fraction

import pytest

from webhook.quantity import (
    InvalidQuantity,
    cpu_millis,
    format_bytes,
    format_millis,
    memory_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1", 1),
        ("+1", 1),
        ("-1", -1),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("1.", 1),
        ("007", 7),
        ("100m", Fraction(1, 10)),
        ("1n", Fraction(1, 10**9)),
        ("1u", Fraction(1, 10**6)),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("1Ki", 1024),
        ("1Mi", 2**20),
        ("1.5Gi", 3 * 2**29),
        ("8Gi", 8 * 2**30),
        ("1Ti", 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1e+3", 1000),
        ("1e-3", Fraction(1, 1000)),
        ("2.5e2", 250),
        ("-1.5Gi", -3 * 2**29),
        ("8832252Ki", 8832252 * 1024),
    ],
)
def test_parses_like_kubernetes(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "Gi",
        "1gi",
        "1KI",
        "1K",
        "1Gb",
        "1.2.3",
        "1e",
        "1e3.5",
        "abc",
        "-",
        ".",
        "1Ki5",
        "1e99999",
        "0x10",
        "1,5",
    ],
)
def test_rejects_malformed(text):
    with pytest.raises(InvalidQuantity) as exc:
        parse_quantity(text)
    assert repr(text) in str(exc.value)


@pytest.mark.parametrize("value", [None, True, [], {}, float("nan"), float("inf")])
def test_rejects_non_quantities(value):
    with pytest.raises(InvalidQuantity):
        parse_quantity(value)


def test_numbers_are_accepted():
    assert parse_quantity(3) == 3
    assert parse_quantity(0.5) == Fraction(1, 2)


def test_cpu_millis_rounds_up():
    assert cpu_millis("100m") == 100
    assert cpu_millis("1.5") == 1500
    assert cpu_millis("1u") == 1
    assert cpu_millis(2) == 2000


def test_memory_bytes_rounds_up():
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("1.5k") == 1500
    assert memory_bytes("1500m") == 2


def test_human_formats():
    assert format_bytes(2**30) == "1Gi"
    assert format_bytes(1536) == "1.5Ki"
    assert format_bytes(100) == "100"
    assert format_millis(1500) == "1.5 CPU"
    assert format_millis(250) == "250m"
