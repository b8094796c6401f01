"""INCRBYFLOAT's arithmetic, as Redis 7 on x86-64 Linux does it, in exact integer math.

Redis parses both operands with ``strtold``, adds them as x87 80-bit ``long double`` (64-bit
significand), and stores ``%.17Lf`` with trailing zeros trimmed. Python's float is a 53-bit
double and ``numpy.longdouble`` depends on the platform, so both would give replicas on
different machines different bytes. Here every step is done on ``Fraction``s and rounded
explicitly to the 80-bit format (round half to even, subnormals, overflow to infinity), so
every replica computes identical bytes, and the same bytes as Redis.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import CommandError

# x87 extended precision: 64-bit significand, exponents 2**-16382 .. 2**16383.
_SIGNIFICAND_BITS = 64
_MIN_EXP = -16382  # exponent of the smallest normal number
_OVERFLOW = Fraction(2**16384)
_QUANTUM_MIN = _MIN_EXP - (_SIGNIFICAND_BITS - 1)  # exponent of the smallest subnormal step

MAX_CHARS = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS: longer input is not a valid float

INF = float("inf")
Number = Fraction | float  # a finite exact value, or +-inf

_DECIMAL = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?\Z")
_INFINITY = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)


def _round_half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def round_to_long_double(exact: Fraction) -> Number:
    """The 80-bit long double nearest to `exact` (ties to even); +-inf on overflow."""
    if exact == 0:
        return Fraction(0)
    sign = -1 if exact < 0 else 1
    magnitude = abs(exact)
    # exponent e with 2**e <= magnitude < 2**(e+1)
    e = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** e > magnitude:
        e -= 1
    quantum = max(e - (_SIGNIFICAND_BITS - 1), _QUANTUM_MIN)
    steps = _round_half_even(magnitude / Fraction(2) ** quantum)
    rounded = steps * Fraction(2) ** quantum
    if rounded >= _OVERFLOW:
        return sign * INF
    return sign * rounded


def parse(text: bytes) -> Number | None:
    """Redis's string2ld: the long double `text` denotes, or None if it is not a valid float.

    strtold's grammar (decimal, hexadecimal, inf/infinity; nan is refused), no surrounding
    spaces; a value that overflows or underflows to zero is refused, as Redis refuses ERANGE.
    """
    if not text or len(text) >= MAX_CHARS:
        return None
    if (m := _INFINITY.match(text)) is not None:
        return -INF if m.group(1) == b"-" else INF
    if (m := _HEX.match(text)) is not None:
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        if not whole and not frac:
            return None
        exact = Fraction(int((whole + frac) or b"0", 16), 16 ** len(frac)) * Fraction(2) ** int(exp or b"0")
    elif (m := _DECIMAL.match(text)) is not None:
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        if not whole and not frac:
            return None
        exact = Fraction(_parse_decimal_digits(whole + frac), 10 ** len(frac)) * Fraction(10) ** int(exp or b"0")
    else:
        return None
    if sign == b"-":
        exact = -exact
    value = round_to_long_double(exact)
    if isinstance(value, float) or (value == 0 and exact != 0):
        return None  # ERANGE: overflow to HUGE_VAL or underflow to zero
    return value


def add(a: Number, b: Number) -> Number | None:
    """a + b as a long double; None for NaN (inf - inf)."""
    if isinstance(a, float) or isinstance(b, float):
        total = float(a) + float(b)
        return None if total != total else total
    return round_to_long_double(a + b)


def _parse_decimal_digits(digits: bytes) -> int:
    """int(digits) for any length (int(str) is capped at 4300 digits); b"" is 0."""
    n = 0
    for i in range(0, len(digits), 1000):
        chunk = digits[i : i + 1000]
        n = n * 10 ** len(chunk) + int(chunk)
    return n


def _decimal_digits(n: int) -> bytes:
    """Decimal digits of a non-negative int of any size (int -> str is capped at 4300 digits)."""
    chunk = 10**1000
    parts: list[bytes] = []
    while n >= chunk:
        n, low = divmod(n, chunk)
        parts.append(b"%01000d" % low)
    parts.append(b"%d" % n)
    return b"".join(reversed(parts))


def format_human(value: Fraction) -> bytes:
    """``%.17Lf`` with trailing zeros (and a bare point) trimmed; ``-0`` becomes ``0``."""
    negative = value < 0
    scaled = _round_half_even(abs(value) * 10**17)
    digits = _decimal_digits(scaled).rjust(18, b"0")
    text = digits[:-17] + b"." + digits[-17:]
    text = text.rstrip(b"0").rstrip(b".")
    if negative and text != b"0":
        return b"-" + text
    return text


def incr_by_float(current: bytes | None, increment: bytes) -> bytes:
    """The new value of INCRBYFLOAT, or raise CommandError with Redis's message."""
    value = Fraction(0) if current is None else parse(current)
    incr = parse(increment)
    if value is None or incr is None:
        raise CommandError("value is not a valid float")
    total = add(value, incr)
    if total is None or isinstance(total, float):
        raise CommandError("increment would produce NaN or Infinity")
    return format_human(total)
