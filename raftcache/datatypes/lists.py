"""Lists: the list type and its non-blocking commands (Redis 7.0 semantics and errors).

A list is a ``PackedList``: a deque of chunks, each holding up to 128 elements (8 KB)
packed in one ``bytes`` with an array of their lengths, as Redis's quicklist packs
listpacks. An element costs its bytes plus about 5, where a deque of ``bytes`` objects
costs about 45 more (object header, pointer, allocator rounding): 10-byte elements take
~16 bytes instead of ~51 (Redis 7.0: ~13). Pushes and pops at both ends stay O(1)
(copying at most one chunk); ranges are read from the nearer end and never materialise
more than the result, so ``LRANGE key 0 9223372036854775807`` on a small list costs what
the list holds; LREM/LINSERT skip the chunks whose bytes cannot hold the element.

``pop`` and ``move`` are the module-level entry points the blocking pops (BLPOP, BLMOVE,
BLMPOP, ...) reuse, so a blocking pop that finds data replies exactly as the plain one.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, islice, pairwise
from typing import Any, ClassVar, Self

from ..errors import CommandError, SyntaxError_
from ..redis_semantics import INT64_MIN, parse_int64
from ..resp import OK, NullArray
from . import base
from .base import Collection, Handler, Keyspace, TypeCommand

__all__ = ["COLLECTIONS", "COMMANDS", "PackedList", "RedisList", "move", "mpop", "parse_mpop", "pop"]


# --------------------------------------------------------------------------- the layout
CHUNK_ITEMS = 128  # elements per chunk at most (Redis packs a quicklist node up to 8 KB)
CHUNK_BYTES = 8192  # element bytes per chunk at most, unless one element alone is larger
_LENS = "I"  # array typecode of the element lengths (4 bytes: values stay far below 4 GiB)


class _Chunk:
    """Up to CHUNK_ITEMS elements packed in one bytes object, with their lengths: about
    len + 4 bytes per element instead of a 33-byte header, a pointer and rounding each."""

    __slots__ = ("data", "lens")

    def __init__(self, data: bytes = b"", lens: Iterable[int] = ()) -> None:
        self.data = data
        self.lens = array(_LENS, lens)

    def offset(self, j: int) -> int:
        return sum(self.lens[:j]) if j else 0

    def elements(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        data = self.data
        return [data[a:b] for a, b in pairwise(accumulate(self.lens[start:stop], initial=self.offset(start)))]

    def room(self, count: int, size: int) -> bool:
        return not self.lens or (len(self.lens) + count <= CHUNK_ITEMS and len(self.data) + size <= CHUNK_BYTES)


def _bounds(lens: Sequence[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """(byte offsets, [(first, end) element ranges]) cutting elements of these lengths
    greedily into full chunks; bisecting the offsets keeps the work per chunk, not per element."""
    offsets = [0, *accumulate(lens)]
    cuts = []
    first, count = 0, len(lens)
    while first < count:
        end = bisect_right(offsets, offsets[first] + CHUNK_BYTES, first + 1) - 1  # the bytes that fit
        end = max(first + 1, min(end, first + CHUNK_ITEMS))  # an element too big for a chunk gets its own
        cuts.append((first, end))
        first = end
    return offsets, cuts


def _pack(values: Iterable[bytes]) -> list[_Chunk]:
    """Values in order, packed greedily into full chunks."""
    values = values if isinstance(values, list) else list(values)
    lens = [len(v) for v in values]
    return [_Chunk(b"".join(values[a:b]), lens[a:b]) for a, b in _bounds(lens)[1]]


class PackedList:
    """A sequence of bytes in a deque of packed chunks (a quicklist of sorts): O(1)
    amortised pushes and pops at both ends (each copies at most one chunk), indexing by
    walking chunks from the nearer end, ranges that touch only the chunks they read."""

    __slots__ = ("chunks", "size")

    def __init__(self, values: Iterable[bytes] = ()) -> None:
        self.chunks: deque[_Chunk] = deque(_pack(values))
        self.size = sum(len(ch.lens) for ch in self.chunks)

    def __len__(self) -> int:
        return self.size

    # -- ends
    def push_right(self, values: Sequence[bytes]) -> None:
        chunks = self.chunks
        i = 0
        if chunks:
            last, size = chunks[-1], 0
            while i < len(values) and last.room(i + 1, size + len(values[i])):
                size += len(values[i])
                i += 1
            if i:
                last.data += b"".join(values[:i])
                last.lens.extend(len(v) for v in values[:i])
        if i < len(values):
            chunks.extend(_pack(values[i:]))
        self.size += len(values)

    def push_left(self, values: Sequence[bytes]) -> None:
        """Each value in turn becomes the head (so the last one ends up first)."""
        chunks = self.chunks
        block = list(reversed(values))  # the order they end up in, head first
        i = len(block)  # block[i:] goes into the first chunk's front
        if chunks:
            first, size = chunks[0], 0
            while i > 0 and first.room(len(block) - i + 1, size + len(block[i - 1])):
                size += len(block[i - 1])
                i -= 1
            if i < len(block):
                first.data = b"".join(block[i:]) + first.data
                first.lens[0:0] = array(_LENS, (len(v) for v in block[i:]))
        if i:
            chunks.extendleft(reversed(_pack(block[:i])))
        self.size += len(values)

    def pop_left(self) -> bytes:
        first = self.chunks[0]
        n = first.lens.pop(0)
        value, first.data = first.data[:n], first.data[n:]
        if not first.lens:
            self.chunks.popleft()
        self.size -= 1
        return value

    def pop_right(self) -> bytes:
        last = self.chunks[-1]
        n = last.lens.pop()
        cut = len(last.data) - n
        value, last.data = last.data[cut:], last.data[:cut]
        if not last.lens:
            self.chunks.pop()
        self.size -= 1
        return value

    def take(self, left: bool, count: int) -> list[bytes]:
        """Pop up to `count` elements from one end, in pop order, a chunk at a time."""
        count = min(count, self.size)
        out: list[bytes] = []
        chunks = self.chunks
        while len(out) < count:
            chunk = chunks[0] if left else chunks[-1]
            n = len(chunk.lens)
            want = count - len(out)
            if want >= n:
                elements = chunk.elements()
                if left:
                    chunks.popleft()
                else:
                    chunks.pop()
                    elements.reverse()
                out += elements
            elif left:
                out += chunk.elements(0, want)
                cut = chunk.offset(want)
                chunk.data = chunk.data[cut:]
                del chunk.lens[:want]
            else:
                elements = chunk.elements(n - want)
                elements.reverse()
                out += elements
                chunk.data = chunk.data[: chunk.offset(n - want)]
                del chunk.lens[n - want :]
        self.size -= count
        return out

    def drop(self, left: bool, count: int) -> None:
        """Remove `count` elements from one end without building them."""
        chunks = self.chunks
        self.size -= count
        while count:
            chunk = chunks[0] if left else chunks[-1]
            n = len(chunk.lens)
            if count >= n:
                if left:
                    chunks.popleft()
                else:
                    chunks.pop()
                count -= n
            elif left:
                chunk.data = chunk.data[chunk.offset(count) :]
                del chunk.lens[:count]
                count = 0
            else:
                chunk.data = chunk.data[: chunk.offset(n - count)]
                del chunk.lens[n - count :]
                count = 0

    # -- positions
    def _locate(self, index: int) -> tuple[int, int]:
        """(chunk number, position in it) of element `index` (0 <= index < size)."""
        chunks = self.chunks
        if index < self.size // 2:
            for ci, chunk in enumerate(chunks):
                n = len(chunk.lens)
                if index < n:
                    return ci, index
                index -= n
        else:
            back = self.size - 1 - index
            last = len(chunks) - 1
            for ci, chunk in enumerate(reversed(chunks)):
                n = len(chunk.lens)
                if back < n:
                    return last - ci, n - 1 - back
                back -= n
        raise IndexError(index)

    def __getitem__(self, index: int) -> bytes:
        ci, j = self._locate(index)
        chunk = self.chunks[ci]
        at = chunk.offset(j)
        return chunk.data[at : at + chunk.lens[j]]

    def __setitem__(self, index: int, value: bytes) -> None:
        ci, j = self._locate(index)
        chunk = self.chunks[ci]
        at = chunk.offset(j)
        chunk.data = chunk.data[:at] + value + chunk.data[at + chunk.lens[j] :]
        chunk.lens[j] = len(value)
        self._refit(ci)

    def insert(self, index: int, value: bytes) -> None:
        """Insert before element `index` (0 <= index <= size)."""
        if index == self.size:
            self.push_right([value])
            return
        if index == 0:
            self.push_left([value])
            return
        ci, j = self._locate(index)
        chunk = self.chunks[ci]
        at = chunk.offset(j)
        chunk.data = chunk.data[:at] + value + chunk.data[at:]
        chunk.lens.insert(j, len(value))
        self.size += 1
        self._refit(ci)

    def _refit(self, ci: int) -> None:
        """Repack chunk `ci` if an edit overfilled it, so no pop copies more than a chunk."""
        chunk = self.chunks[ci]
        if len(chunk.lens) <= CHUNK_ITEMS and (len(chunk.data) <= CHUNK_BYTES or len(chunk.lens) == 1):
            return
        del self.chunks[ci]
        for k, part in enumerate(_pack(chunk.elements())):
            self.chunks.insert(ci + k, part)

    # -- reading
    def span(self, start: int, stop: int) -> list[bytes]:
        """Elements [start, stop) (0 <= start <= stop <= size), read from the nearer end;
        only the chunks holding them are touched."""
        if start >= stop:
            return []
        if start <= self.size - stop:
            ci, j = self._locate(start)
            out: list[bytes] = []
            for chunk in islice(self.chunks, ci, None):
                out += chunk.elements(j, min(len(chunk.lens), j + stop - start - len(out)))
                j = 0
                if len(out) >= stop - start:
                    break
            return out
        ci, j = self._locate(stop - 1)
        parts: list[list[bytes]] = []
        need = stop - start
        end: int | None = j + 1  # in the first chunk read (the last one of the range) only
        for chunk in islice(reversed(self.chunks), len(self.chunks) - 1 - ci, None):
            end = len(chunk.lens) if end is None else end
            part = chunk.elements(max(0, end - need), end)
            parts.append(part)
            need -= len(part)
            end = None
            if not need:
                break
        return [value for part in reversed(parts) for value in part]

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            yield from chunk.elements()

    def __reversed__(self) -> Iterator[bytes]:
        for chunk in reversed(self.chunks):
            yield from reversed(chunk.elements())

    def index(self, value: bytes) -> int:
        """The position of the first `value`, -1 if none (chunks without its bytes skipped)."""
        before = 0
        for chunk in self.chunks:
            if value in chunk.data:
                for j, element in enumerate(chunk.elements()):
                    if element == value:
                        return before + j
            before += len(chunk.lens)
        return -1

    def remove(self, value: bytes, limit: int, from_tail: bool) -> int:
        """Remove up to `limit` elements equal to `value` (scanning from the tail if asked);
        how many were removed. Chunks without its bytes are not unpacked."""
        removed = 0
        for chunk in reversed(self.chunks) if from_tail else self.chunks:  # edits chunks, not the deque
            if removed >= limit:
                break
            if value not in chunk.data:
                continue
            elements = chunk.elements()
            positions = range(len(elements) - 1, -1, -1) if from_tail else range(len(elements))
            gone = set()
            for j in positions:
                if elements[j] == value:
                    gone.add(j)
                    removed += 1
                    if removed >= limit:
                        break
            if gone:
                kept = [e for j, e in enumerate(elements) if j not in gone]
                chunk.data = b"".join(kept)
                chunk.lens = array(_LENS, map(len, kept))
        if removed:
            self.size -= removed
            self._coalesce()
        return removed

    def _coalesce(self) -> None:
        """Drop emptied chunks and merge neighbours that fit in one, so removals in the
        middle (LREM on a reliable queue's processing list) do not leave a trail of
        near-empty chunks, each costing ~180 bytes of overhead."""
        merged: deque[_Chunk] = deque()
        for chunk in self.chunks:
            if not chunk.lens:
                continue
            if merged and merged[-1].room(len(chunk.lens), len(chunk.data)):
                last = merged[-1]
                last.data += chunk.data
                last.lens.extend(chunk.lens)
            else:
                merged.append(chunk)
        self.chunks = merged

    # -- snapshots
    def dump(self) -> list[bytes]:
        """[every element's bytes joined, their lengths as little-endian uint32]: the same
        for the same elements however they sit in chunks (snapshots and the digest)."""
        lens = array(_LENS)
        for chunk in self.chunks:
            lens.extend(chunk.lens)
        if sys.byteorder == "big":
            lens.byteswap()
        return [b"".join(chunk.data for chunk in self.chunks), lens.tobytes()]

    @classmethod
    def load(cls, data: bytes, lens_bytes: bytes) -> PackedList:
        lens = array(_LENS)
        lens.frombytes(lens_bytes)
        if sys.byteorder == "big":
            lens.byteswap()
        offsets, cuts = _bounds(lens)
        out = cls()
        out.chunks.extend(_Chunk(data[offsets[a] : offsets[b]], lens[a:b]) for a, b in cuts)
        out.size = len(lens)
        return out

    def copy(self) -> PackedList:
        out = PackedList()
        out.chunks = deque(_Chunk(ch.data, ch.lens) for ch in self.chunks)
        out.size = self.size
        return out


class RedisList(Collection):
    """A Redis list: bytes elements in order, head on the left."""

    __slots__ = ("items",)
    TYPE: ClassVar[str] = "list"

    def __init__(self, items: PackedList | None = None) -> None:
        super().__init__()
        self.items = PackedList() if items is None else items

    def __len__(self) -> int:
        return len(self.items)

    def encoding(self) -> str:
        return "quicklist"  # Redis 7.0 answers quicklist for every list

    def dump(self) -> list[Any]:
        return self.items.dump()

    @classmethod
    def load(cls, payload: list[Any]) -> Self:
        return cls(PackedList.load(*payload))

    def copy(self) -> Self:
        return type(self)(self.items.copy())


# --------------------------------------------------------------------------- helpers
WHERE = base.LEFT_RIGHT  # LMOVE/LMPOP's LEFT|RIGHT: True = head


def _where(arg: bytes) -> bool:
    return base.word(arg, WHERE)


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


# ------------------------------------------------------------- shared with blocking pops
def pop(ks: Keyspace, key: bytes, left: bool, count: int | None) -> Any:
    """LPOP/RPOP key [count] after argument parsing: an element or nil without a count;
    with one, a list of up to `count` elements, an empty list for count 0 or nil-array."""
    lst = _read(ks, key)
    if lst is None:
        return None if count is None else NullArray
    if count is None:
        value = lst.items.pop_left() if left else lst.items.pop_right()
        ks.changed(key, lst)
        return value
    if count == 0:
        return []
    out = lst.items.take(left, count)
    ks.changed(key, lst)
    return out


def move(ks: Keyspace, src: bytes, dst: bytes, src_left: bool, dst_left: bool) -> bytes | None:
    """LMOVE src dst: the moved element, or nil if `src` holds no list. WRONGTYPE if `dst`
    holds another type (checked before anything moves)."""
    source = _read(ks, src)
    if source is None:
        return None
    target = source if dst == src else ks.collection_for_write(dst, RedisList)
    value = source.items.pop_left() if src_left else source.items.pop_right()
    if dst_left:
        target.items.push_left((value,))
    else:
        target.items.push_right((value,))
    # Redis's order (lmoveHandlePush, then the pop): the destination's events, then the
    # source's pop and, if it emptied, its del.
    ks.changed(dst, target)
    if target is not source:
        ks.changed(src, source)  # deletes an emptied source
    return value


def parse_mpop(args: Sequence[bytes], numkeys_at: int) -> tuple[list[bytes], bool, int]:
    """(keys, left, count) of [B]LMPOP's ``numkeys key [key ...] LEFT|RIGHT [COUNT count]``."""
    return base.parse_mpop(args, numkeys_at, WHERE)


def mpop(ks: Keyspace, keys: Sequence[bytes], left: bool, count: int) -> Any:
    """LMPOP after parsing: [key, [elements]] from the first non-empty list, or nil-array."""
    for key in keys:
        lst = _read(ks, key)  # WRONGTYPE on the first other-typed key met before a list
        if lst is not None:
            out = lst.items.take(left, count)
            ks.changed(key, lst)
            return [key, out]
    return NullArray


_ranged = base.ranged_int


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
            lst.items.push_left(args[2:])
        else:
            lst.items.push_right(args[2:])
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
    return lst.items.span(*_range_bounds(start, end, len(lst)))


def ltrim(ks: Keyspace, args: Sequence[bytes]) -> Any:
    start, end = parse_int64(args[2]), parse_int64(args[3])
    key = args[1]
    lst = _read(ks, key)
    if lst is None:
        return OK
    lo, hi = _range_bounds(start, end, len(lst))
    lst.items.drop(True, lo)
    lst.items.drop(False, len(lst) - (hi - lo))
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
    if lst is None:
        return 0
    removed = lst.items.remove(element, abs(count) or len(lst), count < 0)
    if removed:
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
    at = lst.items.index(pivot)
    if at < 0:
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
