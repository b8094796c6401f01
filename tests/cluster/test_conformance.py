"""One API, four classes: the same calls against the embedded ``Cache`` and ``AsyncCache``
(a one-node replica in this process) and the network ``Client`` and ``AsyncClient`` (a
3-node ``raftcache serve`` cluster) give the same results, errors included.

The script below is the single source of truth: each step is a method call and the result
every implementation must give (an exception class stands for "raises this").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from raftcache import AsyncCache, AsyncClient, Cache, Client
from raftcache.errors import IntegerOverflowError, NotIntegerError, SyntaxError_
from tests.helpers import LONE_RAFT, free_ports

INT64_MAX = 2**63 - 1


def _ttl_near(expected: int) -> Callable[[Any], Any]:
    """A TTL read a moment after it was set: within a second of `expected` counts as it."""
    return lambda ttl: expected if isinstance(ttl, int) and expected - 1 <= ttl <= expected else ttl


def _sorted_keys(keys: Any) -> Any:
    return sorted(keys) if isinstance(keys, list) else keys


def _whole_scan(reply: Any) -> Any:
    cursor, keys = reply
    return cursor, sorted(keys)


@dataclass(frozen=True)
class Step:
    method: str
    args: tuple[Any, ...]
    expect: Any  # the result, or the exception class the call raises
    kwargs: dict[str, Any] = field(default_factory=dict)
    normalize: Callable[[Any], Any] | None = None


def step(method: str, *args: Any, expect: Any, normalize: Callable[[Any], Any] | None = None, **kwargs: Any) -> Step:
    return Step(method, args, expect, kwargs, normalize)


SCRIPT = [
    step("flushall", expect=True),
    step("wait_ready", 10, expect=True),
    # strings
    step("set", "k", "v", expect=True),
    step("get", "k", expect=b"v"),
    step("get", "k", consistency="stale", expect=b"v"),
    step("set", "k", "w", nx=True, expect=False),
    step("set", "k", "w", xx=True, get=True, expect=b"v"),
    step("append", "k", "x", expect=2),
    step("append", "fresh", "abc", expect=3),
    step("get", "k", consistency="linearizable", expect=b"wx"),
    step("getdel", "fresh", expect=b"abc"),
    step("getdel", "fresh", expect=None),
    # counters, and their errors
    step("incr", "n", expect=1),
    step("incr", "n", 5, expect=6),
    step("decr", "n", expect=5),
    step("decr", "n", 10, expect=-5),
    step("incr", "k", expect=NotIntegerError),  # not an integer: refused, value kept
    step("get", "k", expect=b"wx"),
    step("set", "big", INT64_MAX, expect=True),
    step("incr", "big", expect=IntegerOverflowError),  # would overflow int64
    step("get", "big", expect=str(INT64_MAX).encode()),
    # several keys
    step("mset", {"a": 1, "b": 2}, expect=True),
    step("mget", "a", "b", "missing", expect=[b"1", b"2", None]),
    step("mget", ["a", "missing"], consistency="stale", expect=[b"1", None]),
    step("exists", "a", "a", "missing", expect=2),
    step("exists", "a", "b", consistency="stale", expect=2),
    # expiry
    step("ttl", "a", expect=-1),
    step("ttl", "missing", expect=-2),
    step("expire", "a", 1000, expect=True),
    step("ttl", "a", expect=1000, normalize=_ttl_near(1000)),
    step("ttl", "a", consistency="stale", expect=1000, normalize=_ttl_near(1000)),
    step("expire", "a", 10, nx=True, expect=False),
    step("persist", "a", expect=True),
    step("persist", "a", expect=False),
    step("ttl", "a", expect=-1),
    step("expire", "missing", 10, expect=False),
    step("set", "t", "v", ttl=500, expect=True),
    step("ttl", "t", expect=500, normalize=_ttl_near(500)),
    # compare-and-set
    step("cas", "k", "nope", "y", expect=False),
    step("cas", "k", "wx", "y", expect=True),
    step("get", "k", expect=b"y"),
    step("cas", "missing", "x", "y", expect=False),
    # keyspace
    step("type", "k", expect="string"),
    step("type", "missing", expect="none"),
    step("dbsize", expect=6),  # k n big a b t
    step("dbsize", consistency="stale", expect=6),
    step("keys", "*", expect=[b"a", b"b", b"big", b"k", b"n", b"t"], normalize=_sorted_keys),
    step("keys", "b*", consistency="stale", expect=[b"b", b"big"], normalize=_sorted_keys),
    step("scan", 0, match="[ab]*", count=1000, expect=(0, [b"a", b"b", b"big"]), normalize=_whole_scan),
    step("delete", "k", "a", "missing", expect=2),
    step("exists", "k", "a", expect=0),
    step("dbsize", expect=4),
    # refused before anything is sent
    step("set", "k", "v", nx=True, xx=True, expect=SyntaxError_),
    step("expire", "n", 10, nx=True, xx=True, expect=SyntaxError_),
    step("get", "k", consistency="eventual", expect=ValueError),
    step("incr", "n", "1", expect=TypeError),
    step("set", "k", True, expect=TypeError),
]


def _outcome(step: Step, result: Any = None, error: BaseException | None = None) -> Any:
    if error is not None:
        return type(error)
    return step.normalize(result) if step.normalize else result


def run_sync(api: Any) -> list[Any]:
    outcomes = []
    for s in SCRIPT:
        try:
            outcomes.append(_outcome(s, getattr(api, s.method)(*s.args, **s.kwargs)))
        except Exception as exc:  # noqa: BLE001  (any raise is an outcome to compare)
            outcomes.append(_outcome(s, error=exc))
    return outcomes


async def run_async(api: Any) -> list[Any]:
    outcomes = []
    for s in SCRIPT:
        try:  # a bad argument may raise when called, or when awaited
            outcomes.append(_outcome(s, await getattr(api, s.method)(*s.args, **s.kwargs)))
        except Exception as exc:  # noqa: BLE001  (any raise is an outcome to compare)
            outcomes.append(_outcome(s, error=exc))
    return outcomes


def check(outcomes: list[Any]) -> None:
    expected = [s.expect for s in SCRIPT]
    wrong = [
        f"{s.method}{s.args}{s.kwargs or ''}: got {got!r}, expected {s.expect!r}"
        for s, got in zip(SCRIPT, outcomes)
        if got != s.expect
    ]
    assert not wrong, "\n".join(wrong)
    assert outcomes == expected


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


def test_cache(tmp_path):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as cache:
        check(run_sync(cache))


def test_async_cache(tmp_path):
    async def scenario() -> list[Any]:
        (port,) = free_ports(1)
        async with AsyncCache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as cache:
            return await run_async(cache)

    check(asyncio.run(scenario()))


def test_client(cluster):
    with Client(cluster.endpoints) as client:
        check(run_sync(client))


def test_async_client(cluster):
    async def scenario() -> list[Any]:
        async with AsyncClient(cluster.endpoints) as client:
            return await run_async(client)

    check(asyncio.run(scenario()))


def test_the_script_covers_the_api():
    called = {s.method for s in SCRIPT}
    wanted = {"set", "get", "incr", "decr", "append", "mget", "mset", "exists", "expire", "ttl", "persist", "cas",
              "delete", "keys", "scan", "getdel", "type", "dbsize"}
    assert wanted <= called
    assert any(s.kwargs.get("consistency") == "stale" for s in SCRIPT)
