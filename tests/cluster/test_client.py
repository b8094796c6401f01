"""raftcache.Client / AsyncClient against a live 3-node `raftcache serve` cluster."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from raftcache import AsyncClient, Client, NoLeaderError, RetryPolicy
from raftcache.errors import NotIntegerError, OutcomeUnknownError
from tests.helpers import ServerCluster, Workers, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("client")).start()
    yield cl
    cl.close()


def test_client_methods_match_the_embedded_cache(cluster):
    with Client(cluster.endpoints) as client:
        assert client.set("c:k", "v", ttl=30) is True
        assert client.get("c:k") == b"v"
        assert client.set("c:k", "w", nx=True) is False
        assert 29 <= client.ttl("c:k") <= 30
        assert client.set("c:k", "w", get=True) == b"v"  # a plain SET clears the TTL
    with Client(cluster.endpoints, decode_responses=True) as client:
        assert client.get("c:k") == "w"
        assert client.ttl("c:k") == -1
        assert client.incr("c:n", 5) == 5
        assert client.decr("c:n") == 4
        assert client.append("c:s", "ab") == 2
        assert client.exists("c:k", "c:n", "c:none") == 2
        assert client.expire("c:k", 100) is True
        assert client.persist("c:k") is True
        assert client.cas("c:k", "w", "x") is True
        assert client.cas("c:k", "w", "y") is False
        assert client.mset({"c:a": 1, "c:b": 2}) is True
        assert client.mget("c:a", "c:b") == ["1", "2"]
        assert sorted(client.keys("c:[ab]")) == ["c:a", "c:b"]
        assert client.getdel("c:a") == "1"
        assert client.delete("c:b", "c:none") == 1
        assert client.type("c:k") == "string"
        with pytest.raises(NotIntegerError):
            client.incr("c:s")
        status = client.status()
        assert status.role == "leader" and status.term >= 1
        assert client.leader == cluster.leader().client_address


def test_pipeline_of_1000(cluster):
    with Client(cluster.endpoints) as client:
        with client.pipeline() as p:
            for i in range(500):
                p.set(f"pl:{i}", i)
                p.incr("pl:count")
            results = p.execute()
        assert results[0::2] == [True] * 500
        assert results[1::2] == list(range(1, 501))
        p = client.pipeline()
        p.get("pl:7").incr("pl:7").get("pl:nope")
        p.incr("pl:0").set("pl:s", "x").incr("pl:s")
        with pytest.raises(NotIntegerError):
            p.execute()
        p.incr("pl:s")
        (error,) = p.execute(raise_on_error=False)
        assert isinstance(error, NotIntegerError)


def test_async_client(cluster):
    async def scenario():
        async with AsyncClient(cluster.endpoints) as client:
            assert await client.set("ac:k", "v") is True
            assert await client.get("ac:k") == b"v"
            results = await asyncio.gather(*(client.incr("ac:n") for _ in range(100)))
            assert sorted(results) == list(range(1, 101))
            async with client.pipeline() as p:
                p.set("ac:p", "1").incr("ac:p").get("ac:p")
                assert await p.execute() == [True, 2, b"2"]
            status = await client.status()
            assert status.role == "leader"

    asyncio.run(scenario())


def test_client_follows_the_leader_from_any_endpoint(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    with Client([follower.client_address]) as client:  # told only about a follower
        client.set("follow", "1")
        assert client.leader == leader.client_address


def test_no_node_reachable_is_a_clean_error():
    with Client(["127.0.0.1:1"], retry=RetryPolicy(deadline=1.0)) as client:
        start = time.monotonic()
        with pytest.raises(NoLeaderError):
            client.get("x")
        assert time.monotonic() - start < 3


def test_failover_when_the_leader_is_killed_mid_stream(tmp_path):
    """Writers stream INCRs and unique SETs; the leader is killed -9 mid-stream. The client
    fails over; no acknowledged write is lost, none is doubled."""
    cl = ServerCluster(tmp_path).start()
    try:
        acked_sets: list[str] = []
        acked_incrs = 0
        unknown = 0
        unexpected: list[BaseException] = []  # checked in the test thread, below
        lock = threading.Lock()
        stop = threading.Event()
        client = Client(cl.endpoints, retry=RetryPolicy(deadline=20))

        def writer(w: int) -> None:
            nonlocal acked_incrs, unknown
            for i in range(100_000):
                if stop.is_set():
                    return
                try:
                    client.incr("fo:counter")
                    with lock:
                        acked_incrs += 1
                    client.set(f"fo:{w}:{i}", i)
                    with lock:
                        acked_sets.append(f"fo:{w}:{i}")
                except OutcomeUnknownError:  # counted: the only failure a failover may cause
                    with lock:
                        unknown += 1
                except Exception as exc:
                    with lock:
                        unexpected.append(exc)
                    return

        with Workers() as workers:
            for w in range(6):
                workers.start(writer, w, name=f"writer-{w}")
            try:
                wait_until(lambda: acked_incrs > 300 or unexpected, 20, what="writes before the fault")
                old_leader = cl.leader()
                old_leader.kill()
                before_kill = acked_incrs
                wait_until(lambda: acked_incrs > before_kill + 300 or unexpected, 30, what="writes after the failover")
            finally:
                stop.set()
        assert unexpected == [], f"writers failed with more than an unknown outcome: {unexpected!r}"
        client.close()
        survivors = [n for n in cl.nodes if n is not old_leader]
        with survivors[0].redis() as r:
            total = int(r.get("fo:counter"))
            values = r.mget(acked_sets) if acked_sets else []
        print(f"failover: acked incrs {acked_incrs} (before kill {before_kill}), total {total}, unknown {unknown}, sets {len(acked_sets)}")
        assert acked_incrs <= total <= acked_incrs + unknown, (acked_incrs, total, unknown)
        assert all(v is not None for v in values), "an acknowledged SET was lost"
        old_leader.start()
        cl.converged()
    finally:
        cl.close()
