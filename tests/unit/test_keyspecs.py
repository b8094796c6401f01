"""raftcache.keyspecs: every key of every command, with the access Redis 7.0 asks for it.

The expected keys and permissions below are what redis-server 7.0.15 answered to
``COMMAND GETKEYSANDFLAGS <invocation>``, turned into ACL permissions as Redis's acl.c does
(ACCESS -> R; INSERT/DELETE/UPDATE -> W; neither -> "-": any matching pattern)."""

from __future__ import annotations

from typing import Any

import pytest

from raftcache import acl
from raftcache import commands as c
from raftcache.errors import CommandError
from raftcache.keyspecs import KEY_SPECS, NONE, READ, WRITE, find_keys
from raftcache.redis_commands import COMMANDS, Limits, build_command, lookup
from raftcache.statemachine import CacheStateMachine

_ACCESS = {"-": NONE, "R": READ, "W": WRITE, "RW": READ | WRITE}

# invocation -> "key:access ..." (Redis 7.0.15's COMMAND GETKEYSANDFLAGS; "" = no keys)
REDIS_KEYS: dict[str, str] = {
    **{f"{name} k v": "k:W" for name in ("append", "setnx", "lpush", "lpushx", "rpush", "rpushx", "sadd", "srem", "zrem", "hdel")},
    **{f"{name} k 10 v": "k:W" for name in ("setex", "psetex", "setrange", "lset", "lrem", "hset", "hmset", "hsetnx")},
    **{f"{name} k 10": "k:W" for name in ("expire", "pexpire", "expireat", "pexpireat")},
    **{f"{name} k 0 1": "k:W" for name in ("ltrim", "zremrangebyrank", "zremrangebyscore", "zremrangebylex")},
    "persist k": "k:W", "linsert k BEFORE p v": "k:W", "zadd k 1 m": "k:W",
    **{f"{name} k": "k:RW" for name in ("incr", "decr", "getdel", "lpop", "rpop", "spop", "zpopmin", "zpopmax")},
    **{f"{name} k 1": "k:RW" for name in ("incrby", "decrby", "incrbyfloat", "getset")},
    **{f"{name} k f 1": "k:RW" for name in ("hincrby", "hincrbyfloat", "zincrby")},
    "getex k PERSIST": "k:RW",
    **{f"{name} k": "k:R" for name in ("get", "ttl", "pttl", "hgetall", "hkeys", "hvals", "hrandfield", "smembers",
                                       "srandmember", "zrandmember")},
    **{f"{name} k 0 1": "k:R" for name in ("getrange", "substr", "lrange", "zcount", "zrange", "zrangebyscore",
                                           "zrevrange", "zrevrangebyscore", "zrangebylex", "zrevrangebylex",
                                           "zlexcount")},
    **{f"{name} k m": "k:R" for name in ("hget", "hmget", "lpos", "smismember", "zmscore", "zrank", "zrevrank",
                                         "zscore", "lindex")},
    **{f"{name} k 0": "k:R" for name in ("hscan", "sscan", "zscan")},
    **{f"{name} k": "k:-" for name in ("strlen", "type", "hlen", "llen", "scard", "zcard")},
    **{f"{name} k m": "k:-" for name in ("hexists", "hstrlen", "sismember")},
    "set k v EX 10": "k:W", "set k v GET": "k:RW", "set k GET v": "k:W", "object ENCODING k": "k:-",
    **{f"{name} a b c": "a:R b:R c:R" for name in ("mget", "sdiff", "sinter", "sunion")},
    **{f"{name} a b c": "a:- b:- c:-" for name in ("exists", "touch", "watch")},
    **{f"{name} a b c": "a:W b:W c:W" for name in ("del", "unlink")},
    **{f"{name} a 1 b 2 c 3": "a:W b:W c:W" for name in ("mset", "msetnx")},
    "mset a 1 b": "a:W b:W",
    **{f"{name} a b 0": "a:RW b:RW" for name in ("blpop", "brpop", "bzpopmin", "bzpopmax")},
    "lmove s d LEFT RIGHT": "s:RW d:W", "blmove s d LEFT RIGHT 0": "s:RW d:W", "rpoplpush s d": "s:RW d:W",
    "brpoplpush s d 0": "s:RW d:W", "smove s d m": "s:RW d:W", "rename s d": "s:RW d:W", "renamenx s d": "s:RW d:W",
    "copy s d REPLACE": "s:R d:W", "zrangestore d s 0 1": "d:W s:R",
    **{f"{name} d a b c": "d:W a:R b:R c:R" for name in ("sdiffstore", "sinterstore", "sunionstore")},
    "zunionstore d 2 a b WEIGHTS 1 2": "d:W a:R b:R", "zinterstore d 2 a b AGGREGATE MAX": "d:W a:R b:R",
    "zdiffstore d 2 a b": "d:W a:R b:R",
    "zunion 2 a b WITHSCORES": "a:R b:R", "zinter 2 a b": "a:R b:R", "zdiff 2 a b": "a:R b:R",
    "zintercard 2 a b LIMIT 1": "a:R b:R", "sintercard 2 a b LIMIT 1": "a:R b:R",
    "lmpop 2 a b LEFT COUNT 2": "a:RW b:RW", "zmpop 2 a b MIN": "a:RW b:RW",
    "blmpop 0 2 a b LEFT": "a:RW b:RW", "bzmpop 0 2 a b MAX COUNT 1": "a:RW b:RW",
    **{f"{name} s 2 a b argv": "a:RW b:RW" for name in ("eval", "evalsha")},
    **{f"{name} s 2 a b argv": "a:R b:R" for name in ("eval_ro", "evalsha_ro")},
    # a numkeys that does not fit: no keys (the command refuses it before reading anything)
    "eval s 0 a": "", "eval s x a": "", "zunionstore d 0 a": "", "zunionstore d 3 a b": "", "sintercard 3 a b": "",
    "lmpop -1 a LEFT": "",
    "spublish ch m": "",  # NOT_KEY: a shard channel
}
# raftcache's own commands (not in Redis): the keys they name.
RAFTCACHE_KEYS: dict[str, str] = {
    "cas k old new": "k:RW",
    "raftcache index a b": "a:R b:R",
    "raftcache watched a 1 b 2": "a:R b:R",
}
SAMPLES = {**REDIS_KEYS, **RAFTCACHE_KEYS}


def _args(invocation: str) -> list[bytes]:
    return [w.encode() for w in invocation.split()]


def _check(user: acl.User, invocation: str) -> acl.Denial | None:
    args = _args(invocation)
    return user.check(lookup(args[0]), args)  # type: ignore[arg-type]


def _found(invocation: str) -> list[tuple[bytes, int]]:
    args = _args(invocation)
    spec = lookup(args[0])
    assert spec is not None, invocation
    return [(args[i], access) for i, access in acl.keys_of(acl.unit_of(spec, args), spec, args)]


def _expected(text: str) -> list[tuple[bytes, int]]:
    return [(key.encode(), _ACCESS[access]) for key, access in (word.split(":") for word in text.split())]


@pytest.mark.parametrize("invocation", sorted(SAMPLES))
def test_keys_and_access_are_redis_s(invocation: str) -> None:
    assert _found(invocation) == _expected(SAMPLES[invocation])


def _sampled_units() -> set[str]:
    units = set()
    for invocation in SAMPLES:
        args = _args(invocation)
        units.add(acl.unit_of(lookup(args[0]), args))  # type: ignore[arg-type]
    return units


def test_every_command_with_keys_is_in_the_key_table_and_sampled() -> None:
    with_keys = {spec.name for spec in COMMANDS.values() if spec.first_key or "movablekeys" in spec.flags}
    assert not with_keys - set(KEY_SPECS), "commands whose keys only COMMAND's triple describes"
    assert not set(KEY_SPECS) - set(acl.UNITS), "key specs for commands that do not exist"
    assert set(KEY_SPECS) <= _sampled_units(), "key specs no sample invocation checks"


@pytest.mark.parametrize("invocation", sorted(i for i in REDIS_KEYS if REDIS_KEYS[i] and not i.startswith("set ")))
def test_command_s_key_triple_agrees_with_the_key_specs(invocation: str) -> None:
    """COMMAND INFO's (first, last, step) is what Redis derives from the specs: the same
    keys for commands whose keys do not move."""
    args = _args(invocation)
    spec = lookup(args[0])
    assert spec is not None
    if "movablekeys" in spec.flags:
        return
    last = len(args) + spec.last_key if spec.last_key < 0 else spec.last_key
    assert [args[i] for i in range(spec.first_key, last + 1, spec.step)] == [k for k, _ in _found(invocation)]


def _run(invocation: str) -> Any:
    args = _args(invocation)
    cmd = build_command(lookup(args[0]), args, Limits())  # type: ignore[arg-type]
    sm = CacheStateMachine()
    if type(cmd) in c.WRITE_TYPES:
        return sm.apply(c.Batch(1_700_000_000_000, [(None, cmd)]))[0]
    return sm.read(cmd)


@pytest.mark.parametrize("invocation", [
    "eval x -1 a", "zunionstore d 0 a", "zunionstore d 3 a b", "zinterstore d x a", "zdiffstore d -1 a",
    "zunion 0 a", "zinter 3 a b", "zdiff 2 a", "zintercard 0 a", "sintercard 3 a b", "sintercard 1x a",
    "lmpop 0 a LEFT", "lmpop 4 a b LEFT", "zmpop -1 a MIN", "blmpop 0 4 a b LEFT", "bzmpop 0 0 a MAX",
])
def test_a_numkeys_that_finds_no_keys_is_refused_by_the_command(invocation: str) -> None:
    """find_keys answers no keys for these (as Redis): safe only because the command then
    refuses to run, touching nothing."""
    assert _found(invocation) == []
    try:
        result = _run(invocation)
    except CommandError:
        return
    assert isinstance(result, CommandError), result


def test_restricted_user_cannot_reach_a_source_key() -> None:
    u = acl.parse_user("u", ["on", "~app:*", "+@all"])
    for invocation in ("zunionstore app:d 2 app:a secret", "zinterstore app:d 1 secret", "zdiffstore app:d 1 secret",
                       "sintercard 2 app:a secret", "lmpop 2 app:a secret LEFT", "blmpop 0 1 secret LEFT",
                       "zmpop 1 secret MIN", "bzmpop 0 2 app:a secret MAX", "sinterstore app:d secret",
                       "eval s 2 app:a secret", "smove secret app:d m", "lmove app:s secret LEFT LEFT"):
        assert _check(u, invocation) == acl.Denial("key", "secret"), invocation
    assert _check(u, "zunionstore app:d 2 app:a app:b") is None


def test_read_and_write_patterns_follow_each_key_s_spec() -> None:
    u = acl.parse_user("u", ["on", "%R~r:*", "%W~w:*", "+@all"])
    ok = ["zunionstore w:d 1 r:a", "sunionstore w:d r:a r:b", "copy r:s w:d", "zrangestore w:d r:s 0 1",
          "exists w:a r:b", "llen w:a", "sadd w:a m", "eval_ro s 1 r:a"]
    denied = ["zunionstore r:d 1 r:a", "zunionstore w:d 1 w:a", "lmpop 1 w:a LEFT", "lmpop 1 r:a LEFT",
              "smove w:s w:d m", "eval s 1 w:a", "incr w:a", "sintercard 1 w:a"]
    for invocation in ok + denied:
        assert (_check(u, invocation) is None) == (invocation in ok), invocation


def test_unknown_command_falls_back_to_the_triple_with_both_permissions() -> None:
    spec = lookup(b"get")
    assert find_keys("no-such-command", [b"x", b"k"]) is None
    assert acl.keys_of("no-such-command", spec, [b"get", b"k"]) == [(1, READ | WRITE)]  # type: ignore[arg-type]


def test_writes_that_cannot_grow_memory_are_not_denyoom() -> None:
    """Redis 7.0.15's COMMAND INFO flags for writes with and without `denyoom`."""
    flags = {name: lookup(name.encode()).flags for name in ("zrem", "zpopmin", "zmpop", "del", "expire", "lpop",  # type: ignore[union-attr]
                                                             "zadd", "set", "lpush", "zunionstore", "lmove")}
    assert {name for name, f in flags.items() if "denyoom" in f} == {"zadd", "set", "lpush", "zunionstore", "lmove"}
    assert all("write" in f for f in flags.values())


def test_client_tracking_remembers_every_key_a_read_reads() -> None:
    """server.py's CLIENT TRACKING asks key_positions which keys a read reads."""
    for invocation, keys in [("sintercard 2 a b LIMIT 1", [b"a", b"b"]), ("zunion 2 a b", [b"a", b"b"]),
                             ("eval_ro s 1 a argv", [b"a"]), ("exists a b", [b"a", b"b"])]:
        args = _args(invocation)
        spec = lookup(args[0])
        assert [args[i] for i in acl.key_positions(spec.name, spec, args)] == keys  # type: ignore[union-attr,arg-type]
