"""redis-py's own client-side cache (`protocol=3, cache_config=CacheConfig()`: RESP3 and
CLIENT TRACKING, invalidation pushes) against the leader and a follower of a 3-node `raftcache
serve` cluster, with the writes made through another node, and again across a kill -9 of the
leader. The happens-before check: once a write is acknowledged to its writer and the node
holding the cached connection has applied it (a linearizable read through that node returns
it, which it can only do after handing the invalidation to the cached connection's socket),
no cached read returns the old value."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis
from redis.cache import CacheConfig

from tests.compat.support import kill_leader, no_retry, restart
from tests.helpers import ServerCluster, ServerNode, wait_until

_prefixes = itertools.count()


@pytest.fixture
def k():
    prefix = f"csc{next(_prefixes)}:"
    return lambda name: prefix + name


def _cached(node: ServerNode) -> redis.Redis:
    return node.redis(protocol=3, cache_config=CacheConfig(), retry=no_retry())


def _other(cluster: ServerCluster, node: ServerNode) -> ServerNode:
    return next(n for n in cluster.nodes if n is not node and n.alive)


def _commands(node: ServerNode) -> int:
    return int(node.info("stats")["total_commands_processed"])


@pytest.fixture(params=["leader", "follower"])
def node(request, cluster: ServerCluster, follower: ServerNode) -> ServerNode:
    return cluster.leader() if request.param == "leader" else follower


@pytest.fixture
def cached(node: ServerNode) -> Iterator[redis.Redis]:
    client = _cached(node)
    try:
        yield client
    finally:
        client.close()


def test_reads_are_served_from_the_cache_until_another_node_writes(cluster, node, cached, k):
    with _other(cluster, node).redis(retry=no_retry()) as writer:
        writer.set(k("a"), "v1")
        assert cached.get(k("a")) == b"v1"
        before = _commands(node)
        assert all(cached.get(k("a")) == b"v1" for _ in range(100))
        assert _commands(node) - before < 20  # INFO's own connection; the 100 GETs never left the process
        writer.set(k("a"), "v2")
        wait_until(lambda: cached.get(k("a")) == b"v2", 10, what="the invalidation")
        writer.hset(k("h"), mapping={"f": "1"})
        assert cached.hgetall(k("h")) == {b"f": b"1"}
        writer.hincrby(k("h"), "f", 5)
        wait_until(lambda: cached.hgetall(k("h")) == {b"f": b"6"}, 10, what="the hash's invalidation")
        writer.flushall()
        wait_until(lambda: cached.get(k("a")) is None, 10, what="FLUSHALL's invalidation")


def test_no_cached_read_returns_a_value_older_than_an_acknowledged_applied_write(cluster, node, cached, k):
    keys = [k(f"hb{i}") for i in range(40)]
    with _other(cluster, node).redis(retry=no_retry()) as writer, node.redis(retry=no_retry()) as probe:
        writer.mset(dict.fromkeys(keys, 0))
        for key in keys:
            assert cached.get(key) == b"0"
        for i in range(1, 31):
            writer.mset(dict.fromkeys(keys, i))  # acknowledged
            # Applied on `node` (a linearizable read there returns it): its invalidations
            # were written to the cached connection before this reply was computed.
            assert probe.get(keys[-1]) == str(i).encode()
            for key in keys:
                assert cached.get(key) == str(i).encode(), f"round {i}: {key} stale in the cache"
            assert cached.get(keys[0]) == str(i).encode()  # and cached again


def test_cache_keeps_working_across_a_leader_kill(cluster, follower, k):
    client = _cached(follower)
    try:
        with _other(cluster, follower).redis(retry=no_retry()) as writer:
            writer.set(k("x"), "before")
            assert client.get(k("x")) == b"before"
        dead = kill_leader(cluster, follower)
        with _other(cluster, follower).redis(retry=no_retry()) as writer:
            writer.set(k("x"), "after")
        wait_until(lambda: client.get(k("x")) == b"after", 15, what="the invalidation after failover")
        restart(cluster, dead)
    finally:
        client.close()
