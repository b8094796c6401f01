"""Differential test of hashes: the same command sequences sent to a real redis-server and
to a raftcache cluster (through a follower) must get the same replies and leave the same
state, OBJECT ENCODING included.

Hypothesis draws sequences of every hash command over three keys and a few fields, mixed
with string commands (SET/DEL/EXPIRE, so WRONGTYPE and deletion rules are hit), with error
cases on purpose (wrong arity, non-numeric increments, bad floats, overflow, bad HRANDFIELD
counts and HSCAN options). A fixed EDGES list replays what random draws would rarely hit.

Where Redis leaves the order unspecified, replies compare as sorted multisets: HGETALL,
HKEYS, HVALS and HSCAN of a hashtable-encoded hash (a listpack-encoded one must match in
order, HSCAN's cursor included). A hashtable's HSCAN is iterated to the end on each side and
the union compared. HRANDFIELD is random, so its replies compare by properties: nil/empty
alike, the number of fields, distinct or not, every field (and value) from the hash.
HRANDFIELD counts that make Redis build a reply of ~2**62 elements are not generated
(redis-server runs out of memory; raftcache refuses them, see hashes.MAX_RANDOM_REPLY).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cluster.differential import HAVE_REDIS_SERVER, cmd, compare, flat, run, state

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")

LONG = "L" * 65  # longer than hash-max-listpack-value: converts to hashtable

KEYS = st.sampled_from(["a", "b", "c"])
FIELDS = st.sampled_from(["f", "g", "h", "", "n", LONG])
VALUES = st.sampled_from(["", "1", "-7", "007", "10.5", "abc", "9223372036854775807", "-9223372036854775808",
                          "1e3", "0x10", " 1", "inf", "1e4932", LONG])
INTS = st.sampled_from(["1", "-1", "0", "100", "9223372036854775807", "-9223372036854775808", "x", "1.5", ""])
FLOATS = st.sampled_from(["0.1", "-0.1", "1.5", "1e3", "0x10", "abc", "inf", "-inf", "nan", "", "1e-20", "5e4931",
                          "1e5000", "3", "5e70"])
RAND_ARGS = st.sampled_from(
    [[], ["0"], ["1"], ["2"], ["5"], ["-1"], ["-5"], ["x"], ["1.5"], ["-9223372036854775808"], ["2", "WITHVALUES"],
     ["-3", "withvalues"], ["9", "WITHVALUES"], ["1", "bogus"], ["1", "WITHVALUES", "x"], ["0", "WITHVALUES"],
     ["4611686018427387904", "WITHVALUES"], ["-4611686018427387904", "WITHVALUES"]]
)
SCAN_ARGS = st.sampled_from(
    [["0"], ["0", "MATCH", "f*"], ["0", "COUNT", "1"], ["0", "MATCH", "*", "COUNT", "2"], ["0", "COUNT", "0"],
     ["0", "MATCH"], ["0", "BOGUS", "1"], ["x"], ["18446744073709551616"], ["0", "COUNT", "x"]]
)


def field_values(max_pairs: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.tuples(FIELDS, VALUES).map(list), min_size=1, max_size=max_pairs).map(lambda ps: [x for p in ps for x in p])


COMMANDS = st.one_of(
    flat(cmd("HSET", KEYS, field_values(3))),
    flat(cmd("HMSET", KEYS, field_values(2))),
    cmd("HSETNX", KEYS, FIELDS, VALUES),
    cmd("HGET", KEYS, FIELDS),
    flat(cmd("HMGET", KEYS, st.lists(FIELDS, min_size=1, max_size=3))),
    cmd("HGETALL", KEYS),
    cmd("HKEYS", KEYS),
    cmd("HVALS", KEYS),
    cmd("HLEN", KEYS),
    flat(cmd("HDEL", KEYS, st.lists(FIELDS, min_size=1, max_size=3))),
    cmd("HEXISTS", KEYS, FIELDS),
    cmd("HSTRLEN", KEYS, FIELDS),
    cmd("HINCRBY", KEYS, FIELDS, INTS),
    cmd("HINCRBYFLOAT", KEYS, FIELDS, FLOATS),
    flat(cmd("HRANDFIELD", KEYS, RAND_ARGS)),
    flat(cmd("HSCAN", KEYS, SCAN_ARGS)),
    cmd("OBJECT", "ENCODING", KEYS),
    # string and keyspace commands, so WRONGTYPE, expiry and deletion meet hashes
    cmd("SET", KEYS, st.sampled_from(["x", "12"])),
    cmd("DEL", KEYS),
    cmd("EXPIRE", KEYS, "100"),
    cmd("TYPE", KEYS),
    cmd("GET", KEYS),
    # wrong arity
    st.sampled_from([["HSET", "a"], ["HSET", "a", "f"], ["HSET", "a", "f", "1", "g"], ["HMSET", "a", "f"], ["HSETNX", "a", "f"],
                     ["HGET", "a"], ["HMGET", "a"], ["HGETALL"], ["HDEL", "a"], ["HINCRBY", "a", "f"],
                     ["HINCRBYFLOAT", "a", "f", "1", "2"], ["HLEN", "a", "b"], ["HRANDFIELD"], ["HSCAN", "a"],
                     ["HEXISTS", "a"], ["HSTRLEN", "a", "f", "g"], ["HKEYS"], ["HVALS", "a", "b"]]),
)

_UNORDERED = {"HGETALL": "pairs", "HKEYS": "items", "HVALS": "items"}


# ------------------------------------------------------------------------ comparison
def _encoding(client, key: str) -> object:
    return run(client, ["OBJECT", "ENCODING", key])


def _contents(client, key: str) -> dict[bytes, bytes]:
    reply = run(client, ["HGETALL", key])
    return dict(zip(reply[0::2], reply[1::2])) if isinstance(reply, list) else {}


def _full_scan(client, command: list[str], first: object) -> object:
    """The union of a whole HSCAN (the first reply given), as a sorted list of pairs."""
    if not isinstance(first, list):
        return first
    cursor, flat_pairs = first
    pairs = list(zip(flat_pairs[0::2], flat_pairs[1::2]))
    while cursor != b"0":
        cursor, more = run(client, [command[0], command[1], cursor.decode(), *command[3:]])
        pairs += zip(more[0::2], more[1::2])
    return sorted(set(pairs))


def _random_shape(command: list[str], reply: object, contents: dict[bytes, bytes]) -> object:
    """What must agree between two HRANDFIELD replies (the picks themselves are random)."""
    if not isinstance(reply, list):
        return reply if reply is None or isinstance(reply, tuple) else ("a field", reply in contents)
    withvalues = len(command) == 4
    names = reply[0::2] if withvalues else reply
    values_match = not withvalues or all(contents.get(f) == v for f, v in zip(reply[0::2], reply[1::2]))
    distinct = len(set(names)) == len(names)
    count = int(command[2])
    return (len(reply), set(names) <= set(contents), values_match, distinct if count > 0 else "may repeat")


def _normalised(command: list[str], theirs: object, ours: object, real, ours_client) -> tuple[object, object]:
    name = command[0].upper()
    if name == "HRANDFIELD" and len(command) > 1:
        contents = _contents(real, command[1])
        return _random_shape(command, theirs, contents), _random_shape(command, ours, contents)
    if len(command) < 2 or _encoding(real, command[1]) != b"hashtable":
        return theirs, ours  # a listpack answers in insertion order on both sides
    if name in _UNORDERED and isinstance(theirs, list) and isinstance(ours, list):
        if _UNORDERED[name] == "pairs":
            return sorted(zip(theirs[0::2], theirs[1::2])), sorted(zip(ours[0::2], ours[1::2]))
        return sorted(theirs), sorted(ours)
    if name == "HSCAN":
        return _full_scan(real, command, theirs), _full_scan(ours_client, command, ours)
    return theirs, ours


def compare_hashes(real_redis, raftcache, sequence: list[list[str]]) -> None:
    """Like differential.compare (no MULTI in these sequences), with the loose comparisons
    of the module docstring, and every hash's encoding compared at the end."""
    for client in (real_redis, raftcache):
        client.flushall()
    for i, command in enumerate(sequence):
        theirs, ours = run(real_redis, command), run(raftcache, command)
        theirs, ours = _normalised(command, theirs, ours, real_redis, raftcache)
        assert ours == theirs, f"step {i} {command}: redis {theirs!r}, raftcache {ours!r}"
    final = state(real_redis)
    assert state(raftcache) == final
    for key, (kind, _, _) in final.items():
        if kind == b"hash":
            assert _encoding(raftcache, key.decode()) == _encoding(real_redis, key.decode()), key


# ---------------------------------------------------------------------------- the tests
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(COMMANDS, min_size=1, max_size=20))
def test_same_replies_and_state_as_redis(real_redis, raftcache, sequence):
    compare_hashes(real_redis, raftcache, sequence)


def _pairs(n: int, value: str = "v") -> list[str]:
    return [x for i in range(n) for x in (f"f{i}", f"{value}{i}")]


EDGES = [
    # HSET family, replies and arity
    ["HSET", "h", "a", "1", "b", "2", "a", "3"], ["HGETALL", "h"], ["HMSET", "h", "c", "4"], ["HSETNX", "h", "a", "9"],
    ["HSETNX", "h", "d", "5"], ["HKEYS", "h"], ["HVALS", "h"], ["HMGET", "h", "a", "zz", "d"], ["HMGET", "missing", "a"],
    ["HDEL", "h", "b"], ["HSET", "h", "b", "6"], ["HGETALL", "h"],  # insertion order: b is last now
    ["HSET", "h"], ["HSET", "h", "a", "1", "b"], ["HMSET", "h", "a"], ["HDEL", "h"], ["HGETALL", "h", "x"],
    # reads of a missing key
    ["HGET", "missing", "a"], ["HGETALL", "missing"], ["HKEYS", "missing"], ["HLEN", "missing"], ["HEXISTS", "missing", "a"],
    ["HSTRLEN", "missing", "a"], ["HRANDFIELD", "missing"], ["HRANDFIELD", "missing", "3"], ["HSCAN", "missing", "0"],
    ["HSCAN", "missing", "0", "COUNT", "0"], ["HDEL", "missing", "a"],
    # WRONGTYPE, and which check comes first
    ["SET", "s", "text"], *([name, "s", *rest] for name, rest in [
        ("HSET", ["f", "v"]), ("HMSET", ["f", "v"]), ("HSETNX", ["f", "v"]), ("HGET", ["f"]), ("HMGET", ["f"]), ("HGETALL", []),
        ("HKEYS", []), ("HVALS", []), ("HLEN", []), ("HDEL", ["f"]), ("HEXISTS", ["f"]), ("HSTRLEN", ["f"]),
        ("HINCRBY", ["f", "1"]), ("HINCRBY", ["f", "x"]), ("HINCRBYFLOAT", ["f", "1"]), ("HINCRBYFLOAT", ["f", "inf"]),
        ("HINCRBYFLOAT", ["f", "x"]), ("HRANDFIELD", []), ("HRANDFIELD", ["0"]), ("HRANDFIELD", ["x"]),
        ("HRANDFIELD", ["1", "bogus"]), ("HSCAN", ["0"]), ("HSCAN", ["x"]), ("HSCAN", ["0", "COUNT", "0"])]),
    ["GET", "s"], ["HSET", "h2", "f", "v"], ["GET", "h2"], ["APPEND", "h2", "x"], ["SET", "h2", "now a string"], ["TYPE", "h2"],
    # HINCRBY
    ["HINCRBY", "n", "i", "5"], ["HINCRBY", "n", "i", "-7"], ["HINCRBY", "n", "i", "x"], ["HINCRBY", "n", "i", "1.5"],
    ["HSET", "n", "t", "abc", "z", "007", "sp", " 1", "neg0", "-0", "max", "9223372036854775807", "min", "-9223372036854775808"],
    ["HINCRBY", "n", "t", "1"], ["HINCRBY", "n", "z", "1"], ["HINCRBY", "n", "sp", "1"], ["HINCRBY", "n", "neg0", "1"],
    ["HINCRBY", "n", "max", "1"], ["HINCRBY", "n", "min", "-1"], ["HINCRBY", "n", "max", "-1"], ["HINCRBY", "n", "zero", "0"],
    ["HINCRBY", "n", "new", "9223372036854775807"], ["HINCRBY", "n", "new", "1"], ["HGETALL", "n"],
    # HINCRBYFLOAT: errors, long double arithmetic, formatting
    ["HINCRBYFLOAT", "fl", "f", "inf"], ["HINCRBYFLOAT", "fl", "f", "-inf"], ["HINCRBYFLOAT", "fl", "f", "nan"],
    ["HINCRBYFLOAT", "fl", "f", ""], ["HINCRBYFLOAT", "fl", "f", "1e5000"], ["EXISTS", "fl"],
    ["HINCRBYFLOAT", "fl", "f", "10.5"], *(["HINCRBYFLOAT", "fl", "f", "0.1"] for _ in range(5)),
    ["HSET", "fl", "t", "abc", "sp", " 1", "inf", "inf", "hx", "0x10", "e", "1e3", "big", "1e4932", "tiny", "1e-4940"],
    ["HINCRBYFLOAT", "fl", "t", "1"], ["HINCRBYFLOAT", "fl", "sp", "1"], ["HINCRBYFLOAT", "fl", "inf", "1"],
    ["HINCRBYFLOAT", "fl", "hx", "1"], ["HINCRBYFLOAT", "fl", "e", "1"], ["HINCRBYFLOAT", "fl", "big", "1e4932"],
    ["HINCRBYFLOAT", "fl", "tiny", "1"], ["HINCRBYFLOAT", "fl", "g", "0x1p-18"], ["HINCRBYFLOAT", "fl", "g", "1e17"],
    ["HINCRBYFLOAT", "fl", "g", "-1e17"], ["HINCRBYFLOAT", "fl", "p", "3.0000000000000000001"],
    ["HINCRBYFLOAT", "fl", "p", "1e-19"], ["HINCRBYFLOAT", "fl", "q", "-0.00000000000000001"],
    ["HINCRBYFLOAT", "fl", "q", "0.000000000000000001"], ["HINCRBYFLOAT", "fl", "r", "5e60"], ["OBJECT", "ENCODING", "fl"],
    ["HINCRBYFLOAT", "fl", "r", "5e4931"], ["HINCRBYFLOAT", "fl", "r", "5e4931"], ["OBJECT", "ENCODING", "fl"],
    ["HGET", "fl", "r"], ["HSTRLEN", "fl", "r"],
    # HSTRLEN, HEXISTS, HLEN, and the deletion of an emptied hash
    ["HSET", "d", "a", "hello", "b", ""], ["HSTRLEN", "d", "a"], ["HSTRLEN", "d", "b"], ["HSTRLEN", "d", "zz"],
    ["HEXISTS", "d", "b"], ["HEXISTS", "d", "zz"], ["HLEN", "d"], ["HDEL", "d", "a", "zz", "a"], ["HDEL", "d", "b"],
    ["EXISTS", "d"], ["TYPE", "d"], ["HLEN", "d"],
    # expiry on a hash
    ["HSET", "e", "f", "v"], ["EXPIRE", "e", "100"], ["HSET", "e", "g", "w"], ["PERSIST", "e"], ["HDEL", "e", "f", "g"],
    ["EXISTS", "e"], ["HSET", "e", "f", "v"], ["EXPIRE", "e", "100"], ["TTL", "e"],
    # encodings: long fields and values, HSETNX that does not set, HINCRBY's long field, never back
    ["HSET", "enc1", "a", "1"], ["OBJECT", "ENCODING", "enc1"], ["HSET", "enc1", "b", "x" * 64], ["OBJECT", "ENCODING", "enc1"],
    ["HSETNX", "enc1", "a", LONG], ["OBJECT", "ENCODING", "enc1"], ["HSETNX", "enc1", "c", LONG], ["OBJECT", "ENCODING", "enc1"],
    ["HDEL", "enc1", "c"], ["OBJECT", "ENCODING", "enc1"],
    ["HSET", "enc2", "a", "1"], ["HINCRBY", "enc2", LONG, "1"], ["OBJECT", "ENCODING", "enc2"],
    ["HSET", "enc3", "a", "1"], ["HSET", "enc3", "a", LONG, "a", "1"], ["OBJECT", "ENCODING", "enc3"], ["HGETALL", "enc3"],
    ["HSET", "enc4", *_pairs(512)], ["OBJECT", "ENCODING", "enc4"], ["HSET", "enc4", "f0", "again"], ["OBJECT", "ENCODING", "enc4"],
    ["HGETALL", "enc4"], ["HSCAN", "enc4", "0"], ["HSCAN", "enc4", "0", "MATCH", "f1?", "COUNT", "3"],
    ["HSET", "enc4", "one-more", "v"], ["OBJECT", "ENCODING", "enc4"], ["HLEN", "enc4"],
    ["HSET", "enc5", *["a", "1"] * 600], ["OBJECT", "ENCODING", "enc5"], ["HLEN", "enc5"],
    ["HMSET", "enc6", *_pairs(513)], ["OBJECT", "ENCODING", "enc6"],
    ["COPY", "enc1", "enc1copy"], ["OBJECT", "ENCODING", "enc1copy"], ["RENAME", "enc2", "enc2moved"],
    ["OBJECT", "ENCODING", "enc2moved"],
    # HSCAN of a hashtable (iterated to the end), HSCAN's errors
    ["HSET", "big", *_pairs(700)], ["HSCAN", "big", "0"], ["HSCAN", "big", "0", "COUNT", "100"],
    ["HSCAN", "big", "0", "MATCH", "f1*", "COUNT", "50"], ["HKEYS", "big"], ["HVALS", "big"], ["HGETALL", "big"],
    ["HSCAN", "big", "0", "COUNT", "0"], ["HSCAN", "big", "0", "COUNT", "-1"], ["HSCAN", "big", "0", "COUNT", "x"],
    ["HSCAN", "big", "0", "MATCH"], ["HSCAN", "big", "0", "BOGUS", "1"], ["HSCAN", "big", "0", "NOVALUES"], ["HSCAN", "big", "x"],
    ["HSCAN", "big", "18446744073709551616"], ["HSET", "small", "b", "1", "a", "2"], ["HSCAN", "small", "5", "COUNT", "1"],
    ["HSCAN", "small", "18446744073709551615"], ["HSCAN", "small", "0", "match", "a"],
    # HRANDFIELD
    ["HRANDFIELD", "big"], ["HRANDFIELD", "big", "10"], ["HRANDFIELD", "big", "500"], ["HRANDFIELD", "big", "-1000"],
    ["HRANDFIELD", "big", "5", "WITHVALUES"], ["HRANDFIELD", "big", "-5", "WITHVALUES"], ["HRANDFIELD", "small", "10"],
    ["HRANDFIELD", "small", "2"], ["HRANDFIELD", "small", "1"], ["HRANDFIELD", "small", "-9", "withvalues"],
    ["HRANDFIELD", "small", "0"], ["HRANDFIELD", "small", "0", "WITHVALUES"], ["HRANDFIELD", "small", "x"],
    ["HRANDFIELD", "small", "-9223372036854775808"], ["HRANDFIELD", "small", "9223372036854775807"],
    ["HRANDFIELD", "small", "4611686018427387903", "WITHVALUES"], ["HRANDFIELD", "small", "4611686018427387904", "WITHVALUES"],
    ["HRANDFIELD", "small", "-4611686018427387904", "WITHVALUES"], ["HRANDFIELD", "small", "1", "WITHVALUES", "x"],
    ["HRANDFIELD", "small", "1", "bogus"], ["HRANDFIELD", "missing", "-5"],
]


def test_edge_cases_match_redis(real_redis, raftcache):
    compare_hashes(real_redis, raftcache, EDGES)


# Deterministic commands inside MULTI/EXEC and scripts (the shared comparison, exact replies).
TRANSACTION_AND_SCRIPT_EDGES = [
    ["HSET", "h", "a", "1"], ["WATCH", "h"], ["HDEL", "h", "zz"], ["MULTI"], ["HSET", "h", "b", "2"], ["EXEC"],  # HDEL of nothing
    ["WATCH", "h"], ["HSET", "h", "a", "1"], ["MULTI"], ["HSET", "h", "c", "3"], ["EXEC"],  # HSET signals even unchanged
    ["HGETALL", "h"],
    ["MULTI"], ["HINCRBY", "h", "a", "5"], ["HINCRBY", "h", "b", "x"], ["HSET", "h", "c"], ["HGETALL", "h"], ["EXEC"], ["EXEC"],
    ["MULTI"], ["HINCRBYFLOAT", "h", "a", "0.5"], ["HGET", "h", "a"], ["HDEL", "h", "a", "b"], ["HGETALL", "h"], ["HLEN", "h"], ["EXEC"],
    ["EVAL", "return redis.call('HGETALL', KEYS[1])", "1", "h"],
    ["EVAL", "redis.call('HSET', KEYS[1], 'x', ARGV[1]) return redis.call('HINCRBYFLOAT', KEYS[1], 'x', '0.25')", "1", "h", "1"],
    ["EVAL", "local r = redis.pcall('HINCRBY', KEYS[1], 'x', 1) return r", "1", "h"],
    ["EVAL", "return redis.call('HMGET', KEYS[1], 'x', 'nope')", "1", "h"],
    ["EVAL", "return redis.call('HSCAN', KEYS[1], 0)", "1", "h"],
    ["EVAL", "return redis.call('HRANDFIELD', KEYS[1], 0)", "1", "h"],
    ["EVAL", "return redis.call('HEXISTS', KEYS[1], 'x')", "1", "h"],
    ["EVAL", "local r = redis.pcall('HSET', KEYS[1]) return r", "1", "h"],
    ["EVAL_RO", "local r = redis.pcall('HSET', KEYS[1], 'y', '1') return r", "1", "h"],
    ["HGETALL", "h"],
]


def test_transactions_and_scripts_match_redis(real_redis, raftcache):
    compare(real_redis, raftcache, TRANSACTION_AND_SCRIPT_EDGES)
