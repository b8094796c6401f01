"""The set methods' results: raftcache.Client and the embedded Cache return what redis-py
returns for the same calls (sets, bools, lists, (cursor, list) pairs), and redis-py itself
works against a raftcache node."""

from __future__ import annotations

import asyncio

import pytest
import redis

from raftcache import AsyncClient, Cache, Client
from raftcache.errors import WrongTypeError
from tests.helpers import LONE_RAFT, free_ports


@pytest.fixture(scope="module")
def endpoint(raftcache) -> str:
    """A follower of the differential tests' cluster (session fixture)."""
    return f"127.0.0.1:{raftcache.connection_pool.connection_kwargs['port']}"


def _exercise(api, prefix: str, decoded: bool = False) -> None:
    """Every set method, with the result types redis-py gives (bytes, or str if decoded)."""
    k = lambda name: f"{prefix}{name}"
    out = (lambda b: b.decode()) if decoded else (lambda b: b)
    s = out(b"x")
    assert api.sadd(k("a"), "x", "y", 3) == 3
    assert api.sadd(k("b"), "y", "z") == 2
    assert api.srem(k("b"), "z", "nope") == 1
    assert api.smembers(k("a")) == {s, out(b"y"), out(b"3")}
    assert api.smembers(k("missing")) == set()
    assert api.sismember(k("a"), "x") is True and api.sismember(k("a"), "q") is False
    assert api.smismember(k("a"), ["x", "q"]) == [True, False]
    assert api.smismember(k("a"), "x", "q", 3) == [True, False, True]
    assert api.scard(k("a")) == 3
    assert api.sinter([k("a"), k("b")]) == {out(b"y")}
    assert api.sinter(k("a"), k("b")) == {out(b"y")}
    assert api.sunion([k("a"), k("b")]) == api.smembers(k("a"))
    assert api.sdiff(k("a"), k("b")) == {s, out(b"3")}
    assert api.sinterstore(k("i"), [k("a"), k("b")]) == 1
    assert api.sunionstore(k("u"), k("a"), k("b")) == 3
    assert api.sdiffstore(k("d"), [k("a"), k("b")]) == 2
    assert api.sintercard(2, [k("a"), k("u")]) == 3
    assert api.sintercard(2, [k("a"), k("u")], limit=1) == 1
    assert api.smove(k("a"), k("m"), "x") is True and api.smove(k("a"), k("m"), "x") is False
    cursor, members = api.sscan(k("u"), 0, match="*", count=100)
    assert cursor == 0 and sorted(members) == sorted(api.smembers(k("u")))
    assert api.srandmember(k("u")) in api.smembers(k("u"))
    picked = api.srandmember(k("u"), 2)
    assert isinstance(picked, list) and len(set(picked)) == 2
    assert len(api.srandmember(k("u"), -5)) == 5
    assert api.srandmember(k("missing")) is None and api.srandmember(k("missing"), 3) == []
    popped = api.spop(k("u"))
    assert popped in {s, out(b"y"), out(b"3")}
    rest = api.spop(k("u"), 5)
    assert isinstance(rest, list) and len(rest) == 2 and api.scard(k("u")) == 0
    assert api.spop(k("u")) is None and api.spop(k("u"), 2) == []
    assert api.randomkey() is not None
    api.set(k("str"), "v")
    with pytest.raises(WrongTypeError):
        api.sadd(k("str"), "x")


def test_client_set_methods(endpoint):
    with Client([endpoint]) as client:
        _exercise(client, "c:")
    with Client([endpoint], decode_responses=True) as client:
        _exercise(client, "cd:", decoded=True)
        assert isinstance(client.randomkey(), str)


def test_async_client_set_methods(endpoint):
    async def scenario() -> None:
        async with AsyncClient([endpoint]) as client:
            assert await client.sadd("ac:s", "1", "2") == 2
            assert await client.smembers("ac:s") == {b"1", b"2"}
            assert await client.sismember("ac:s", "1") is True
            assert len(await client.spop("ac:s", 5)) == 2

    asyncio.run(scenario())


def test_embedded_cache_set_methods(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as cache:
        cache.wait_ready(10)
        _exercise(cache, "e:")


def test_redis_py_against_raftcache(endpoint):
    """redis-py's own methods and reply callbacks, on a raftcache node."""
    host, port = endpoint.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), protocol=2)
    try:
        assert client.sadd("r:s", "a", "b", "1") == 3
        assert client.smembers("r:s") == {b"a", b"b", b"1"}
        assert client.sismember("r:s", "a") == 1  # redis-py 8 leaves it 0/1; True == 1 in ours
        assert client.smismember("r:s", ["a", "z"]) == [1, 0]
        assert client.smove("r:s", "r:t", "a") is True
        assert client.sintercard(2, ["r:s", "r:s"], limit=1) == 1
        cursor, members = client.sscan("r:s")
        assert cursor == 0 and set(members) == {b"b", b"1"}
        assert set(client.sscan_iter("r:s")) == {b"b", b"1"}
        assert client.spop("r:s") in {b"b", b"1"}
        assert client.randomkey() is not None
    finally:
        client.close()
