"""The blocking-pop methods of Client, AsyncClient and the embedded Cache/AsyncCache: redis-py's
results (types included) against a real redis-server, waiting and waking, timeouts, and the
exactly-once retry of raftcache.Client (a retried served pop returns the same element)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from raftcache import AsyncCache, AsyncClient, Cache, Client, RetryPolicy
from raftcache.errors import CommandError, WrongTypeError
from tests.cluster.differential import HAVE_REDIS_SERVER
from tests.helpers import LONE_RAFT, free_ports, wait_until

# (method, args, kwargs), run in order with short timeouts; keys get a per-run prefix
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("rpush", ("l", "a", "b", "c", "d", "e"), {}),
    ("blpop", (["none", "l"],), {"timeout": 1}),
    ("brpop", ("l",), {"timeout": 1}),
    ("blpop", ("none",), {"timeout": 0.05}),
    ("blmove", ("l", "m", 1), {}),
    ("blmove", ("l", "m", 1, "RIGHT", "LEFT"), {}),
    ("blmove", ("none", "m", 0.05), {}),
    ("brpoplpush", ("m", "l", 1), {}),
    ("brpoplpush", ("none", "l", 0.05), {}),
    ("blmpop", (1, 2, "none", "l"), {"direction": "LEFT", "count": 5}),
    ("blmpop", (0.05, 1, "none"), {"direction": "RIGHT"}),
    ("zadd", ("z", {"m1": 1.5, "m2": 2, "m3": 3}), {}),
    ("bzpopmin", ("z",), {"timeout": 1}),
    ("bzpopmax", (["none", "z"],), {"timeout": 1}),
    ("bzpopmin", ("none",), {"timeout": 0.05}),
    ("bzmpop", (1, 1, ["z"]), {"min": True, "count": 3}),
    ("bzmpop", (0.05, 1, ["none"]), {"max": True}),
]
_KEY_ARGS = {"blmpop": slice(2, None), "blmove": slice(0, 2), "brpoplpush": slice(0, 2)}


def _prefixed(method: str, args: tuple[Any, ...], prefix: str) -> tuple[Any, ...]:
    out = list(args)
    if method == "bzmpop":
        out[2] = [prefix + k for k in out[2]]
        return tuple(out)
    if isinstance(out[0], list):
        out[0] = [prefix + k for k in out[0]]
        return tuple(out)
    keys = _KEY_ARGS.get(method, slice(0, 1))
    out[keys] = [prefix + k for k in out[keys]]
    return tuple(out)


def _unprefixed(value: Any, prefix: str) -> Any:
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix):]
    if isinstance(value, bytes) and value.startswith(prefix.encode()):
        return value[len(prefix):]
    if isinstance(value, (list, tuple)):
        return type(value)(_unprefixed(v, prefix) for v in value)
    return value


def _typed(result: Any) -> Any:
    if isinstance(result, (list, tuple)):
        return (type(result).__name__, [_typed(item) for item in result])
    return (type(result).__name__, result)


def _method(client: Any, name: str) -> Any:
    if name == "zadd" and not hasattr(client, "zadd"):  # until the sorted-set methods are merged in
        return lambda key, mapping: client._data_write(b"zadd", key, *(x for m, s in mapping.items() for x in (s, m)))
    return getattr(client, name)


def _run_sync(client: Any, prefix: str) -> list[Any]:
    return [_typed(_unprefixed(_method(client, m)(*_prefixed(m, a, prefix), **kw), prefix)) for m, a, kw in CALLS]


async def _run_async(client: Any, prefix: str) -> list[Any]:
    return [_typed(_unprefixed(await _method(client, m)(*_prefixed(m, a, prefix), **kw), prefix)) for m, a, kw in CALLS]


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture(scope="module")
def expected(real_redis) -> dict[bool, list[Any]]:
    if not HAVE_REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    kwargs = real_redis.connection_pool.connection_kwargs
    out = {}
    for decode in (False, True):
        with redis.Redis(host=kwargs["host"], port=kwargs["port"], decode_responses=decode) as client:
            client.flushall()
            out[decode] = _run_sync(client, "")
    return out


@pytest.mark.parametrize("decode", [False, True])
def test_client_matches_redis_py(cluster, expected, decode):
    with Client(cluster.endpoints, decode_responses=decode) as client:
        assert _run_sync(client, f"sync{decode}:") == expected[decode]


def test_async_client_matches_redis_py(cluster, expected):
    async def scenario() -> list[Any]:
        async with AsyncClient(cluster.endpoints) as client:
            return await _run_async(client, "async:")

    assert asyncio.run(scenario()) == expected[False]


def test_client_waits_longer_than_its_attempt_timeout_allows_by_default(cluster):
    """A blocking call is not cut short (and retried) by the per-attempt socket timeout: the
    client adds the call's own wait to it, nothing to set on the call. (An attempt timeout of
    1 s instead of the default 7 s, so that the test need not block for over 7 s to show it.)"""
    with Client(cluster.endpoints, retry=RetryPolicy(attempt_timeout=1.0)) as client:
        start = time.monotonic()
        assert client.blpop("slow", timeout=2) is None
        assert 2 <= time.monotonic() - start < 2 + 1 + 5  # one attempt: under block + attempt, with slack


def test_client_blocks_until_pushed_and_a_retried_served_pop_returns_the_same_element(cluster):
    got: list[Any] = []
    with Client(cluster.endpoints) as client, Client(cluster.endpoints) as pusher:
        thread = threading.Thread(target=lambda: got.append(client.blpop("cq", timeout=0)), daemon=True)
        thread.start()
        wait_until(lambda: sum(int(n.info("clients")["blocked_clients"]) for n in cluster.nodes) == 1, 10)
        pusher.rpush("cq", "one", "two")
        thread.join(15)
        assert got == [(b"cq", b"one")]
    # the lost-reply retry: the same tag is answered from the session table
    leader = cluster.leader()
    with leader.redis() as r:
        once = ("RAFTCACHE", "ONCE", "99", "1", "1", "BLPOP", "cq", "0")
        assert r.execute_command(*once) == [b"cq", b"two"]
        r.rpush("cq", "three")
        assert r.execute_command(*once) == [b"cq", b"two"]
        assert r.lrange("cq", 0, -1) == [b"three"]


def test_embedded_cache_matches_redis_py_and_wakes(tmp_path, expected):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s", decode_responses=True) as cache:
        cache.wait_ready(10)
        assert _run_sync(cache, "") == expected[True]
        got: list[Any] = []
        thread = threading.Thread(target=lambda: got.append(cache.blmove("q", "mine", 0)), daemon=True)
        thread.start()
        wait_until(lambda: len(cache.replica.blocking) == 1, 10)
        cache.lpush("q", "job")
        thread.join(10)
        assert got == ["job"] and cache.lrange("mine", 0, -1) == ["job"]
        cache.set("str", "v")
        with pytest.raises(WrongTypeError):
            cache.blpop("str", timeout=1)
        with pytest.raises(CommandError, match="timeout is negative"):
            cache.blpop("q", timeout=-1)
        start = time.monotonic()
        assert cache.bzpopmin("none", timeout=0.1) is None
        assert 0.1 <= time.monotonic() - start < 3
        with cache.pipeline() as pipe:  # inside a transaction: the non-blocking attempt
            pipe.blpop("none", timeout=0)
            assert pipe.execute() == [None]


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    """wait_until for a coroutine: poll without blocking the loop, fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_embedded_async_cache_wakes_and_times_out(tmp_path):
    (port,) = free_ports(1)

    async def scenario() -> None:
        cache = AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s")
        try:
            await cache.wait_ready(10)
            waiting = asyncio.ensure_future(cache.blpop(["a", "b"], timeout=0))
            await _until(lambda: len(cache.replica.blocking) == 1)
            await cache.rpush("b", "x")
            assert await asyncio.wait_for(waiting, 10) == (b"b", b"x")
            assert await cache.brpop("a", timeout=0.1) is None
            cancelled = asyncio.ensure_future(cache.blpop("a", timeout=0))
            await _until(lambda: len(cache.replica.blocking) == 1)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert len(cache.replica.blocking) == 0  # a cancelled wait leaves no waiter
            await cache.rpush("a", "kept")
            assert await cache.lrange("a", 0, -1) == [b"kept"]
        finally:
            await cache.close()

    asyncio.run(scenario())
