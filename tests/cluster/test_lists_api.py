"""The list methods of Client, AsyncClient and the embedded Cache give what redis-py gives
against a real redis-server: the same calls, the same results (types included)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from raftcache import AsyncClient, Cache, Client
from raftcache.errors import CommandError, WrongTypeError
from tests.cluster.differential import HAVE_REDIS_SERVER
from tests.helpers import LONE_RAFT, free_ports

pytestmark = pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")

# (method, args, kwargs): every list method, nil and empty cases, redis-py's conventions
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("rpush", ("l", "a", "b", "c", "a"), {}),
    ("lpush", ("l", "z", 1, 2.5, b"\x00raw"), {}),
    ("lpushx", ("none", "a"), {}),
    ("rpushx", ("l", "tail"), {}),
    ("llen", ("l",), {}),
    ("lrange", ("l", 0, -1), {}),
    ("lrange", ("l", 2, 9223372036854775807), {}),
    ("lrange", ("none", 0, -1), {}),
    ("lindex", ("l", -1), {}),
    ("lindex", ("l", 100), {}),
    ("lset", ("l", 0, "first"), {}),
    ("lpos", ("l", "a"), {}),
    ("lpos", ("l", "a", -1), {}),
    ("lpos", ("l", "a"), {"count": 0}),
    ("lpos", ("l", "a"), {"rank": 2, "count": 1, "maxlen": 10}),
    ("lpos", ("l", "nope"), {}),
    ("lpos", ("none", "a"), {"count": 1}),
    ("linsert", ("l", "BEFORE", "b", "ins"), {}),
    ("linsert", ("l", "after", "nope", "x"), {}),
    ("linsert", ("none", "AFTER", "a", "x"), {}),
    ("lrem", ("l", -1, "a"), {}),
    ("lrem", ("l", 0, "nope"), {}),
    ("ltrim", ("l", 1, -1), {}),
    ("lpop", ("l",), {}),
    ("rpop", ("l",), {}),
    ("lpop", ("l", 2), {}),
    ("rpop", ("l", 0), {}),
    ("lpop", ("none",), {}),
    ("lpop", ("none", 3), {}),
    ("lmove", ("l", "m"), {}),
    ("lmove", ("l", "m", "RIGHT", "LEFT"), {}),
    ("lmove", ("none", "m"), {}),
    ("rpoplpush", ("m", "m"), {}),
    ("rpoplpush", ("none", "m"), {}),
    ("lrange", ("m", 0, -1), {}),
    ("lmpop", (2, "none", "m"), {"direction": "LEFT"}),
    ("lmpop", (2, "none", "l"), {"direction": "RIGHT", "count": 10}),
    ("lmpop", (1, "none"), {"direction": "LEFT"}),
    ("llen", ("l",), {}),
    ("exists", ("l",), {}),
]


def _run_sync(client: Any, prefix: str) -> list[Any]:
    out = []
    for method, args, kwargs in CALLS:
        out.append(_typed(_unprefixed(getattr(client, method)(*_prefixed(method, args, prefix), **kwargs), prefix)))
    return out


async def _run_async(client: Any, prefix: str) -> list[Any]:
    out = []
    for method, args, kwargs in CALLS:
        out.append(_typed(_unprefixed(await getattr(client, method)(*_prefixed(method, args, prefix), **kwargs), prefix)))
    return out


# which arguments are keys: each run prefixes them, so runs on one cluster stay apart
_KEY_ARGS = {"lmpop": slice(1, None), "lmove": slice(0, 2), "rpoplpush": slice(0, 2)}


def _prefixed(method: str, args: tuple[Any, ...], prefix: str) -> tuple[Any, ...]:
    keys = _KEY_ARGS.get(method, slice(0, 1))
    out = list(args)
    out[keys] = [prefix + k for k in out[keys]]
    return tuple(out)


def _typed(result: Any) -> Any:
    """Results with their types spelled out: True == 1 in Python, yet redis-py's ltrim gives True."""
    if isinstance(result, list):
        return ("list", [_typed(item) for item in result])
    return (type(result).__name__, result)


def _unprefixed(result: Any, prefix: str) -> Any:
    """LMPOP names the key it popped from: without the run's prefix, to compare."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[1], list):
        key = result[0]
        return [key[len(prefix):] if isinstance(key, str) else key[len(prefix.encode()):], result[1]]
    return result


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture(scope="module")
def expected(real_redis) -> dict[bool, list[Any]]:
    """redis-py's results against the real server, bytes and decoded."""
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


def test_embedded_cache_matches_redis_py(tmp_path, expected):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s", decode_responses=True) as cache:
        cache.wait_ready(10)
        assert _run_sync(cache, "") == expected[True]
        cache.set("str", "v")
        with pytest.raises(WrongTypeError):
            cache.lpush("str", "x")
        cache.rpush("el", "a")
        with pytest.raises(CommandError, match="index out of range"):
            cache.lset("el", 5, "x")
        with pytest.raises(TypeError, match="direction"):
            cache.lmpop(1, "el")
