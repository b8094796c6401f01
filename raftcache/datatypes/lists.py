"""Lists: the list type and its non-blocking commands (Redis 7.0 semantics and errors).

A list is a ``collections.deque`` of ``bytes``: O(1) pushes and pops at both ends (the
common case: queues, LMOVE-style reliable queues), C-speed scans for LREM/LINSERT/LPOS.
Ranges are read from the nearer end and never materialise more than the result, so
``LRANGE key 0 9223372036854775807`` on a small list costs what the list holds.

``pop`` and ``move`` are the module-level entry points the blocking pops (BLPOP, BLMOVE,
BLMPOP, ...) reuse, so a blocking pop that finds data replies exactly as the plain one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any, ClassVar, Self

from ..errors import CommandError, NotIntegerError, SyntaxError_
from ..redis_semantics import INT64_MIN, parse_int64
from ..resp import OK, NullArray
from .base import Collection, Handler, Keyspace, TypeCommand

__all__ = ["COLLECTIONS", "COMMANDS", "RedisList", "move", "mpop", "parse_mpop", "pop"]


class RedisList(Collection):
    """A Redis list: bytes elements in order, head on the left."""

    __slots__ = ("items",)
    TYPE: ClassVar[str] = "list"

    def __init__(self, items: Iterable[bytes] = ()) -> None:
        super().__init__()
        self.items: deque[bytes] = deque(items)

    def __len__(self) -> int:
        return len(self.items)

    def encoding(self) -> str:
        return "quicklist"  # Redis 7.0 answers quicklist for every list

    def dump(self) -> list[Any]:
        return list(self.items)

    @classmethod
    def load(cls, payload: list[Any]) -> Self:
        return cls(payload)

    def copy(self) -> Self:
        return type(self)(self.items)

    def span(self, start: int, stop: int) -> list[bytes]:
        """Elements [start, stop) (0 <= start <= stop <= len), walking in from the nearer end."""
        items = self.items
        if start >= stop:
            return []
        if start <= len(items) - stop:
            return list(islice(items, start, stop))
        out = list(islice(reversed(items), len(items) - stop, len(items) - start))
        out.reverse()
        return out


# --------------------------------------------------------------------------- helpers
WHERE = {b"LEFT": True, b"RIGHT": False}  # LMOVE/LMPOP's LEFT|RIGHT: True = head


def _where(arg: bytes) -> bool:
    left = WHERE.get(arg.upper())
    if left is None:
        raise SyntaxError_()
    return left


def _arity(name: bytes) -> CommandError:
    return CommandError(f"wrong number of arguments for '{name.decode('utf-8', 'replace')}' command")


def _range_bounds(start: int, end: int, length: int) -> tuple[int, int]:
    """LRANGE/LTRIM's clamping of inclusive, possibly negative indexes to [lo, hi) (maybe empty)."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    start = max(start, 0)
    if start > end or start >= length:
        return 0, 0
    return start, min(end, length - 1) + 1


def _read(ks: Keyspace, key: bytes) -> RedisList | None:
    return ks.get_collection(key, RedisList)


def _take(lst: RedisList, left: bool, count: int) -> list[bytes]:
    take = lst.items.popleft if left else lst.items.pop
    return [take() for _ in range(min(count, len(lst)))]


# ------------------------------------------------------------- shared with blocking pops
def pop(ks: Keyspace, key: bytes, left: bool, count: int | None) -> Any:
    """LPOP/RPOP key [count] after argument parsing: an element or nil without a count;
    with one, a list of up to `count` elements, an empty list for count 0 or nil-array."""
    lst = _read(ks, key)
    if lst is None:
        return None if count is None else NullArray
    if count is None:
        value = lst.items.popleft() if left else lst.items.pop()
        ks.changed(key, lst)
        return value
    if count == 0:
        return []
    out = _take(lst, left, count)
    ks.changed(key, lst)
    return out


def move(ks: Keyspace, src: bytes, dst: bytes, src_left: bool, dst_left: bool) -> bytes | None:
    """LMOVE src dst: the moved element, or nil if `src` holds no list. WRONGTYPE if `dst`
    holds another type (checked before anything moves)."""
    source = _read(ks, src)
    if source is None:
        return None
    target = source if dst == src else ks.collection_for_write(dst, RedisList)
    value = source.items.popleft() if src_left else source.items.pop()
    if dst_left:
        target.items.appendleft(value)
    else:
        target.items.append(value)
    if target is not source:
        ks.changed(src, source)  # deletes an emptied source
    ks.changed(dst, target)
    return value


def parse_mpop(args: Sequence[bytes], numkeys_at: int) -> tuple[list[bytes], bool, int]:
    """(keys, left, count) of [B]LMPOP's ``numkeys key [key ...] LEFT|RIGHT [COUNT count]``
    starting at ``args[numkeys_at]`` (Redis's checks, in its order)."""
    numkeys = _ranged(args[numkeys_at], 1, "numkeys should be greater than 0")
    where_at = numkeys_at + numkeys + 1
    if where_at >= len(args):
        raise SyntaxError_()
    left = _where(args[where_at])
    count = -1
    i = where_at + 1
    while i < len(args):
        if count == -1 and args[i].upper() == b"COUNT" and i + 1 < len(args):
            count = _ranged(args[i + 1], 1, "count should be greater than 0")
            i += 2
        else:
            raise SyntaxError_()
    return list(args[numkeys_at + 1 : where_at]), left, (1 if count == -1 else count)


def mpop(ks: Keyspace, keys: Sequence[bytes], left: bool, count: int) -> Any:
    """LMPOP after parsing: [key, [elements]] from the first non-empty list, or nil-array."""
    for key in keys:
        lst = _read(ks, key)  # WRONGTYPE on the first other-typed key met before a list
        if lst is not None:
            out = _take(lst, left, count)
            ks.changed(key, lst)
            return [key, out]
    return NullArray


def _ranged(arg: bytes, low: int, message: str) -> int:
    """getRangeLongFromObjectOrReply with a message: the same text for junk and out of range."""
    try:
        value = parse_int64(arg)
    except NotIntegerError:
        raise CommandError(message) from None
    if value < low:
        raise CommandError(message)
    return value


# --------------------------------------------------------------------------- commands
def _push(left: bool, only_existing: bool) -> Handler:
    def handler(ks: Keyspace, args: Sequence[bytes]) -> int:
        key = args[1]
        lst = _read(ks, key)
        if lst is None:
            if only_existing:
                return 0
            lst = RedisList()
        if left:
            lst.items.extendleft(args[2:])
        else:
            lst.items.extend(args[2:])
        ks.changed(key, lst)
        return len(lst)

    return handler


def _pop(left: bool) -> Handler:
    def handler(ks: Keyspace, args: Sequence[bytes]) -> Any:
        if len(args) > 3:
            raise _arity(args[0])
        # getPositiveLongFromObjectOrReply: junk gets the out-of-range text too
        count = _ranged(args[2], 0, "value is out of range, must be positive") if len(args) == 3 else None
        return pop(ks, args[1], left, count)

    return handler


def lmove(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    src_left, dst_left = _where(args[3]), _where(args[4])
    return move(ks, args[1], args[2], src_left, dst_left)


def rpoplpush(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    return move(ks, args[1], args[2], False, True)


def lmpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    keys, left, count = parse_mpop(args, 1)
    return mpop(ks, keys, left, count)


def llen(ks: Keyspace, args: Sequence[bytes]) -> int:
    lst = _read(ks, args[1])
    return 0 if lst is None else len(lst)


def lrange(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    start, end = parse_int64(args[2]), parse_int64(args[3])
    lst = _read(ks, args[1])
    if lst is None:
        return []
    return lst.span(*_range_bounds(start, end, len(lst)))


def ltrim(ks: Keyspace, args: Sequence[bytes]) -> Any:
    start, end = parse_int64(args[2]), parse_int64(args[3])
    key = args[1]
    lst = _read(ks, key)
    if lst is None:
        return OK
    lo, hi = _range_bounds(start, end, len(lst))
    items = lst.items
    if hi - lo < len(items) // 2:
        lst.items = deque(lst.span(lo, hi))  # keeping little: copy it rather than pop the rest
    else:
        for _ in range(lo):
            items.popleft()
        for _ in range(len(items) - (hi - lo)):
            items.pop()
    ks.changed(key, lst)  # Redis signals the key even when nothing was trimmed (WATCH sees it)
    return OK


def _index(lst: RedisList, index: int) -> int | None:
    """A position in the list for a possibly negative index, None if out of range."""
    if index < 0:
        index += len(lst)
    return index if 0 <= index < len(lst) else None


def lindex(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    lst = _read(ks, args[1])
    if lst is None:
        return None
    at = _index(lst, parse_int64(args[2]))
    return None if at is None else lst.items[at]


def lset(ks: Keyspace, args: Sequence[bytes]) -> Any:
    key = args[1]
    lst = _read(ks, key)
    if lst is None:
        raise CommandError("no such key")
    at = _index(lst, parse_int64(args[2]))
    if at is None:
        raise CommandError("index out of range")
    lst.items[at] = args[3]
    ks.changed(key, lst)
    return OK


def lrem(ks: Keyspace, args: Sequence[bytes]) -> int:
    count = parse_int64(args[2])
    key, element = args[1], args[3]
    lst = _read(ks, key)
    if lst is None or element not in lst.items:
        return 0
    items = lst.items
    limit = abs(count) or len(items)
    kept: deque[bytes] = deque()
    removed = 0
    add = kept.append if count >= 0 else kept.appendleft
    for item in (items if count >= 0 else reversed(items)):
        if removed < limit and item == element:
            removed += 1
        else:
            add(item)
    lst.items = kept
    ks.changed(key, lst)
    return removed


_WHERE_INSERT = {b"BEFORE": 0, b"AFTER": 1}  # offset from the pivot's position


def linsert(ks: Keyspace, args: Sequence[bytes]) -> int:
    offset = _WHERE_INSERT.get(args[2].upper())
    if offset is None:
        raise SyntaxError_()
    key, pivot, element = args[1], args[3], args[4]
    lst = _read(ks, key)
    if lst is None:
        return 0
    try:
        at = lst.items.index(pivot)
    except ValueError:
        return -1
    lst.items.insert(at + offset, element)
    ks.changed(key, lst)
    return len(lst)


def _lpos_options(args: Sequence[bytes]) -> tuple[int, int, int]:
    """(rank, count or -1, maxlen) of LPOS's options, with Redis's messages."""
    rank, count, maxlen = 1, -1, 0
    i = 3
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            raise SyntaxError_()
        value = args[i + 1]
        if option == b"RANK":
            rank = parse_int64(value)
            if rank == 0:
                raise CommandError("RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
                                   "or use negative to start from the end of the list")
        elif option == b"COUNT":
            count = _ranged(value, 0, "COUNT can't be negative")
        elif option == b"MAXLEN":
            maxlen = _ranged(value, 0, "MAXLEN can't be negative")
        else:
            raise SyntaxError_()
        i += 2
    return rank, count, maxlen


def lpos(ks: Keyspace, args: Sequence[bytes]) -> Any:
    rank, count, maxlen = _lpos_options(args)
    lst = _read(ks, args[1])
    if lst is None:
        return [] if count != -1 else None
    element, items, length = args[2], lst.items, len(lst)
    from_tail = rank < 0
    # Redis 7.0 negates RANK in a C long: -9223372036854775808 stays negative, so every
    # match qualifies and COUNT never stops the scan (its overflowed test never holds).
    overflowed = rank == INT64_MIN
    skip = 0 if overflowed else abs(rank) - 1
    scan = reversed(items) if from_tail else iter(items)
    if maxlen:
        scan = islice(scan, maxlen)
    found: list[int] = []
    matches = 0
    for i, item in enumerate(scan):
        if item != element:
            continue
        matches += 1
        if matches <= skip:
            continue
        found.append(length - 1 - i if from_tail else i)
        if count == -1 or (count and not overflowed and len(found) >= count):
            break
    if count != -1:
        return found
    return found[0] if found else None


COLLECTIONS: list[type[Collection]] = [RedisList]
COMMANDS: list[TypeCommand] = [
    TypeCommand("lpush", -3, True, _push(True, False), "Prepend one or more elements to a list", ("fast",)),
    TypeCommand("rpush", -3, True, _push(False, False), "Append one or more elements to a list", ("fast",)),
    TypeCommand("lpushx", -3, True, _push(True, True), "Prepend an element to a list, only if the list exists",
                ("fast",)),
    TypeCommand("rpushx", -3, True, _push(False, True), "Append an element to a list, only if the list exists",
                ("fast",)),
    TypeCommand("lpop", -2, True, _pop(True), "Remove and get the first elements in a list", ("fast",)),
    TypeCommand("rpop", -2, True, _pop(False), "Remove and get the last elements in a list", ("fast",)),
    TypeCommand("lmove", 5, True, lmove, "Pop an element from a list, push it to another list and return it",
                keys=(1, 2, 1)),
    TypeCommand("rpoplpush", 3, True, rpoplpush,
                "Remove the last element in a list, prepend it to another list and return it", keys=(1, 2, 1)),
    TypeCommand("lmpop", -4, True, lmpop, "Pop elements from a list", ("movablekeys",), keys=(0, 0, 0)),
    TypeCommand("llen", 2, False, llen, "Get the length of a list", ("fast",)),
    TypeCommand("lrange", 4, False, lrange, "Get a range of elements from a list"),
    TypeCommand("lindex", 3, False, lindex, "Get an element from a list by its index"),
    TypeCommand("lpos", -3, False, lpos, "Return the index of matching elements on a list"),
    TypeCommand("lset", 4, True, lset, "Set the value of an element in a list by its index"),
    TypeCommand("lrem", 4, True, lrem, "Remove elements from a list"),
    TypeCommand("ltrim", 4, True, ltrim, "Trim a list to the specified range"),
    TypeCommand("linsert", 5, True, linsert, "Insert an element before or after another element in a list"),
]
