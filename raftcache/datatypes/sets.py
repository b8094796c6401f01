"""Sets: the set type and its commands (SADD ... SSCAN), and RANDOMKEY.

A set keeps its members in a dense list plus a member -> position dict. The list gives
SPOP/SRANDMEMBER the i-th member in O(1) (a draw from ``ks.draw`` picks i); removal moves
the last member into the hole, so every operation is O(1) and the list's order depends
only on the commands applied, never on ``hash()`` (salted per process): replicas, and a
snapshot's reload, hold the same members in the same order.

Encoding follows Redis 7.0: "intset" while every member is an integer (string2ll's rules)
and the set never grew past ``set-max-intset-entries`` (512), else "hashtable" for good, with
one exception Redis has too: an SPOP of most of a set rebuilds it from what remains. Redis
answers an intset's members sorted numerically, so those replies are sorted here as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, Self

from ..errors import CommandError, NotIntegerError, SyntaxError_
from ..redis_semantics import parse_int64
from . import base
from .base import Collection, Handler, Keyspace, TypeCommand, parse_scan_args, scan_reply

__all__ = ["COLLECTIONS", "COMMANDS", "RedisSet"]

INTSET_MAX_ENTRIES = 512  # Redis 7.0's set-max-intset-entries
SPOP_MOVE_STRATEGY_MUL = 5  # Redis's threshold for rebuilding a set SPOP mostly empties
# SRANDMEMBER with a negative count repeats members, so its reply is as long as asked; Redis
# would build it whatever the size: a cap keeps one command from exhausting memory.
MAX_RANDOM_REPLY = 1 << 22
INT64_MIN = -(1 << 63)


def _is_integer(member: bytes) -> bool:
    """Would Redis store `member` in an intset (string2ll accepts it)?"""
    if len(member) > 20:
        return False
    try:
        parse_int64(member)
    except NotIntegerError:
        return False
    return True


class RedisSet(Collection):
    """Members in a dense list (draw order, O(1) pick) with a member -> index dict."""

    __slots__ = ("_intset", "_items", "_pos")
    TYPE = "set"

    def __init__(self) -> None:
        super().__init__()
        self._items: list[bytes] = []
        self._pos: dict[bytes, int] = {}
        self._intset = True  # an empty set takes its encoding from its first member

    # ------------------------------------------------------------------- elements
    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, member: bytes) -> bool:
        return member in self._pos

    def add(self, member: bytes) -> bool:
        """Add `member`; True if it was new."""
        pos = self._pos
        if member in pos:
            return False
        pos[member] = len(self._items)
        self._items.append(member)
        if self._intset and (len(self._items) > INTSET_MAX_ENTRIES or not _is_integer(member)):
            self._intset = False
        return True

    def remove(self, member: bytes) -> bool:
        """Remove `member`; True if it was there."""
        i = self._pos.pop(member, None)
        if i is None:
            return False
        self._fill(i)
        return True

    def at(self, i: int) -> bytes:
        return self._items[i]

    def pop_at(self, i: int) -> bytes:
        """Remove and return the i-th member (O(1): the last member takes its place)."""
        items = self._items
        member = items[i]
        del self._pos[member]
        last = items.pop()  # (``_fill`` inlined: SPOP with a count calls this in a loop)
        if i < len(items):
            items[i] = last
            self._pos[last] = i
        return member

    def _fill(self, i: int) -> None:
        """Close the hole at index i (its member already gone from the dict)."""
        items = self._items
        last = items.pop()
        if i < len(items):
            items[i] = last
            self._pos[last] = i

    def items(self) -> list[bytes]:
        """The members in storage order (deterministic; not sorted)."""
        return self._items

    def members(self) -> list[bytes]:
        """The members in Redis's reply order where Redis defines one: an intset's is
        numeric; a hashtable's is unspecified, so storage order."""
        if self._intset:
            return sorted(self._items, key=int)
        return list(self._items)

    def rebuild_encoding(self) -> None:
        """The encoding of a set Redis builds afresh from these members (SPOP's case 3)."""
        self._intset = len(self._items) <= INTSET_MAX_ENTRIES and all(map(_is_integer, self._items))

    # ------------------------------------------------------------------- Collection
    def encoding(self) -> str:
        return "intset" if self._intset else "hashtable"

    def dump(self) -> list[Any]:
        # The encoding is not implied by the members (a hashtable of integers stays one).
        return [int(self._intset), self._items[:]]

    @classmethod
    def load(cls, payload: list[Any]) -> Self:
        intset, items = payload
        value = cls()
        value._items = list(items)
        value._pos = {m: i for i, m in enumerate(value._items)}
        value._intset = bool(intset)
        return value

    def copy(self) -> Self:
        value = type(self)()
        value._items = self._items[:]
        value._pos = self._pos.copy()
        value._intset = self._intset
        return value

    @classmethod
    def of(cls, members: Iterable[bytes]) -> Self:
        """A set built by adding `members` in order (as Redis builds STORE results)."""
        value = cls()
        for member in members:
            value.add(member)
        return value


COLLECTIONS: list[type[Collection]] = [RedisSet]


class _RandomKeyspace(Keyspace, Protocol):
    def random_key(self) -> bytes | None:
        """A live key drawn with ``draw``, or None when there is none."""


# --------------------------------------------------------------------------- helpers
def _get(ks: Keyspace, key: bytes) -> RedisSet | None:
    return ks.get_collection(key, RedisSet)


def _sets(ks: Keyspace, keys: Sequence[bytes]) -> list[RedisSet | None]:
    """Every key's set (None if missing); WRONGTYPE at the first key of another type, as
    Redis checks every key before it computes anything."""
    return [_get(ks, key) for key in keys]


def _sample(ks: Keyspace, n: int, k: int) -> list[int]:
    """k distinct indexes of range(n), k < n: a partial Fisher-Yates shuffle over a virtual
    permutation (only the swapped slots are stored), so O(k) time and memory for any n."""
    swapped: dict[int, int] = {}
    out = []
    for j in range(k):
        r = j + ks.draw(n - j)
        out.append(swapped.get(r, r))
        swapped[r] = swapped.get(j, j)
    return out


def _store(ks: Keyspace, dest: bytes, result: RedisSet) -> int:
    """The STORE forms: replace whatever `dest` holds (any type, dropping its expiry); an
    empty result deletes it."""
    if len(result):
        ks.replace(dest, result)
    else:
        ks.delete(dest)
    return len(result)


# -------------------------------------------------------------------------- commands
def sadd(ks: Keyspace, args: Sequence[bytes]) -> int:
    key = args[1]
    value = ks.collection_for_write(key, RedisSet)
    added = sum(map(value.add, args[2:]))
    if added:
        ks.changed(key, value)
    return added


def srem(ks: Keyspace, args: Sequence[bytes]) -> int:
    key = args[1]
    value = _get(ks, key)
    if value is None:
        return 0
    removed = sum(map(value.remove, args[2:]))
    if removed:
        ks.changed(key, value)
    return removed


def smembers(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    value = _get(ks, args[1])
    return [] if value is None else value.members()


def sismember(ks: Keyspace, args: Sequence[bytes]) -> int:
    value = _get(ks, args[1])
    return int(value is not None and args[2] in value)


def smismember(ks: Keyspace, args: Sequence[bytes]) -> list[int]:
    value = _get(ks, args[1])
    if value is None:
        return [0] * (len(args) - 2)
    return [int(member in value) for member in args[2:]]


def scard(ks: Keyspace, args: Sequence[bytes]) -> int:
    value = _get(ks, args[1])
    return 0 if value is None else len(value)


def spop(ks: Keyspace, args: Sequence[bytes]) -> bytes | list[bytes] | None:
    if len(args) > 3:
        raise SyntaxError_()
    if len(args) == 3:
        # Redis gives this one message for a count that is not an integer, too.
        return _spop_count(ks, args[1], _int_or(args[2], "value is out of range, must be positive", 0))
    key = args[1]
    value = _get(ks, key)
    if value is None:
        return None
    member = value.pop_at(ks.draw(len(value)))
    ks.changed(key, value)
    return member


def _spop_count(ks: Keyspace, key: bytes, count: int) -> list[bytes]:
    value = _get(ks, key)  # (after the count: Redis checks the argument first)
    if value is None or count == 0:
        return []
    size = len(value)
    if count >= size:
        members = value.members()
        ks.delete(key)
        return members
    pop, draw = value.pop_at, ks.draw
    popped = [pop(draw(n)) for n in range(size, size - count, -1)]
    if (size - count) * SPOP_MOVE_STRATEGY_MUL <= count:
        value.rebuild_encoding()  # Redis keeps the few survivors in a new set (its "case 3")
    ks.changed(key, value)
    return popped


def srandmember(ks: Keyspace, args: Sequence[bytes]) -> bytes | list[bytes] | None:
    if len(args) > 3:
        raise SyntaxError_()
    if len(args) == 2:
        value = _get(ks, args[1])
        return None if value is None else value.at(ks.draw(len(value)))
    count = parse_int64(args[2])
    if count == INT64_MIN:  # its absolute value is not a long
        raise CommandError("value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    value = _get(ks, args[1])
    if value is None or count == 0:
        return []
    size = len(value)
    if count < 0:  # repetitions allowed: -count independent draws
        if -count > MAX_RANDOM_REPLY:
            raise CommandError(f"value is out of range, raftcache returns at most {MAX_RANDOM_REPLY} random members")
        return [value.at(ks.draw(size)) for _ in range(-count)]
    if count >= size:
        return value.members()
    return [value.at(i) for i in _sample(ks, size, count)]


def smove(ks: Keyspace, args: Sequence[bytes]) -> int:
    src, dst, member = args[1], args[2], args[3]
    source = _get(ks, src)
    if source is None:  # (before the destination's type is checked: Redis's order)
        return 0
    target = _get(ks, dst)
    if src == dst:
        return int(member in source)
    if not source.remove(member):
        return 0
    ks.changed(src, source)
    target = target if target is not None else ks.collection_for_write(dst, RedisSet)
    if target.add(member):  # already there: the destination did not change (no sadd, as Redis)
        ks.changed(dst, target)
    return 1


def _inter(sets: list[RedisSet | None], limit: int = 0) -> list[bytes]:
    """Members of every set, in the smallest set's reply order; stop at `limit` (0: all)."""
    if not sets or any(s is None for s in sets):
        return []
    ordered = sorted(sets, key=len)  # type: ignore[arg-type]
    smallest, others = ordered[0], ordered[1:]
    out = []
    for member in smallest.members():  # type: ignore[union-attr]
        if all(member in other for other in others):  # type: ignore[operator]
            out.append(member)
            if len(out) == limit:
                break
    return out


def _union(sets: list[RedisSet | None]) -> RedisSet:
    result = RedisSet()
    for s in sets:
        if s is not None:
            for member in s.items():
                result.add(member)
    return result


def _diff(sets: list[RedisSet | None]) -> RedisSet:
    """Redis's SDIFF, with its choice of algorithm: the encoding of the result depends on
    it (the second one starts from a copy of the first set, converting it if that is large
    or holds a non-integer, even when the members that forced it are removed later)."""
    result = RedisSet()
    first, rest = sets[0], [s for s in sets[1:] if s is not None]
    if first is None or any(s is first for s in rest):
        return result  # a set minus itself (the same key) is empty
    one_work = len(first) * (1 + len(rest)) // 2  # Redis favours algorithm 1 by halving its cost
    two_work = len(first) + sum(map(len, rest))
    if one_work <= two_work:
        for member in first.items():
            if not any(member in s for s in rest):
                result.add(member)
        return result
    for member in first.items():
        result.add(member)
    for s in rest:
        for member in s.items():
            result.remove(member)
        if not len(result):
            break
    return result


def sinter(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _inter(_sets(ks, args[1:]))


def sinterstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store(ks, args[1], RedisSet.of(_inter(_sets(ks, args[2:]))))


def sunion(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _union(_sets(ks, args[1:])).members()


def sunionstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store(ks, args[1], _union(_sets(ks, args[2:])))


def sdiff(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _diff(_sets(ks, args[1:])).members()


def sdiffstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store(ks, args[1], _diff(_sets(ks, args[2:])))


def _int_or(arg: bytes, message: str, minimum: int) -> int:
    return base.ranged_int(arg, minimum, message)


def sintercard(ks: Keyspace, args: Sequence[bytes]) -> int:
    numkeys = _int_or(args[1], "numkeys should be greater than 0", 1)
    if numkeys > len(args) - 2:
        raise CommandError("Number of keys can't be greater than number of args")
    limit, i = 0, 2 + numkeys
    while i < len(args):
        if args[i].upper() != b"LIMIT" or i + 1 >= len(args):
            raise SyntaxError_()
        limit = _int_or(args[i + 1], "LIMIT can't be negative", 0)
        i += 2
    return len(_inter(_sets(ks, args[2 : 2 + numkeys]), limit))


_CURSOR_RE = re.compile(rb"[+-]?[0-9]*")


def _scan_cursor(raw: bytes) -> int:
    """Redis's parseScanCursorOrReply: C's strtoul, so a sign is accepted ("-1" wraps to
    2**64 - 1) and an empty cursor is 0; leading blanks, junk and overflow are not."""
    if not _CURSOR_RE.fullmatch(raw) or raw in (b"+", b"-"):
        raise CommandError("invalid cursor")
    digits = raw.lstrip(b"+-")
    value = int(digits) if digits else 0
    if value >= 1 << 64:
        raise CommandError("invalid cursor")
    return (-value if raw.startswith(b"-") else value) % (1 << 64)


def sscan(ks: Keyspace, args: Sequence[bytes]) -> list[Any]:
    cursor = _scan_cursor(args[2])  # the cursor is checked first; the options only on a set
    value = _get(ks, args[1])
    if value is None:
        return scan_reply(0, [])
    # (base.parse_scan_args reads the options; its own cursor rule is stricter than Redis's)
    _, match, count = parse_scan_args([*args[:2], b"0", *args[3:]], 3)
    if value.encoding() == "intset":  # Redis returns a compact set whole, whatever the cursor
        cursor, found = 0, value.members()
    else:
        cursor, found = ks.scan_order.page(value, value.items, _identity, cursor, count)
    if match is not None:
        found = [m for m in found if match(m)]
    return scan_reply(cursor, found)


def _identity(member: bytes) -> bytes:
    return member


def randomkey(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    random_ks: _RandomKeyspace = ks  # type: ignore[assignment]
    return random_ks.random_key()


# ----------------------------------------------------------------------------- table
_MANY = (1, -1, 1)


def _cmd(name: str, arity: int, write: bool, handler: Handler, summary: str, flags: tuple[str, ...] = (),
         keys: tuple[int, int, int] = (1, 1, 1)) -> TypeCommand:
    return TypeCommand(name, arity, write, handler, summary, flags, keys)


COMMANDS: list[TypeCommand] = [
    _cmd("sadd", -3, True, sadd, "Add members to a set", ("fast",)),
    _cmd("srem", -3, True, srem, "Remove members from a set", ("fast",)),
    _cmd("smembers", 2, False, smembers, "Get all the members of a set"),
    _cmd("sismember", 3, False, sismember, "Is a value a member of a set", ("fast",)),
    _cmd("smismember", -3, False, smismember, "Are values members of a set", ("fast",)),
    _cmd("scard", 2, False, scard, "Get the number of members of a set", ("fast",)),
    _cmd("spop", -2, True, spop, "Remove and return random members of a set", ("fast",)),
    _cmd("srandmember", -2, False, srandmember, "Get random members of a set"),
    _cmd("smove", 4, True, smove, "Move a member from one set to another", ("fast",), (1, 2, 1)),
    _cmd("sinter", -2, False, sinter, "Intersect sets", keys=_MANY),
    _cmd("sinterstore", -3, True, sinterstore, "Intersect sets and store the result", keys=_MANY),
    _cmd("sintercard", -3, False, sintercard, "Count the members of an intersection (LIMIT)", ("movablekeys",),
         (0, 0, 0)),
    _cmd("sunion", -2, False, sunion, "Add sets", keys=_MANY),
    _cmd("sunionstore", -3, True, sunionstore, "Add sets and store the result", keys=_MANY),
    _cmd("sdiff", -2, False, sdiff, "Subtract sets", keys=_MANY),
    _cmd("sdiffstore", -3, True, sdiffstore, "Subtract sets and store the result", keys=_MANY),
    _cmd("sscan", -3, False, sscan, "Incrementally iterate set members (MATCH COUNT)"),
    # A keyspace read, here because it shares the replicated draw with SPOP/SRANDMEMBER.
    _cmd("randomkey", 1, False, randomkey, "Return a random key", keys=(0, 0, 0)),
]
