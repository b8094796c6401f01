"""Which arguments of a command are keys, and whether each is read or written.

Modelled on Redis 7's key specs (src/commands/*.json): a spec begins its search at an index
and then finds either a *range* of keys (a last key relative to the first, or counted from
the end, and a step) or *keynum* keys (the argument at the index counts the keys that
follow it). Each spec carries the access an ACL key pattern must grant, derived as Redis
7.0 derives it (acl.c, ACLSelectorCheckKey): ACCESS needs read (``%R~``); INSERT, DELETE
and UPDATE need write (``%W~``); a key that is only looked at (EXISTS, TYPE, TTL's
neighbours LLEN, SCARD, ...) needs neither, so any pattern matching it will do.

``KEY_SPECS`` names every command with keys; tests/unit/test_keyspecs.py walks the command
table and fails on a command this table forgets. The ACL checker, CLIENT TRACKING and the
scripts' checks all find keys here, so one table decides what a restricted user can touch.

Pure: no I/O. Keyword begin-search (SORT ... STORE, XREAD STREAMS) is not modelled: no
command in the table has such keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .errors import CommandError
from .redis_semantics import parse_int64

__all__ = ["KEY_SPECS", "NONE", "READ", "WRITE", "KeySpec", "find_keys"]

NONE, READ, WRITE = 0, 1, 2  # the ACL permissions a key needs (acl.py's %R~ / %W~ bits)
RW = READ | WRITE


class KeySpec(NamedTuple):
    """One Redis key spec: begin_search index + find_keys range or keynum."""

    access: int  # READ / WRITE bits an ACL pattern must grant
    begin: int  # begin_search index: the first key, or (keynum) the key count
    last: int = 0  # range: last key relative to `begin`; negative: counted from the end (-1 = last arg)
    step: int = 1
    keynum: bool = False  # find_keys keynum: args[begin] counts the keys after it


def _one(access: int) -> tuple[KeySpec, ...]:
    return (KeySpec(access, 1),)


def _all(access: int, step: int = 1) -> tuple[KeySpec, ...]:
    return (KeySpec(access, 1, -1, step),)


def _counted(access: int, at: int) -> KeySpec:
    return KeySpec(access, at, keynum=True)


def _two(first: int, second: int) -> tuple[KeySpec, ...]:
    return (KeySpec(first, 1), KeySpec(second, 2))


def _names(text: str, specs: tuple[KeySpec, ...]) -> dict[str, tuple[KeySpec, ...]]:
    return dict.fromkeys(text.split(), specs)


# Redis 7.0.15's key specs, by shape. Flags in the comments are Redis's (RO/RW/OW/RM +
# ACCESS/INSERT/DELETE/UPDATE); the access bits follow from them as explained above.
KEY_SPECS: dict[str, tuple[KeySpec, ...]] = {
    # one key, RO ACCESS
    **_names("get getrange substr ttl pttl hget hgetall hkeys hvals hmget hrandfield hscan lindex lpos lrange "
             "smembers smismember srandmember sscan zcount zlexcount zmscore zrandmember zrange zrangebylex "
             "zrangebyscore zrank zrevrange zrevrangebylex zrevrangebyscore zrevrank zscan zscore", _one(READ)),
    # one key, RO (its value is not read): any matching pattern
    **_names("strlen type hexists hlen hstrlen llen scard sismember zcard", _one(NONE)),
    # one key, RW/OW without ACCESS (INSERT, DELETE or UPDATE only)
    **_names("append setrange setex psetex setnx expire pexpire expireat pexpireat persist hdel hset hmset "
             "hsetnx linsert lpush lpushx rpush rpushx lrem lset ltrim sadd srem zadd zrem zremrangebylex "
             "zremrangebyrank zremrangebyscore", _one(WRITE)),
    # one key, RW ACCESS (+ UPDATE / DELETE)
    **_names("incr incrby decr decrby incrbyfloat getdel getex getset hincrby hincrbyfloat lpop rpop spop "
             "zincrby zpopmin zpopmax", _one(RW)),
    "cas": _one(RW),  # raftcache's compare-and-set reads the value it compares
    "set": _one(WRITE),  # VARIABLE_FLAGS: SET ... GET also reads (_VARIABLE_ACCESS)
    "object": (KeySpec(NONE, 2),),  # OBJECT ENCODING key (RO: only the encoding is looked at)
    "spublish": (),  # NOT_KEY: a shard channel, checked against channel patterns instead
    # every argument a key
    **_names("mget sdiff sinter sunion", _all(READ)),
    **_names("exists touch watch", _all(NONE)),
    **_names("del unlink", _all(WRITE)),
    **_names("mset msetnx", _all(WRITE, 2)),
    # blocking pops: keys up to the timeout (RW ACCESS DELETE)
    **_names("blpop brpop bzpopmin bzpopmax", (KeySpec(RW, 1, -2),)),
    # source then destination
    **_names("lmove blmove rpoplpush brpoplpush smove", _two(RW, WRITE)),
    **_names("rename renamenx", _two(RW, WRITE)),
    "copy": _two(READ, WRITE),
    "zrangestore": _two(WRITE, READ),
    # destination then sources
    **_names("sdiffstore sinterstore sunionstore", (KeySpec(WRITE, 1), KeySpec(READ, 2, -1))),
    **_names("zunionstore zinterstore zdiffstore", (KeySpec(WRITE, 1), _counted(READ, 2))),
    # counted keys
    **_names("zunion zinter zdiff zintercard sintercard", (_counted(READ, 1),)),
    **_names("lmpop zmpop", (_counted(RW, 1),)),
    **_names("blmpop bzmpop", (_counted(RW, 2),)),
    **_names("eval evalsha", (_counted(RW, 2),)),
    **_names("eval_ro evalsha_ro", (_counted(READ, 2),)),
    # raftcache's own: RAFTCACHE INDEX key..., RAFTCACHE WATCHED key rev key rev ...
    "raftcache|index": (KeySpec(READ, 2, -1),),
    "raftcache|watched": (KeySpec(READ, 2, -1, 2),),
}


def _set_access(args: list[bytes]) -> int:
    """Redis's setGetKeys: a GET option anywhere after the value makes SET read its key."""
    return RW if any(arg.upper() == b"GET" for arg in args[3:]) else WRITE


# Commands whose specs say VARIABLE_FLAGS: the access is decided from the arguments.
_VARIABLE_ACCESS: dict[str, Callable[[list[bytes]], int]] = {"set": _set_access}


class _InvalidSpec(Exception):
    """A spec that does not fit the arguments: the command will refuse them itself."""


def _span(spec: KeySpec, args: list[bytes]) -> range:
    first = spec.begin
    if spec.keynum:
        if first >= len(args):
            raise _InvalidSpec
        try:
            count = parse_int64(args[first])
        except CommandError:
            raise _InvalidSpec from None
        first += 1
        last = first + count - 1
    elif spec.last >= 0:
        last = first + spec.last
    else:
        last = len(args) + spec.last
    if last >= len(args) or last < first or first >= len(args):
        raise _InvalidSpec
    return range(first, last + 1, spec.step)


def find_keys(name: str, args: list[bytes]) -> list[tuple[int, int]] | None:
    """(position, access) of every key of a command (``name``: its ACL unit, ``config|get``),
    in Redis's order; None for a command this table does not know. Arguments that do not
    fit a spec (a bad or out-of-range numkeys) give no keys at all, as Redis's
    getKeysFromCommand does: the command itself then refuses them before touching a key."""
    specs = KEY_SPECS.get(name)
    if specs is None:
        return None
    variable = _VARIABLE_ACCESS.get(name)
    found: list[tuple[int, int]] = []
    try:
        for spec in specs:
            access = spec.access if variable is None else variable(args)
            found += ((i, access) for i in _span(spec, args))
    except _InvalidSpec:
        return []
    return found
