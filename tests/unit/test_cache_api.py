"""The embedding API on a real single-node cluster in this process (real Raft, real journal)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from raftcache import AsyncCache, Cache, ConfigError, NoLeaderError
from raftcache.errors import NotIntegerError, SyntaxError_, ValueTooLargeError
from tests.helpers import LONE_RAFT, Workers, free_ports


@pytest.fixture
def cache(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as c:
        c.wait_ready(10)
        yield c


def test_str_bytes_int_in_bytes_out(cache):
    assert cache.set("s", "héllo") is True
    assert cache.get("s") == "héllo".encode()
    assert cache.get(b"s") == "héllo".encode()
    cache.set(b"\x00\xff", b"\x01\x02")
    assert cache.get(b"\x00\xff") == b"\x01\x02"
    cache.set("i", 42)
    cache.set("f", 1.5)
    assert cache.mget("i", "f", "missing") == [b"42", b"1.5", None]
    with pytest.raises(TypeError, match="bool"):
        cache.set("b", True)
    with pytest.raises(TypeError, match="dict"):
        cache.set("d", {})


def test_decode_responses_returns_str(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, decode_responses=True) as c:
        c.wait_ready(10)
        c.set("k", "v")
        assert c.get("k") == "v"
        assert c.keys("*") == ["k"]
        assert c.set("k", "w", get=True) == "v"


def test_every_method(cache):
    assert cache.set("k", "v", ttl=30) is True
    assert 29 <= cache.ttl("k") <= 30
    assert cache.set("k", "v2", nx=True) is False
    assert cache.set("k", "v2", xx=True, keepttl=True) is True
    assert cache.pttl("k") > 29_000
    assert cache.exists("k", "k", "nope") == 2
    assert cache.incr("n", 5) == 5
    assert cache.decr("n", 2) == 3
    assert cache.append("k", "x") == 3
    assert cache.strlen("k") == 3
    assert cache.expire("k", 100) is True
    assert cache.expire("k", 50, gt=True) is False
    assert cache.persist("k") is True
    assert cache.ttl("k") == -1
    assert cache.cas("k", "v2x", "new") is True
    assert cache.cas("k", "v2x", "newer") is False
    assert cache.getdel("k") == b"new"
    assert cache.type("k") == "none"
    assert cache.mset({"a": 1, "b": 2}) is True
    assert sorted(cache.keys("*")) == [b"a", b"b", b"n"]
    cursor, keys = cache.scan(0, match="[ab]", count=100)
    assert cursor == 0 and sorted(keys) == [b"a", b"b"]
    assert cache.dbsize() == 3
    assert cache.delete("a", "b", "zz") == 2
    assert cache.get("n", consistency="stale") == b"3"
    assert cache.flushall() is True
    assert cache.dbsize() == 0


def test_errors_are_typed(cache):
    cache.set("s", "abc")
    with pytest.raises(NotIntegerError, match="value is not an integer or out of range"):
        cache.incr("s")
    with pytest.raises(SyntaxError_):
        cache.set("k", "v", ttl=1, px=1000)
    with pytest.raises(SyntaxError_):
        cache.set("k", "v", ttl=0)
    with pytest.raises(ValueTooLargeError):
        cache.set("k", b"x" * (cache._max_value + 1))
    with pytest.raises(ValueError, match="consistency"):
        cache.get("k", consistency="eventual")
    assert cache.get("s") == b"abc"  # nothing changed


def test_status_is_typed(cache):
    cache.set("a", "1")
    status = cache.status()
    assert status.role == "leader"
    assert status.leader == status.address
    assert status.term >= 1
    assert status.applied_index >= 2 and status.commit_index >= status.applied_index
    assert status.keys == 1
    assert status.log_len >= 2


def test_many_threads_share_one_cache(cache):
    def work(t: int) -> None:
        for i in range(50):
            cache.incr("shared", 1)
            cache.set(f"t{t}:{i}", str(i))
            assert cache.get(f"t{t}:{i}") == str(i).encode()

    with Workers() as workers:  # re-raises a worker's exception here
        for t in range(16):
            workers.start(work, t)
    assert cache.get("shared") == b"800"
    assert cache.dbsize() == 801
    assert cache.replica.counters["committed"] < 2 * 1600  # many commands shared Raft entries


def test_async_twin_has_the_same_methods(tmp_path):
    async def scenario():
        (port,) = free_ports(1)
        async with AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "a"), secret="s") as c:
            await c.wait_ready(10)
            assert await c.set("k", "v", ttl=10) is True
            assert await c.get("k") == b"v"
            assert await c.incr("n", 3) == 3
            results = await asyncio.gather(*(c.incr("n") for _ in range(200)))
            assert sorted(results) == list(range(4, 204))
            assert await c.cas("k", "v", "w") is True
            assert await c.keys("*") == [b"k", b"n"]
            with pytest.raises(NotIntegerError):
                await c.incr("k")
            assert c.status().keys == 2
            return c.replica.counters["committed"]

    committed = asyncio.run(scenario())
    assert committed < 200  # the 200 concurrent INCRs were group-committed


def test_sync_and_async_expose_the_same_methods():
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert public(Cache) == public(AsyncCache)


def test_from_config(tmp_path):
    ports = free_ports(2)
    cfg = tmp_path / "cluster.toml"
    cfg.write_text(
        f"""
[cluster]
secret = "s"
[[nodes]]
id = "solo"
raft = "127.0.0.1:{ports[0]}"
client = "127.0.0.1:{ports[1]}"
data_dir = "data/solo"
"""
    )
    with Cache.from_config(str(cfg), node_id="solo") as c:
        c.wait_ready(10)
        c.set("x", "1")
        assert c.status().id == "solo"
    assert (tmp_path / "data" / "solo" / "raft.log").exists()
    with Cache.from_config(str(cfg), node_id="solo") as c:  # restarts from its data_dir
        c.wait_ready(10)
        assert c.get("x") == b"1"


def test_refuses_non_loopback_raft_address_without_secret():
    with pytest.raises(ConfigError, match="cluster secret is not set, and raft address .* is not loopback"):
        Cache("10.1.2.3:7101", ["10.1.2.4:7101"])
    with pytest.raises(ConfigError, match="wildcard"):
        Cache("0.0.0.0:7101", [], secret="s")


def test_memory_only_node_says_so(caplog):
    (port,) = free_ports(1)
    with caplog.at_level(logging.WARNING), Cache(f"127.0.0.1:{port}", []) as c:
        c.wait_ready(10)
        c.set("k", "v")
    assert "MEMORY-ONLY" in caplog.text


def test_no_quorum_is_an_error_within_the_deadline(tmp_path):
    ports = free_ports(3)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    with Cache(addrs[0], addrs[1:], request_timeout=1.0) as c:  # partners never start
        with pytest.raises(NoLeaderError):
            c.set("k", "v")
        with pytest.raises(NoLeaderError):
            c.wait_ready(timeout=1.0)


def test_member_operations_sync_and_async_on_a_single_node(tmp_path):
    """The member operations' two drivers: refusals raise CommandError (the async one when
    awaited), results come back converted. Multi-node changes: tests/cluster/test_embedded.py."""
    from raftcache.errors import CommandError
    from raftcache.operations import Member

    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    with Cache(address, [], raft=LONE_RAFT, data_dir=str(tmp_path / "s"), secret="s", node_id="solo") as cache:
        cache.wait_ready(10)
        assert cache.members() == [Member("", address, "", True, True)]
        assert cache.transfer_leader(address) == "solo"  # already the leader: nothing to do
        with pytest.raises(CommandError, match="transfer leadership first"):
            cache.remove_member(address)
        with pytest.raises(CommandError, match="no member named 'ghost'"):
            cache.remove_member("ghost")
        with pytest.raises(CommandError, match="host:port"):
            cache.add_member("n2", "nohost", "127.0.0.1:1")

    async def scenario() -> None:
        (port,) = free_ports(1)
        own = f"127.0.0.1:{port}"
        async with AsyncCache(own, [], raft=LONE_RAFT, data_dir=str(tmp_path / "a"), secret="s") as c:
            await c.wait_ready(10)
            assert [m.raft for m in c.members() if m.leader] == [own]
            assert await c.transfer_leader(own) == own  # no node id given: named by its address
            refused = c.remove_member(own)  # nothing raised until awaited
            with pytest.raises(CommandError, match="transfer leadership first"):
                await refused

    asyncio.run(scenario())


def test_scripts_on_the_embedded_cache(cache):
    from raftcache.errors import NoScriptError, ScriptError

    script = cache.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert cache.script_exists(script.sha) == [False]
    assert script(keys=["n"], args=[2]) == 2  # EVALSHA -> NOSCRIPT -> EVAL
    assert cache.script_exists(script.sha) == [True]
    assert script(keys=["n"], args=[3]) == 5
    assert cache.eval("return {ARGV[1], {ok='OK'}}", 0, "x") == [b"x", "OK"]
    assert cache.eval_ro("return redis.call('get', KEYS[1])", 1, "n") == b"5"
    sha = cache.script_load("return 'loaded'")
    assert cache.evalsha(sha, 0) == b"loaded"
    assert cache.script_flush() is True
    with pytest.raises(NoScriptError):
        cache.evalsha(sha, 0)
    with pytest.raises(ScriptError, match="Write commands are not allowed from read-only scripts"):
        cache.eval_ro("return redis.call('set', 'k', 'v')", 0)


def test_register_script_on_async_cache(tmp_path):
    async def scenario() -> None:
        (port,) = free_ports(1)
        async with AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "a"), secret="s") as c:
            await c.wait_ready(10)
            script = c.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
            assert await script(keys=["n"], args=[4]) == 4
            assert await script(keys=["n"], args=[1]) == 5
            assert await c.script_exists(script.sha) == [True]

    asyncio.run(scenario())
