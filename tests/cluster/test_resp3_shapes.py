"""RESP3 reply shapes of the data types against a real redis-server (redis-py 8 speaks RESP3
by default): scores are doubles, WITHSCORES / WITHVALUES / counted ZPOPMIN are nested pairs,
HGETALL a map. Both servers are asked the same commands over `HELLO 3` connections with
redis-py's reply conversions off, and the parsed replies (types included) must be equal."""

from __future__ import annotations

import pytest
import redis

from tests.cluster.differential import HAVE_REDIS_SERVER, run

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")

SEQUENCE = [
    ["ZADD", "z", "1.5", "a", "2", "b", "-inf", "c", "3", "d"],
    ["ZSCORE", "z", "a"], ["ZSCORE", "z", "c"], ["ZSCORE", "z", "missing"], ["ZMSCORE", "z", "a", "missing", "b"],
    ["ZINCRBY", "z", "0.25", "a"], ["ZADD", "z", "INCR", "1", "b"],
    ["ZRANGE", "z", "0", "-1", "WITHSCORES"], ["ZRANGE", "z", "0", "-1"], ["ZREVRANGE", "z", "0", "1", "WITHSCORES"],
    ["ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES"], ["ZRANGE", "z", "(1", "3", "BYSCORE", "WITHSCORES"],
    ["ZPOPMIN", "z"], ["ZPOPMAX", "z", "2"], ["ZPOPMIN", "z", "0"], ["ZPOPMIN", "missing", "3"],
    ["ZADD", "y", "1", "p", "2", "q"], ["ZMPOP", "1", "y", "MIN", "COUNT", "5"],
    ["HSET", "h", "f1", "v1", "f2", "v2"], ["HGETALL", "h"], ["HRANDFIELD", "h", "2", "WITHVALUES"],
    ["HINCRBYFLOAT", "h", "n", "1.5"], ["SADD", "s", "x"], ["SMEMBERS", "s"],
    ["ZADD", "w", "5", "m"], ["ZRANDMEMBER", "w", "1", "WITHSCORES"], ["ZSCAN", "w", "0"], ["ZRANK", "w", "m"],
    ["ZUNION", "2", "z", "w", "WITHSCORES"], ["ZUNION", "2", "z", "w"], ["ZINTER", "1", "w", "WITHSCORES"],
    ["ZDIFF", "2", "z", "w", "WITHSCORES"], ["ZDIFF", "1", "missing", "WITHSCORES"], ["ZINTERCARD", "2", "z", "w"],
    ["ZRANGESTORE", "dst", "w", "0", "-1"],
]


def _resp3(port: int) -> redis.Redis:
    client = redis.Redis(host="127.0.0.1", port=port, protocol=3, socket_timeout=10)
    client.response_callbacks.clear()
    return client


def test_resp3_reply_shapes_match_redis(real_redis, raftcache):
    theirs = _resp3(real_redis.connection_pool.connection_kwargs["port"])
    ours = _resp3(raftcache.connection_pool.connection_kwargs["port"])
    try:
        for client in (theirs, ours):
            client.flushall()
        for i, command in enumerate(SEQUENCE):
            a, b = run(theirs, command), run(ours, command)
            assert b == a and _types(b) == _types(a), f"step {i} {command}: redis {a!r}, raftcache {b!r}"
    finally:
        theirs.close()
        ours.close()


def _types(reply: object) -> object:
    if isinstance(reply, (list, tuple)):
        return [_types(item) for item in reply]
    if isinstance(reply, dict):
        return {_types(k): _types(v) for k, v in reply.items()}
    return type(reply).__name__


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sorted_set_and_hash_methods(raftcache, protocol):
    """redis-py's own conversions over both protocols, as an application calls them (redis-py
    gives pairs as tuples in RESP2 and as lists in RESP3, against Redis too)."""
    def pairs(reply):
        return [tuple(p) for p in reply]

    port = raftcache.connection_pool.connection_kwargs["port"]
    with redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True) as r:
        r.delete("board", "h")
        assert r.zadd("board", {"ann": 3.5, "bob": 1, "cy": 2}) == 3
        assert pairs(r.zrange("board", 0, -1, withscores=True)) == [("bob", 1.0), ("cy", 2.0), ("ann", 3.5)]
        assert pairs(r.zrevrange("board", 0, 0, withscores=True)) == [("ann", 3.5)]
        assert r.zscore("board", "ann") == 3.5 and r.zincrby("board", 0.5, "bob") == 1.5
        assert r.zmscore("board", ["cy", "nobody"]) == [2.0, None]
        assert pairs(r.zpopmin("board", 1)) == [("bob", 1.5)]
        assert tuple(r.bzpopmax("board", timeout=1)) == ("board", "ann", 3.5)
        r.hset("h", mapping={"a": "1", "b": "2"})
        assert r.hgetall("h") == {"a": "1", "b": "2"}
        assert r.hincrbyfloat("h", "a", 0.5) == 1.5
