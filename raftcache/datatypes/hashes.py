"""Hashes: the ``Hash`` value and the HSET ... HSCAN command table.

A hash is one insertion-ordered dict field -> value. Redis keeps a small hash as a listpack,
which is insertion-ordered too (an overwritten field keeps its place, a deleted one is gone,
a re-added one goes last), so HGETALL/HKEYS/HVALS/HSCAN of a small hash answer in exactly
Redis's order. Redis converts a hash to a hashtable, for good, when it grows past
``MAX_LISTPACK_ENTRIES`` fields or is given a field or value longer than
``MAX_LISTPACK_VALUE`` bytes; ``Hash.table`` records that conversion (OBJECT ENCODING, and
HSCAN's paging) and survives snapshots, COPY and RENAME, because Redis never converts back.

The conversion points are Redis 7.0.15's: HSET/HMSET look at every argument before setting
(hashTypeTryConversion); HSETNX only when it will set; HINCRBY/HINCRBYFLOAT look at the field
and the new value (hashTypeSet); the entry count is checked after each set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import islice
from typing import Any

from .. import redis_float
from ..errors import CommandError, IntegerOverflowError, NotIntegerError, SyntaxError_
from ..redis_semantics import INT64_MAX, INT64_MIN, parse_int64
from ..resp import OK, Map, Pairs
from .base import Collection, Handler, Keyspace, TypeCommand, parse_scan_args, scan_reply

__all__ = ["COLLECTIONS", "COMMANDS", "MAX_LISTPACK_ENTRIES", "MAX_LISTPACK_VALUE", "MAX_RANDOM_REPLY", "Hash"]

# Redis 7.0's defaults: hash-max-listpack-entries is 512 in both config.c and the shipped
# redis.conf (128 is the sorted sets' default), hash-max-listpack-value 64.
MAX_LISTPACK_ENTRIES = 512
MAX_LISTPACK_VALUE = 64

# HRANDFIELD with a negative count repeats fields, so its reply is as long as the caller
# asks. Redis would try to build any length (and dies of it near 2**62); we refuse replies
# of more elements than this, with the error Redis gives for its own range limit.
MAX_RANDOM_REPLY = 1 << 24

# HRANDFIELD's count range (getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)), and with
# WITHVALUES +-LONG_MAX/2 (C's division truncates towards zero).
_COUNT_RANGE_ERROR = f"value is out of range, value must between {-INT64_MAX} and {INT64_MAX}"
_WITHVALUES_LIMIT = INT64_MAX // 2


class Hash(Collection):
    """A hash: ``fields`` maps field -> value in insertion order; ``table`` is True once
    Redis would have converted it from listpack to hashtable."""

    __slots__ = ("fields", "table")
    TYPE = "hash"

    def __init__(self, fields: dict[bytes, bytes] | None = None, table: bool = False) -> None:
        super().__init__()
        self.fields: dict[bytes, bytes] = {} if fields is None else fields
        self.table = table

    def __len__(self) -> int:
        return len(self.fields)

    def encoding(self) -> str:
        return "hashtable" if self.table else "listpack"

    def dump(self) -> list[Any]:
        """[table flag, field, value, field, value, ...]: flat, in insertion order."""
        out: list[Any] = [1 if self.table else 0]
        for pair in self.fields.items():
            out += pair
        return out

    @classmethod
    def load(cls, payload: list[Any]) -> Hash:
        items = iter(payload)
        table = bool(next(items))
        return cls(dict(zip(items, items)), table)

    def copy(self) -> Hash:
        return Hash(dict(self.fields), self.table)

    # -- Redis's listpack -> hashtable conversion
    def convert_for(self, strings: Sequence[bytes]) -> None:
        """Become a hashtable if any of `strings` is too long for a listpack entry."""
        if not self.table and any(len(s) > MAX_LISTPACK_VALUE for s in strings):
            self.table = True

    def set(self, field: bytes, value: bytes) -> bool:
        """Set one field (True if it is new), then convert if the hash grew too long."""
        fields = self.fields
        new = field not in fields
        fields[field] = value
        if new and not self.table and len(fields) > MAX_LISTPACK_ENTRIES:
            self.table = True
        return new


# --------------------------------------------------------------------------- helpers
def _read(ks: Keyspace, key: bytes) -> dict[bytes, bytes]:
    """The fields of the hash at `key` ({} if none); WRONGTYPE for another type."""
    found = ks.get_collection(key, Hash)
    return {} if found is None else found.fields


def _pairs(fields: dict[bytes, bytes], items: Any = None) -> list[bytes]:
    """A flat [field, value, ...] list (RESP2's shape of HGETALL, HSCAN, WITHVALUES)."""
    out: list[bytes] = []
    for pair in fields.items() if items is None else items:
        out += pair
    return out


# ------------------------------------------------------------------------- the writes
def hset(ks: Keyspace, args: Sequence[bytes]) -> int:
    """HSET key field value [field value ...]: how many fields were new."""
    if len(args) % 2:
        raise CommandError(f"wrong number of arguments for '{args[0].decode()}' command")
    h = ks.collection_for_write(args[1], Hash)
    h.convert_for(args[2:])
    added = 0
    for i in range(2, len(args), 2):
        added += h.set(args[i], args[i + 1])
    ks.changed(args[1], h)  # Redis signals the key even if every value was already there
    return added


def hmset(ks: Keyspace, args: Sequence[bytes]) -> Any:
    hset(ks, args)
    return OK


def hsetnx(ks: Keyspace, args: Sequence[bytes]) -> int:
    _, key, field, value = args
    h = ks.collection_for_write(key, Hash)
    if field in h.fields:
        return 0
    h.convert_for((field, value))
    h.set(field, value)
    ks.changed(key, h)
    return 1


def hdel(ks: Keyspace, args: Sequence[bytes]) -> int:
    h = ks.get_collection(args[1], Hash)
    if h is None:
        return 0
    fields = h.fields
    deleted = 0
    for field in args[2:]:
        if fields.pop(field, None) is not None:
            deleted += 1
    if deleted:
        ks.changed(args[1], h)  # deletes the key if it is now empty
    return deleted


def _set_computed(ks: Keyspace, key: bytes, h: Hash, field: bytes, value: bytes) -> None:
    """Store a value HINCRBY/HINCRBYFLOAT computed (hashTypeSet checks both lengths)."""
    h.convert_for((field, value))
    h.set(field, value)
    ks.changed(key, h)


def hincrby(ks: Keyspace, args: Sequence[bytes]) -> int:
    _, key, field, raw = args
    incr = parse_int64(raw)
    h = ks.collection_for_write(key, Hash)
    current = h.fields.get(field)
    value = 0
    if current is not None:
        try:
            value = parse_int64(current)
        except NotIntegerError:
            raise CommandError("hash value is not an integer") from None
    total = value + incr
    if total > INT64_MAX or total < INT64_MIN:
        raise IntegerOverflowError()
    _set_computed(ks, key, h, field, b"%d" % total)
    return total


def hincrbyfloat(ks: Keyspace, args: Sequence[bytes]) -> bytes:
    """As Redis: long double arithmetic, the result written as %.17Lf with zeros trimmed."""
    _, key, field, raw = args
    incr = redis_float.parse(raw)
    if incr is None:
        raise CommandError("value is not a valid float")
    if isinstance(incr, float):  # +-inf (parse refuses nan)
        raise CommandError("value is NaN or Infinity")
    h = ks.collection_for_write(key, Hash)
    current = h.fields.get(field)
    value: redis_float.Number | None = Fraction(0)
    if current is not None:
        value = redis_float.parse(current)
        if value is None:
            raise CommandError("hash value is not a float")
    total = redis_float.add(value, incr)
    if total is None or isinstance(total, float):
        raise CommandError("increment would produce NaN or Infinity")
    text = redis_float.format_human(total)
    _set_computed(ks, key, h, field, text)
    return text


# -------------------------------------------------------------------------- the reads
def hget(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    return _read(ks, args[1]).get(args[2])


def hmget(ks: Keyspace, args: Sequence[bytes]) -> list[bytes | None]:
    get = _read(ks, args[1]).get
    return [get(field) for field in args[2:]]


def hgetall(ks: Keyspace, args: Sequence[bytes]) -> Map:
    """A map (RESP3 ``%``; RESP2 and Lua see the flat field, value, ... array)."""
    return Map(_read(ks, args[1]))


def hkeys(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return list(_read(ks, args[1]))


def hvals(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return list(_read(ks, args[1]).values())


def hlen(ks: Keyspace, args: Sequence[bytes]) -> int:
    return len(_read(ks, args[1]))


def hexists(ks: Keyspace, args: Sequence[bytes]) -> int:
    return 1 if args[2] in _read(ks, args[1]) else 0


def hstrlen(ks: Keyspace, args: Sequence[bytes]) -> int:
    return len(_read(ks, args[1]).get(args[2], b""))


def hscan(ks: Keyspace, args: Sequence[bytes]) -> list[Any]:
    """HSCAN key cursor [MATCH pattern] [COUNT count]. A listpack hash comes whole, with
    cursor 0, whatever the cursor and COUNT (as Redis); a hashtable pages in ScanOrder."""
    cursor, _, _ = parse_scan_args(args[:3], 3)  # Redis checks the cursor before the type
    h = ks.get_collection(args[1], Hash)
    if h is None:
        return scan_reply(0, [])  # ... and answers a missing key before reading the options
    cursor, match, count = parse_scan_args(args, 3)
    fields = h.fields
    if h.table:
        cursor, page = ks.scan_order.page(h, lambda: list(fields), _identity, cursor, count)
    else:
        cursor, page = 0, list(fields)
    if match is not None:
        page = [f for f in page if match(f)]
    return scan_reply(cursor, _pairs(fields, ((f, fields[f]) for f in page)))


def _identity(member: bytes) -> bytes:
    return member


def hrandfield(ks: Keyspace, args: Sequence[bytes]) -> Any:
    """HRANDFIELD key [count [WITHVALUES]], drawing through ``ks.draw`` (replicated inside
    MULTI and scripts). A positive count gives distinct fields, a negative one may repeat."""
    if len(args) == 2:
        fields = _read(ks, args[1])
        if not fields:
            return None
        return _nth(fields, ks.draw(len(fields)))
    count = parse_int64(args[2])
    if count < -INT64_MAX:
        raise CommandError(_COUNT_RANGE_ERROR)
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withvalues"):
        raise SyntaxError_()
    withvalues = len(args) == 4
    if withvalues and not -_WITHVALUES_LIMIT <= count <= _WITHVALUES_LIMIT:
        raise CommandError("value is out of range")
    fields = _read(ks, args[1])
    if count == 0 or not fields:
        return []
    if count < 0:
        picks = _with_repeats(ks, fields, -count, withvalues)
    else:
        picks = _distinct(ks, fields, count)
    if not withvalues:
        return picks
    return Pairs(_pairs(fields, ((f, fields[f]) for f in picks)))  # nested pairs in RESP3


def _nth(fields: dict[bytes, bytes], index: int) -> bytes:
    return next(islice(fields, index, None))


def _with_repeats(ks: Keyspace, fields: dict[bytes, bytes], count: int, withvalues: bool) -> list[bytes]:
    if count * (2 if withvalues else 1) > MAX_RANDOM_REPLY:
        raise CommandError("value is out of range")
    names = list(fields)
    size = len(names)
    return [names[ks.draw(size)] for _ in range(count)]


def _distinct(ks: Keyspace, fields: dict[bytes, bytes], count: int) -> list[bytes]:
    """`count` distinct fields, uniformly: a partial Fisher-Yates shuffle (O(count) draws)."""
    names = list(fields)
    size = len(names)
    if count >= size:
        return names  # the whole hash, in its order
    for i in range(count):
        j = i + ks.draw(size - i)
        names[i], names[j] = names[j], names[i]
    del names[count:]
    return names


# ------------------------------------------------------------------ the command table
def _exact_arity(name: str, arity: int, handler: Handler) -> Handler:
    """The handler behind an arity check: the state machine also gets commands built by the
    Python API, which no server arity check has seen, and a handler must not index past
    its arguments."""
    message = f"wrong number of arguments for '{name}' command"

    def checked(ks: Keyspace, args: Sequence[bytes]) -> Any:
        if not (len(args) == arity if arity >= 0 else len(args) >= -arity):
            raise CommandError(message)
        return handler(ks, args)

    checked.__name__ = checked.__qualname__ = handler.__name__
    checked.__doc__ = handler.__doc__
    return checked


def _command(name: str, arity: int, handler: Callable[[Keyspace, Sequence[bytes]], Any], summary: str,
             *, write: bool = False, fast: bool = True) -> TypeCommand:
    return TypeCommand(name, arity, write, _exact_arity(name, arity, handler), summary, ("fast",) if fast else ())


COLLECTIONS: list[type[Collection]] = [Hash]
COMMANDS: list[TypeCommand] = [
    _command("hset", -4, hset, "Set fields of a hash; returns how many were new", write=True),
    _command("hmset", -4, hmset, "Set fields of a hash (old form of HSET); returns OK", write=True),
    _command("hsetnx", 4, hsetnx, "Set a field of a hash only if it does not exist", write=True),
    _command("hdel", -3, hdel, "Delete fields of a hash", write=True),
    _command("hincrby", 4, hincrby, "Add an integer to a field of a hash", write=True),
    _command("hincrbyfloat", 4, hincrbyfloat, "Add a float to a field of a hash", write=True),
    _command("hget", 3, hget, "The value of a field of a hash"),
    _command("hmget", -3, hmget, "The values of fields of a hash"),
    _command("hgetall", 2, hgetall, "Every field and value of a hash", fast=False),
    _command("hkeys", 2, hkeys, "Every field of a hash", fast=False),
    _command("hvals", 2, hvals, "Every value of a hash", fast=False),
    _command("hlen", 2, hlen, "The number of fields of a hash"),
    _command("hexists", 3, hexists, "Whether a field exists in a hash"),
    _command("hstrlen", 3, hstrlen, "The length of the value of a field of a hash"),
    _command("hrandfield", -2, hrandfield, "Random fields of a hash (count, WITHVALUES)", fast=False),
    _command("hscan", -3, hscan, "Iterate over the fields of a hash (MATCH, COUNT)", fast=False),
]
