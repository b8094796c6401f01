"""Differential test of the set commands: the same sequences sent to redis-server 7.0 and to a
raftcache cluster (through a follower) must get the same replies and leave the same state.

Two kinds of sequence:
* deterministic ones (every set command but the random draws, with string commands so
  WRONGTYPE, expiry and deletion rules are hit): replies and the final state compared; where
  Redis leaves the order unspecified (SMEMBERS of a hashtable, SINTER, SUNION, SDIFF) the
  replies compare sorted, an intset's SMEMBERS exactly (Redis sorts it); an SSCAN is followed
  to its end on both sides and the members it returned compare as a set. SPOP and
  SRANDMEMBER appear only where their reply is determined (bad counts, count 0, wrong type);
* random ones (SPOP, SRANDMEMBER, RANDOMKEY among SADDs of fresh members, so every reply but
  the draws' is determined by sizes alone): the draws are checked for their properties (how
  many, distinct or not, members of the set), everything else exactly, and the final state
  as each key's type, size and whether it has an expiry.
"""

from __future__ import annotations

import itertools

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cluster.differential import HAVE_REDIS_SERVER, cmd, flat, run, same_reply, state

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")

KEYS = st.sampled_from(["a", "b", "c"])
KEY_LISTS = st.lists(KEYS, min_size=1, max_size=3)
MEMBERS = st.sampled_from(["1", "2", "3", "10", "-5", "9223372036854775807", "x", "y", "007", "", "+1"])
MEMBER_LISTS = st.lists(MEMBERS, min_size=1, max_size=4)
UNORDERED = {"SMEMBERS", "SINTER", "SUNION", "SDIFF"}

DETERMINISTIC = st.one_of(
    flat(cmd("SADD", KEYS, MEMBER_LISTS)),
    flat(cmd("SADD", KEYS, MEMBER_LISTS)),
    flat(cmd("SREM", KEYS, MEMBER_LISTS)),
    cmd("SMEMBERS", KEYS),
    cmd("SISMEMBER", KEYS, MEMBERS),
    flat(cmd("SMISMEMBER", KEYS, MEMBER_LISTS)),
    cmd("SCARD", KEYS),
    cmd("SMOVE", KEYS, KEYS, MEMBERS),
    flat(cmd(st.sampled_from(["SINTER", "SUNION", "SDIFF"]), KEY_LISTS)),
    flat(cmd(st.sampled_from(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), KEYS, KEY_LISTS)),
    flat(cmd("SINTERCARD", st.sampled_from(["0", "1", "2", "3", "x", "-1"]), KEY_LISTS,
             st.sampled_from([[], ["LIMIT", "1"], ["LIMIT", "0"], ["LIMIT", "-1"], ["LIMIT"], ["limit", "2"], ["BOGUS"]]))),
    flat(cmd("SSCAN", KEYS, st.sampled_from(["0", "x", "+0", " 0", "18446744073709551616"]),
             st.sampled_from([[], ["COUNT", "2"], ["MATCH", "*1*"], ["MATCH", "[xy]", "COUNT", "1"], ["COUNT", "0"],
                              ["COUNT"], ["BOGUS", "1"]]))),
    # the draws, where their reply is determined
    flat(cmd("SPOP", KEYS, st.sampled_from([["0"], ["-1"], ["x"], ["1", "2"]]))),
    flat(cmd("SRANDMEMBER", KEYS, st.sampled_from([["0"], ["x"], ["-9223372036854775808"], ["1", "2"]]))),
    cmd("OBJECT", "ENCODING", KEYS),
    cmd("TYPE", KEYS),
    # strings, so WRONGTYPE and replacement by the STORE forms are hit
    flat(cmd("SET", KEYS, st.sampled_from(["v", "1"]), st.sampled_from([[], ["EX", "100"]]))),
    cmd("DEL", KEYS),
    cmd("EXPIRE", KEYS, "100"),
    cmd("TTL", KEYS),
    st.sampled_from([["SADD", "a"], ["SREM", "a"], ["SMEMBERS"], ["SMEMBERS", "a", "b"], ["SISMEMBER", "a"],
                     ["SMISMEMBER", "a"], ["SCARD"], ["SPOP"], ["SRANDMEMBER"], ["SMOVE", "a", "b"], ["SINTER"],
                     ["SINTERSTORE", "a"], ["SUNIONSTORE", "a"], ["SDIFFSTORE", "a"], ["SINTERCARD", "1"], ["SSCAN", "a"],
                     ["RANDOMKEY", "a"]]),
)


def _scan_to_end(client: redis.Redis, command: list[str], first: object) -> object:
    """The members an SSCAN and its continuations return, as a sorted set (Redis's cursors
    and page sizes are its hash table's; raftcache's are its own)."""
    if not isinstance(first, list):
        return first
    cursor, found = first
    options = command[3:]
    for _ in range(10_000):
        if cursor == b"0":
            return ("scanned", sorted(set(found)))
        reply = run(client, ["SSCAN", command[1], cursor, *options])
        assert isinstance(reply, list), reply
        cursor, page = reply
        found = found + page
    raise AssertionError("SSCAN did not finish")


def _encoding(client: redis.Redis, key: str) -> object:
    return run(client, ["OBJECT", "ENCODING", key])


def compare_sets(real: redis.Redis, ours: redis.Redis, sequence: list[list[str]]) -> None:
    for client in (real, ours):
        client.flushall()
    for i, command in enumerate(sequence):
        name = command[0].upper()
        exact_order = name == "SMEMBERS" and len(command) == 2 and _encoding(real, command[1]) == b"intset"
        theirs, mine = run(real, command), run(ours, command)
        if name == "SSCAN":
            theirs, mine = _scan_to_end(real, command, theirs), _scan_to_end(ours, command, mine)
        elif name in UNORDERED and not exact_order and isinstance(theirs, list) and isinstance(mine, list):
            theirs, mine = sorted(theirs), sorted(mine)
        assert same_reply(command, mine, theirs), f"step {i} {command}: redis {theirs!r}, raftcache {mine!r}"
    assert state(ours) == state(real)


# Edge cases replayed every run.
EDGES = [
    # intset: numeric order, string2ll's integers only, 512 members at most, and then for good
    ["SADD", "i", "10", "-3", "2", "-9223372036854775808", "9223372036854775807"], ["SMEMBERS", "i"],
    ["OBJECT", "ENCODING", "i"], ["SSCAN", "i", "999"], ["SSCAN", "i", "0", "MATCH", "-*"],
    ["SADD", "i", "-0"], ["OBJECT", "ENCODING", "i"], ["SREM", "i", "-0"], ["OBJECT", "ENCODING", "i"], ["SMEMBERS", "i"],
    ["SADD", "n", *map(str, range(512))], ["OBJECT", "ENCODING", "n"], ["SMEMBERS", "n"],
    ["SADD", "n", "512"], ["OBJECT", "ENCODING", "n"], ["SREM", "n", *map(str, range(10, 513))],
    ["OBJECT", "ENCODING", "n"], ["SMEMBERS", "n"],
    ["SADD", "j", "1", "01"], ["OBJECT", "ENCODING", "j"], ["SADD", "k", "1", "1.0"], ["OBJECT", "ENCODING", "k"],
    # the STORE forms: results' encodings (SDIFF's two algorithms), other types replaced, expiry dropped
    ["SADD", "f", *map(str, range(20)), "x"], ["SADD", "o1", "x"], ["SADD", "o2", "zz"], ["SADD", "o3", "yy"],
    ["SDIFFSTORE", "d", "f", "o1"], ["OBJECT", "ENCODING", "d"],
    ["SDIFFSTORE", "d", "f", "o1", "o2", "o3"], ["OBJECT", "ENCODING", "d"], ["SCARD", "d"],
    ["SDIFFSTORE", "d", "f", "missing", "f"], ["EXISTS", "d"], ["SDIFF", "missing", "f"], ["SDIFF", "f", "missing"],
    ["SET", "s", "v", "EX", "100"], ["SUNIONSTORE", "s", "o1", "o2"], ["TYPE", "s"], ["TTL", "s"],
    ["SET", "s", "v", "EX", "100"], ["SINTERSTORE", "s", "f", "o1"], ["TYPE", "s"], ["TTL", "s"], ["OBJECT", "ENCODING", "s"],
    ["SINTERSTORE", "s", "f", "missing"], ["EXISTS", "s"], ["SET", "s", "v"], ["SDIFFSTORE", "s", "o1", "o1"], ["EXISTS", "s"],
    ["SUNIONSTORE", "u", "f", "n", "o2"], ["OBJECT", "ENCODING", "u"], ["SCARD", "u"], ["SINTER", "f", "n"],
    ["SINTERSTORE", "u", "f", "n"], ["OBJECT", "ENCODING", "u"], ["SMEMBERS", "u"],
    ["SINTER", "missing", "s2"], ["SET", "str", "v"], ["SINTER", "missing", "str"], ["SUNION", "str"], ["SDIFF", "missing", "str"],
    ["SINTERSTORE", "str2", "missing", "str"], ["SINTERCARD", "2", "missing", "str"],
    # SINTERCARD's arguments
    ["SINTERCARD", "2", "f", "u"], ["SINTERCARD", "2", "f", "u", "LIMIT", "3"], ["SINTERCARD", "2", "f", "u", "LIMIT", "0"],
    ["SINTERCARD", "1", "f", "LIMIT", "5", "LIMIT", "2"], ["SINTERCARD", "9223372036854775807", "f"],
    ["SINTERCARD", "1", "f", "LIMIT", "9223372036854775808"], ["SINTERCARD", "1", "f", "f"],
    # SMOVE's order of checks
    ["SMOVE", "missing", "str", "x"], ["SMOVE", "o1", "str", "x"], ["SMOVE", "str", "o1", "x"], ["SMOVE", "f", "f", "x"],
    ["SMOVE", "f", "f", "nope"], ["SMOVE", "o1", "new", "x"], ["EXISTS", "o1"], ["OBJECT", "ENCODING", "new"],
    ["SMOVE", "f", "new2", "3"], ["OBJECT", "ENCODING", "new2"], ["SMOVE", "f", "o2", "4"], ["SMEMBERS", "o2"],
    # the draws' argument errors and determined replies
    ["SPOP", "f", "-1"], ["SPOP", "f", "x"], ["SPOP", "f", "-0"], ["SPOP", "missing", "x"], ["SPOP", "f", "0"],
    ["SPOP", "missing", "5"], ["SPOP", "missing"], ["SPOP", "str"], ["SPOP", "str", "0"], ["SPOP", "str", "x"],
    ["SPOP", "f", "1", "2"], ["SRANDMEMBER", "f", "x"], ["SRANDMEMBER", "f", "-0"], ["SRANDMEMBER", "f", "0"],
    ["SRANDMEMBER", "missing", "-3"], ["SRANDMEMBER", "missing"], ["SRANDMEMBER", "str", "0"],
    ["SRANDMEMBER", "f", "-9223372036854775808"], ["SRANDMEMBER", "missing", "9223372036854775807"],
    ["SRANDMEMBER", "f", "1", "2"], ["SPOP", "n", "100"], ["EXISTS", "n"],
    # SSCAN's arguments
    ["SSCAN", "missing", "x"], ["SSCAN", "missing", "0", "COUNT", "0"], ["SSCAN", "str", "0"], ["SSCAN", "f", ""], ["SSCAN", "f", "+0"], ["SADD", "p", "5", "1"], ["SSCAN", "p", "-1"], ["SSCAN", "f", "-"],
    ["SSCAN", "f", "-18446744073709551616"], ["SSCAN", "missing", "-5"],
    ["SSCAN", "f", "0", "COUNT", "0"], ["SSCAN", "f", "0", "COUNT", "x"], ["SSCAN", "f", "0", "MATCH"],
    ["SSCAN", "f", "0", "MATCH", "1*", "COUNT", "1"], ["SSCAN", "u", "0", "COUNT", "3"],
    ["SMISMEMBER", "missing", "a", "b"], ["SMISMEMBER", "f", "1", "x", "nope"], ["SISMEMBER", "f", "01"],
    ["SMISMEMBER", "str", "a"], ["SCARD", "str"], ["SREM", "str", "a"], ["SREM", "missing", "a"], ["SADD", "str", "a"],
    ["SREM", "new", "x"], ["EXISTS", "new"], ["RANDOMKEY", "x"],
]

STRING_MEMBERS = [f"m{i}" for i in range(600)]


def test_edge_cases_match_redis(real_redis, raftcache):
    compare_sets(real_redis, raftcache, EDGES)


def test_large_sets_match_redis(real_redis, raftcache):
    """Hashtable sets beyond one scan page and the intset limit."""
    compare_sets(real_redis, raftcache, [
        ["SADD", "big", *STRING_MEMBERS], ["SADD", "ints", *map(str, range(0, 1200, 2))],
        ["SSCAN", "big", "0", "COUNT", "100"], ["SSCAN", "big", "0", "MATCH", "m1*", "COUNT", "40"], ["SSCAN", "ints", "0", "COUNT", "50"],
        ["SINTERCARD", "2", "ints", "ints", "LIMIT", "100"], ["SINTER", "big", "ints"], ["SUNIONSTORE", "all", "big", "ints"],
        ["SCARD", "all"], ["SDIFFSTORE", "d", "ints", "big"], ["OBJECT", "ENCODING", "d"], ["SMOVE", "ints", "x", "2"],
        ["SINTERSTORE", "small", "ints", "ints"], ["SREM", "small", *map(str, range(0, 1100, 2))], ["SCARD", "small"],
        ["OBJECT", "ENCODING", "small"], ["SUNIONSTORE", "small2", "small"], ["OBJECT", "ENCODING", "small2"],
        ["SMEMBERS", "small2"],
    ])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(DETERMINISTIC, min_size=1, max_size=25))
def test_same_replies_and_state_as_redis(real_redis, raftcache, sequence):
    compare_sets(real_redis, raftcache, sequence)


# ------------------------------------------------------------------ random draws
# SADD's members are made fresh at each step (see _fresh), so that sizes, not which members
# were drawn, decide every reply but the draws'. "i" holds integers only, "s" strings.
RANDOM_KEYS = st.sampled_from(["i", "s"])
RANDOM = st.one_of(
    cmd("SADD", RANDOM_KEYS, st.integers(1, 6).map(str)),
    cmd("SADD", RANDOM_KEYS, st.integers(1, 6).map(str)),
    cmd("SPOP", RANDOM_KEYS),
    cmd("SPOP", RANDOM_KEYS, st.sampled_from(["1", "2", "3", "5", "50"])),
    cmd("SRANDMEMBER", RANDOM_KEYS),
    cmd("SRANDMEMBER", RANDOM_KEYS, st.sampled_from(["1", "2", "3", "50", "-1", "-4", "-20"])),
    cmd("RANDOMKEY"),
    cmd("SCARD", RANDOM_KEYS),
    cmd("OBJECT", "ENCODING", RANDOM_KEYS),
    cmd("SET", st.sampled_from(["i", "s", "t"]), "v"),
    cmd("DEL", st.sampled_from(["i", "s", "t"])),
)
DRAWS = {"SPOP", "SRANDMEMBER", "RANDOMKEY"}


def _fresh(sequence: list[list[str]]) -> list[list[str]]:
    """SADD key n -> SADD key with n members never used before in the sequence."""
    counter = itertools.count()
    out = []
    for command in sequence:
        if command[0] == "SADD":
            n = int(command[2])
            members = [str(next(counter)) if command[1] == "i" else f"m{next(counter)}" for _ in range(n)]
            command = ["SADD", command[1], *members]
        out.append(command)
    return out


def _check_draw(client: redis.Redis, command: list[str]) -> object:
    """Run a draw on `client` and check it against the set before it; return what must be
    equal on both servers (the reply's shape)."""
    name = command[0].upper()
    if name == "RANDOMKEY":
        keys = set(client.keys("*"))
        reply = run(client, command)
        assert (reply is None) == (not keys) and (reply is None or reply in keys), (command, reply, keys)
        return reply is None
    before = run(client, ["SMEMBERS", command[1]])
    reply = run(client, command)
    if isinstance(reply, tuple) or reply is None:  # an error, or nil from an empty key
        return reply
    members = set(before) if isinstance(before, list) else set()
    if isinstance(reply, bytes):
        assert reply in members, (command, reply, members)
        return "one member"
    assert set(reply) <= members, (command, reply, members)
    count = int(command[2])
    if count > 0:
        assert len(set(reply)) == len(reply) == min(count, len(members)), (command, reply, members)
    else:
        assert len(reply) == (-count if members else 0), (command, reply)
    if name == "SPOP":
        assert not set(reply) & set(run(client, ["SMEMBERS", command[1]]))
    return ("members", len(reply))


def _sizes(client: redis.Redis) -> dict[bytes, tuple[bytes, int, bool]]:
    return {key: (kind, len(contents) if isinstance(contents, list) else 1, ttl)
            for key, (kind, contents, ttl) in state(client).items()}


def compare_draws(real: redis.Redis, ours: redis.Redis, sequence: list[list[str]]) -> None:
    for client in (real, ours):
        client.flushall()
    for i, command in enumerate(_fresh(sequence)):
        if command[0] in DRAWS:
            theirs, mine = _check_draw(real, command), _check_draw(ours, command)
        else:
            theirs, mine = run(real, command), run(ours, command)
        assert mine == theirs, f"step {i} {command}: redis {theirs!r}, raftcache {mine!r}"
    assert _sizes(ours) == _sizes(real)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(RANDOM, min_size=1, max_size=20))
def test_draws_have_redis_properties(real_redis, raftcache, sequence):
    compare_draws(real_redis, raftcache, sequence)


def test_spop_of_most_of_a_set_reencodes_as_redis_does(real_redis, raftcache):
    """SPOP of nearly all of a hashtable: Redis rebuilds the survivors' set, which may be an
    intset again; sizes and encodings compared (the survivors are random)."""
    for client in (real_redis, raftcache):
        client.flushall()
        client.execute_command("SADD", "h", *range(600))
        client.execute_command("SADD", "g", *range(600), "x")
        client.execute_command("SADD", "k", *range(600))
    for command in (["SPOP", "h", "550"], ["SPOP", "k", "400"]):
        assert len(run(raftcache, command)) == len(run(real_redis, command))
    for key in ("h", "k"):
        assert run(raftcache, ["OBJECT", "ENCODING", key]) == run(real_redis, ["OBJECT", "ENCODING", key])
        assert run(raftcache, ["SCARD", key]) == run(real_redis, ["SCARD", key])
    # "g": the survivors form an intset only if "x" was popped (then as in Redis).
    assert len(run(raftcache, ["SPOP", "g", "580"])) == 580
    survivors = run(raftcache, ["SMEMBERS", "g"])
    expected = b"hashtable" if b"x" in survivors else b"intset"
    assert run(raftcache, ["OBJECT", "ENCODING", "g"]) == expected
