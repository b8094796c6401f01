"""Redis's own rules for strings, reproduced byte for byte.

* ``parse_int64``: Redis's ``string2ll`` (what INCR and every integer argument use): optional
  ``-``, no ``+``, no spaces, no leading zeros, within signed 64-bit.
* ``compile_glob``: Redis's ``stringmatchlen`` glob (``*``, ``?``, ``[a-z]``, ``[^..]``,
  ``\\x``), compiled once into a bytes regex (cached), because KEYS and SCAN MATCH test it
  against every key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .errors import NotIntegerError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_INT_RE = re.compile(rb"-?(?:0|[1-9][0-9]{0,19})\Z")


def parse_int64(value: bytes) -> int:
    """Parse like Redis's string2ll; raise NotIntegerError otherwise."""
    if not _INT_RE.match(value) or value == b"-0":
        raise NotIntegerError()
    number = int(value)
    if number < INT64_MIN or number > INT64_MAX:
        raise NotIntegerError()
    return number


def _byte(c: int) -> str:
    return "\\x%02x" % c


def glob_to_regex(pattern: bytes) -> str:
    """Translate a Redis glob into an equivalent (DOTALL, fullmatch) regex source."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            if not out or out[-1] != ".*":
                out.append(".*")
        elif c == 0x3F:  # '?'
            out.append(".")
        elif c == 0x5B:  # '['
            i += 1
            negate = i < n and pattern[i] == 0x5E  # '^'
            if negate:
                i += 1
            items: list[str] = []
            while True:
                if i < n and pattern[i] == 0x5C and n - i >= 2:  # '\' escapes the next byte
                    i += 1
                    items.append(_byte(pattern[i]))
                elif i < n and pattern[i] == 0x5D or i >= n:  # ']'
                    break
                elif n - i >= 3 and pattern[i + 1] == 0x2D:  # 'a-z' (Redis swaps reversed ranges)
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    items.append(f"{_byte(lo)}-{_byte(hi)}")
                    i += 2
                else:
                    items.append(_byte(pattern[i]))
                i += 1
            if items:
                out.append("[" + ("^" if negate else "") + "".join(items) + "]")
            else:
                out.append("." if negate else "(?!)")  # '[^]' is any byte, '[]' matches nothing
        elif c == 0x5C:  # '\'
            if i + 1 < n:
                i += 1
            out.append(_byte(pattern[i]))
        else:
            out.append(_byte(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate: does a key match this Redis glob?"""
    if pattern == b"*":
        return lambda key: True
    regex = re.compile(glob_to_regex(pattern).encode("ascii"), re.DOTALL)
    fullmatch = regex.fullmatch
    return lambda key: fullmatch(key) is not None
