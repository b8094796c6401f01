"""Django's built-in `django.core.cache.backends.redis.RedisCache`, configured as a Django
project would (CACHES in settings; no project needed: `settings.configure`), pointed at a
follower of a 3-node `raftcache serve` cluster: its whole cache API with timeouts, and again
across a kill -9 of the leader. `set_many` is a transaction pipeline (MULTI, MSET, EXPIRE...,
EXEC); the rest are plain commands."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")  # a test extra; without it the module is skipped, not broken

from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from tests.compat.support import kill_leader, no_retry, restart  # noqa: E402
from tests.helpers import ServerNode, wait_until  # noqa: E402

_prefixes = itertools.count()


def _cache_settings(node: ServerNode) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{node.client_address}",
            "TIMEOUT": 300,
            # passed to redis-py's ConnectionPool: no silent retries (see conftest)
            "OPTIONS": {"retry": no_retry()},
        }
    }


@pytest.fixture(scope="module")
def django_cache(follower: ServerNode) -> Iterator[Any]:
    if not settings.configured:
        settings.configure()
    with override_settings(CACHES=_cache_settings(follower)):  # resets django's cache handler
        yield caches["default"]


@pytest.fixture
def cache(django_cache):
    return django_cache


@pytest.fixture
def raw(follower: ServerNode):
    """The same keyspace through plain redis-py, to look at TTLs."""
    with follower.redis(retry=no_retry()) as client:
        yield client


@pytest.fixture
def k():
    prefix = f"dj{next(_prefixes)}-"
    return lambda name: prefix + name


def stored(cache, key: str, version: int | None = None) -> str:
    """The Redis key Django stores `key` under."""
    return cache.make_key(key, version=version)


def test_set_get_delete_has_key(cache, k):
    values = {"str": "hello", "int": 42, "dict": {"a": [1, 2.5, None]}, "bytes": b"\x00\xff", "bool": True}
    for name, value in values.items():
        cache.set(k(name), value)
    for name, value in values.items():
        assert cache.get(k(name)) == value
        assert type(cache.get(k(name))) is type(value)
        assert cache.has_key(k(name))
    assert cache.get(k("missing")) is None
    assert cache.get(k("missing"), "dflt") == "dflt"
    assert not cache.has_key(k("missing"))
    assert cache.delete(k("str")) is True
    assert cache.delete(k("str")) is False
    assert cache.get(k("str")) is None


def test_add(cache, raw, k):
    assert cache.add(k("a"), "first") is True
    assert cache.add(k("a"), "second") is False
    assert cache.get(k("a")) == "first"
    assert cache.add(k("zero"), "v", timeout=0) is True  # added and removed at once, as Django does
    assert not raw.exists(stored(cache, k("zero")))
    assert cache.add(k("short"), "v", timeout=10) is True
    assert 0 < raw.ttl(stored(cache, k("short"))) <= 10


def test_timeouts(cache, raw, k):
    cache.set(k("default"), 1)
    assert 290 < raw.ttl(stored(cache, k("default"))) <= 300  # the configured TIMEOUT
    cache.set(k("forever"), 1, timeout=None)
    assert raw.ttl(stored(cache, k("forever"))) == -1
    cache.set(k("gone"), 1)
    cache.set(k("gone"), 1, timeout=0)  # a non-positive timeout deletes
    assert cache.get(k("gone")) is None
    cache.set(k("brief"), "v", timeout=1)
    assert cache.get(k("brief")) == "v"
    wait_until(lambda: cache.get(k("brief")) is None, 10, 0.05, "the 1 s entry to expire")
    assert not cache.has_key(k("brief"))


def test_touch(cache, raw, k):
    cache.set(k("t"), "v", timeout=10)
    assert cache.touch(k("t"), 100) is True
    assert 90 < raw.ttl(stored(cache, k("t"))) <= 100
    assert cache.touch(k("t"), None) is True  # persist
    assert raw.ttl(stored(cache, k("t"))) == -1
    assert cache.touch(k("t")) is True  # back to the default TIMEOUT
    assert 290 < raw.ttl(stored(cache, k("t"))) <= 300
    assert cache.touch(k("missing"), 100) is False


def test_incr_decr(cache, k):
    cache.set(k("n"), 10)
    assert cache.incr(k("n")) == 11
    assert cache.incr(k("n"), 9) == 20
    assert cache.decr(k("n")) == 19
    assert cache.decr(k("n"), 20) == -1
    assert cache.get(k("n")) == -1
    with pytest.raises(ValueError):
        cache.incr(k("missing"))
    with pytest.raises(ValueError):
        cache.decr(k("missing"))


def test_many(cache, raw, k):
    data = {k("a"): 1, k("b"): "two", k("c"): [3]}
    assert cache.set_many(data, timeout=50) == []  # MULTI MSET EXPIRE EXPIRE EXPIRE EXEC
    assert all(0 < raw.ttl(stored(cache, key)) <= 50 for key in data)
    assert cache.get_many([*data, k("missing")]) == data
    cache.set_many({k("p"): "persistent"}, timeout=None)
    assert raw.ttl(stored(cache, k("p"))) == -1
    cache.delete_many([k("a"), k("b"), k("missing")])
    assert cache.get_many([*data, k("p")]) == {k("c"): [3], k("p"): "persistent"}


def test_get_or_set(cache, k):
    assert cache.get_or_set(k("g"), "computed") == "computed"
    assert cache.get_or_set(k("g"), "other") == "computed"
    assert cache.get_or_set(k("h"), lambda: {"x": 1}, timeout=30) == {"x": 1}
    assert cache.get(k("h")) == {"x": 1}
    assert cache.get_or_set(k("none"), None) is None
    assert cache.has_key(k("none"))  # Django stores the None (pickled) with add()


def test_versions(cache, k):
    cache.set(k("v"), "one", version=1)
    cache.set(k("v"), "two", version=2)
    assert cache.get(k("v"), version=1) == "one"
    assert cache.get(k("v"), version=2) == "two"
    assert cache.incr_version(k("v"), version=2) == 3
    assert cache.get(k("v"), version=3) == "two"
    assert cache.get(k("v"), version=2) is None


def test_clear(cache, raw, k):
    cache.set_many({k("a"): 1, k("b"): 2})
    assert cache.clear() is True  # FLUSHDB
    assert raw.dbsize() == 0
    assert cache.get_many([k("a"), k("b")]) == {}


def test_across_a_leader_kill(cluster, follower, cache, raw, k):
    """Entries, their timeouts and counters set before the kill are there after it, through
    the same follower, and every operation keeps working; the dead node catches up."""
    cache.set_many({k("a"): {"v": 1}, k("b"): "b"}, timeout=200)
    cache.set(k("n"), 5, timeout=None)
    cache.set(k("brief"), "v", timeout=2)

    dead = kill_leader(cluster, follower)

    assert cache.get_many([k("a"), k("b"), k("n")]) == {k("a"): {"v": 1}, k("b"): "b", k("n"): 5}
    assert 0 < raw.ttl(stored(cache, k("a"))) <= 200
    assert raw.ttl(stored(cache, k("n"))) == -1
    wait_until(lambda: cache.get(k("brief")) is None, 10, 0.05, "the 2 s entry to expire on the new leader's clock")
    assert cache.incr(k("n"), 2) == 7
    assert cache.decr(k("n")) == 6
    assert cache.add(k("a"), "x") is False
    assert cache.add(k("new"), "x") is True
    assert cache.touch(k("b"), 60) is True
    cache.set_many({k("c"): 3, k("d"): 4}, timeout=100)
    cache.delete_many([k("b"), k("c")])
    assert cache.get_or_set(k("e"), "made") == "made"
    assert cache.get_many([k("a"), k("b"), k("c"), k("d"), k("e"), k("n")]) == {
        k("a"): {"v": 1}, k("d"): 4, k("e"): "made", k("n"): 6,
    }

    restart(cluster, dead)
    with dead.redis(retry=no_retry()) as revived:
        assert int(revived.get(stored(cache, k("n")))) == 6
        assert revived.exists(stored(cache, k("b"))) == 0
