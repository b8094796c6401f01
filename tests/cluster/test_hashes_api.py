"""The hash methods of Cache, AsyncCache, Client and AsyncClient: redis-py's names, argument
conventions and result types (dict for hgetall, bool for hexists, float for hincrbyfloat,
(cursor, dict) for hscan), bytes or str, and errors as exceptions."""

from __future__ import annotations

import asyncio

import pytest

from raftcache import AsyncCache, AsyncClient, Cache, Client
from raftcache.errors import CommandError, IntegerOverflowError, WrongTypeError
from tests.helpers import LONE_RAFT, ServerCluster, free_ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("hashes_api"), size=1).start()
    yield cl
    cl.close()


@pytest.fixture
def cache(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as c:
        c.wait_ready(10)
        yield c


def exercise(api, prefix: str) -> None:
    """Every hash method once, with redis-py's result types (bytes out)."""
    h = f"{prefix}:h"
    assert api.hset(h, "a", 1) == 1
    assert api.hset(h, mapping={"b": b"2", "c": 3.5}, items=["d", "4", "a", "one"]) == 3
    assert api.hgetall(h) == {b"d": b"4", b"a": b"one", b"b": b"2", b"c": b"3.5"}
    assert api.hmset(h, {"e": "5"}) is True
    assert api.hsetnx(h, "e", "x") == 0
    assert api.hsetnx(h, "f", "6") == 1
    assert api.hget(h, "a") == b"one"
    assert api.hget(h, "zz") is None
    assert api.hmget(h, ["a", "zz"], "b") == [b"one", None, b"2"]
    assert api.hmget(h, "a", "b") == [b"one", b"2"]
    assert api.hkeys(h) == [b"a", b"d", b"b", b"c", b"e", b"f"]  # a listpack keeps insertion order
    assert api.hvals(h)[:3] == [b"one", b"4", b"2"]
    assert api.hlen(h) == 6
    assert api.hexists(h, "a") is True
    assert api.hexists(h, "zz") is False
    assert api.hstrlen(h, "a") == 3
    assert api.hincrby(h, "n") == 1
    assert api.hincrby(h, "n", -5) == -4
    result = api.hincrbyfloat(h, "x", 0.1)
    assert result == 0.1 and type(result) is float
    assert api.hincrbyfloat(h, "x", "10.5") == pytest.approx(10.6)
    assert api.hget(h, "x") == b"10.6"  # stored as Redis's long double text
    assert api.hdel(h, "n", "x", "zz") == 2
    assert api.hrandfield(h) in api.hkeys(h)
    assert api.hrandfield(f"{prefix}:missing") is None
    picked = api.hrandfield(h, 3)
    assert len(set(picked)) == 3 and set(picked) <= set(api.hkeys(h))
    assert len(api.hrandfield(h, -10)) == 10
    flat = api.hrandfield(h, 2, withvalues=True)
    fields = api.hgetall(h)
    assert len(flat) == 4 and all(fields[f] == v for f, v in zip(flat[0::2], flat[1::2]))
    cursor, page = api.hscan(h)
    assert cursor == 0 and page == fields
    assert api.hscan(h, 0, match="[ab]", count=100) == (0, {b"a": b"one", b"b": b"2"})
    assert api.hgetall(f"{prefix}:missing") == {}
    # errors are exceptions
    api.set(f"{prefix}:s", "text")
    with pytest.raises(WrongTypeError):
        api.hget(f"{prefix}:s", "a")
    with pytest.raises(CommandError, match="value is not a valid float"):
        api.hincrbyfloat(h, "x", "abc")
    with pytest.raises(CommandError, match="hash value is not an integer"):
        api.hincrby(h, "c")
    with pytest.raises(CommandError, match="hash value is not a float"):
        api.hincrbyfloat(h, "a")
    api.hset(h, "max", "9223372036854775807")
    with pytest.raises(IntegerOverflowError):
        api.hincrby(h, "max")
    with pytest.raises(CommandError, match="wrong number of arguments for 'hset'"):
        api.hset(h)
    with pytest.raises(TypeError):
        api.hincrby(h, "n", 1.5)
    # the key goes with its last field
    assert api.hdel(h, *api.hkeys(h)) == len(fields) + 1
    assert api.exists(h) == 0


def test_embedded_cache(cache):
    exercise(cache, "emb")
    cache.hset("big", mapping={f"f{i}": i for i in range(600)})
    seen: dict[bytes, bytes] = {}
    cursor = 0
    while True:  # a hashtable-encoded hash comes in pages
        cursor, page = cache.hscan("big", cursor, count=100)
        seen.update(page)
        if cursor == 0:
            break
    assert seen == {b"f%d" % i: b"%d" % i for i in range(600)}


def test_embedded_cache_decodes_and_pipelines(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, decode_responses=True) as c:
        c.wait_ready(10)
        c.hset("h", mapping={"é": "ü", "n": 1})
        assert c.hgetall("h") == {"é": "ü", "n": "1"}
        assert c.hkeys("h") == ["é", "n"] and c.hvals("h") == ["ü", "1"]
        assert c.hget("h", "é") == "ü" and c.hmget("h", "é", "zz") == ["ü", None]
        assert c.hrandfield("h", 5, withvalues=True) == ["é", "ü", "n", "1"]
        assert c.hscan("h", match="n") == (0, {"n": "1"})
        with c.pipeline() as p:
            p.hincrby("h", "n", 2)
            p.hgetall("h")
            p.hexists("h", "zz")
            assert p.execute() == [3, {"é": "ü", "n": "3"}, False]


def test_network_client(cluster):
    with Client(cluster.endpoints) as client:
        exercise(client, "net")
        with client.pipeline(transaction=True) as p:
            p.hset("t", "a", 1)
            p.hgetall("t")
            p.hincrbyfloat("t", "a", 0.5)
            assert p.execute() == [1, {b"a": b"1"}, 1.5]
    with Client(cluster.endpoints, decode_responses=True) as client:
        assert client.hgetall("t") == {"a": "1.5"}
        assert client.hscan("t") == (0, {"a": "1.5"})
        assert client.hrandfield("t", -2) == ["a", "a"]


def test_async_twins(cluster, tmp_path):
    async def scenario() -> None:
        async with AsyncClient(cluster.endpoints) as client:
            assert await client.hset("ah", mapping={"a": 1, "b": 2}) == 2
            assert await client.hgetall("ah") == {b"a": b"1", b"b": b"2"}
            assert await client.hexists("ah", "a") is True
            assert await client.hincrbyfloat("ah", "a", 1) == 2.0
            assert await client.hscan("ah") == (0, {b"a": b"2", b"b": b"2"})
        (port,) = free_ports(1)
        async with AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "a"), secret="s") as c:
            await c.wait_ready(10)
            assert await c.hset("h", "f", "v") == 1
            assert await c.hgetall("h") == {b"f": b"v"}
            assert await c.hmset("h", {"g": "w"}) is True
            assert await c.hrandfield("h", 2) == [b"f", b"g"]

    asyncio.run(scenario())


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_against_the_server(cluster, protocol):
    """redis-py's own hash methods, over RESP2 and RESP3 (HGETALL is a map there)."""
    with cluster.nodes[0].redis(protocol=protocol) as r:
        h = f"py{protocol}"
        assert r.hset(h, mapping={"a": 1, "b": "x"}) == 2
        assert r.hgetall(h) == {b"a": b"1", b"b": b"x"}
        r.response_callbacks.pop("HGETALL", None)
        raw = r.hgetall(h)
        assert raw == ({b"a": b"1", b"b": b"x"} if protocol == 3 else [b"a", b"1", b"b", b"x"])
        assert r.hincrbyfloat(h, "a", 0.5) == 1.5
        assert r.hexists(h, "b") is True
        assert r.hscan(h) == (0, {b"a": b"1.5", b"b": b"x"})
        assert r.execute_command("HMSET", h, "c", "3") is True  # (redis-py deprecates its hmset method)
        assert r.hrandfield(h, 5) == [b"a", b"b", b"c"]
        assert r.object("encoding", h) in (b"listpack", "listpack")
