"""Differential test of the list commands: the same random sequences sent to a real
redis-server 7.0 and to a raftcache cluster (through a follower) must get the same replies
and leave the same state.

Hypothesis draws sequences of list commands over three keys, mixed with SET/DEL/EXPIRE so
WRONGTYPE and the deletion of emptied lists are hit, with error cases on purpose (bad
counts, indexes and options, wrong arity). A fixed EDGES list replays what random draws
would rarely reach (huge and negative indexes, LPOS's option errors and RANK overflow,
LMOVE onto itself, LMPOP's parsing). The nil-array replies (``*-1``) are compared on the
wire, where redis-py would see None for both spellings of nil.
"""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cluster.differential import HAVE_REDIS_SERVER, cmd, compare, flat

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")

KEYS = st.sampled_from(["a", "b", "c"])
ELEMENTS = st.sampled_from(["x", "y", "z", "", "1", "x"])
INDEXES = st.sampled_from(["-100", "-3", "-2", "-1", "0", "1", "2", "3", "100", "9223372036854775807",
                           "-9223372036854775808", "x", "1.5"])
COUNTS = st.sampled_from(["0", "1", "2", "3", "10", "-1", "x", "9223372036854775807"])
SIDES = st.sampled_from(["LEFT", "RIGHT", "left", "Right", "MIDDLE"])
LPOS_OPTIONS = st.lists(
    st.sampled_from([["RANK", "1"], ["RANK", "-1"], ["RANK", "2"], ["RANK", "-2"], ["RANK", "0"], ["COUNT", "0"],
                     ["COUNT", "1"], ["COUNT", "2"], ["COUNT", "-1"], ["MAXLEN", "0"], ["MAXLEN", "2"],
                     ["MAXLEN", "-1"], ["RANK", "x"], ["BOGUS", "1"], ["COUNT"]]),
    max_size=3,
).map(lambda options: [word for option in options for word in option])
ELEMENT_LISTS = st.lists(ELEMENTS, min_size=1, max_size=4)

COMMANDS = st.one_of(
    flat(cmd(st.sampled_from(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), KEYS, ELEMENT_LISTS)),
    flat(cmd(st.sampled_from(["LPUSH", "RPUSH"]), KEYS, ELEMENT_LISTS)),  # lists must grow to matter
    cmd(st.sampled_from(["LPOP", "RPOP"]), KEYS),
    cmd(st.sampled_from(["LPOP", "RPOP"]), KEYS, COUNTS),
    cmd("LRANGE", KEYS, INDEXES, INDEXES),
    cmd("LLEN", KEYS),
    cmd("LINDEX", KEYS, INDEXES),
    cmd("LSET", KEYS, INDEXES, ELEMENTS),
    cmd("LREM", KEYS, st.sampled_from(["0", "1", "2", "-1", "-2", "x"]), ELEMENTS),
    cmd("LTRIM", KEYS, INDEXES, INDEXES),
    cmd("LINSERT", KEYS, st.sampled_from(["BEFORE", "AFTER", "after", "NEAR"]), ELEMENTS, ELEMENTS),
    flat(cmd("LPOS", KEYS, ELEMENTS, LPOS_OPTIONS)),
    cmd("LMOVE", KEYS, KEYS, SIDES, SIDES),
    cmd("RPOPLPUSH", KEYS, KEYS),
    flat(cmd("LMPOP", st.sampled_from(["1", "2", "3"]), st.lists(KEYS, min_size=1, max_size=3), SIDES,
             st.sampled_from([[], ["COUNT", "1"], ["COUNT", "2"], ["COUNT", "5"], ["COUNT", "0"], ["COUNT"]]))),
    cmd("OBJECT", "ENCODING", KEYS),
    cmd("TYPE", KEYS),
    # strings and deletion, so WRONGTYPE and the empty-list rules meet the lists
    cmd("SET", KEYS, ELEMENTS),
    cmd("DEL", KEYS),
    cmd("EXPIRE", KEYS, st.sampled_from(["100", "0"])),
    cmd("EXISTS", KEYS),
    st.sampled_from([["LPUSH", "a"], ["LPOP"], ["LPOP", "a", "1", "2"], ["LRANGE", "a", "0"], ["LINDEX", "a"],
                     ["LSET", "a", "0"], ["LREM", "a", "0"], ["LTRIM", "a", "0"], ["LINSERT", "a", "BEFORE", "x"],
                     ["LPOS", "a"], ["LMOVE", "a", "b", "LEFT"], ["RPOPLPUSH", "a"], ["LMPOP", "1", "a"], ["LLEN"],
                     ["LLEN", "a", "b"]]),
)

HUGE, TINY = "9223372036854775807", "-9223372036854775808"
EDGES = [
    ["RPUSH", "l", "a", "b", "c", "a", "b", "a"],
    *(["LRANGE", "l", s, e] for s, e in [("0", HUGE), (TINY, HUGE), (TINY, TINY), (HUGE, HUGE), ("-100", "-7"),
                                         ("-7", "-6"), ("5", "100"), ("6", "6"), ("3", "1"), ("-1", "-1"),
                                         ("-2", "-100"), ("1", "-2"), ("0", "0"), ("x", "0"), ("0", " 1")]),
    ["LRANGE", "missing", "0", "-1"], ["LRANGE", "missing", "x", "0"],
    *(["LINDEX", "l", i] for i in ["0", "5", "6", "-1", "-6", "-7", HUGE, TINY, "x", "01", "+1"]),
    ["LINDEX", "missing", "x"],
    *(["LPOS", "l", "a", *o] for o in [[], ["RANK", "2"], ["RANK", "-1"], ["RANK", "-3"], ["RANK", "-4"], ["RANK", "4"],
                                      ["COUNT", "0"], ["COUNT", "2"], ["RANK", "-1", "COUNT", "0"], ["RANK", "2", "COUNT", "1"],
                                      ["MAXLEN", "1"], ["MAXLEN", "4", "COUNT", "0"], ["RANK", "-1", "MAXLEN", "2", "COUNT", "0"],
                                      ["RANK", "-1", "MAXLEN", "1"], ["RANK", TINY], ["RANK", TINY, "COUNT", "1"],
                                      ["RANK", TINY, "COUNT", "0"], ["RANK", "-" + HUGE, "COUNT", "1"], ["RANK", HUGE],
                                      ["RANK", "0"], ["RANK", "x"], ["COUNT", "-1"], ["COUNT", "x"], ["MAXLEN", "-1"],
                                      ["MAXLEN", "x"], ["COUNT"], ["BOGUS", "1"], ["RANK", "0", "BOGUS"],
                                      ["COUNT", "1", "COUNT", "2"], ["rank", "1", "count", "1", "maxlen", "0"]]),
    ["LPOS", "missing", "a"], ["LPOS", "missing", "a", "COUNT", "1"], ["LPOS", "missing", "a", "RANK", "0"],
    ["LPOS", "l", "nothere"], ["LPOS", "l", "nothere", "COUNT", "0"],
    ["LSET", "l", "-1", "z"], ["LSET", "l", "6", "z"], ["LSET", "l", "-7", "z"], ["LSET", "l", "x", "z"],
    ["LSET", "missing", "x", "z"], ["LSET", "missing", "0", "z"], ["LRANGE", "l", "0", "-1"],
    ["LINSERT", "l", "BEFORE", "a", "p"], ["LINSERT", "l", "after", "z", "q"], ["LINSERT", "l", "AFTER", "nope", "q"],
    ["LINSERT", "missing", "BEFORE", "a", "q"], ["LINSERT", "missing", "NEAR", "a", "q"], ["LINSERT", "l", "NEAR", "a", "q"],
    ["EXISTS", "missing"], ["LRANGE", "l", "0", "-1"],
    ["LREM", "l", "1", "a"], ["LREM", "l", "-1", "a"], ["LRANGE", "l", "0", "-1"], ["LREM", "l", "0", "b"],
    ["LREM", "l", "0", "nope"], ["LREM", "l", "x", "a"], ["LREM", "missing", "x", "a"], ["LREM", "missing", "1", "a"],
    ["LRANGE", "l", "0", "-1"],
    ["LPOP", "l", "0"], ["LPOP", "missing", "0"], ["LPOP", "missing", "1"], ["LPOP", "missing"], ["LPOP", "l", "-1"],
    ["LPOP", "missing", "-1"], ["LPOP", "l", "x"], ["LPOP", "l", "1", "2"], ["RPOP", "l", "2"], ["LPOP", "l", HUGE],
    ["EXISTS", "l"], ["RPOP", "l"], ["RPOP", "l", "3"],
    ["RPUSH", "m", "1", "2", "3"], ["LMOVE", "m", "m", "LEFT", "RIGHT"], ["LMOVE", "m", "m", "RIGHT", "LEFT"],
    ["LMOVE", "m", "m", "LEFT", "LEFT"], ["LRANGE", "m", "0", "-1"], ["RPOPLPUSH", "m", "m"], ["LRANGE", "m", "0", "-1"],
    ["LMOVE", "m", "n", "LEFT", "MIDDLE"], ["LMOVE", "m", "n", "up", "LEFT"], ["LMOVE", "missing", "n", "LEFT", "LEFT"],
    ["LMOVE", "missing", "n", "x", "LEFT"], ["EXISTS", "n"], ["SET", "s", "v"], ["LMOVE", "m", "s", "LEFT", "LEFT"],
    ["LMOVE", "s", "m", "LEFT", "LEFT"], ["LMOVE", "missing", "s", "LEFT", "LEFT"], ["RPOPLPUSH", "m", "s"],
    ["LRANGE", "m", "0", "-1"], ["LMOVE", "m", "n", "RIGHT", "LEFT"], ["LMOVE", "m", "n", "right", "left"],
    ["LMOVE", "m", "n", "Left", "Right"], ["EXISTS", "m"], ["LRANGE", "n", "0", "-1"],
    ["RPUSH", "one", "x"], ["LMOVE", "one", "one", "LEFT", "RIGHT"], ["LRANGE", "one", "0", "-1"],
    ["LMPOP", "0", "n", "LEFT"], ["LMPOP", "x", "n", "LEFT"], ["LMPOP", "-1", "n", "LEFT"], ["LMPOP", HUGE, "n", "LEFT"],
    ["LMPOP", "2", "n", "LEFT"], ["LMPOP", "1", "n", "MIDDLE"], ["LMPOP", "1", "n", "LEFT", "COUNT", "0"],
    ["LMPOP", "1", "n", "LEFT", "COUNT", "-1"], ["LMPOP", "1", "n", "LEFT", "COUNT", "x"], ["LMPOP", "1", "n", "LEFT", "COUNT"],
    ["LMPOP", "1", "n", "LEFT", "COUNT", "1", "COUNT", "1"], ["LMPOP", "1", "n", "LEFT", "BOGUS"],
    ["LMPOP", "2", "missing", "n", "RIGHT", "count", "2"], ["LMPOP", "2", "missing", "s", "LEFT"],
    ["LMPOP", "2", "s", "n", "LEFT"], ["LMPOP", "3", "missing", "n", "s", "LEFT", "COUNT", "100"],
    ["LMPOP", "1", "missing", "LEFT"], ["LMPOP", "1", "n", "LEFT"], ["EXISTS", "n"],
    ["LPUSHX", "missing", "a"], ["RPUSHX", "missing", "a", "b"], ["EXISTS", "missing"], ["LPUSHX", "s", "a"],
    ["RPUSHX", "s", "a"], ["LPUSH", "s", "a"], ["RPUSH", "p", "1"], ["LPUSHX", "p", "2", "3"], ["RPUSHX", "p", "4", "5"],
    ["LRANGE", "p", "0", "-1"], ["LPUSH", "p", "6", "7", "8"], ["LRANGE", "p", "0", "-1"],
    *([name, "s", *rest] for name, rest in [("LRANGE", ["0", "1"]), ("LLEN", []), ("LINDEX", ["0"]), ("LSET", ["0", "v"]),
                                          ("LREM", ["0", "v"]), ("LTRIM", ["0", "1"]), ("LINSERT", ["BEFORE", "v", "w"]),
                                          ("LPOS", ["v"]), ("LPOS", ["v", "COUNT", "0"]), ("LPOP", []), ("RPOP", ["2"]),
                                          ("LPOP", ["0"]), ("RPOP", ["-1"]), ("LINDEX", ["x"]), ("LTRIM", ["x", "0"]),
                                          ("LPOS", ["v", "RANK", "0"]), ("LINSERT", ["NEAR", "v", "w"])]),
    ["RPUSH", "t", "0", "1", "2", "3", "4", "5", "6"],
    *(["LTRIM", "t", s, e] for s, e in [("0", HUGE), (TINY, HUGE), ("1", "-2"), ("-100", "100"), ("1", "-1")]),
    ["LRANGE", "t", "0", "-1"], ["LTRIM", "t", "2", "1"], ["EXISTS", "t"], ["LTRIM", "t", "0", "-1"],
    ["LTRIM", "missing", "0", "1"], ["LTRIM", "missing", "x", "1"],
    ["RPUSH", "t", "a", "b", "c"], ["LTRIM", "t", HUGE, TINY], ["EXISTS", "t"],
    ["RPUSH", "t", "a", "b", "c"], ["LTRIM", "t", "-1", "-1"], ["LRANGE", "t", "0", "-1"], ["LTRIM", "t", "-100", "-2"],
    ["EXISTS", "t"], ["OBJECT", "ENCODING", "p"], ["TYPE", "p"],
    ["RPUSH", "w", "x"], ["EXPIRE", "w", "100"], ["LPUSH", "w", "y"], ["TTL", "w"], ["RPOP", "w", "5"], ["EXISTS", "w"],
]


def test_edge_cases_match_redis(real_redis, raftcache):
    compare(real_redis, raftcache, EDGES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(COMMANDS, min_size=1, max_size=25))
def test_same_replies_and_state_as_redis(real_redis, raftcache, sequence):
    compare(real_redis, raftcache, sequence)


TRANSACTIONS = [
    ["RPUSH", "q", "1", "2"], ["WATCH", "q"], ["LTRIM", "q", "0", "-1"], ["MULTI"], ["LLEN", "q"], ["EXEC"],
    ["WATCH", "q"], ["LREM", "q", "0", "nope"], ["MULTI"], ["LLEN", "q"], ["EXEC"],
    ["WATCH", "q"], ["LINSERT", "q", "BEFORE", "nope", "x"], ["MULTI"], ["LLEN", "q"], ["EXEC"],
    ["MULTI"], ["LPUSH", "q", "0"], ["LPOP", "q", "9"], ["LPOP", "q", "1"], ["LMPOP", "1", "q", "LEFT"], ["LRANGE", "q", "0", "-1"],
    ["EXEC"],
    ["EVAL", "return redis.call('LPOP', KEYS[1], 1)", "1", "missing"],
    ["EVAL", "return redis.call('RPUSH', KEYS[1], 'a', 'b')", "1", "r"],
    ["EVAL", "return redis.call('LRANGE', KEYS[1], 0, -1)", "1", "r"],
    ["EVAL", "return redis.pcall('LSET', KEYS[1], 9, 'x')", "1", "r"],
]


def test_transactions_and_scripts_match_redis(real_redis, raftcache):
    compare(real_redis, raftcache, TRANSACTIONS)


def _wire(client, *words: str) -> bytes:
    """One command's raw reply bytes (RESP2) on a fresh connection to `client`'s server."""
    kwargs = client.connection_pool.connection_kwargs
    with socket.create_connection((kwargs["host"], kwargs["port"]), timeout=10) as sock:
        sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words))
        data = b""
        while not data.endswith(b"\r\n"):
            data += sock.recv(4096)
        return data


def test_nil_array_replies_are_the_same_bytes(real_redis, raftcache):
    """*-1 and $-1 both read as None in redis-py: compare the bytes themselves."""
    for client in (real_redis, raftcache):
        client.delete("nil")
        client.rpush("nil:one", "v")
    for words in [("LPOP", "nil", "1"), ("RPOP", "nil", "0"), ("LPOP", "nil"), ("LMPOP", "1", "nil", "LEFT"),
                  ("LPOS", "nil", "v"), ("LPOS", "nil", "v", "COUNT", "1"), ("LMOVE", "nil", "x", "LEFT", "LEFT"),
                  ("LINDEX", "nil", "0"), ("RPOP", "nil:one", "5")]:
        assert _wire(raftcache, *words) == _wire(real_redis, *words), words
