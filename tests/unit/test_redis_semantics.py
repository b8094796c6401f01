"""Glob matching and integer parsing must agree with Redis byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcache.errors import NotIntegerError
from raftcache.redis_semantics import compile_glob, parse_int64


def reference_match(pattern: bytes, string: bytes) -> bool:
    """An independent, direct (recursive) reading of Redis's stringmatchlen rules."""
    if not pattern:
        return not string
    head = pattern[0]
    if head == ord("*"):
        return any(reference_match(pattern[1:], string[i:]) for i in range(len(string) + 1))
    if not string:
        return False
    if head == ord("?"):
        return reference_match(pattern[1:], string[1:])
    if head == ord("["):
        i = 1
        negate = i < len(pattern) and pattern[i] == ord("^")
        if negate:
            i += 1
        matched = False
        while True:
            if i < len(pattern) and pattern[i] == ord("\\") and len(pattern) - i >= 2:
                matched |= pattern[i + 1] == string[0]
                i += 2
            elif i < len(pattern) and pattern[i] == ord("]"):
                i += 1
                break
            elif i >= len(pattern):
                break
            elif len(pattern) - i >= 3 and pattern[i + 1] == ord("-"):
                lo, hi = sorted((pattern[i], pattern[i + 2]))
                matched |= lo <= string[0] <= hi
                i += 3
            else:
                matched |= pattern[i] == string[0]
                i += 1
        if negate:
            matched = not matched
        return matched and reference_match(pattern[i:], string[1:])
    if head == ord("\\") and len(pattern) >= 2:
        return pattern[1] == string[0] and reference_match(pattern[2:], string[1:])
    return head == string[0] and reference_match(pattern[1:], string[1:])


@pytest.mark.parametrize(
    "pattern, key, expected",
    [
        (b"*", b"", True),
        (b"user:*", b"user:42", True),
        (b"user:*", b"users", False),
        (b"h?llo", b"hello", True),
        (b"h?llo", b"hllo", False),
        (b"h[ae]llo", b"hallo", True),
        (b"h[ae]llo", b"hillo", False),
        (b"h[^e]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hbllo", True),  # reversed range
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hello", False),
        (b"[]", b"a", False),
        (b"[^]", b"a", True),
        (b"a[bc", b"ac", True),  # unclosed class ends at the pattern end
        (b"x\\", b"x\\", True),  # a trailing backslash is literal
        (b"\xff*", b"\xff\x00\n", True),  # binary keys, newlines included
    ],
)
def test_glob_examples(pattern, key, expected):
    assert compile_glob(pattern)(key) is expected
    assert reference_match(pattern, key) is expected


ALPHABET = st.sampled_from(list(b"ab*?[]^-\\\n"))


@settings(max_examples=2000, deadline=None)
@given(st.lists(ALPHABET, max_size=8).map(bytes), st.lists(st.sampled_from(list(b"ab*?[]^-\\\n")), max_size=6).map(bytes))
def test_glob_matches_reference(pattern, key):
    assert compile_glob(pattern)(key) == reference_match(pattern, key)


@pytest.mark.parametrize(
    "text, value",
    [(b"0", 0), (b"-1", -1), (b"42", 42), (b"9223372036854775807", 2**63 - 1), (b"-9223372036854775808", -(2**63))],
)
def test_parse_int64_accepts(text, value):
    assert parse_int64(text) == value


@pytest.mark.parametrize(
    "text",
    [b"", b"-", b"+1", b" 1", b"1 ", b"01", b"-0", b"1.0", b"1e3", b"0x10", b"9223372036854775808", b"-9223372036854775809", b"\xd9\xa3"],
)
def test_parse_int64_rejects(text):
    with pytest.raises(NotIntegerError):
        parse_int64(text)
