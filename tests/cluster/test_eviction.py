"""maxmemory on a real 3-node cluster: settings through Raft (CONFIG SET on any node,
CONFIG GET on every node), Redis's errors, OOM under noeviction, eviction that keeps the
dataset under the limit with replicas converging, reads keeping keys alive, INFO fields,
and the cluster file's initial values."""

from __future__ import annotations

import pytest
import redis

from tests.helpers import ServerCluster, wait_until

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ServerCluster(tmp_path_factory.mktemp("eviction"), size=3).start()
    yield c
    c.close()


def client(node, **kwargs):
    return node.redis(socket_timeout=10, **kwargs)


def _reset(cluster):
    leader = cluster.leader()
    with client(leader) as r:
        r.config_set("maxmemory", 0)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory-samples", 5)
        r.flushall()


def settings_everywhere(cluster, name: str, value: str) -> bool:
    for node in cluster.nodes:
        with client(node, decode_responses=True) as r:
            if r.config_get(name).get(name) != value:
                return False
    return True


def test_config_set_on_a_follower_reaches_every_node(cluster):
    _reset(cluster)
    follower = next(n for n in cluster.nodes if n is not cluster.leader())
    with client(follower, decode_responses=True) as r:
        assert r.config_set("maxmemory", "10mb") is True
        assert r.config_set("maxmemory-policy", "allkeys-lfu") is True
        assert r.config_get("maxmemory")["maxmemory"] == str(10 << 20)  # read your own write
    wait_until(lambda: settings_everywhere(cluster, "maxmemory-policy", "allkeys-lfu"), 10, 0.05, "policy everywhere")
    wait_until(lambda: settings_everywhere(cluster, "maxmemory", str(10 << 20)), 10, 0.05, "maxmemory everywhere")
    with client(cluster.leader(), decode_responses=True) as r:
        info = r.info("memory")
        assert info["maxmemory"] == 10 << 20 and info["maxmemory_policy"] == "allkeys-lfu"
        assert info["maxmemory_human"] == "10.00M"


@pytest.mark.parametrize("name, value", [("maxmemory", "-1"), ("maxmemory", "12.5mb"), ("maxmemory-policy", "lru"),
                                         ("maxmemory-samples", "0"), ("maxmemory-samples", "many")])
def test_bad_values_get_the_same_errors_as_redis(cluster, real_redis, name, value):
    with client(cluster.leader()) as r, pytest.raises(redis.ResponseError) as ours:
        r.config_set(name, value)
    with pytest.raises(redis.ResponseError) as theirs:
        real_redis.config_set(name, value)
    assert str(ours.value) == str(theirs.value)


def test_noeviction_answers_oom_and_still_deletes(cluster):
    _reset(cluster)
    with client(cluster.leader()) as r:
        r.mset({f"k{i}": "x" * 100 for i in range(50)})
        used = r.info("memory")["used_memory"]
        r.config_set("maxmemory", used // 2)
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="command not allowed when used memory > 'maxmemory'"):
            r.set("new", "v")
        assert r.get("k1") == b"x" * 100
        assert r.delete(*[f"k{i}" for i in range(30)]) == 30
        assert r.set("new", "v") is True  # back under the limit


def test_eviction_keeps_the_dataset_under_the_limit_and_replicas_identical(cluster):
    _reset(cluster)
    follower = next(n for n in cluster.nodes if n is not cluster.leader())
    with client(follower) as r:
        r.config_set("maxmemory-policy", "allkeys-lru")
        r.config_set("maxmemory", LIMIT)
        value = b"v" * 200
        for start in range(0, 2000, 50):
            r.mset({f"key:{i}": value for i in range(start, start + 50)})
            used = r.info("memory")["used_memory"]
            assert used <= LIMIT + 50 * 400, used  # over by at most one command
        info = r.info("stats")
        assert info["evicted_keys"] > 1000
        assert 100 < r.dbsize() < 400
    cluster.converged()


def test_reads_keep_keys_alive(cluster):
    _reset(cluster)
    nodes = cluster.nodes
    with client(cluster.leader()) as w:
        w.config_set("maxmemory-policy", "allkeys-lru")
        w.config_set("maxmemory-samples", 10)
        hot = [f"hot:{i}" for i in range(40)]
        cold = [f"cold:{i}" for i in range(40)]
        w.mset({k: "x" * 200 for k in hot + cold})
        w.config_set("maxmemory", w.info("memory")["used_memory"] + 1000)
        readers = [client(n) for n in nodes]  # reads on every node, followers included
        try:
            for rnd in range(6):
                for i, key in enumerate(hot):
                    assert readers[i % 3].get(key) is not None
                w.set(f"tick:{rnd}", "1")  # entries that carry the recorded accesses
            for i in range(40):
                w.set(f"new:{i}", "x" * 200)
        finally:
            for r in readers:
                r.close()
        alive_hot = sum(w.exists(k) for k in hot)
        alive_cold = sum(w.exists(k) for k in cold)
    assert alive_hot >= 34 and alive_cold <= 12, (alive_hot, alive_cold)
    cluster.converged()


def test_memory_info_fields(cluster):
    _reset(cluster)
    with client(cluster.leader(), decode_responses=True) as r:
        r.set("a", "1")
        r.get("a")
        r.get("missing")
        memory, stats = r.info("memory"), r.info("stats")
    for field in ("used_memory", "used_memory_rss", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio"):
        assert field in memory
    for field in ("evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses"):
        assert field in stats
    assert stats["keyspace_hits"] >= 1 and stats["keyspace_misses"] >= 1
    assert memory["used_memory"] > 0


def test_cluster_file_gives_initial_values_and_config_set_wins(tmp_path):
    c = ServerCluster(tmp_path, size=3, sections={"memory": {"maxmemory": "50mb", "maxmemory_policy": "volatile-ttl"}}).start()
    try:
        wait_until(lambda: settings_everywhere(c, "maxmemory", str(50 << 20)), 15, 0.05, "the seeded maxmemory")
        assert settings_everywhere(c, "maxmemory-policy", "volatile-ttl")
        with client(c.leader()) as r:
            r.config_set("maxmemory-policy", "allkeys-random")
        wait_until(lambda: settings_everywhere(c, "maxmemory-policy", "allkeys-random"), 10, 0.05, "the new policy")
    finally:
        c.close()
