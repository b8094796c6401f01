"""Cache commands and the versioned msgpack codec of replicated batches.

Commands are immutable ``NamedTuple``s: they are slotted and frozen like a frozen dataclass,
but build about 5x faster and msgpack packs them natively as arrays, which matters because
every replica decodes every command. Writes travel through the Raft log; reads never do.

Wire format of one Raft entry (a *batch*, many client commands group-committed together)::

    [FORMAT_VERSION, time_ms, [[opcode, client_id, seq, ack, *fields], ...]]

``time_ms`` is the proposer's wall clock (the replicated clock advances to it), and
``client_id``/``seq``/``ack`` form the exactly-once session tag (``client_id`` is nil for
commands that are idempotent by construction, such as the expiry sweep).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from .errors import CommandError, command_error_from_code
from .resp import Double, ErrorReply, Map, NullArray, Pairs, SimpleString

FORMAT_VERSION = 1

# Conditions shared by SET (nx/xx) and EXPIRE (nx/xx/gt/lt).
COND_NONE = ""
COND_NX = "nx"
COND_XX = "xx"
COND_GT = "gt"
COND_LT = "lt"


# ---------------------------------------------------------------------------------- writes
class Set(NamedTuple):
    key: bytes
    value: bytes
    cond: str = COND_NONE  # "", "nx" or "xx"
    get: bool = False  # return the old value instead of OK / nil
    ttl_ms: int | None = None  # relative expiry, resolved against replicated time at apply
    at_ms: int | None = None  # absolute expiry (replicated-time ms)
    keepttl: bool = False


class Delete(NamedTuple):
    keys: tuple[bytes, ...]


class GetDel(NamedTuple):
    key: bytes


class MSet(NamedTuple):
    pairs: tuple[bytes, ...]  # k1, v1, k2, v2, ...


class IncrBy(NamedTuple):
    key: bytes
    delta: int


class Append(NamedTuple):
    key: bytes
    value: bytes


class Expire(NamedTuple):
    key: bytes
    when_ms: int  # relative ttl, or absolute time when `absolute`
    absolute: bool = False
    cond: str = COND_NONE  # "", "nx", "xx", "gt", "lt", or "xx"+"gt" / "xx"+"lt" combined


class Persist(NamedTuple):
    key: bytes


class Cas(NamedTuple):
    key: bytes
    expected: bytes
    new: bytes
    ttl_ms: int | None = None  # None keeps the key's current expiry


class FlushAll(NamedTuple):
    pass


class Sweep(NamedTuple):
    """Delete up to `limit` keys whose expiry has passed (proposed by the leader)."""

    limit: int


class SetMember(NamedTuple):
    """Record a cluster member's name and client address (the member registry)."""

    raft: str
    id: str
    client: str


class RemoveMember(NamedTuple):
    raft: str


class GetEx(NamedTuple):
    """GETEX: the value, and set or drop its expiry.

    The amount travels as the client's text because Redis judges it only when the key exists
    (GETEX of a missing key answers nil even for a malformed amount)."""

    key: bytes
    amount: bytes | None = None  # None: no expiry change (unless persist)
    unit_ms: int = 1000  # 1000 for EX/EXAT, 1 for PX/PXAT
    absolute: bool = False  # EXAT/PXAT
    persist: bool = False


class IncrByFloat(NamedTuple):
    """INCRBYFLOAT: the increment as text, computed as Redis's long double (redis_float)."""

    key: bytes
    increment: bytes


class SetRange(NamedTuple):
    key: bytes
    offset: int
    value: bytes


class MSetNx(NamedTuple):
    pairs: tuple[bytes, ...]  # k1, v1, k2, v2, ...


class Rename(NamedTuple):
    src: bytes
    dst: bytes
    nx: bool = False


class Copy(NamedTuple):
    src: bytes
    dst: bytes
    replace: bool = False


# ------------------------------------------------------------------------------ scripting
class Eval(NamedTuple):
    """EVAL / EVALSHA (``body`` None). The proposer stamps its budget and key/value limits
    into the command, so every replica runs the script under the same ones."""

    sha: str
    body: bytes | None
    keys: tuple[bytes, ...]
    args: tuple[bytes, ...]
    max_instructions: int
    max_key_bytes: int
    max_value_bytes: int
    acl: str | None = None  # the caller's ACL rules (acl.script_acl); None: unrestricted


class ScriptLoad(NamedTuple):
    body: bytes


class ScriptFlush(NamedTuple):
    pass


class EvalRo(NamedTuple):
    """EVAL_RO / EVALSHA_RO and ``#!lua flags=no-writes`` scripts: a read, no log entry."""

    sha: str
    body: bytes | None
    keys: tuple[bytes, ...]
    args: tuple[bytes, ...]
    max_instructions: int
    max_key_bytes: int
    max_value_bytes: int
    acl: str | None = None  # as Eval.acl


class ScriptExists(NamedTuple):
    shas: tuple[str, ...]


# ----------------------------------------------------------------------------------- reads
class Get(NamedTuple):
    key: bytes


class MGet(NamedTuple):
    keys: tuple[bytes, ...]


class Exists(NamedTuple):
    keys: tuple[bytes, ...]


class Strlen(NamedTuple):
    key: bytes


class Ttl(NamedTuple):
    key: bytes
    ms: bool = False  # PTTL


class Keys(NamedTuple):
    pattern: bytes = b"*"


class Scan(NamedTuple):
    cursor: int = 0
    match: bytes | None = None
    count: int = 10
    only_type: str | None = None  # SCAN ... TYPE t (lower-case)


class DbSize(NamedTuple):
    pass


class Type(NamedTuple):
    key: bytes


class GetRange(NamedTuple):
    key: bytes
    start: int
    end: int


class ObjectEncoding(NamedTuple):
    key: bytes


class WatchIndex(NamedTuple):
    """WATCH: the modification index of each key (see CacheStateMachine.watch_index)."""

    keys: tuple[bytes, ...]


class Barrier(NamedTuple):
    """A read that returns nothing: waits until this node has caught up linearizably."""


class Members(NamedTuple):
    """The member registry: {raft address: (id, client address)}."""


# --------------------------------------------------------------- hashes, lists, sets, zsets
class DataWrite(NamedTuple):
    """A data-type command (HSET, LPUSH, SADD, ZADD, ...) carried as its Redis arguments,
    name first and lower-cased: the state machine parses and applies it through the table in
    ``raftcache.datatypes``, so one opcode serves every command of those types."""

    args: tuple[bytes, ...]


class DataRead(NamedTuple):
    """The read-only counterpart of DataWrite (HGET, LRANGE, SMEMBERS, ZRANGE, ...)."""

    args: tuple[bytes, ...]


# --------------------------------------------------------------------------- maxmemory
class SetConfig(NamedTuple):
    """CONFIG SET of a replicated setting (maxmemory, maxmemory-policy, maxmemory-samples)."""

    name: str
    value: bytes


class Access(NamedTuple):
    """Keys reads touched on the node that proposes it (a bounded sample): LRU/LFU recency
    and frequency for reads, which never go through the log themselves."""

    keys: tuple[bytes, ...]


# ------------------------------------------------------------------------------ pub/sub
class Publish(NamedTuple):
    """PUBLISH / SPUBLISH through the log: the state machine keeps nothing but hands the
    message to the change feed, so every node delivers it to its subscribers in log order."""

    channel: bytes
    message: bytes
    shard: bool = False


# ------------------------------------------------------------------------ transactions
class Exec(NamedTuple):
    """MULTI/EXEC: `ops` (data commands, reads included) applied as one unit, in order, with
    no other command in between; aborted (result None) if a watched key's modification
    index is no longer the one in `watches` ((key, index) pairs read by WatchIndex)."""

    ops: tuple[Any, ...]
    watches: tuple[tuple[bytes, int], ...] = ()


WriteCommand = (
    Set | Delete | GetDel | MSet | IncrBy | Append | Expire | Persist | Cas | FlushAll | Sweep | SetMember | RemoveMember
    | GetEx | IncrByFloat | SetRange | MSetNx | Rename | Copy | Exec | Eval | ScriptLoad | ScriptFlush | DataWrite
    | SetConfig | Access | Publish
)
ReadCommand = (
    Get | MGet | Exists | Strlen | Ttl | Keys | Scan | DbSize | Type | Barrier | Members | GetRange | ObjectEncoding
    | WatchIndex | EvalRo | ScriptExists | DataRead
)

# Opcodes are part of the on-disk and on-wire format: never renumber, only append.
_OPCODES: dict[type, int] = {
    Set: 1,
    Delete: 2,
    GetDel: 3,
    MSet: 4,
    IncrBy: 5,
    Append: 6,
    Expire: 7,
    Persist: 8,
    Cas: 9,
    FlushAll: 10,
    Sweep: 11,
    SetMember: 12,
    RemoveMember: 13,
    GetEx: 14,
    IncrByFloat: 15,
    SetRange: 16,
    MSetNx: 17,
    Rename: 18,
    Copy: 19,
    Exec: 20,  # fields: [[opcode, *fields] per op], [[key, index], ...]
    # scripting (numbered apart from MULTI/EXEC's, which were added in parallel)
    Eval: 40,
    ScriptLoad: 41,
    ScriptFlush: 42,
    DataWrite: 50,  # fields: [args] (hashes, lists, sets, sorted sets)
    SetConfig: 51,
    Access: 52,
    Publish: 53,  # fields: channel, message, shard
}
_BY_OPCODE: dict[int, type] = {op: cls for cls, op in _OPCODES.items()}
WRITE_TYPES = frozenset(_OPCODES)
READ_TYPES = frozenset(
    {Get, MGet, Exists, Strlen, Ttl, Keys, Scan, DbSize, Type, Barrier, Members, GetRange, ObjectEncoding, WatchIndex,
     EvalRo, ScriptExists, DataRead}
)

# Reads travel in the log only inside an Exec. Their own opcode range (never renumber).
_READ_OPCODES: dict[type, int] = {
    Get: 101,
    MGet: 102,
    Exists: 103,
    Strlen: 104,
    Ttl: 105,
    Keys: 106,
    Scan: 107,
    DbSize: 108,
    Type: 109,
    GetRange: 110,
    ObjectEncoding: 111,
    EvalRo: 112,
    ScriptExists: 113,
    DataRead: 150,
}
_EXEC_OPCODES: dict[type, int] = {cls: op for cls, op in _OPCODES.items() if cls is not Exec} | _READ_OPCODES
_EXEC_BY_OPCODE: dict[int, type] = {op: cls for cls, op in _EXEC_OPCODES.items()}
EXEC_OP_TYPES = frozenset(_EXEC_OPCODES) - {Sweep, SetMember, RemoveMember, SetConfig, Access}  # what a client may queue


def _exec_fields(command: Exec) -> tuple[Any, ...]:
    return ([(_EXEC_OPCODES[type(op)], *op) for op in command.ops], [tuple(w) for w in command.watches])


def _exec_from_fields(ops: Any, watches: Any) -> Exec:
    decoded = []
    for row in ops:
        cls = _EXEC_BY_OPCODE.get(row[0])
        if cls is None:
            raise MalformedBatch(f"unknown opcode {row[0]!r} inside EXEC")
        decoded.append(cls(*row[1:]))
    return Exec(tuple(decoded), tuple((key, index) for key, index in watches))


def is_write(command: object) -> bool:
    return type(command) in WRITE_TYPES


class SessionTag(NamedTuple):
    """Exactly-once tag: `seq` is unique per client; all seqs below `ack` were answered."""

    client_id: int
    seq: int
    ack: int


class Batch(NamedTuple):
    time_ms: int
    commands: list[tuple[SessionTag | None, Any]]


class MalformedBatch(ValueError):
    """A log entry that is not a batch we understand (corrupt or from a newer version)."""


def size_hint(command: tuple) -> int:
    """Rough encoded size of a command, for batch sizing (no encoding needed)."""
    size = 16
    if type(command) is Exec:
        return size + sum(size_hint(op) for op in command.ops) + sum(len(k) + 14 for k, _ in command.watches)
    for field in command:
        if isinstance(field, (bytes, str)):
            size += len(field) + 5
        elif isinstance(field, tuple):
            size += sum(len(item) + 5 for item in field)
        else:
            size += 9
    return size


def encode_batch(time_ms: int, commands: list[tuple[SessionTag | None, tuple]]) -> bytes:
    rows = []
    for tag, command in commands:
        fields = _exec_fields(command) if type(command) is Exec else command
        if tag is None:
            rows.append((_OPCODES[type(command)], None, 0, 0, *fields))
        else:
            rows.append((_OPCODES[type(command)], tag[0], tag[1], tag[2], *fields))
    return msgpack.packb((FORMAT_VERSION, time_ms, rows), use_bin_type=True)


def decode_batch(payload: bytes) -> Batch:
    try:
        version, time_ms, rows = msgpack.unpackb(payload, raw=False, use_list=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedBatch(f"undecodable batch: {exc}") from None
    if version != FORMAT_VERSION:
        raise MalformedBatch(f"batch format version {version!r}; this node understands {FORMAT_VERSION}")
    commands: list[tuple[SessionTag | None, Any]] = []
    for row in rows:
        cls = _BY_OPCODE.get(row[0])
        if cls is None:
            raise MalformedBatch(f"unknown opcode {row[0]!r}")
        tag = None if row[1] is None else SessionTag(row[1], row[2], row[3])
        commands.append((tag, _exec_from_fields(*row[4:]) if cls is Exec else cls(*row[4:])))
    return Batch(time_ms, commands)


# ----------------------------------------------------------------- results in snapshots
# Write results are stored in the session table (and so in snapshots): plain msgpack values,
# plus CommandError as an ext type.
_EXT_COMMAND_ERROR = 1
# A script's reply is a tree that may hold status and error replies (EVAL's results).
_EXT_SIMPLE_STRING = 2
_EXT_ERROR_REPLY = 3
# A map reply (HGETALL, a script's {map=...}) must stay a map, not become a plain dict.
_EXT_MAP = 4
_EXT_NULL_ARRAY = 5  # LPOP key count / LMPOP on nothing: a nil array, not nil
_EXT_DOUBLE = 6  # a score (RESP3 double)
_EXT_PAIRS = 7  # a WITHSCORES list (RESP3 nested pairs)


def _pack_default(obj: object) -> object:
    if isinstance(obj, CommandError):
        return msgpack.ExtType(_EXT_COMMAND_ERROR, msgpack.packb((obj.code, obj.message)))
    if isinstance(obj, ErrorReply):
        return msgpack.ExtType(_EXT_ERROR_REPLY, obj.text.encode())
    if obj is NullArray:
        return msgpack.ExtType(_EXT_NULL_ARRAY, b"")
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_COMMAND_ERROR:
        err_code, message = msgpack.unpackb(data, raw=False)
        return command_error_from_code(err_code, message)
    if code == _EXT_SIMPLE_STRING:
        return SimpleString(data.decode())
    if code == _EXT_ERROR_REPLY:
        return ErrorReply(data.decode())
    if code == _EXT_MAP:
        flat = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, use_list=True, strict_map_key=False)
        return Map(zip(flat[0::2], flat[1::2]))
    if code == _EXT_NULL_ARRAY:
        return NullArray
    if code == _EXT_DOUBLE:
        return Double(data)
    if code == _EXT_PAIRS:
        return Pairs(msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, use_list=True, strict_map_key=False))
    return msgpack.ExtType(code, data)


def tag_simple_strings(obj: Any) -> Any:
    """SimpleString is a str subclass msgpack would flatten to str: tag it (recursively)."""
    if type(obj) is SimpleString:
        return msgpack.ExtType(_EXT_SIMPLE_STRING, obj.encode())
    if type(obj) is Double:
        return msgpack.ExtType(_EXT_DOUBLE, bytes(obj))
    if type(obj) is Pairs:
        flat = [tag_simple_strings(item) for item in obj]
        return msgpack.ExtType(_EXT_PAIRS, msgpack.packb(flat, default=_pack_default, use_bin_type=True))
    if isinstance(obj, list):
        return [tag_simple_strings(item) for item in obj]
    if type(obj) is Map:  # (keys may be any reply: kept as a flat list of pairs)
        flat = [tag_simple_strings(part) for pair in obj.items() for part in pair]
        return msgpack.ExtType(_EXT_MAP, msgpack.packb(flat, default=_pack_default, use_bin_type=True))
    return obj


def packer() -> msgpack.Packer:
    """A packer for state (snapshots, backups) that understands stored results."""
    return msgpack.Packer(default=_pack_default, use_bin_type=True)


def unpacker(file_like: Any = None, **kwargs: Any) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        file_like, ext_hook=_ext_hook, raw=False, use_list=True, strict_map_key=False, **kwargs
    )
