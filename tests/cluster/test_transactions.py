"""MULTI/EXEC/WATCH through a follower of a 3-node `raftcache serve` cluster: redis-py's
transaction pipelines and WATCH loops (RESP2 and RESP3), a conflicting write from another
client through another node, Redis's errors, raftcache.Client's transactions and its tagged
EXEC retried without applying twice; replicas converge afterwards."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading

import pytest
import redis

from raftcache import AsyncClient, Client, WatchError
from raftcache.errors import NotIntegerError

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture(scope="module")
def leader(cluster):
    return cluster.leader()


@pytest.fixture(scope="module")
def follower(cluster, leader):
    return next(n for n in cluster.nodes if n is not leader)


@pytest.fixture
def k():
    prefix = f"t{next(_prefixes)}:"
    return lambda name: prefix + name


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(follower, request):
    with follower.redis(protocol=request.param) as client:
        yield client


@pytest.fixture
def other(leader):
    """Another client, through another node."""
    with leader.redis() as client:
        yield client


def raw(r: redis.Redis, *commands: tuple) -> list:
    """Send commands on one connection and read every reply (errors as values)."""
    conn = r.connection_pool.get_connection()
    try:
        out = []
        for command in commands:
            conn.send_command(*command)
            try:
                out.append(conn.read_response())
            except redis.ResponseError as exc:
                out.append(exc)
        return out
    finally:
        r.connection_pool.release(conn)


def test_default_pipeline_is_an_atomic_transaction(r, k):
    with r.pipeline() as p:  # transaction=True is redis-py's default
        p.set(k("a"), "1").incr(k("a")).get(k("a")).mget(k("a"), k("missing")).ping()
        assert p.execute() == [True, 2, b"2", [b"2", None], True]


def test_runtime_errors_sit_inside_execs_reply(r, k):
    with r.pipeline() as p:
        p.set(k("s"), "text").incr(k("s")).set(k("after"), "ran").execute_command("SET", k("x"), "v", "BOGUS")
        results = p.execute(raise_on_error=False)
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], redis.ResponseError) and "not an integer" in str(results[1])
    assert isinstance(results[3], redis.ResponseError) and "syntax error" in str(results[3])
    assert r.get(k("after")) == b"ran"


def test_watch_conflict_from_another_client_on_another_node_aborts(r, other, k):
    r.set(k("balance"), 10)
    with r.pipeline() as p:
        p.watch(k("balance"))
        balance = int(p.get(k("balance")))
        other.incr(k("balance"))  # a write through the leader, between WATCH and EXEC
        p.multi()
        p.set(k("balance"), balance - 3)
        p.set(k("log"), "spent")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get(k("balance")) == b"11" and r.get(k("log")) is None
    with r.pipeline() as p:  # without a conflict the same transaction applies
        p.watch(k("balance"))
        balance = int(p.get(k("balance")))
        p.multi()
        p.set(k("balance"), balance - 3)
        assert p.execute() == [True]
    assert r.get(k("balance")) == b"8"


def test_watch_catches_a_key_created_and_deleted_meanwhile(r, other, k):
    with r.pipeline() as p:
        p.watch(k("ghost"))
        other.set(k("ghost"), "boo")
        other.delete(k("ghost"))
        p.multi()
        p.set(k("out"), "x")
        with pytest.raises(redis.WatchError):
            p.execute()


def test_redis_transaction_helper_retries_until_it_wins(follower, leader, k):
    counter = k("counter")
    clients = [follower.redis(), leader.redis()]

    def add_one(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get(counter) or 0)
        pipe.multi()
        pipe.set(counter, value + 1)

    def worker(client: redis.Redis) -> None:
        for _ in range(15):
            client.transaction(add_one, counter)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert clients[0].get(counter) == b"30"  # no lost update, whichever node each went through
    for c in clients:
        c.close()


def test_protocol_errors_as_redis(r, k):
    replies = raw(
        r,
        ("EXEC",), ("DISCARD",),
        ("MULTI",), ("MULTI",), ("WATCH", k("a")), ("SET", k("a"), "1"), ("GET",), ("EXEC",),
        ("MULTI",), ("SET", k("a"), "1"), ("DISCARD",), ("GET", k("a")),
    )
    text = [str(x) if isinstance(x, Exception) else x for x in replies]
    assert text[0] == "EXEC without MULTI" and text[1] == "DISCARD without MULTI"
    assert text[3] == "MULTI calls can not be nested" and text[4] == "WATCH inside MULTI is not allowed"
    assert text[5] in (b"QUEUED", "QUEUED") and text[6] == "wrong number of arguments for 'get' command"
    assert isinstance(replies[7], redis.exceptions.ExecAbortError)
    assert text[-2] in (b"OK", "OK", True) and replies[-1] is None  # discarded: nothing was set


def test_client_transactions(cluster, other, k):
    with Client(cluster.endpoints) as client:
        with client.pipeline(transaction=True) as p:
            p.set(k("a"), "1").incr(k("a")).incr(k("text"))
            p.set(k("text"), "x")
            assert len(p) == 4
            results = p.execute(raise_on_error=False)
        assert results[:2] == [True, 2] and results[3] is True
        attempts = []

        def spend(pipe) -> int:
            attempts.append(1)
            balance = int(pipe.get(k("a")))
            if len(attempts) == 1:
                other.incr(k("a"))  # a conflicting write on the first attempt only
            pipe.multi()
            pipe.set(k("a"), balance * 10)
            return balance

        assert client.transaction(spend, k("a"), value_from_callable=True) == 3
        assert len(attempts) == 2 and client.get(k("a")) == b"30"
        other.set(k("n"), "x")
        with pytest.raises(NotIntegerError):
            client.pipeline(transaction=True).incr(k("n")).execute()
        with pytest.raises(WatchError):
            client.transaction(lambda pipe: other.incr(k("a")), k("a"), max_attempts=3)


def test_async_client_transactions(cluster, k):
    async def scenario() -> None:
        async with AsyncClient(cluster.endpoints) as client:
            async with client.pipeline(transaction=True) as p:
                p.set(k("x"), "1").incr(k("x"))
                assert await p.execute() == [True, 2]

            async def bump(pipe) -> None:
                value = int(await pipe.get(k("x")))
                pipe.multi()
                pipe.set(k("x"), value + 1)

            await asyncio.gather(*(client.transaction(bump, k("x")) for _ in range(4)))
            assert await client.get(k("x")) == b"6"

    asyncio.run(scenario())


def test_a_retried_tagged_exec_applies_once(cluster, follower, leader, k):
    """What raftcache.Client does after a lost connection: the whole MULTI..EXEC again, on
    another connection (here another node), with the same tag."""
    counter = k("once")
    tagged_exec = ("RAFTCACHE", "ONCE", "4242", "1", "1", "EXEC")
    first = raw(follower.redis(), ("MULTI",), ("INCR", counter), ("INCRBY", counter, "10"), tagged_exec)
    again = raw(leader.redis(), ("MULTI",), ("INCR", counter), ("INCRBY", counter, "10"), tagged_exec)
    assert first[-1] == again[-1] == [1, 11]
    with follower.redis() as r:
        assert r.get(counter) == b"11"


def test_a_transaction_larger_than_one_raft_entry_is_discarded(r, k):
    with r.pipeline() as p:
        for i in range(3):
            p.set(k(f"big{i}"), "x" * (1 << 20))
        with pytest.raises(redis.exceptions.ExecAbortError, match="exceeds one Raft entry"):
            p.execute()
    assert r.exists(k("big0")) == 0


def test_a_million_queued_commands_are_refused_and_the_node_stays_up(follower, k):
    """The queue is charged against limits.max_query_buffer_bytes: past it the commands are
    answered with an error and not kept, and EXEC discards the transaction."""
    incr = b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(k("q")), k("q").encode())
    total = 1_000_000
    received = bytearray()
    with socket.create_connection(("127.0.0.1", follower.port), timeout=120) as s:

        def read_all() -> None:
            while not received.endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        s.sendall(b"*1\r\n$5\r\nMULTI\r\n")
        for _ in range(total // 10_000):
            s.sendall(incr * 10_000)
        s.sendall(b"*1\r\n$4\r\nEXEC\r\n")
        reader.join(120)
    assert received.startswith(b"+OK\r\n+QUEUED\r\n")
    assert received.count(b"-ERR transaction queue limit exceeded") == total - received.count(b"+QUEUED\r\n")
    assert received.count(b"+QUEUED\r\n") < total // 2
    with follower.redis() as r:
        assert r.ping() is True and r.get(k("q")) is None  # nothing of it applied


def test_replicas_converge_after_transactions(cluster):
    cluster.converged()
