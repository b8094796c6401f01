"""What the differential tests share: a real redis-server and a raftcache cluster (session
fixtures in conftest.py), the strategies' building blocks, and the comparison of replies and
final state (type-aware: strings, hashes, lists, sets, sorted sets, and whether an expiry is set).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis
from hypothesis import strategies as st

from tests.helpers import ServerCluster, free_ports, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

HAVE_REDIS_SERVER = Path(REDIS_SERVER).exists()


def _raw_client(port: int) -> redis.Redis:
    """redis-py without its per-command reply conversions: compare what was on the wire."""
    client = redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=10)
    client.response_callbacks.clear()
    return client


def start_real_redis(tmp_path_factory):
    (port,) = free_ports(1)
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = _raw_client(port)
    try:
        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(ready, 10, 0.05, "redis-server to accept connections")
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_raftcache(tmp_path_factory):
    cluster = ServerCluster(tmp_path_factory.mktemp("differential"), size=3).start()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    client = _raw_client(follower.port)
    yield client
    client.close()
    cluster.close()


def cmd(*parts: st.SearchStrategy | str) -> st.SearchStrategy[list[str]]:
    return st.tuples(*(p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts)).map(list)


def flat(strategy: st.SearchStrategy[list]) -> st.SearchStrategy[list[str]]:
    return strategy.map(lambda parts: [x for p in parts for x in (p if isinstance(p, list) else [p])])


_ENCODING_RANK = {b"int": 0, b"embstr": 1, b"raw": 2}


def run(client: redis.Redis, command: list[str]) -> object:
    try:
        reply = client.execute_command(*command)
    except redis.ResponseError as exc:
        return ("error", str(exc))
    reply = _plain(reply)
    name = command[0].upper()
    if name in ("TTL", "PTTL") and isinstance(reply, int) and reply >= 0:
        return "has a ttl"  # the clocks differ: only whether an expiry exists compares
    return reply


def _plain(reply: object) -> object:
    """Error replies nested in arrays (scripts return them) as comparable values."""
    if isinstance(reply, list):
        return [_plain(item) for item in reply]
    if isinstance(reply, redis.ResponseError):
        return ("error", str(reply))
    return reply


def state(client: redis.Redis) -> dict[bytes, tuple[bytes, object, bool]]:
    """Every key's (type, contents, has an expiry); contents in a comparable form (a set's
    and a hash's elements sorted; a list's and a sorted set's in their order). Read in two
    pipelines (types, then contents and expiries): the same reads, two round trips."""
    keys = client.keys("*")
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = [kind.encode() if isinstance(kind, str) else kind for kind in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(keys, kinds):
        command, _ = _CONTENTS[kind]
        if command:
            pipe.execute_command(*command[:1], key, *command[1:])
        pipe.pttl(key)
    replies = iter(pipe.execute())
    out = {}
    for key, kind in zip(keys, kinds):
        command, comparable = _CONTENTS[kind]
        contents = comparable(next(replies)) if command else None
        out[key] = (kind, contents, next(replies) >= 0)
    return out


def _pairs(flat_list: list) -> list:
    return sorted(zip(flat_list[0::2], flat_list[1::2]))


def _as_is(reply: object) -> object:
    return reply


# type -> (the read of its contents, key inserted after the first word; how to compare them)
_CONTENTS = {
    b"string": (("GET",), _as_is),
    b"hash": (("HGETALL",), _pairs),
    b"list": (("LRANGE", 0, -1), _as_is),
    b"set": (("SMEMBERS",), sorted),
    b"zset": (("ZRANGE", 0, -1, "WITHSCORES"), _as_is),
    b"none": ((), _as_is),  # expired between KEYS and TYPE
}


def same_reply(command: list[str], ours: object, theirs: object) -> bool:
    if ours == theirs:
        return True
    if [w.upper() for w in command[:2]] == ["OBJECT", "ENCODING"] and ours in _ENCODING_RANK and theirs in _ENCODING_RANK:
        return _ENCODING_RANK[theirs] >= _ENCODING_RANK[ours]  # see the module docstring
    return False


def compare(real_redis: redis.Redis, raftcache: redis.Redis, sequence: list[list[str]]) -> None:
    for client in (real_redis, raftcache):
        _leave_transaction(client)
        client.flushall()
    queued: list[list[str]] | None = None  # inside MULTI: the commands queued so far
    for i, command in enumerate(sequence):
        theirs, ours = run(real_redis, command), run(raftcache, command)
        name = command[0].upper()
        if name == "EXEC" and queued is not None:
            theirs, ours = _exec_reply(queued, theirs), _exec_reply(queued, ours)
        assert same_reply(command, ours, theirs), f"step {i} {command}: redis {theirs!r}, raftcache {ours!r}"
        if name == "MULTI" and queued is None:
            queued = []
        elif name in ("EXEC", "DISCARD"):
            queued = None
        elif queued is not None and theirs == b"QUEUED":
            queued.append(command)
    for client in (real_redis, raftcache):
        _leave_transaction(client)
    assert state(raftcache) == state(real_redis)


def _leave_transaction(client: redis.Redis) -> None:
    """A sequence may end inside MULTI or with keys watched: start the next one clean."""
    run(client, ["DISCARD"])
    run(client, ["UNWATCH"])


def _exec_reply(queued: list[list[str]], reply: object) -> object:
    """EXEC's array with each element normalised as `run` normalises a single reply."""
    if not isinstance(reply, list):
        return reply
    out: list[object] = []
    for command, item in zip(queued, reply):
        if command[0].upper() in ("TTL", "PTTL") and isinstance(item, int) and item >= 0:
            item = "has a ttl"
        elif [w.upper() for w in command[:2]] == ["OBJECT", "ENCODING"] and item in _ENCODING_RANK:
            item = "an encoding"  # judged differently (see the module docstring)
        out.append(("error", str(item)) if isinstance(item, Exception) else item)
    return out


