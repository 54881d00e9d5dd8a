"""Resource quantities ("100m", "1Gi", "1e3"): exact values and upstream's canonical text.

A quantity is a decimal number with an optional suffix: a binary power
(Ki Mi Gi Ti Pi Ei), a decimal SI prefix (n u m "" k M G T P E) or a decimal
exponent (e3, E-2). Values are exact (a Fraction), rounded away from zero to
nano precision when parsed, as upstream's `resource.ParseQuantity` does. The
suffix family is kept as the quantity's format, because upstream writes a
quantity back in its canonical form *in that family*: "0.5" becomes "500m",
"1024Mi" becomes "1Gi", "1000" becomes "1k" (`Quantity.String`). The
scheduler and kubelet compare and add quantities with this module too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_DECIMAL_SUFFIXES = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18
}  # fmt: skip
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {0: ""} | {power // 10: suffix for suffix, power in _BINARY_SUFFIXES.items()}
_SUFFIX_CHARS = set("eEinumkKMGTP")
_DIGITS = set("0123456789")
_NANO = Fraction(1, 10**9)
_MAX_BINARY = Fraction(2**63 - 1)

FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"


class QuantityError(ValueError):
    """Text that is not a quantity; the message is upstream's."""


@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    value: Fraction
    format: str = DECIMAL_SI

    # ------------------------------------------------------------ reading

    @classmethod
    def parse(cls, text: str | int | float) -> Quantity:
        """A quantity from its text (or from a JSON number, as YAML `cpu: 1` arrives)."""
        if isinstance(text, bool):
            raise QuantityError(FORMAT_ERROR)
        if isinstance(text, int | float):
            text = repr(text) if isinstance(text, float) else str(text)
        text = text.strip()
        if not text:
            raise QuantityError(FORMAT_ERROR)
        number, suffix = _split(text)
        base, exponent, fmt = _interpret(suffix)
        value = Fraction(number) * Fraction(base) ** exponent
        value = _round_away(value, _NANO)
        if fmt == BINARY_SI:
            value = max(-_MAX_BINARY, min(_MAX_BINARY, value))
            if 0 < abs(value) < 1:
                fmt = DECIMAL_SI  # upstream: a binary fraction of one reads better as decimal
        return cls(value, fmt)

    # ------------------------------------------------------------ values

    def milli_value(self) -> int:
        """The value in thousandths, rounded away from zero (upstream's MilliValue)."""
        return _ceil_away(self.value * 1000)

    def int_value(self) -> int:
        """The value rounded away from zero to a whole number (upstream's Value)."""
        return _ceil_away(self.value)

    def round_up(self, scale: int) -> Quantity:
        """The quantity rounded away from zero to 10**scale (e.g. -3: thousandths)."""
        return Quantity(_round_away(self.value, Fraction(10) ** scale), self.format)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    # ------------------------------------------------------------ writing

    def __str__(self) -> str:
        """Upstream's canonical text: the shortest exact form in the quantity's family."""
        if self.value == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI and (abs(self.value) < 1024 or self.value.denominator != 1):
            fmt = DECIMAL_SI  # small or fractional binary values are written in decimal
        if fmt == BINARY_SI:
            return _binary_text(int(self.value))
        mantissa, exponent = _decimal_parts(self.value)
        if fmt == DECIMAL_EXPONENT:
            return f"{mantissa}e{exponent}" if exponent else str(mantissa)
        if exponent > 18:  # beyond E: more digits before the largest prefix
            mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def parse(text: str | int | float) -> Quantity:
    """Quantities are immutable and specs repeat a few texts: each is parsed once."""
    if isinstance(text, bool):  # True == 1 would share 1's cache entry
        return Quantity.parse(text)
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str | int | float) -> Quantity:
    return Quantity.parse(text)


def canonical(text: str | int | float) -> str:
    """The text upstream stores for a quantity (raises QuantityError when it is none)."""
    return str(Quantity.parse(text))


def _split(text: str) -> tuple[str, str]:
    """Number and suffix, scanned as upstream's parser does ("1.G" is allowed)."""
    pos, end = 0, len(text)
    if text[0] in "+-":
        pos = 1
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end and text[pos] == ".":
        pos += 1
        while pos < end and text[pos] in _DIGITS:
            pos += 1
    number = text[:pos]
    digits = number[start:].replace(".", "")
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos != end:
        raise QuantityError(FORMAT_ERROR)
    sign = "-" if number.startswith("-") else ""
    whole, _, fraction = number[start:].partition(".")
    if not digits:
        return "0", text[suffix_start:]
    return f"{sign}{whole or '0'}.{fraction or '0'}", text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:]), DECIMAL_EXPONENT
        except ValueError:
            pass
    raise QuantityError(SUFFIX_ERROR)


def _ceil_away(value: Fraction) -> int:
    return math.ceil(value) if value >= 0 else -math.ceil(-value)


def _round_away(value: Fraction, step: Fraction) -> Fraction:
    return _ceil_away(value / step) * step


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """value == mantissa * 10**exponent, exponent a multiple of 3, mantissa as short as can be."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa = int(value)
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10**shift, exponent - shift


def _binary_text(value: int) -> str:
    power = 0
    while value % 1024 == 0 and power < 6:
        value //= 1024
        power += 1
    return f"{value}{_BINARY_BY_POWER[power]}"
