"""The string and keyspace commands of issue 11 through a follower of a 3-node `raftcache serve`
cluster: with redis-py (its own method names and result types) and with raftcache.Client
(the same method names on our API), and replicas converge afterwards."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
import redis

from raftcache import Client
from raftcache.errors import CommandError

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex")  # redis-py's own opinion

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture(scope="module")
def follower(cluster):
    leader = cluster.leader()
    return next(n for n in cluster.nodes if n is not leader)


@pytest.fixture
def k():
    prefix = f"s{next(_prefixes)}:"
    return lambda name: prefix + name


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(follower, request):
    with follower.redis(protocol=request.param) as client:
        yield client


def test_set_family(r, k):
    assert r.setnx(k("a"), "1") is True
    assert r.setnx(k("a"), "2") is False
    assert r.get(k("a")) == b"1"
    assert r.setex(k("e"), 100, "v") is True
    assert 0 < r.ttl(k("e")) <= 100
    assert r.setex(k("e"), timedelta(seconds=50), "w") is True
    assert 0 < r.ttl(k("e")) <= 50
    assert r.psetex(k("p"), 100_000, "v") is True
    assert 0 < r.pttl(k("p")) <= 100_000
    assert r.getset(k("e"), "x") == b"w"
    assert r.ttl(k("e")) == -1  # GETSET drops the expiry, as SET does
    assert r.getset(k("none"), "y") is None
    with pytest.raises(redis.ResponseError, match="invalid expire time in 'setex' command"):
        r.setex(k("bad"), 0, "v")


def test_getex(r, k):
    assert r.getex(k("missing"), ex=10) is None
    r.set(k("a"), "v")
    assert r.getex(k("a"), ex=100) == b"v"
    assert 0 < r.ttl(k("a")) <= 100
    assert r.getex(k("a"), px=5000) == b"v"
    assert 0 < r.pttl(k("a")) <= 5000
    assert r.getex(k("a"), persist=True) == b"v"
    assert r.ttl(k("a")) == -1
    assert r.getex(k("a"), exat=int(time.time()) + 1000) == b"v"
    assert 900 < r.ttl(k("a")) <= 1000
    assert r.getex(k("a"), pxat=1) == b"v"  # in the past: deleted
    assert r.exists(k("a")) == 0


def test_incrbyfloat(r, k):
    r.set(k("f"), "10.5")
    assert r.incrbyfloat(k("f"), 0.1) == 10.6
    assert r.get(k("f")) == b"10.6"
    assert r.incrbyfloat(k("new"), 3) == 3.0
    assert r.get(k("new")) == b"3"
    r.set(k("t"), "text")
    with pytest.raises(redis.ResponseError, match="^value is not a valid float$"):
        r.incrbyfloat(k("t"), 1)
    with pytest.raises(redis.ResponseError, match="^increment would produce NaN or Infinity$"):
        r.incrbyfloat(k("f"), "inf")


def test_ranges(r, k):
    r.set(k("s"), "Hello World")
    assert r.getrange(k("s"), 0, 4) == b"Hello"
    assert r.getrange(k("s"), -5, -1) == b"World"
    assert r.substr(k("s"), 6, 100) == b"World"
    assert r.setrange(k("s"), 6, "Redis") == 11
    assert r.get(k("s")) == b"Hello Redis"
    assert r.setrange(k("z"), 3, "x") == 4
    assert r.get(k("z")) == b"\x00\x00\x00x"
    with pytest.raises(redis.ResponseError, match="^offset is out of range$"):
        r.setrange(k("z"), -1, "x")


def test_keyspace(r, k):
    assert r.msetnx({k("m1"): "1", k("m2"): "2"}) is True
    assert r.msetnx({k("m2"): "x", k("m3"): "3"}) is False
    assert r.exists(k("m3")) == 0
    r.expire(k("m1"), 100)
    assert r.rename(k("m1"), k("r1")) is True
    assert r.get(k("r1")) == b"1" and 0 < r.ttl(k("r1")) <= 100 and r.exists(k("m1")) == 0
    with pytest.raises(redis.ResponseError, match="^no such key$"):
        r.rename(k("m1"), k("x"))
    assert r.renamenx(k("r1"), k("m2")) is False
    assert r.renamenx(k("r1"), k("r2")) is True
    assert r.copy(k("r2"), k("c")) is True
    assert r.copy(k("r2"), k("c")) is False
    assert r.copy(k("m2"), k("c"), replace=True) is True
    assert r.get(k("c")) == b"2"
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        r.copy(k("m2"), k("c"), destination_db=1)
    assert r.touch(k("c"), k("missing"), k("m2")) == 2


def test_object_encoding_and_time(r, k):
    r.mset({k("i"): "123", k("e"): "abc", k("w"): "x" * 45})
    assert [r.object("encoding", k(n)) for n in ("i", "e", "w")] in (
        [b"int", b"embstr", b"raw"], ["int", "embstr", "raw"],  # redis-py decodes OBJECT's reply in some versions
    )
    assert r.object("encoding", k("missing")) is None
    with pytest.raises(redis.ResponseError, match="^unknown subcommand 'idletime'. Try OBJECT HELP.$"):
        r.execute_command("OBJECT", "idletime", k("i"))
    assert r.execute_command("OBJECT", "HELP")[0].startswith((b"OBJECT", "OBJECT"))
    seconds, micros = r.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 60


def test_command_info_lists_the_new_commands(r):
    names = ["setnx", "getex", "incrbyfloat", "copy", "time", "object"]
    info = r.execute_command("COMMAND", "INFO", *names)
    assert sorted(info) == sorted(names)  # redis-py parses the reply into {name: details}
    assert info["getex"]["arity"] == -2 and info["time"]["arity"] == 1


def test_the_python_client_has_the_same_methods(cluster, follower, k):
    with Client([follower.client_address]) as client:
        assert client.setnx(k("a"), "1") is True
        assert client.setnx(k("a"), "2") is False
        assert client.setex(k("e"), 100, "v") is True
        assert client.psetex(k("p"), 100_000, "v") is True
        assert 0 < client.pttl(k("p")) <= 100_000
        assert client.getset(k("a"), "2") == b"1"
        assert client.getex(k("a"), ex=100) == b"2"
        assert 0 < client.ttl(k("a")) <= 100
        assert client.getex(k("a"), persist=True) == b"2"
        assert client.ttl(k("a")) == -1
        assert client.incrbyfloat(k("f"), 10.5) == 10.5
        assert client.incrbyfloat(k("f"), 0.1) == 10.6
        assert client.get(k("f")) == b"10.6"
        assert client.setrange(k("s"), 2, "xy") == 4
        assert client.getrange(k("s"), 2, -1) == b"xy"
        assert client.msetnx({k("m"): "1", k("n"): "2"}) is True
        assert client.msetnx({k("m"): "1"}) is False
        assert client.rename(k("m"), k("m2")) is True
        assert client.renamenx(k("m2"), k("n")) is False
        with pytest.raises(CommandError, match="no such key"):
            client.rename(k("m"), k("x"))
        assert client.copy(k("m2"), k("c")) is True
        assert client.copy(k("m2"), k("c")) is False
        assert client.touch(k("c"), k("missing")) == 1
    cluster.converged()
