"""The `limits` rate-limiting library with its Redis storage (`redis://host:port`, redis-py
underneath; every strategy is a Lua script run by EVALSHA) pointed at a follower of a 3-node
`raftcache serve` cluster: fixed window and sliding window counter, and again across a kill -9
of the leader; the moving window, which keeps a list per key (LPUSH/LINDEX/LTRIM)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

limits = pytest.importorskip("limits")  # a test extra; without it the module is skipped, not broken

from limits import parse  # noqa: E402
from limits.storage import RedisStorage, storage_from_string  # noqa: E402
from limits.strategies import (  # noqa: E402
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from tests.compat.support import kill_leader, no_retry, restart  # noqa: E402
from tests.helpers import ServerNode, wait_until  # noqa: E402

_ids = itertools.count()

COUNTING = [FixedWindowRateLimiter, SlidingWindowCounterRateLimiter]


@pytest.fixture(scope="module")
def storage(follower: ServerNode) -> Iterator[RedisStorage]:
    # the URI a user configures; the extra options go to redis-py (no silent retries: a
    # retried hit could count twice)
    store = storage_from_string(f"redis://{follower.client_address}", retry=no_retry())
    assert isinstance(store, RedisStorage)
    yield store
    store.storage.close()


@pytest.fixture
def who() -> str:
    return f"user{next(_ids)}"


def exhaust(limiter: RateLimiter, item, who: str, max_hits: int = 100) -> int:
    """Hit until refused; return how many hits were allowed."""
    for allowed in range(max_hits):
        if not limiter.hit(item, who):
            return allowed
    raise AssertionError(f"{max_hits} hits were all allowed")


def test_storage_check(storage):
    assert storage.check() is True  # PING


@pytest.mark.parametrize("strategy", COUNTING, ids=lambda s: s.__name__)
def test_limit_is_enforced(storage, strategy, who):
    limiter = strategy(storage)
    item = parse("5/minute")
    assert limiter.test(item, who)
    assert [limiter.hit(item, who) for _ in range(6)] == [True] * 5 + [False]
    assert not limiter.test(item, who)
    assert limiter.get_window_stats(item, who).remaining == 0
    assert limiter.hit(item, who + "-other")  # per identifier
    assert limiter.get_window_stats(item, who + "-other").remaining == 4
    assert limiter.hit(parse("10/minute"), who)  # per limit
    limiter.clear(item, who)
    assert limiter.get_window_stats(item, who).remaining == 5
    assert limiter.hit(item, who, cost=5) and not limiter.hit(item, who)  # a hit that costs several


@pytest.mark.parametrize("strategy", COUNTING, ids=lambda s: s.__name__)
def test_window_passes(storage, strategy, who):
    limiter = strategy(storage)
    item = parse("2/second")
    assert exhaust(limiter, item, who) >= 2  # (more only if a window boundary fell in between)
    wait_until(lambda: limiter.hit(item, who), 10, 0.05, "the window to let hits through again")


def test_fixed_window_expiry_is_set_by_the_script(storage, who):
    limiter = FixedWindowRateLimiter(storage)
    item = parse("3/minute")
    assert limiter.hit(item, who)
    assert 0 < storage.storage.ttl(storage.prefixed_key(item.key_for(who))) <= 60  # EXPIRE inside incr_expire.lua
    assert limiter.get_window_stats(item, who).remaining == 2


def test_storage_reset(storage, who):
    limiter = FixedWindowRateLimiter(storage)
    limiter.hit(parse("5/minute"), who)
    SlidingWindowCounterRateLimiter(storage).hit(parse("5/minute"), who)
    assert storage.reset() >= 2  # a script running KEYS LIMITS:* and DEL
    assert limiter.get_window_stats(parse("5/minute"), who).remaining == 5


def test_moving_window(storage, who):
    """A list per key: the scripts LPUSH each hit's timestamp, LTRIM to the limit and read
    the oldest with LINDEX; get_window_stats LRANGEs it."""
    limiter = MovingWindowRateLimiter(storage)
    item = parse("5/minute")
    assert [limiter.hit(item, who) for _ in range(6)] == [True] * 5 + [False]
    stats = limiter.get_window_stats(item, who)
    assert stats.remaining == 0 and stats.reset_time > 0
    assert limiter.test(item, who) is False
    limiter.clear(item, who)
    assert limiter.hit(item, who)
    assert limiter.get_window_stats(item, who).remaining == 4


def test_across_a_leader_kill(cluster, follower, storage, who):
    """Counts made before the kill still count after it: the limit is neither reset nor
    exceeded; the dead node catches up when restarted. (Each strategy gets its own identity:
    the fixed and the moving window would share a key, a string for one and a list for the
    other, which is WRONGTYPE on Redis too.)"""
    item = parse("5/minute")
    strategies = [*COUNTING, MovingWindowRateLimiter]
    limiters = [(strategy(storage), f"{who}-{i}") for i, strategy in enumerate(strategies)]
    for limiter, name in limiters:
        assert all(limiter.hit(item, name) for _ in range(3))

    dead = kill_leader(cluster, follower)

    for limiter, name in limiters:
        assert limiter.get_window_stats(item, name).remaining == 2
        assert [limiter.hit(item, name) for _ in range(3)] == [True, True, False]
        assert limiter.hit(item, name + "-after")

    restart(cluster, dead)
    revived = storage_from_string(f"redis://{dead.client_address}", retry=no_retry())
    try:
        for i, strategy in enumerate(strategies):
            assert strategy(revived).get_window_stats(item, f"{who}-{i}").remaining == 0
            assert strategy(revived).get_window_stats(item, f"{who}-{i}-after").remaining == 4
    finally:
        revived.storage.close()
