"""Transactions on the embedded API (a real single-node cluster in this process): Cache and
AsyncCache pipelines, WATCH conflicts, the transaction() retry loop and its bound."""

from __future__ import annotations

import asyncio

import pytest

from raftcache import AsyncCache, WatchError
from raftcache.errors import CommandError, ExecAbortError, NotIntegerError
from tests.helpers import LONE_RAFT, free_ports
from tests.unit.test_cache_api import cache  # noqa: F401  (fixture)


def test_pipeline_applies_every_command_with_converted_results(cache):  # noqa: F811
    with cache.pipeline() as p:
        p.set("a", "1").incr("a").incrbyfloat("f", 1.5).get("a").exists("a", "zz").expire("a", 100)
        assert p.execute() == [True, 2, 1.5, b"2", 1, True]
    cache.set("t", "text")
    p = cache.pipeline().set("b", "1").incr("t").set("c", "1")
    results = p.execute(raise_on_error=False)
    assert results[0] is True and isinstance(results[1], NotIntegerError) and results[2] is True
    with pytest.raises(NotIntegerError):
        cache.pipeline().incr("t").execute()
    with pytest.raises(ValueError):
        cache.pipeline(transaction=False)


def test_watch_conflict_aborts_and_applies_nothing(cache):  # noqa: F811
    cache.set("k", "1")
    p = cache.pipeline()
    p.watch("k", "never")
    assert p.get("k") == b"1"  # immediate mode
    cache.set("k", "2")
    p.multi()
    p.set("k", "3").set("other", "x")
    with pytest.raises(WatchError):
        p.execute()
    assert cache.get("k") == b"2" and cache.get("other") is None
    p.watch("never")
    cache.set("never", "1")
    cache.delete("never")
    p.multi()
    p.set("other", "y")
    with pytest.raises(WatchError):
        p.execute()


def test_pipeline_refuses_misuse(cache):  # noqa: F811
    p = cache.pipeline()
    p.multi()
    with pytest.raises(CommandError, match="nested"):
        p.multi()
    with pytest.raises(CommandError, match="WATCH inside MULTI"):
        p.watch("k")
    with pytest.raises(ValueError):
        p.get("k", consistency="stale")
    big = cache.pipeline()
    for i in range(3):
        big.set(f"big{i}", "x" * (1 << 20))
    with pytest.raises(ExecAbortError, match="exceeds one Raft entry"):
        big.execute()
    assert cache.exists("big0") == 0


def test_transaction_retries_until_it_wins_and_is_bounded(cache):  # noqa: F811
    cache.set("n", "10")
    calls = []

    def double(pipe) -> int:
        value = int(pipe.get("n"))
        calls.append(value)
        if len(calls) < 3:
            cache.incr("n")  # a conflict on the first two attempts
        pipe.multi()
        pipe.set("n", value * 2)
        return value

    assert cache.transaction(double, "n", value_from_callable=True) == 12
    assert calls == [10, 11, 12] and cache.get("n") == b"24"
    with pytest.raises(WatchError):
        cache.transaction(lambda pipe: cache.incr("n"), "n", max_attempts=2)


def test_async_cache_transactions(tmp_path):
    async def scenario() -> None:
        (port,) = free_ports(1)
        async with AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as c:
            await c.wait_ready(10)
            async with c.pipeline() as p:
                p.set("a", "1").incr("a")
                assert await p.execute() == [True, 2]

            async def bump(pipe) -> None:
                value = int(await pipe.get("a"))
                pipe.multi()
                pipe.set("a", value + 1)

            await asyncio.gather(*(c.transaction(bump, "a") for _ in range(5)))
            assert await c.get("a") == b"7"

    asyncio.run(scenario())

