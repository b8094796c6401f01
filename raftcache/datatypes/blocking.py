"""Blocking pops (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP): one attempt.

In the state machine a blocking command is *one attempt*: it pops from the first non-empty
key, as Redis does when it need not block, or answers None when every key is empty. Waiting
is not replicated state: the node that received the command parks the connection and
proposes the attempt again when one of its keys changes (``raftcache.blocking``). So the
timeout is parsed here with Redis's errors (a bad one is refused on every replica alike)
but otherwise ignored. Inside MULTI/EXEC the attempt is all there is (Redis's rule: nil at
once when empty); scripts may not call the single-key forms at all (``noscript`` in Redis
7.0) but may call BLMPOP/BZMPOP, which then act as LMPOP/ZMPOP.

Exactly-once: a None attempt is not remembered in the session table (``statemachine``), so
a tagged request retried later can still pop; a served one is remembered, so its retry gets
the same element instead of popping another.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..errors import CommandError
from ..redis_semantics import INT64_MAX, INT64_MIN
from ..resp import NullArray
from . import base
from .base import Collection, Keyspace, TypeCommand

__all__ = ["BLOCKING", "COMMANDS", "RENDERS", "BlockingArgs", "parse_blocking", "parse_timeout_ms"]

COLLECTIONS: list[type[Collection]] = []

# --------------------------------------------------------------------------- timeouts
# Redis parses a timeout with strtold and rounds seconds * 1000 *up* to whole milliseconds
# (7.0's getTimeoutFromObjectOrReply): "0.0001" waits 1 ms, "-0.0009" rounds to 0 = forever,
# and a value whose milliseconds do not fit in a long long converts to LLONG_MIN on x86
# ("inf", "1e17": "timeout is negative"). Decimal arithmetic makes this exact on any CPU.
_DECIMAL = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_LDBL_MAX = Decimal("1.18973149535723176502e4932")
_LDBL_MIN = Decimal("3.36210314311209350626e-4932")  # below: strtold reports ERANGE (underflow)
_MAX_CHARS = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS
_NOT_A_FLOAT = "timeout is not a float or out of range"


def parse_timeout_ms(arg: bytes) -> int:
    """A blocking command's timeout in milliseconds (0: wait forever), or Redis's error."""
    if not arg or len(arg) > _MAX_CHARS:
        raise CommandError(_NOT_A_FLOAT)
    if _INFINITY.fullmatch(arg):
        raise CommandError("timeout is negative")  # inf * 1000 converts to LLONG_MIN
    if _DECIMAL.fullmatch(arg):
        value = Decimal(arg.decode())
    elif _HEX.fullmatch(arg):
        try:
            value = Decimal(float.fromhex(arg.decode()))
        except OverflowError:
            raise CommandError(_NOT_A_FLOAT) from None
    else:
        raise CommandError(_NOT_A_FLOAT)  # also NaN, spaces, underscores, trailing bytes
    if value and not (_LDBL_MIN <= abs(value) <= _LDBL_MAX):
        raise CommandError(_NOT_A_FLOAT)
    ms = math.ceil(value * 1000)
    if ms < 0 or ms > INT64_MAX or ms < INT64_MIN:
        raise CommandError("timeout is negative")
    return ms


# ------------------------------------------------------------------------- arguments
class BlockingArgs:
    """A blocking command's parsed arguments: what the state machine's attempt and the
    server's waiter both need."""

    __slots__ = ("count", "dst", "keys", "timeout_ms", "where", "where_to")

    def __init__(self, keys: Sequence[bytes], timeout_ms: int, *, where: bool = True, count: int = 1,
                 dst: bytes | None = None, where_to: bool = True) -> None:
        self.keys = tuple(keys)
        self.timeout_ms = timeout_ms  # 0: forever
        self.where = where  # LEFT / MIN: True
        self.count = count  # BLMPOP/BZMPOP's COUNT
        self.dst = dst  # BLMOVE/BRPOPLPUSH's destination
        self.where_to = where_to


def _left_right(arg: bytes) -> bool:
    return base.word(arg, base.LEFT_RIGHT)


def _min_max(arg: bytes) -> bool:
    return base.word(arg, base.MIN_MAX)


def _parse_keys_timeout(args: Sequence[bytes], where: bool) -> BlockingArgs:
    """BLPOP/BRPOP/BZPOPMIN/BZPOPMAX key [key ...] timeout."""
    return BlockingArgs(args[1:-1], parse_timeout_ms(args[-1]), where=where)


def _parse_mpop(args: Sequence[bytes], directions: dict[bytes, bool]) -> BlockingArgs:
    """BLMPOP/BZMPOP timeout numkeys key [key ...] LEFT|RIGHT / MIN|MAX [COUNT count]: Redis
    judges numkeys, the direction and COUNT before the timeout."""
    keys, where, count = base.parse_mpop(args, 2, directions)
    return BlockingArgs(keys, parse_timeout_ms(args[1]), where=where, count=count)


def _parse_blmove(args: Sequence[bytes]) -> BlockingArgs:
    where, where_to = _left_right(args[3]), _left_right(args[4])
    return BlockingArgs(args[1:2], parse_timeout_ms(args[5]), where=where, dst=args[2], where_to=where_to)


def _parse_brpoplpush(args: Sequence[bytes]) -> BlockingArgs:
    return BlockingArgs(args[1:2], parse_timeout_ms(args[3]), where=False, dst=args[2], where_to=True)


_PARSERS: dict[bytes, Callable[[Sequence[bytes]], BlockingArgs]] = {
    b"blpop": lambda a: _parse_keys_timeout(a, True),
    b"brpop": lambda a: _parse_keys_timeout(a, False),
    b"bzpopmin": lambda a: _parse_keys_timeout(a, True),
    b"bzpopmax": lambda a: _parse_keys_timeout(a, False),
    b"blmpop": lambda a: _parse_mpop(a, base.LEFT_RIGHT),
    b"bzmpop": lambda a: _parse_mpop(a, base.MIN_MAX),
    b"blmove": _parse_blmove,
    b"brpoplpush": _parse_brpoplpush,
}
BLOCKING: frozenset[bytes] = frozenset(_PARSERS)  # the commands whose nil attempt may wait


def parse_blocking(args: Sequence[bytes]) -> BlockingArgs:
    """The arguments of a blocking command (name first, lower-case), or Redis's error."""
    return _PARSERS[args[0].lower()](args)


# -------------------------------------------------------------------------- attempts
# The non-blocking commands live in lists.py and zsets.py; imported late so that a type
# module may import this one.
def _list_pop(ks: Keyspace, key: bytes, left: bool, count: int) -> list[bytes] | None:
    from . import lists

    popped = lists.pop(ks, key, left, count)  # a list, or NullArray when the key holds none
    return popped if isinstance(popped, list) else None


def _zset_pop(ks: Keyspace, key: bytes, highest: bool, count: int) -> list[tuple[bytes, bytes]]:
    from . import zsets

    flat = zsets.pop(ks, key, highest, count)  # [member, score, ...]; [] when the key holds none
    return list(zip(flat[::2], flat[1::2]))


def _first_served(ks: Keyspace, keys: Sequence[bytes], pop: Callable[[Keyspace, bytes], Any]) -> tuple[bytes, Any] | None:
    """(key, popped) from the first key that has elements; a key of another type answers
    WRONGTYPE when the scan reaches it (Redis checks keys in order)."""
    for key in keys:
        popped = pop(ks, key)
        if popped:
            return key, popped
    return None


def _list_attempt(ks: Keyspace, args: Sequence[bytes]) -> tuple[bytes, list[bytes]] | None:
    parsed = parse_blocking(args)
    return _first_served(ks, parsed.keys, lambda ks, key: _list_pop(ks, key, parsed.where, parsed.count))


def _zset_attempt(ks: Keyspace, args: Sequence[bytes]) -> tuple[bytes, list[Any]] | None:
    parsed = parse_blocking(args)  # `where` is True for MIN: zsets.pop's flag is `highest`
    return _first_served(ks, parsed.keys, lambda ks, key: _zset_pop(ks, key, not parsed.where, parsed.count))


def _blpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    served = _list_attempt(ks, args)
    return None if served is None else [served[0], served[1][0]]


def _blmpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    served = _list_attempt(ks, args)
    return None if served is None else [served[0], served[1]]


def _bzpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    served = _zset_attempt(ks, args)
    if served is None:
        return None
    member, score = served[1][0]
    return [served[0], member, score]


def _bzmpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    served = _zset_attempt(ks, args)
    return None if served is None else [served[0], [[member, score] for member, score in served[1]]]


def _blmove(ks: Keyspace, args: Sequence[bytes]) -> Any:
    from . import lists

    parsed = parse_blocking(args)
    assert parsed.dst is not None
    return lists.move(ks, parsed.keys[0], parsed.dst, parsed.where, parsed.where_to)


def _null_array(result: Any) -> Any:
    """Redis answers an unserved BLPOP/BLMPOP/BZPOPMIN/BZMPOP with a null *array* (RESP2
    ``*-1``); the state machine says None, which is also what scripts and the session table
    see."""
    return NullArray if result is None else result


COMMANDS: list[TypeCommand] = [
    TypeCommand("blpop", -3, True, _blpop, "Remove and get the first element of the first non-empty list, or block", ("noscript", "blocking"), (1, -2, 1)),
    TypeCommand("brpop", -3, True, _blpop, "Remove and get the last element of the first non-empty list, or block", ("noscript", "blocking"), (1, -2, 1)),
    TypeCommand("blmpop", -5, True, _blmpop, "Pop elements from the first non-empty list, or block", ("blocking", "movablekeys"), (0, 0, 0)),
    TypeCommand("blmove", 6, True, _blmove, "Pop an element from a list, push it to another list and return it; or block",
                ("noscript", "blocking"), (1, 2, 1)),
    TypeCommand("brpoplpush", 4, True, _blmove, "Pop an element from a list, push it to another list and return it; or block",
                ("noscript", "blocking"), (1, 2, 1)),
    TypeCommand("bzpopmin", -3, True, _bzpop, "Remove and return the member with the lowest score from the first non-empty sorted set, or block",
                ("noscript", "blocking", "fast"), (1, -2, 1)),
    TypeCommand("bzpopmax", -3, True, _bzpop, "Remove and return the member with the highest score from the first non-empty sorted set, or block",
                ("noscript", "blocking", "fast"), (1, -2, 1)),
    TypeCommand("bzmpop", -5, True, _bzmpop, "Remove and return members with scores from the first non-empty sorted set, or block",
                ("blocking", "movablekeys"), (0, 0, 0)),
]
# Reply renderers beyond the identity (redis_commands picks them up).
RENDERS: dict[bytes, Callable[[Any], Any]] = {
    name: _null_array for name in (b"blpop", b"brpop", b"blmpop", b"bzpopmin", b"bzpopmax", b"bzmpop")
}
