"""Bad input against the data types, on a real cluster: wrong types everywhere, huge
ranges, a 10M-member SADD (refused on the header, like an over-long Redis query), non-numeric
scores, a missing LINSERT pivot. Each gets a clear error; the node and its data are fine."""

from __future__ import annotations

import socket
import time

import pytest
import redis

# One call per data-type command with a key at position 1, against a key holding a string.
WRONG_TYPE_CALLS = [
    ("HSET", "s", "f", "v"), ("HGET", "s", "f"), ("HGETALL", "s"), ("HDEL", "s", "f"), ("HINCRBY", "s", "f", "1"),
    ("HLEN", "s"), ("HKEYS", "s"), ("HSCAN", "s", "0"), ("HRANDFIELD", "s"),
    ("LPUSH", "s", "x"), ("RPUSH", "s", "x"), ("LPOP", "s"), ("LRANGE", "s", "0", "-1"), ("LLEN", "s"), ("LINDEX", "s", "0"),
    ("LSET", "s", "0", "x"), ("LREM", "s", "0", "x"), ("LTRIM", "s", "0", "1"), ("LINSERT", "s", "BEFORE", "a", "b"),
    ("LPOS", "s", "x"), ("LMOVE", "s", "d", "LEFT", "RIGHT"), ("RPOPLPUSH", "s", "d"),
    ("SADD", "s", "m"), ("SREM", "s", "m"), ("SMEMBERS", "s"), ("SISMEMBER", "s", "m"), ("SCARD", "s"), ("SPOP", "s"),
    ("SRANDMEMBER", "s"), ("SINTER", "s"), ("SUNION", "s"), ("SDIFF", "s"), ("SSCAN", "s", "0"),
]
ZSET_WRONG_TYPE_CALLS = [
    ("ZADD", "s", "1", "m"), ("ZSCORE", "s", "m"), ("ZRANGE", "s", "0", "-1"), ("ZCARD", "s"), ("ZREM", "s", "m"),
    ("ZINCRBY", "s", "1", "m"), ("ZPOPMIN", "s"), ("ZRANK", "s", "m"), ("ZSCAN", "s", "0"),
]


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture
def r(cluster):
    with cluster.leader().redis(socket_timeout=30) as client:
        client.flushall()
        client.set("s", "a string")
        yield client


def test_every_data_type_command_on_a_string_answers_wrongtype(r):
    from raftcache import datatypes

    calls = WRONG_TYPE_CALLS + (ZSET_WRONG_TYPE_CALLS if b"zadd" in datatypes.COMMANDS else [])
    for call in calls:
        with pytest.raises(redis.ResponseError, match="^WRONGTYPE Operation against a key holding the wrong kind of value$"):
            r.execute_command(*call)
    assert r.get("s") == b"a string"
    r.rpush("l", "x")
    for call in (("GET", "l"), ("INCR", "l"), ("APPEND", "l", "x"), ("HSET", "l", "f", "v"), ("SADD", "l", "m")):
        with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
            r.execute_command(*call)
    assert r.type("l") == b"list" and r.lrange("l", 0, -1) == [b"x"]


def test_huge_ranges_answer_only_what_exists(r):
    r.rpush("l", *range(10))
    r.sadd("set", *range(10))
    r.hset("h", mapping={str(i): i for i in range(10)})
    started = time.monotonic()
    assert len(r.lrange("l", -9223372036854775808, 9223372036854775807)) == 10
    assert r.lrange("l", 9223372036854775806, 9223372036854775807) == []
    assert r.ltrim("l", -9223372036854775808, 9223372036854775807) is True
    assert r.lindex("l", 9223372036854775807) is None
    assert len(r.srandmember("set", 1_000_000)) == 10  # a positive count never repeats members
    assert r.execute_command("HRANDFIELD", "h", "1000000") and r.hlen("h") == 10
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.lrange("l", 0, "9223372036854775808")
    assert time.monotonic() - started < 10  # nothing allocated the range


def test_a_ten_million_member_sadd_is_refused_on_its_header(cluster, r):
    """Redis takes such a command up to its 1 GB query buffer; raftcache refuses an array
    longer than `limits.max_array_len` (1M) on the header, before reading the payload."""
    host, port = cluster.leader().host, cluster.leader().port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"*10000002\r\n$4\r\nSADD\r\n$3\r\nbig\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"-ERR Protocol error: invalid multibulk length"), reply
    assert r.exists("big") == 0 and r.ping()
    members = [str(i) for i in range(200_000)]  # a large command within the limits works
    assert r.sadd("big", *members) == 200_000
    assert r.scard("big") == 200_000


def test_numbers_and_pivots(r):
    from raftcache import datatypes

    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hset("h", "f", "x")
        r.hincrby("h", "f", 1)
    assert r.linsert("missing", "BEFORE", "pivot", "x") == 0
    r.rpush("l", "a")
    assert r.linsert("l", "BEFORE", "no-such-pivot", "x") == -1
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("LINSERT", "l", "SIDEWAYS", "a", "x")
    if b"zadd" in datatypes.COMMANDS:
        for score in ("abc", "nan", "1.5x", ""):
            with pytest.raises(redis.ResponseError, match="value is not a valid float"):
                r.execute_command("ZADD", "z", score, "m")
        with pytest.raises(redis.ResponseError, match="min or max is not a float"):
            r.execute_command("ZRANGEBYSCORE", "z", "x", "1")
        assert r.exists("z") == 0
    assert r.ping()
