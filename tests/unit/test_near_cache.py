"""The near-cache's rules (no sockets): what it serves, what drops it, and that a fill racing
an invalidation never stores the old value."""

from __future__ import annotations

import asyncio

import pytest

from raftcache.near_cache import NearCache, NearCacheConfig, near_cache_config
from raftcache.watch import WatchEvent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(max_keys: int = 3, silence: float = 1.0) -> tuple[NearCache, Clock]:
    clock = Clock()
    near = NearCache(NearCacheConfig(max_keys=max_keys, max_silence_s=silence), clock)
    near.up()
    return near, clock


def fill(near: NearCache, key: bytes, value) -> None:
    near.finish_fill(key, near.begin_fill(key), value)


def test_hits_after_a_fill_and_misses_after_an_event_on_the_key() -> None:
    near, _ = cache()
    assert near.lookup(b"k") is near.MISS
    fill(near, b"k", b"v")
    fill(near, b"gone", None)  # an absent key is remembered as absent
    assert near.lookup(b"k") == b"v" and near.lookup(b"gone") is None
    near.event(WatchEvent(5, "set", b"k"))
    assert near.lookup(b"k") is near.MISS and near.lookup(b"gone") is None
    near.event(WatchEvent(6, "flushall", b""))
    assert near.lookup(b"gone") is near.MISS


def test_an_invalidation_during_a_fill_keeps_the_old_value_out() -> None:
    near, _ = cache()
    token = near.begin_fill(b"k")
    near.invalidate(b"k")  # the write's event overtook the GET's answer
    near.finish_fill(b"k", token, b"old")
    assert near.lookup(b"k") is near.MISS
    fill(near, b"k", b"new")  # the next fill is clean
    assert near.lookup(b"k") == b"new"


def test_a_fill_across_a_stream_outage_is_not_stored() -> None:
    near, _ = cache()
    token = near.begin_fill(b"k")
    near.down()
    near.up()
    near.finish_fill(b"k", token, b"v")
    assert near.lookup(b"k") is near.MISS
    near.down()
    assert near.begin_fill(b"k") is None  # no stream: GETs go to the cluster and fill nothing


def test_silence_beyond_the_bound_drops_everything() -> None:
    near, clock = cache(silence=1.0)
    fill(near, b"k", b"v")
    clock.now += 0.9
    assert near.lookup(b"k") == b"v"
    near.heard()
    clock.now += 0.9
    assert near.lookup(b"k") == b"v"
    clock.now += 0.2  # 1.1 s since the stream last spoke
    assert not near.serving and near.lookup(b"k") is near.MISS and len(near) == 0


def test_the_lru_bound() -> None:
    near, _ = cache(max_keys=3)
    for k in (b"a", b"b", b"c"):
        fill(near, k, k)
    near.lookup(b"a")  # a is now the most recent
    fill(near, b"d", b"d")
    assert near.lookup(b"b") is near.MISS and near.lookup(b"a") == b"a" and len(near) == 3


def test_config_forms() -> None:
    assert near_cache_config(None) is None and near_cache_config(False) is None
    assert near_cache_config(True) == NearCacheConfig()
    assert near_cache_config(50).max_keys == 50
    with pytest.raises(ValueError):
        near_cache_config(0)
    with pytest.raises(TypeError):
        near_cache_config("big")


def test_reads_through_fill_once_and_a_failed_get_fills_nothing() -> None:
    near, _ = cache()
    calls = []

    def fetch() -> bytes:
        calls.append(1)
        return b"v"

    assert near.through(b"k", fetch) == b"v" and near.through(b"k", fetch) == b"v"
    assert len(calls) == 1 and near.hits == 1

    def broken() -> bytes:
        raise ConnectionError("no node")

    with pytest.raises(ConnectionError):
        near.through(b"x", broken)
    assert near.lookup(b"x") is near.MISS and near.stats()["keys"] == 1
    fill(near, b"x", b"later")  # the failed fill left nothing in flight to spoil this one
    assert near.lookup(b"x") == b"later"


def test_async_reads_through_and_a_cancelled_get_fills_nothing() -> None:
    near, _ = cache()

    async def run() -> None:
        async def fetch() -> bytes:
            return b"v"

        assert await near.through_async(b"k", fetch) == b"v"
        assert await near.through_async(b"k", fetch) == b"v" and near.hits == 1

        async def cancelled() -> bytes:
            raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await near.through_async(b"c", cancelled)
        assert near.lookup(b"c") is near.MISS

    asyncio.run(run())
    token = near.begin_fill(b"c")
    near.invalidate(b"c")  # no leftover in-flight count: this fill alone is spoiled
    near.finish_fill(b"c", token, b"old")
    fill(near, b"c", b"new")
    assert near.lookup(b"c") == b"new"
