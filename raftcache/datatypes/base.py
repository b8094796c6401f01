"""What every data type shares: the collection base class, the keyspace interface its
commands use, the command-table entry, replicated randomness and the element SCAN cursor.

A data-type command is a plain function ``handler(ks, args) -> reply``: ``ks`` is the
state machine seen through ``Keyspace`` (below), ``args`` the Redis arguments with the
command name first. Handlers validate before they mutate (a rejected command leaves no
trace), raise ``CommandError`` subclasses with Redis's messages, and return values ready for
RESP: ``bytes``, ``int``, ``None`` (nil), lists, or ``resp.OK``. They run on every replica,
so they may use only the arguments, the keyspace and ``ks.draw`` (never a clock, a
``random`` module or the iteration order of a Python ``set``: bytes hashes are salted per
process, so two replicas would iterate one set differently).
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, Self, TypeVar

from ..errors import CommandError, SyntaxError_
from ..redis_semantics import compile_glob, parse_int64

__all__ = [
    "LEFT_RIGHT",
    "MIN_MAX",
    "Collection",
    "Keyspace",
    "Rng",
    "ScanOrder",
    "TypeCommand",
    "element_hash",
    "parse_count",
    "parse_cursor",
    "parse_mpop",
    "parse_scan_args",
    "ranged_int",
    "scan_reply",
    "word",
]

C = TypeVar("C", bound="Collection")
Handler = Callable[["Keyspace", Sequence[bytes]], Any]


class Collection:
    """A non-string value. Subclasses add their data; the keyspace owns the revisions."""

    __slots__ = ("acct", "create_rev", "mod_rev")
    TYPE: ClassVar[str] = ""  # TYPE's answer: "hash", "list", "set", "zset"

    def __init__(self) -> None:
        self.mod_rev = 0  # set by the keyspace when the value is stored or changed
        self.create_rev = 0
        self.acct: tuple[int, int] | None = None  # memory accounting's last measurement (eviction.py)

    def __len__(self) -> int:
        raise NotImplementedError

    def encoding(self) -> str:
        """OBJECT ENCODING's answer (Redis 7.0's names)."""
        raise NotImplementedError

    def dump(self) -> list[Any]:
        """The elements as a msgpack-able list, in the collection's own (deterministic) order."""
        raise NotImplementedError

    @classmethod
    def load(cls, payload: list[Any]) -> Self:
        """Rebuild from ``dump()``'s list (same order, same encoding)."""
        raise NotImplementedError

    def copy(self) -> Self:
        """A deep copy (COPY); revisions are assigned when the copy is stored."""
        raise NotImplementedError


class Keyspace(Protocol):
    """What a data-type command may use of the state machine."""

    scan_order: ScanOrder  # the node-local cache behind HSCAN/SSCAN/ZSCAN cursors

    @property
    def now_ms(self) -> int: ...

    def get_collection(self, key: bytes, cls: type[C]) -> C | None:
        """The live value at `key` if it is a `cls`, None if there is none; WRONGTYPE if
        the key holds another type. Never mutates."""

    def collection_for_write(self, key: bytes, cls: type[C]) -> C:
        """The live `cls` at `key`, or a new empty one that ``changed`` will store."""

    def changed(self, key: bytes, value: Collection) -> None:
        """Record a mutation of `value` (stored at `key`, or new): bumps the revision, stamps
        the value for WATCH, stores a new value, deletes an emptied one (Redis never keeps an
        empty collection). Call once per command that changed something, after the change."""

    def replace(self, key: bytes, value: Collection | None) -> None:
        """Put `value` at `key` whatever was there (the STORE forms): no expiry; None or an
        empty value deletes the key."""

    def delete(self, key: bytes) -> bool:
        """Delete a live key of any type; True if it existed."""

    def draw(self, bound: int) -> int:
        """A number in [0, bound): replicated randomness while applying a log entry, so every
        replica draws the same; node-local for plain reads (which no replica repeats)."""


class TypeCommand(NamedTuple):
    """One entry of a data type's command table (what the Redis command table needs)."""

    name: str
    arity: int  # Redis convention: n = exactly n words, -n = at least n
    write: bool
    handler: Handler
    summary: str
    flags: tuple[str, ...] = ()  # COMMAND flags beyond write/readonly (e.g. "fast")
    keys: tuple[int, int, int] = (1, 1, 1)  # first key, last key, step (COMMAND's layout)


class Rng:
    """SplitMix64: a tiny, well-known generator whose state is one 64-bit integer, so the
    state can be replicated (snapshots, digest) and every replica draws the same numbers,
    on any Python version (``random.Random`` promises no such thing across versions)."""

    __slots__ = ("state",)
    _MASK = (1 << 64) - 1

    def __init__(self, state: int = 0) -> None:
        self.state = state & self._MASK

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """Uniform enough in [0, bound) for bound << 2**64 (the modulo bias is < 2**-40)."""
        if bound <= 0:
            raise ValueError("bound must be positive")
        return self.next64() % bound


# --------------------------------------------------------------------------- arguments
def parse_count(arg: bytes, *, allow_negative: bool = False) -> int:
    """An integer argument (Redis's getLongFromObjectOrReply rules); 'value is out of range,
    must be positive' for a negative one unless `allow_negative`."""
    value = parse_int64(arg)
    if value < 0 and not allow_negative:
        raise CommandError("value is out of range, must be positive")
    return value


def ranged_int(arg: bytes, low: int, message: str) -> int:
    """Redis's getRangeLongFromObjectOrReply(low, LONG_MAX, message): one text for junk and
    for a value below `low`."""
    try:
        value = parse_int64(arg)
    except CommandError:
        raise CommandError(message) from None
    if value < low:
        raise CommandError(message)
    return value


def word(arg: bytes, words: dict[bytes, bool]) -> bool:
    """A keyword argument (LEFT|RIGHT, MIN|MAX, ...) looked up case-insensitively; syntax
    error otherwise."""
    found = words.get(arg.upper())
    if found is None:
        raise SyntaxError_()
    return found


LEFT_RIGHT = {b"LEFT": True, b"RIGHT": False}
MIN_MAX = {b"MIN": True, b"MAX": False}


def parse_mpop(args: Sequence[bytes], numkeys_at: int, directions: dict[bytes, bool]) -> tuple[list[bytes], bool, int]:
    """(keys, direction, count) of LMPOP/ZMPOP and their blocking forms: ``numkeys key [key
    ...] <direction> [COUNT count]`` from ``args[numkeys_at]``, checked in Redis's order."""
    numkeys = ranged_int(args[numkeys_at], 1, "numkeys should be greater than 0")
    where_at = numkeys_at + numkeys + 1
    if where_at >= len(args):
        raise SyntaxError_()
    direction = word(args[where_at], directions)
    count = -1
    i = where_at + 1
    while i < len(args):
        if count == -1 and args[i].upper() == b"COUNT" and i + 1 < len(args):
            count = ranged_int(args[i + 1], 1, "count should be greater than 0")
            i += 2
        else:
            raise SyntaxError_()
    return list(args[numkeys_at + 1 : where_at]), direction, max(count, 1)


# ------------------------------------------------------------------ SCAN over elements
def element_hash(member: bytes) -> int:
    """A member's place in SCAN order: 1..2**63, the same on every node and version."""
    return (int.from_bytes(hashlib.blake2b(member, digest_size=8).digest(), "big") >> 1) + 1


class ScanOrder:
    """HSCAN/SSCAN/ZSCAN cursors. The cursor is the hash of the next element to return, and
    elements come in hash order, so an element present for the whole scan is returned at
    least once however the collection changes meanwhile (Redis's guarantee), and a cursor
    taken on one node continues on another. Elements with equal hashes are never split
    across two calls. The sorted order is cached per collection revision (node-local,
    derived data: not replicated, not in snapshots)."""

    def __init__(self, max_cached: int = 16) -> None:
        self._cache: dict[int, tuple[Any, int, list[int], list[Any]]] = {}
        self._max = max_cached

    def page(self, value: Collection, members: Callable[[], Iterable[Any]], member_bytes: Callable[[Any], bytes],
             cursor: int, count: int) -> tuple[int, list[Any]]:
        """(next cursor or 0, up to about `count` elements from `cursor` on, in hash order)."""
        hashes, items = self._sorted(value, members, member_bytes)
        start = bisect_left(hashes, cursor)
        stop = min(len(items), start + max(1, count))
        while stop < len(items) and hashes[stop] == hashes[stop - 1]:
            stop += 1  # keep equal hashes together: the next cursor could not resume inside them
        return (hashes[stop] if stop < len(items) else 0), items[start:stop]

    def _sorted(self, value: Collection, members: Callable[[], Iterable[Any]],
                member_bytes: Callable[[Any], bytes]) -> tuple[list[int], list[Any]]:
        cached = self._cache.get(id(value))
        if cached is not None and cached[0] is value and cached[1] == value.mod_rev:
            return cached[2], cached[3]
        pairs = sorted(((element_hash(member_bytes(m)), m) for m in members()), key=lambda p: p[0])
        hashes, items = [h for h, _ in pairs], [m for _, m in pairs]
        if len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))
        self._cache[id(value)] = (value, value.mod_rev, hashes, items)
        return hashes, items


def parse_scan_args(args: Sequence[bytes], first_option: int) -> tuple[int, Callable[[bytes], bool] | None, int]:
    """(cursor, MATCH predicate or None, COUNT) of HSCAN/SSCAN/ZSCAN key cursor [...]."""
    cursor = parse_cursor(args[first_option - 1])
    match, count = None, 10
    i = first_option
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            raise SyntaxError_()
        if option == b"MATCH":
            pattern = args[i + 1]
            match = None if pattern == b"*" else compile_glob(pattern)
        elif option == b"COUNT":
            count = parse_int64(args[i + 1])
            if count < 1:
                raise SyntaxError_()
        else:
            raise SyntaxError_()
        i += 2
    return cursor, match, count


_CURSOR_RE = re.compile(rb"[+-]?[0-9]*\Z")


def parse_cursor(raw: bytes) -> int:
    """A SCAN cursor read as Redis reads it (strtoul): an optional sign, digits (none means
    0), a negative number wrapping around 2**64; anything else, or past 2**64, is refused."""
    if not _CURSOR_RE.match(raw):
        raise CommandError("invalid cursor")
    digits = raw.lstrip(b"+-")
    value = int(digits) if digits else 0
    if value >= 1 << 64:
        raise CommandError("invalid cursor")
    return (-value) % (1 << 64) if raw.startswith(b"-") else value


def scan_reply(cursor: int, elements: list[bytes]) -> list[Any]:
    return [b"%d" % cursor, elements]
