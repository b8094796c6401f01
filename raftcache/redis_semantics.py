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

# The Redis version every surface reports (HELLO, INFO, Lua's redis.REDIS_VERSION). Clients gate
# features on it: redis-py's client-side cache refuses a server below 7.4; the commands served
# are Redis 7.0's semantics (README: "Compatibility"), which 7.4 keeps.
REDIS_VERSION = "7.4.0"

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
    return f"\\x{c:02x}"


def glob_tokens(pattern: bytes) -> list[str | None]:
    """Redis's glob as regex pieces, one per byte a token matches, and None for a run of ``*``."""
    out: list[str | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            if not out or out[-1] is not None:
                out.append(None)
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
    return out


def glob_to_regex(pattern: bytes) -> str:
    """The glob as one (DOTALL, fullmatch) regex: a backtracking reference for tests; matching
    uses `compile_glob`."""
    return "".join(".*" if token is None else token for token in glob_tokens(pattern))


def _regex(pieces: list[str]) -> re.Pattern[bytes]:
    return re.compile("".join(pieces).encode("ascii"), re.DOTALL)


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate: does a key match this Redis glob? It never backtracks across ``*`` (a
    regex of ``*a*a*...b`` is exponential on a long key, and KEYS, SCAN MATCH, ACL key and
    channel patterns, PSUBSCRIBE and WATCH all match client-given patterns): the segments
    between stars match one byte per token, so placing each at its leftmost match in turn is
    exact, and the cost is linear in the subject per segment."""
    if pattern == b"*":
        return lambda key: True
    segments: list[list[str]] = [[]]
    for token in glob_tokens(pattern):
        if token is None:
            segments.append([])
        else:
            segments[-1].append(token)
    if len(segments) == 1:
        whole = _regex(segments[0]).fullmatch
        return lambda key: whole(key) is not None
    first, last = _regex(segments[0]).match, _regex(segments[-1]).fullmatch
    middle = [_regex(seg).search for seg in segments[1:-1] if seg]
    head, tail = len(segments[0]), len(segments[-1])

    def matches(key: bytes) -> bool:
        end = len(key) - tail
        if end < head or first(key) is None or last(key, end) is None:
            return False
        pos = head
        for search in middle:
            found = search(key, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True

    return matches
