"""The Redis command table: name -> arity, flags, argument parser and reply renderer.

Sans-I/O: turns a request (``[b"SET", b"k", b"v", b"EX", b"10"]``) into one of our command
tuples, and a state-machine result into a RESP reply value, with Redis's exact error strings.
Commands answered by the connection itself (PING, INFO, AUTH, ...) are listed here too, so
that COMMAND / COMMAND COUNT / COMMAND DOCS describe the whole server from one table; their
behaviour lives in ``server.py``. A builder may also return an ``Immediate`` reply, for
commands that need neither the state nor the connection (TIME, OBJECT HELP).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import commands as c
from . import datatypes, redis_float
from .errors import (
    CommandError,
    InvalidExpireError,
    NoScriptError,
    NotIntegerError,
    ScriptError,
    SyntaxError_,
    ValueTooLargeError,
)
from .redis_semantics import INT64_MAX, INT64_MIN, parse_int64
from .resp import OK, Map, SimpleString
from .script_shebang import DEFAULT_SCRIPT_MAX_INSTRUCTIONS, is_no_writes, sha1hex
from .statemachine import MAX_STRING_BYTES


class Kind(enum.Enum):
    WRITE = "write"  # replicated through Raft
    READ = "read"  # linearizable (or stale under READONLY)
    LOCAL = "local"  # answered by the connection / node (server.py)


@dataclass(frozen=True, slots=True)
class Limits:
    max_key_bytes: int = 64 * 1024
    max_value_bytes: int = 1 << 20
    script_max_instructions: int = DEFAULT_SCRIPT_MAX_INSTRUCTIONS


Build = Callable[[list[bytes], Limits], Any]
Render = Callable[[Any], Any]


class Immediate(NamedTuple):
    """What a builder returns for a reply computed from the arguments alone (TIME, OBJECT
    HELP): the server answers it at once, no replica involved."""

    reply: Any


def _identity(result: Any) -> Any:
    return result


def _ok(result: Any) -> Any:
    return OK


def _as_int(result: Any) -> Any:
    return int(result)


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    arity: int  # Redis convention: n = exactly n words (name included), -n = at least n
    kind: Kind
    group: str
    summary: str
    build: Build | None = None
    render: Render = _identity
    flags: tuple[str, ...] = ()  # COMMAND flags, Redis's names ("write", "readonly", "fast", "no_auth", ...)
    first_key: int = 0
    last_key: int = 0
    step: int = 0

    def arity_ok(self, argc: int) -> bool:
        return argc == self.arity if self.arity >= 0 else argc >= -self.arity


# ------------------------------------------------------------------------ argument helpers
def _int(arg: bytes) -> int:
    return parse_int64(arg)


def _key(arg: bytes, limits: Limits) -> bytes:
    if len(arg) > limits.max_key_bytes:
        raise ValueTooLargeError(f"key of {len(arg)} bytes exceeds limits.max_key_bytes ({limits.max_key_bytes})")
    return arg


def _value(arg: bytes, limits: Limits) -> bytes:
    if len(arg) > limits.max_value_bytes:
        raise ValueTooLargeError(
            f"string exceeds maximum allowed size ({len(arg)} bytes > limits.max_value_bytes {limits.max_value_bytes})"
        )
    return arg


def _seconds_to_ms(seconds: int, command: str) -> int:
    ms = seconds * 1000
    if ms > INT64_MAX or ms < INT64_MIN:
        raise InvalidExpireError(f"invalid expire time in '{command}' command")
    return ms


# ----------------------------------------------------------------------------- builders
_SET_EXPIRY = {b"EX": (1000, False), b"PX": (1, False), b"EXAT": (1000, True), b"PXAT": (1, True)}


def _build_set(args: list[bytes], limits: Limits) -> c.Set:
    key, value = _key(args[1], limits), _value(args[2], limits)
    cond, get, keepttl = c.COND_NONE, False, False
    expiry: bytes | None = None  # EX/PX/EXAT/PXAT: one of them, which may repeat (the last wins)
    amount_arg = b""
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option == b"NX" and cond != c.COND_XX:
            cond = c.COND_NX
        elif option == b"XX" and cond != c.COND_NX:
            cond = c.COND_XX
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and expiry is None:
            keepttl = True
        elif option in _SET_EXPIRY and not keepttl and expiry in (None, option) and i + 1 < len(args):
            expiry, amount_arg = option, args[i + 1]
            i += 1
        else:
            raise SyntaxError_()
        i += 1
    ttl_ms = at_ms = None
    if expiry is not None:  # Redis judges the amount only once the syntax is known good
        unit, absolute = _SET_EXPIRY[expiry]
        amount = _int(amount_arg)
        if amount <= 0:
            raise InvalidExpireError("invalid expire time in 'set' command")
        ms = _seconds_to_ms(amount, "set") if unit == 1000 else amount
        if absolute:
            at_ms = ms
        else:
            ttl_ms = ms
    return c.Set(key, value, cond, get, ttl_ms, at_ms, keepttl)


def _render_set(result: Any) -> Any:
    if result is True:
        return OK
    if result is False:
        return None
    return result  # SET ... GET: the old value


def _build_expire(unit: int, absolute: bool, name: str) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.Expire:
        key = _key(args[1], limits)
        amount = _int(args[2])
        flags = set()
        for option in args[3:]:
            word = option.upper()
            if word not in (b"NX", b"XX", b"GT", b"LT"):
                raise CommandError(f"Unsupported option {option.decode('utf-8', 'replace')}")
            flags.add(word.decode().lower())
        if c.COND_NX in flags and len(flags) > 1:
            raise CommandError("NX and XX, GT or LT options at the same time are not compatible")
        if {c.COND_GT, c.COND_LT} <= flags:
            raise CommandError("GT and LT options at the same time are not compatible")
        when = _seconds_to_ms(amount, name) if unit == 1000 else amount
        return c.Expire(key, when, absolute, "".join(sorted(flags)))

    return build


def _build_incr(sign: int, with_amount: bool, name: str) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.IncrBy:
        amount = _int(args[2]) if with_amount else 1
        if sign < 0:
            if amount == INT64_MIN:
                raise CommandError("decrement would overflow")
            amount = -amount
        return c.IncrBy(_key(args[1], limits), amount)

    return build


def _build_mset(args: list[bytes], limits: Limits) -> c.MSet:
    if len(args) % 2 == 0:
        raise CommandError("wrong number of arguments for 'mset' command")
    pairs = []
    for i in range(1, len(args), 2):
        pairs += (_key(args[i], limits), _value(args[i + 1], limits))
    return c.MSet(tuple(pairs))


def _build_cas(args: list[bytes], limits: Limits) -> c.Cas:
    ttl_ms = None
    rest = args[4:]
    if rest:
        if len(rest) != 2 or rest[0].upper() not in (b"EX", b"PX"):
            raise SyntaxError_()
        amount = _int(rest[1])
        if amount <= 0:
            raise InvalidExpireError("invalid expire time in 'cas' command")
        ttl_ms = _seconds_to_ms(amount, "cas") if rest[0].upper() == b"EX" else amount
    return c.Cas(_key(args[1], limits), _value(args[2], limits), _value(args[3], limits), ttl_ms)


def _build_setnx(args: list[bytes], limits: Limits) -> c.Set:
    return c.Set(_key(args[1], limits), _value(args[2], limits), c.COND_NX)


def _build_setex(unit_ms: int, name: str) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.Set:
        amount = _int(args[2])
        # Redis also refuses a TTL that overflows when added to the clock; judged here against
        # this node's clock (the state machine re-checks against replicated time, as 'set').
        if amount <= 0 or amount > INT64_MAX // unit_ms or amount * unit_ms > INT64_MAX - time.time_ns() // 1_000_000:
            raise InvalidExpireError(f"invalid expire time in '{name}' command")
        return c.Set(_key(args[1], limits), _value(args[3], limits), ttl_ms=amount * unit_ms)

    return build


def _build_getset(args: list[bytes], limits: Limits) -> c.Set:
    return c.Set(_key(args[1], limits), _value(args[2], limits), get=True)


# GETEX's expiry options: word -> (unit in ms, absolute). Redis lets an option repeat (the
# last amount wins) but never combine with another one.
_GETEX_EXPIRY = {b"EX": (1000, False), b"PX": (1, False), b"EXAT": (1000, True), b"PXAT": (1, True)}


def _build_getex(args: list[bytes], limits: Limits) -> c.GetEx:
    key = _key(args[1], limits)
    chosen: bytes | None = None
    amount: bytes | None = None
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"PERSIST" and chosen in (None, b"PERSIST"):
            chosen = option
        elif option in _GETEX_EXPIRY and chosen in (None, option) and i + 1 < len(args):
            chosen, amount = option, args[i + 1]
            i += 1
        else:
            raise SyntaxError_()
        i += 1
    if chosen is None or chosen == b"PERSIST":
        return c.GetEx(key, persist=chosen is not None)
    unit_ms, absolute = _GETEX_EXPIRY[chosen]
    return c.GetEx(key, amount, unit_ms, absolute)  # the amount is judged at apply, after the lookup


def _build_incrbyfloat(args: list[bytes], limits: Limits) -> c.IncrByFloat:
    if redis_float.parse(args[2]) is None:  # same answer Redis gives, without a round through the log
        raise CommandError("value is not a valid float")
    return c.IncrByFloat(_key(args[1], limits), args[2])


def _build_getrange(args: list[bytes], limits: Limits) -> c.GetRange:
    return c.GetRange(_key(args[1], limits), _int(args[2]), _int(args[3]))


def _build_setrange(args: list[bytes], limits: Limits) -> c.SetRange:
    offset = _int(args[2])
    if offset < 0:
        raise CommandError("offset is out of range")
    value = _value(args[3], limits)
    end = offset + len(value)
    if value and end > MAX_STRING_BYTES:  # an empty value writes nothing, so passes
        raise ValueTooLargeError("string exceeds maximum allowed size (proto-max-bulk-len)")
    if value and end > limits.max_value_bytes:
        raise ValueTooLargeError(
            f"string exceeds maximum allowed size ({offset + len(value)} bytes > limits.max_value_bytes "
            f"{limits.max_value_bytes})"
        )
    return c.SetRange(_key(args[1], limits), offset, value)


def _build_msetnx(args: list[bytes], limits: Limits) -> c.MSetNx:
    if len(args) % 2 == 0:
        raise CommandError("wrong number of arguments for 'msetnx' command")
    return c.MSetNx(_build_mset(args, limits).pairs)


def _build_rename(nx: bool) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.Rename:
        return c.Rename(_key(args[1], limits), _key(args[2], limits), nx)

    return build


def _build_copy(args: list[bytes], limits: Limits) -> c.Copy:
    replace = False
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option == b"REPLACE":
            replace = True
        elif option == b"DB" and i + 1 < len(args):
            db = _int(args[i + 1])
            if not -(2**31) <= db < 2**31:  # Redis reads DB as a C int
                raise CommandError(f"value is out of range, value must between {-(2**31)} and {2**31 - 1}")
            if db != 0:
                raise CommandError("DB index is out of range")  # database 0 is the only one
            i += 1
        else:
            raise SyntaxError_()
        i += 1
    return c.Copy(_key(args[1], limits), _key(args[2], limits), replace)


def _build_time(args: list[bytes], limits: Limits) -> Immediate:
    # The node's wall clock, as Redis answers TIME: a reading, not replicated state.
    now_us = time.time_ns() // 1000
    return Immediate([b"%d" % (now_us // 1_000_000), b"%d" % (now_us % 1_000_000)])


_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "HELP",
    "    Prints this help.",
]

# OBJECT's subcommands: word -> (arity, builder). FREQ, IDLETIME and REFCOUNT are left out:
# raftcache tracks no access times or reference counts, so any answer would be invented.
_OBJECT_SUBCOMMANDS: dict[bytes, tuple[int, Build]] = {
    b"ENCODING": (3, lambda a, l: c.ObjectEncoding(_key(a[2], l))),
    b"HELP": (2, lambda a, l: Immediate([SimpleString(line) for line in _OBJECT_HELP])),
}


def _object_subcommand(args: list[bytes]) -> Build:
    """OBJECT's subcommand checked as Redis checks a container command's (also when it is
    queued in MULTI): unknown subcommand, then its arity."""
    sub = args[1].upper()
    entry = _OBJECT_SUBCOMMANDS.get(sub)
    if entry is None:
        name = args[1].decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")[:128]
        raise CommandError(f"unknown subcommand '{name}'. Try OBJECT HELP.")
    arity, build = entry
    if len(args) != arity:
        raise CommandError(wrong_arity_message(f"object|{sub.decode().lower()}"))
    return build


def _build_object(args: list[bytes], limits: Limits) -> Any:
    return _object_subcommand(args)(args, limits)


# Container commands whose subcommand Redis judges before queuing them in MULTI.
QUEUE_CHECKS: dict[str, Callable[[list[bytes]], Any]] = {"object": _object_subcommand}


def _render_encoding(result: Any) -> Any:
    return result.encode() if isinstance(result, str) else result  # the encoding, nil, or HELP's lines


def _build_flush(args: list[bytes], limits: Limits) -> c.FlushAll:
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
        raise SyntaxError_()
    return c.FlushAll()


def _build_scan(args: list[bytes], limits: Limits) -> c.Scan:
    try:
        cursor = int(args[1])
        if cursor < 0 or not args[1].isdigit():
            raise ValueError
    except ValueError:
        raise CommandError("invalid cursor") from None
    match, count, only_type = None, 10, None
    i = 2
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            raise SyntaxError_()
        if option == b"MATCH":
            match = args[i + 1]
        elif option == b"COUNT":
            count = _int(args[i + 1])
            if count < 1:
                raise SyntaxError_()
        elif option == b"TYPE":
            only_type = args[i + 1].lower()
        else:
            raise SyntaxError_()
        i += 2
    return c.Scan(cursor, match, count, None if only_type is None else only_type.decode("utf-8", "replace"))


def _keys(args: list[bytes], limits: Limits, start: int = 1) -> tuple[bytes, ...]:
    return tuple(_key(a, limits) for a in args[start:])


def _render_scan(result: Any) -> Any:
    cursor, keys = result
    return [b"%d" % cursor, keys]


def _render_type(result: Any) -> Any:
    return SimpleString(result)


# ----------------------------------------------------------------------------- scripting
def _build_eval(by_sha: bool, read_only: bool) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.Eval | c.EvalRo:
        numkeys = _int(args[2])
        if numkeys > len(args) - 3:
            raise CommandError("Number of keys can't be greater than number of args")
        if numkeys < 0:
            raise CommandError("Number of keys can't be negative")
        keys = tuple(_key(k, limits) for k in args[3 : 3 + numkeys])
        argv = tuple(args[3 + numkeys :])
        if by_sha:
            if len(args[1]) != 40:  # no SHA1 is that long: Redis answers at once too
                raise NoScriptError()
            sha, body = args[1].decode("latin-1").lower(), None
        else:
            sha, body = sha1hex(args[1]), args[1]
        # A `#!lua flags=no-writes` body takes the read path as EVAL_RO does (no log entry).
        cls = c.EvalRo if read_only or (body is not None and is_no_writes(body)) else c.Eval
        return cls(sha, body, keys, argv, limits.script_max_instructions, limits.max_key_bytes, limits.max_value_bytes)

    return build


_SCRIPT_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


def _build_script_flush(args: list[bytes], limits: Limits) -> c.ScriptFlush:
    if len(args) > 3 or (len(args) == 3 and args[2].upper() not in (b"ASYNC", b"SYNC")):
        raise CommandError("SCRIPT FLUSH only support SYNC|ASYNC option")
    return c.ScriptFlush()


def _script_kill(args: list[bytes], limits: Limits) -> Any:
    # A script never outlives its log entry's apply: there is nothing to kill.
    raise ScriptError("NOTBUSY No scripts in execution right now.")


# SCRIPT's subcommands: word -> (arity, builder). SCRIPT DEBUG is not offered (no debugger).
_SCRIPT_SUBCOMMANDS: dict[bytes, tuple[int, Build]] = {
    b"LOAD": (3, lambda a, l: c.ScriptLoad(a[2])),
    b"EXISTS": (-3, lambda a, l: c.ScriptExists(tuple(s.decode("latin-1").lower() for s in a[2:]))),
    b"FLUSH": (-2, _build_script_flush),
    b"KILL": (2, _script_kill),
    b"HELP": (2, lambda a, l: Immediate([SimpleString(line) for line in _SCRIPT_HELP])),
}


def _build_script(args: list[bytes], limits: Limits) -> Any:
    sub = args[1].upper()
    entry = _SCRIPT_SUBCOMMANDS.get(sub)
    if entry is None:
        name = args[1].decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")[:128]
        raise CommandError(f"unknown subcommand '{name}'. Try SCRIPT HELP.")
    arity, build = entry
    if not (len(args) == arity if arity >= 0 else len(args) >= -arity):
        raise CommandError(wrong_arity_message(f"script|{sub.decode().lower()}"))
    return build(args, limits)


def _render_script(result: Any) -> Any:
    return OK if result is True else result  # FLUSH's OK; LOAD's sha; EXISTS's list


# ------------------------------------------------- hashes, lists, sets, sorted sets
def _build_data(spec: datatypes.TypeCommand) -> Build:
    """Check sizes, then carry the arguments as they are: the state machine parses them
    (``datatypes``), so one parser serves the server, scripts, EXEC and every replica."""
    first, last, step = spec.keys
    command = c.DataWrite if spec.write else c.DataRead
    name = spec.name.encode()

    def build(args: list[bytes], limits: Limits) -> Any:
        stop = len(args) if last < 0 else last + 1
        if first:
            for i in range(first, stop, step):
                _key(args[i], limits)
        for arg in args[1:]:
            _value(arg, limits)
        return command((name, *args[1:]))

    return build


def _data_specs() -> list[Spec]:
    specs = []
    for spec in datatypes.COMMANDS.values():
        kind = W if spec.write else R
        specs.append(_data(spec.name, spec.arity, kind, datatypes.GROUPS[spec.name.encode()], spec.summary,
                           _build_data(spec), datatypes.RENDERS.get(spec.name.encode(), _identity), flags=spec.flags, keys=spec.keys))
    return specs


def _build_publish(shard: bool) -> Build:
    def build(args: list[bytes], limits: Limits) -> c.Publish:
        return c.Publish(_key(args[1], limits), _value(args[2], limits), shard)

    return build


# ---------------------------------------------------------------------------- the table
# Writes Redis 7.0.15 does not flag `denyoom` (they cannot grow the dataset): COMMAND INFO
# shows them without it, as Redis does.
_NO_DENYOOM = frozenset({
    "blmpop", "blpop", "brpop", "bzmpop", "bzpopmax", "bzpopmin", "del", "eval", "evalsha", "expire", "expireat",
    "flushall", "flushdb", "getdel", "getex", "hdel", "lmpop", "lpop", "lrem", "ltrim", "persist", "pexpire",
    "pexpireat", "rename", "renamenx", "rpop", "script", "smove", "spop", "srem", "unlink", "zmpop", "zpopmax",
    "zpopmin", "zrem", "zremrangebylex", "zremrangebyrank", "zremrangebyscore",
})


# Commands Redis flags neither `write` nor `readonly`: EVAL/EVALSHA (a script says what it
# does), and the SCRIPT and OBJECT containers (their subcommands carry the flags). Their
# Kind still routes them (EVAL through the log, OBJECT as a read); no code reads these flags.
_NO_KIND_FLAG = frozenset({"eval", "evalsha", "script", "object"})


def _data(name: str, arity: int, kind: Kind, group: str, summary: str, build: Build, render: Render = _identity,
          flags: tuple[str, ...] = (), keys: tuple[int, int, int] = (1, 1, 1)) -> Spec:
    if name in _NO_KIND_FLAG:
        base: tuple[str, ...] = ()
    elif kind is Kind.WRITE:
        base = ("write",) if name in _NO_DENYOOM else ("write", "denyoom")
    else:
        base = ("readonly",)
    return Spec(name, arity, kind, group, summary, build, render, base + flags, *keys)


def _local(name: str, arity: int, group: str, summary: str, flags: tuple[str, ...] = ()) -> Spec:
    return Spec(name, arity, Kind.LOCAL, group, summary, flags=flags)


W, R = Kind.WRITE, Kind.READ
# Redis 7.0.15's flags for the connection commands it serves before AUTH and while busy
# (a script running), and for those it serves in any state (loading, stale replica).
_CONNECTION_FLAGS = ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy")
_ANY_STATE = ("loading", "stale")
_ANY_STATE_FAST = ("loading", "stale", "fast")
_ALL_KEYS = (1, -1, 1)
_NO_KEYS = (0, 0, 0)

_SPECS = [
    # strings: writes
    _data("set", -3, W, "string", "Set the string value of a key (EX PX EXAT PXAT NX XX GET KEEPTTL)", _build_set, _render_set),
    _data("getdel", 2, W, "string", "Get the value of a key and delete it", lambda a, l: c.GetDel(_key(a[1], l)), flags=("fast",)),
    _data("del", -2, W, "generic", "Delete keys", lambda a, l: c.Delete(_keys(a, l)), keys=_ALL_KEYS),
    _data("unlink", -2, W, "generic", "Delete keys", lambda a, l: c.Delete(_keys(a, l)), flags=("fast",), keys=_ALL_KEYS),
    _data("mset", -3, W, "string", "Set several keys", _build_mset, _ok, keys=(1, -1, 2)),
    _data("incr", 2, W, "string", "Increment an integer value by one", _build_incr(1, False, "incr"), flags=("fast",)),
    _data("incrby", 3, W, "string", "Increment an integer value", _build_incr(1, True, "incrby"), flags=("fast",)),
    _data("decr", 2, W, "string", "Decrement an integer value by one", _build_incr(-1, False, "decr"), flags=("fast",)),
    _data("decrby", 3, W, "string", "Decrement an integer value", _build_incr(-1, True, "decrby"), flags=("fast",)),
    _data("append", 3, W, "string", "Append to a value", lambda a, l: c.Append(_key(a[1], l), _value(a[2], l)), flags=("fast",)),
    _data("expire", -3, W, "generic", "Set a key's time to live in seconds", _build_expire(1000, False, "expire"), _as_int, ("fast",)),
    _data("pexpire", -3, W, "generic", "Set a key's time to live in milliseconds", _build_expire(1, False, "pexpire"), _as_int, ("fast",)),
    _data("expireat", -3, W, "generic", "Set a key's expiry as a Unix time in seconds", _build_expire(1000, True, "expireat"), _as_int, ("fast",)),
    _data("pexpireat", -3, W, "generic", "Set a key's expiry as a Unix time in milliseconds", _build_expire(1, True, "pexpireat"), _as_int, ("fast",)),
    _data("persist", 2, W, "generic", "Remove a key's expiry", lambda a, l: c.Persist(_key(a[1], l)), _as_int, ("fast",)),
    _data("cas", -4, W, "string", "Compare-and-set: CAS key expected new [EX s|PX ms]; 1 if swapped", _build_cas, _as_int, ("fast",)),
    _data("setnx", 3, W, "string", "Set the value of a key, only if the key does not exist", _build_setnx, _as_int, ("fast",)),
    _data("setex", 4, W, "string", "Set the value and expiration of a key", _build_setex(1000, "setex"), _ok),
    _data("psetex", 4, W, "string", "Set the value and expiration in milliseconds of a key", _build_setex(1, "psetex"), _ok),
    _data("getset", 3, W, "string", "Set the string value of a key and return its old value", _build_getset, flags=("fast",)),
    _data("getex", -2, W, "string", "Get the value of a key and optionally set its expiration (EX PX EXAT PXAT PERSIST)", _build_getex, flags=("fast",)),
    _data("incrbyfloat", 3, W, "string", "Increment the float value of a key by the given amount", _build_incrbyfloat, flags=("fast",)),
    _data("setrange", 4, W, "string", "Overwrite part of a string at key starting at the specified offset", _build_setrange),
    _data("msetnx", -3, W, "string", "Set multiple keys to multiple values, only if none of the keys exist", _build_msetnx, _as_int, keys=(1, -1, 2)),
    _data("rename", 3, W, "generic", "Rename a key", _build_rename(False), _ok, keys=(1, 2, 1)),
    _data("renamenx", 3, W, "generic", "Rename a key, only if the new key does not exist", _build_rename(True), _as_int, ("fast",), keys=(1, 2, 1)),
    _data("copy", -3, W, "generic", "Copy a key (REPLACE; DB 0 only)", _build_copy, _as_int, keys=(1, 2, 1)),
    _data("flushall", -1, W, "server", "Remove all keys", _build_flush, _ok, keys=_NO_KEYS),
    _data("flushdb", -1, W, "server", "Remove all keys", _build_flush, _ok, keys=_NO_KEYS),
    # strings and keyspace: reads
    _data("get", 2, R, "string", "Get the value of a key", lambda a, l: c.Get(_key(a[1], l)), flags=("fast",)),
    _data("mget", -2, R, "string", "Get the values of several keys", lambda a, l: c.MGet(_keys(a, l)), flags=("fast",), keys=_ALL_KEYS),
    _data("exists", -2, R, "generic", "Count existing keys", lambda a, l: c.Exists(_keys(a, l)), flags=("fast",), keys=_ALL_KEYS),
    _data("strlen", 2, R, "string", "Length of a value", lambda a, l: c.Strlen(_key(a[1], l)), flags=("fast",)),
    _data("ttl", 2, R, "generic", "Time to live in seconds", lambda a, l: c.Ttl(_key(a[1], l)), flags=("fast",)),
    _data("pttl", 2, R, "generic", "Time to live in milliseconds", lambda a, l: c.Ttl(_key(a[1], l), True), flags=("fast",)),
    _data("type", 2, R, "generic", "Type of the value at a key", lambda a, l: c.Type(_key(a[1], l)), _render_type, ("fast",)),
    _data("keys", 2, R, "generic", "Keys matching a glob pattern", lambda a, l: c.Keys(a[1]), keys=_NO_KEYS),
    _data("scan", -2, R, "generic", "Incrementally iterate keys (MATCH COUNT TYPE)", _build_scan, _render_scan, keys=_NO_KEYS),
    _data("getrange", 4, R, "string", "Get a substring of the string stored at a key", _build_getrange),
    _data("substr", 4, R, "string", "Get a substring of the string stored at a key", _build_getrange),
    _data("touch", -2, R, "generic", "Count existing keys (no access times are kept to alter)", lambda a, l: c.Exists(_keys(a, l)), flags=("fast",), keys=_ALL_KEYS),
    _data("object", -2, R, "generic", "OBJECT ENCODING key | HELP", _build_object, _render_encoding, keys=(2, 2, 1)),
    Spec("time", 1, R, "server", "Return the current server time (this node's wall clock)", _build_time, flags=("loading", "stale", "fast")),
    _data("dbsize", 1, R, "server", "Number of keys", lambda a, l: c.DbSize(), flags=("fast",), keys=_NO_KEYS),
    # scripting (movable keys: numkeys says which arguments are keys)
    _data("eval", -3, W, "scripting", "Execute a Lua script server side", _build_eval(False, False), flags=("noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"), keys=_NO_KEYS),
    _data("evalsha", -3, W, "scripting", "Execute a Lua script server side by its SHA1", _build_eval(True, False), flags=("noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys", "movablekeys"), keys=_NO_KEYS),
    _data("eval_ro", -3, R, "scripting", "Execute a read-only Lua script server side", _build_eval(False, True), flags=("noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"), keys=_NO_KEYS),
    _data("evalsha_ro", -3, R, "scripting", "Execute a read-only Lua script server side by its SHA1", _build_eval(True, True), flags=("noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"), keys=_NO_KEYS),
    _data("script", -2, W, "scripting", "SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP", _build_script, _render_script, keys=_NO_KEYS),
    # answered by the connection / node
    _local("ping", -1, "connection", "Ping the server", ("fast",)),
    _local("echo", 2, "connection", "Echo the given string", _ANY_STATE_FAST),
    _local("quit", -1, "connection", "Close the connection", _CONNECTION_FLAGS),
    _local("select", 2, "connection", "Select database 0 (the only one)", _ANY_STATE_FAST),
    _local("auth", -2, "connection", "Authenticate the connection", _CONNECTION_FLAGS),
    _local("hello", -1, "connection", "Handshake (RESP2 only)", _CONNECTION_FLAGS),
    _local("client", -2, "connection", "CLIENT SETNAME | GETNAME | SETINFO | ID | INFO | LIST | TRACKING | CACHING | GETREDIR | TRACKINGINFO"),
    _local("command", -1, "server", "COMMAND [COUNT | DOCS | INFO]", _ANY_STATE),
    _local("config", -2, "server", "CONFIG GET parameter [parameter ...] | SET parameter value [...] | RESETSTAT | HELP"),
    _local("info", -1, "server", "Server information (server clients memory keyspace stats raft)", _ANY_STATE),
    _local("readonly", 1, "cluster", "Answer reads from this node's local state (stale, fast)", _ANY_STATE_FAST),
    _local("readwrite", 1, "cluster", "Back to linearizable reads (the default)", _ANY_STATE_FAST),
    _local("acl", -2, "server", "ACL WHOAMI | LIST | USERS | GETUSER | CAT | LOG | HELP (users come from the cluster file)"),
    _local("raftcache", -2, "server", "RAFTCACHE ONCE | DIGEST | COMPACT | DEBUG: raftcache-specific operations"),
    _local("reset", 1, "connection", "Reset the connection (subscriptions, MULTI, WATCH, READONLY, protocol, user)",
           _CONNECTION_FLAGS),
]

# ------------------------------------------------------------------------ pub/sub
# PUBLISH goes through the log (every node delivers it in log order, pubsub.py); the
# subscriptions are the connection's (connection.py), PUBSUB the node's (server.py).
_PUBSUB_FLAGS = ("pubsub", "noscript", "loading", "stale")
_PUBSUB_SPECS = [
    Spec("publish", 3, Kind.WRITE, "pubsub", "Post a message to a channel (through the log; every node delivers it in log order)",
         _build_publish(False), flags=("pubsub", "loading", "stale", "fast", "may_replicate")),
    Spec("spublish", 3, Kind.WRITE, "pubsub", "Post a message to a shard channel (one shard: the whole cluster)",
         _build_publish(True), flags=("pubsub", "loading", "stale", "fast", "may_replicate"), first_key=1, last_key=1, step=1),
    _local("subscribe", -2, "pubsub", "Listen for messages published to channels", _PUBSUB_FLAGS),
    _local("psubscribe", -2, "pubsub", "Listen for messages published to channels matching glob patterns", _PUBSUB_FLAGS),
    _local("ssubscribe", -2, "pubsub", "Listen for messages published to shard channels", _PUBSUB_FLAGS),
    _local("unsubscribe", -1, "pubsub", "Stop listening to channels (all without arguments)", _PUBSUB_FLAGS),
    _local("punsubscribe", -1, "pubsub", "Stop listening to patterns (all without arguments)", _PUBSUB_FLAGS),
    _local("sunsubscribe", -1, "pubsub", "Stop listening to shard channels (all without arguments)", _PUBSUB_FLAGS),
    _local("pubsub", -2, "pubsub", "PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP (this node)"),
]

# ------------------------------------------------------------------ transactions
# MULTI/EXEC/DISCARD/WATCH/UNWATCH: queueing is the connection's (connection.py), EXEC and
# WATCH are carried out by the server (server.py), applied by the state machine (Exec).
_TRANSACTION_FLAGS = ("noscript", "loading", "stale", "fast", "allow_busy")
_TRANSACTION_SPECS = [
    _local("multi", 1, "transactions", "Mark the start of a transaction block", _TRANSACTION_FLAGS),
    _local("exec", 1, "transactions", "Execute all commands issued after MULTI, atomically (one Raft entry)",
           ("noscript", "loading", "stale", "skip_slowlog")),
    _local("discard", 1, "transactions", "Discard all commands issued after MULTI", _TRANSACTION_FLAGS),
    Spec("watch", -2, Kind.LOCAL, "transactions", "Watch keys to abort the next EXEC if they change",
         flags=_TRANSACTION_FLAGS, first_key=1, last_key=-1, step=1),
    _local("unwatch", 1, "transactions", "Forget all the watched keys", _TRANSACTION_FLAGS),
]

COMMANDS: dict[bytes, Spec] = {spec.name.encode(): spec for spec in _SPECS + _TRANSACTION_SPECS + _PUBSUB_SPECS + _data_specs()}


def lookup(name: bytes) -> Spec | None:
    spec = COMMANDS.get(name)
    if spec is None:
        spec = COMMANDS.get(name.lower())
    return spec


def unknown_command_message(args: list[bytes]) -> str:
    """Redis's message, including the first arguments."""
    name = args[0].decode("utf-8", "replace")
    shown = " ".join(f"'{a.decode('utf-8', 'replace')}'" for a in args[1:6])
    return f"unknown command '{name}', with args beginning with: {shown}" + (" " if shown else "")


def wrong_arity_message(name: str) -> str:
    return f"wrong number of arguments for '{name}' command"


# The order Redis 7.0 lists flags in COMMAND's reply (server.c, addReplyCommandFlags). It
# keeps `may_replicate` to itself, so do we. A flag in neither is a typo: KeyError.
_FLAG_ORDER = {flag: rank for rank, flag in enumerate((
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking", "loading", "stale",
    "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth", "no_mandatory_keys", "no_async_loading",
    "no_multi", "movablekeys", "allow_busy"))}
_HIDDEN_FLAGS = frozenset({"may_replicate"})


def reply_flags(flags: tuple[str, ...]) -> list[str]:
    """A command's flags as COMMAND INFO lists them: Redis's order, hidden ones left out."""
    return sorted((f for f in flags if f not in _HIDDEN_FLAGS), key=_FLAG_ORDER.__getitem__)


def command_info(spec: Spec) -> list[Any]:
    """A COMMAND reply entry (Redis 7 layout, RESP2)."""
    return [
        spec.name.encode(),
        spec.arity,
        [SimpleString(f) for f in reply_flags(spec.flags)],
        spec.first_key,
        spec.last_key,
        spec.step,
        [SimpleString("@" + spec.group)],
        [],
        [],
        [],
    ]


def command_docs(spec: Spec) -> Map:
    return Map({b"summary": spec.summary.encode(), b"since": b"1.0.0", b"group": spec.group.encode()})


def build_command(spec: Spec, args: list[bytes], limits: Limits) -> Any:
    """Parse a data command's arguments (raises CommandError with Redis's message)."""
    assert spec.build is not None
    return spec.build(args, limits)


def parse_int_arg(arg: bytes) -> int:
    return _int(arg)


__all__ = [
    "COMMANDS",
    "Immediate",
    "Kind",
    "Limits",
    "NotIntegerError",
    "Spec",
    "build_command",
    "command_docs",
    "command_info",
    "lookup",
    "parse_int_arg",
    "unknown_command_message",
    "wrong_arity_message",
]
