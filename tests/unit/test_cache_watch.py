"""Cache.watch / AsyncCache.watch and the embedded near-cache on a real single-node replica in
this process (as test_cache_api.py), including the history refilled by the log replay after
a restart and the compacted error once a snapshot cut it."""

from __future__ import annotations

import asyncio

import pytest

from raftcache import AsyncCache, Cache
from raftcache.config import WatchSection
from raftcache.errors import WatchCompactedError
from tests.helpers import LONE_RAFT, free_ports, wait_until


def open_cache(tmp_path, port: int, **kw) -> Cache:
    c = Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s", **kw)
    c.wait_ready(10)
    return c


def take(stream, n: int) -> list:
    out = []
    for event in stream:
        out.append(event)
        if len(out) == n:
            return out
    return out


def test_watch_from_now_and_from_a_seq_with_values(tmp_path):
    (port,) = free_ports(1)
    with open_cache(tmp_path, port) as cache:
        stream = cache.watch("cfg:*", values=True)  # from now: this call
        cache.set("cfg:a", "1")
        cache.set("other", "x")
        cache.incr("cfg:n")
        cache.delete("cfg:a")
        events = take(stream, 3)
        assert [(e.event, e.key, e.value) for e in events] == [("set", b"cfg:a", b"1"), ("incrby", b"cfg:n", b"1"),
                                                               ("del", b"cfg:a", None)]
        again = take(cache.watch("cfg:*", start_index=events[0].seq, values=True), 2)
        assert again == events[1:]


def test_the_history_survives_a_restart_by_replay_and_a_snapshot_cuts_it(tmp_path):
    (port,) = free_ports(1)
    with open_cache(tmp_path, port) as cache:
        for i in range(5):
            cache.set(f"r:{i}", i)
        seqs = [e.seq for e in take(cache.watch("r:*", start_index=0), 5)]
    with open_cache(tmp_path, port) as cache:  # restarted: the log replay refilled the history
        assert [e.seq for e in take(cache.watch("r:*", start_index=0), 5)] == seqs
        cache.replica.force_snapshot()
        wait_until(lambda: cache.status().last_snapshot_index > 0, 10, 0.05, "a snapshot")
    with open_cache(tmp_path, port) as cache:  # restarted from the snapshot: older seqs are gone
        with pytest.raises(WatchCompactedError) as caught:
            take(cache.watch("r:*", start_index=0), 1)
        assert caught.value.oldest >= seqs[-1]
        cache.set("r:new", 1)
        assert take(cache.watch("r:*", start_index=caught.value.oldest), 1)[0].key == b"r:new"


def test_a_small_history_refuses_an_old_seq(tmp_path):
    (port,) = free_ports(1)
    with open_cache(tmp_path, port, watch=WatchSection(history_events=3)) as cache:
        for i in range(10):
            cache.set("k", i)
        with pytest.raises(WatchCompactedError):
            take(cache.watch("*", start_index=1), 1)


def test_embedded_near_cache_is_exactly_as_fresh_as_the_replica(tmp_path):
    (port,) = free_ports(1)
    with open_cache(tmp_path, port, near_cache=10) as cache:
        near = cache.near_cache
        wait_until(lambda: near.serving, 5, 0.02, "the replica to know its leader")
        cache.set("n", "1")
        assert cache.get("n") == b"1"
        assert cache.get("n") == b"1" and near.hits == 1
        cache.set("n", "2")  # invalidated on the Raft thread before set() returned
        assert cache.get("n") == b"2"
        cache.flushall()
        assert cache.get("n") is None


def test_async_cache_watch(tmp_path):
    (port,) = free_ports(1)

    async def run() -> list:
        cache = AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, secret="s")
        try:
            await cache.wait_ready(10)
            stream = cache.watch("a:*")
            await cache.set("a:1", "x")
            out = []
            async for event in stream:
                out.append((event.event, event.key))
                break
            return out
        finally:
            await cache.close()

    assert asyncio.run(run()) == [("set", b"a:1")]
