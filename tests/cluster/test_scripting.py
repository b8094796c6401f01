"""EVAL / EVALSHA / SCRIPT through a follower of a 3-node `raftcache serve` cluster, with
redis-py (eval, evalsha, register_script, its Lock) and raftcache.Client: the script cache
is replicated (EVALSHA works on every node, after a leader kill -9 and a restart), runaway
scripts are stopped with an error while the node stays responsive, replicas converge."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from redis.exceptions import LockNotOwnedError, NoScriptError, ResponseError

from raftcache import AsyncClient, Client
from tests.helpers import ServerCluster, wait_until

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("scripting")).start()
    yield cl
    cl.close()


def _follower(cluster):
    leader = cluster.leader()
    return next(n for n in cluster.nodes if n is not leader and n.alive)


@pytest.fixture
def k():
    prefix = f"lua{next(_prefixes)}:"
    return lambda name: prefix + name


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(cluster, request):
    with _follower(cluster).redis(protocol=request.param) as client:
        yield client


def test_eval_and_evalsha_through_a_follower(r, k):
    assert r.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, k("a"), "1") == b"OK"
    assert r.eval("return redis.call('incrby', KEYS[1], ARGV[1])", 1, k("a"), "41") == 42
    sha = r.script_load("return {KEYS[1], ARGV[1], 3.7, redis.call('get', KEYS[1])}")
    assert r.evalsha(sha, 1, k("a"), "x") == [k("a").encode(), b"x", 3, b"42"]
    assert r.script_exists(sha, "0" * 40) == [True, False]
    with pytest.raises(NoScriptError):
        r.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="value is not an integer"):
        r.eval("return redis.call('incr', KEYS[1])", 1, k("s")) if r.set(k("s"), "text") else None
    assert r.eval_ro("return redis.call('get', KEYS[1])", 1, k("a")) == b"42"
    with pytest.raises(ResponseError, match="Write commands are not allowed from read-only scripts"):
        r.eval_ro("return redis.call('del', KEYS[1])", 1, k("a"))
    assert r.get(k("a")) == b"42"


def test_register_script(r, k):
    script = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    r.script_flush()
    assert script(keys=[k("n")], args=[5]) == 5  # NOSCRIPT -> load -> EVALSHA, as redis-py does
    assert script(keys=[k("n")], args=[2]) == 7
    assert r.script_exists(script.sha) == [True]


def test_script_cache_is_replicated(cluster, k):
    sha = None
    with cluster.leader().redis() as leader:
        sha = leader.script_load("return 'everywhere'")
    for node in cluster.nodes:
        with node.redis() as client:
            assert client.evalsha(sha, 0) == b"everywhere"
    cluster.converged()


def test_runaway_script_is_stopped_and_the_node_stays_responsive(cluster, k):
    follower = _follower(cluster)
    with follower.redis(socket_timeout=30) as r:
        r.set(k("before"), "1")
        started = time.monotonic()
        with pytest.raises(ResponseError, match="Script exceeded its instruction budget"):
            r.eval("redis.call('set', KEYS[1], 'x') while true do end", 1, k("loop"))
        assert time.monotonic() - started < 10
        with pytest.raises(ResponseError, match="memory budget|not enough memory"):
            r.eval("local s = 'x' while true do s = s .. s end", 0)
        with pytest.raises(ResponseError, match="nonexistent global variable 'os'"):
            r.eval("return os.execute('true')", 0)
        assert r.get(k("loop")) == b"x"  # writes before the stop stay, on every replica
        assert r.ping()
    cluster.converged()


def test_redis_py_lock(r, k):
    lock = r.lock(k("lock"), timeout=5)
    assert lock.acquire(blocking=False)
    assert not r.lock(k("lock"), timeout=5).acquire(blocking=False)
    assert lock.extend(10)
    assert 5_000 < r.pttl(k("lock")) <= 15_000
    assert lock.reacquire()
    lock.release()
    assert r.get(k("lock")) is None
    short = r.lock(k("short"), timeout=0.3)
    assert short.acquire(blocking=False)
    wait_until(lambda: r.get(k("short")) is None, 10, what="the lock to expire")
    with pytest.raises(LockNotOwnedError):
        short.release()
    other = r.lock(k("short"), timeout=5)
    assert other.acquire(blocking=True, blocking_timeout=5)
    other.release()


def test_raftcache_client_scripts(cluster, k):
    with Client(cluster.endpoints) as client:
        script = client.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
        client.script_flush()
        assert script(keys=[k("c")], args=[3]) == 3
        assert script(keys=[k("c")], args=[4]) == 7
        assert client.eval("return ARGV[1]", 0, "hi") == b"hi"
        assert client.script_exists(script.sha) == [True]
        assert client.eval_ro("return redis.call('get', KEYS[1])", 1, k("c")) == b"7"


def test_async_client_register_script(cluster, k):
    async def scenario() -> None:
        async with AsyncClient(cluster.endpoints) as client:
            script = client.register_script("return redis.call('incrby', KEYS[1], ARGV[1]) + 0")
            await client.script_flush()
            assert await script(keys=[k("ac")], args=[2]) == 2
            assert await script(keys=[k("ac")], args=[2]) == 4
            assert await client.script_exists(script.sha) == [True]

    asyncio.run(scenario())


def test_evalsha_after_leader_kill_and_restart(cluster, k):
    leader = cluster.leader()
    with leader.redis() as r:
        sha = r.script_load("return redis.call('incr', KEYS[1])")
        assert r.evalsha(sha, 1, k("x")) == 1
    leader.kill()
    new_leader = wait_until(lambda: (l := cluster.leader()) is not leader and l, 30, what="a new leader")
    with new_leader.redis() as r:
        assert r.evalsha(sha, 1, k("x")) == 2
    leader.start()
    wait_until(lambda: leader.info()["raft_leader_id"] == new_leader.id, 30, what="the old leader to rejoin")
    cluster.converged()
    with leader.redis() as r:  # restarted from its journal/snapshot: the script is still there
        assert r.evalsha(sha, 1, k("x")) == 3
