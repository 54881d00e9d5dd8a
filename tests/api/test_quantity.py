"""Quantities: exact values and upstream's canonical text (apimachinery's quantity_test.go)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kubik.api import quantity
from kubik.api.quantity import Quantity, QuantityError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("1Gi", 2**30),
        ("1e3", 1000),
        ("1E-3", Fraction(1, 1000)),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("1.", 1),
        ("+2k", 2000),
        ("-5Mi", -5 * 2**20),
        ("1n", Fraction(1, 10**9)),
        ("0", 0),
        ("2E", 2 * 10**18),
        (1, 1),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse_values_are_exact(text, value):
    assert Quantity.parse(text).value == value


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0", "0"),
        ("0Mi", "0"),
        ("1", "1"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1.5", "1500m"),
        ("12.34", "12340m"),
        ("100m", "100m"),
        ("1000", "1k"),
        ("110", "110"),
        ("5000000", "5M"),
        ("128974848", "128974848"),
        ("1Ki", "1Ki"),
        ("1024Ki", "1Mi"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("100Mi", "100Mi"),
        ("0.5Ki", "512"),
        ("1e3", "1e3"),
        ("1E6", "1e6"),
        ("1.5e3", "1500"),
        ("2e-2", "20e-3"),
        ("1.5n", "2n"),
        ("-1", "-1"),
        ("-1.5Gi", "-1536Mi"),
        (2, "2"),
        (0.1, "100m"),
    ],
)
def test_canonical_text_is_upstreams(text, canonical):
    assert quantity.canonical(text) == canonical


def test_a_binary_fraction_of_one_is_decimal():
    tiny = Quantity.parse("0.0001Ki")  # 0.1024
    assert tiny.format == quantity.DECIMAL_SI
    assert str(tiny) == "102400u"


@pytest.mark.parametrize("text", ["", "1x", "abc", "1Gb", "5 Gi", "1e3.5", True])
def test_text_that_is_no_quantity(text):
    with pytest.raises(QuantityError, match="quantities must match the regular expression"):
        Quantity.parse(text)


@pytest.mark.parametrize("text", ["1Mm", "1e", "1ki", "--1"])
def test_unknown_suffixes(text):
    with pytest.raises(QuantityError, match="unable to parse quantity's suffix"):
        Quantity.parse(text)


def test_values_round_away_from_zero():
    assert Quantity.parse("1500u").milli_value() == 2
    assert Quantity.parse("-1500u").milli_value() == -2
    assert Quantity.parse("100m").int_value() == 1
    assert Quantity.parse("2Gi").int_value() == 2**31
    assert str(Quantity.parse("100n").round_up(-3)) == "1m"
    assert str(Quantity.parse("1500m").round_up(0)) == "2"


def test_comparison_and_arithmetic_ignore_the_text():
    assert Quantity.parse("1") == Quantity.parse("1000m")
    assert Quantity.parse("1Gi") > Quantity.parse("1G")
    assert Quantity.parse("500m") <= Quantity.parse("0.5")
    total = Quantity.parse("250m") + Quantity.parse("750m")
    assert str(total) == "1"
    assert str(Quantity.parse("1Gi") - Quantity.parse("512Mi")) == "512Mi"
    assert len({Quantity.parse("1"), Quantity.parse("1000m")}) == 1


def test_binary_values_are_capped_at_the_largest_int64():
    assert Quantity.parse("100Ei").value == 2**63 - 1
