"""RAFTCACHE WATCH on a real 3-node cluster: the raw command through redis-py (RESP2 and
RESP3), Client.watch on the leader and on a follower, VALUES and patterns, resume through
another node after kill -9 of the watched one (every change once, in order), the compacted
and future-seq errors, a watcher that does not read, and the near-cache (correctness, the
drop on disconnect, and the measured write -> near-cache lag)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time

import pytest
import redis

from raftcache import Client
from raftcache.client.async_ import AsyncClient
from raftcache.errors import CommandError, WatchCompactedError
from raftcache.resp import encode_command
from tests.helpers import ServerCluster, Workers, wait_until

HISTORY = 200


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    sections = {"watch": {"history_events": HISTORY, "progress_ms": 100, "future_wait_ms": 500}}
    c = ServerCluster(tmp_path_factory.mktemp("watch"), size=3, sections=sections).start()
    yield c
    c.close()


def raw_stream(node, *args, protocol: int = 2):
    """A redis-py connection streaming RAFTCACHE WATCH: (connection, read one frame)."""
    r = node.redis(socket_timeout=10, protocol=protocol)
    conn = r.connection_pool.get_connection()
    conn.send_command("RAFTCACHE", "WATCH", *args)
    return r, conn


def read_frames(conn, count: int, kinds=(b"event",)) -> list:
    out = []
    while len(out) < count:
        frame = conn.read_response(push_request=True) if conn.protocol == 3 else conn.read_response()
        if frame[0] in kinds:
            out.append(frame)
    return out


def next_seq(node) -> int:
    """The seq a watcher from now on this node would start after."""
    r, conn = raw_stream(node, "*")
    greeting = conn.read_response()
    conn.disconnect()
    r.close()
    assert greeting[0] == b"watching"
    return int(greeting[2])


@pytest.mark.parametrize("protocol", [2, 3])
def test_raw_watch_on_a_follower_streams_matching_changes_in_order(cluster, protocol):
    follower = next(n for n in cluster.nodes if n is not cluster.leader())
    r, conn = raw_stream(follower, "raw:*", "VALUES", protocol=protocol)
    greeting = conn.read_response()
    assert greeting[0] == b"watching" and greeting[1] == b"raw:*"
    with cluster.leader().redis() as w:
        w.set("raw:a", "1")
        w.set("other", "x")  # does not match
        w.append("raw:a", "2")
        w.delete("raw:a")
    frames = read_frames(conn, 3)
    assert [(f[2], f[3], f[4]) for f in frames] == [(b"set", b"raw:a", b"1"), (b"append", b"raw:a", b"12"),
                                                     (b"del", b"raw:a", None)]
    seqs = [int(f[1]) for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > int(greeting[2])
    conn.disconnect()
    r.close()


def test_resume_from_a_seq_on_another_node_replays_exactly_what_followed(cluster):
    a, b = cluster.nodes[0], cluster.nodes[1]
    start = next_seq(a)
    with cluster.leader().redis() as w:
        for i in range(20):
            w.set(f"res:{i}", i)
    r, conn = raw_stream(a, "res:*", "FROM", start)
    conn.read_response()
    first = read_frames(conn, 20)
    conn.disconnect()
    r.close()
    middle = int(first[9][1])
    r, conn = raw_stream(b, "res:*", "FROM", middle)  # another node, from the tenth event
    assert conn.read_response()[2] == middle
    rest = read_frames(conn, 10)
    conn.disconnect()
    r.close()
    assert [f[1:4] for f in rest] == [f[1:4] for f in first[10:]]


def test_a_compacted_seq_and_a_future_seq_get_definite_errors(cluster):
    node = cluster.nodes[2]
    with cluster.leader().redis() as w:
        for i in range(HISTORY + 50):
            w.set(f"cmp:{i % 7}", i)
    wait_until(lambda: next_seq(node) > HISTORY, 10, 0.05, "the history to wrap")
    with node.redis(socket_timeout=10) as r:
        with pytest.raises(redis.ResponseError, match="compacted") as caught:
            r.execute_command("RAFTCACHE", "WATCH", "*", "FROM", 1)
        assert "oldest available" in str(caught.value)
    with pytest.raises(WatchCompactedError) as err, Client([node.client_address]) as client:
        next(iter(client.watch("*", start_index=1)))
    assert err.value.oldest is not None and err.value.oldest > 1
    # a seq this node has not reached: it waits (future_wait_ms), then says so
    r, conn = raw_stream(node, "*", "FROM", 10**12)
    assert conn.read_response()[0] == b"watching"
    with pytest.raises(redis.ResponseError, match="ahead of this node"):
        conn.read_response()
    conn.disconnect()
    r.close()
    with node.redis() as r:
        for bad in (["WATCH"], ["WATCH", "*", "FROM"], ["WATCH", "*", "FROM", "x"], ["WATCH", "*", "BOGUS"]):
            with pytest.raises(redis.ResponseError):
                r.execute_command("RAFTCACHE", *bad)


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_client_watch_with_values_and_patterns(cluster, where):
    leader = cluster.leader()
    node = leader if where == "leader" else next(n for n in cluster.nodes if n is not leader)
    got = []
    with Client([node.client_address], decode_responses=True) as client, Client(cluster.endpoints) as writer:
        stream = client.watch(f"pat{where}:[ab]*", values=True)  # from now: this call
        writer.set(f"pat{where}:a1", "x")
        writer.set(f"pat{where}:c1", "nope")
        writer.incr(f"pat{where}:b1")
        writer.hset(f"pat{where}:a2", "f", "v")
        for event in stream:
            got.append(event)
            if len(got) == 3:
                break
    assert [(e.event, e.key) for e in got] == [("set", f"pat{where}:a1"), ("incrby", f"pat{where}:b1"),
                                               ("hset", f"pat{where}:a2")]
    assert got[0].value == "x"
    assert got[0].seq < got[1].seq < got[2].seq


def test_client_watch_resumes_through_another_node_after_kill_9(cluster):
    victim = next(n for n in cluster.nodes if n is not cluster.leader())
    others = [n for n in cluster.nodes if n is not victim]
    endpoints = [victim.client_address] + [n.client_address for n in others]  # the watch starts on the victim
    start = next_seq(victim)
    seen: list = []
    stop = threading.Event()
    with Client(endpoints) as client, Client([n.client_address for n in others]) as writer:
        stream = client.watch("kill:*", start_index=start)

        def consume() -> None:
            for event in stream:
                seen.append(event)
                if len(seen) == 60 or stop.is_set():
                    return

        with Workers() as workers:
            workers.start(consume)
            for i in range(30):
                writer.set(f"kill:{i}", i)
            wait_until(lambda: len(seen) >= 10, 10, 0.02, "events before the kill")
            victim.kill()
            for i in range(30, 60):
                writer.set(f"kill:{i}", i)
            try:
                workers.join(30)
            finally:
                stop.set()
        victim.start()
    # leave the module's cluster whole: a restarted node answers from seq 0 until it caught up
    caught_up = next_seq(cluster.leader())
    wait_until(lambda: next_seq(victim) >= caught_up, 30, 0.05, "the restarted node to catch up")
    assert [e.key for e in seen] == [b"kill:%d" % i for i in range(60)]  # each once, in order
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs))
    cluster.leader()


def test_async_client_watch(cluster):
    async def run() -> list:
        start = next_seq(cluster.leader())
        async with AsyncClient(cluster.endpoints) as client:
            await client.set("aw:1", "a")
            await client.delete("aw:1")
            got = []
            async for event in client.watch("aw:*", start_index=start):
                got.append((event.event, event.key))
                if len(got) == 2:
                    break
            return got

    assert asyncio.run(run()) == [("set", b"aw:1"), ("del", b"aw:1")]


def test_a_watcher_that_does_not_read_is_disconnected_and_others_are_unaffected(cluster):
    node = cluster.nodes[0]
    sock = socket.create_connection((node.host, node.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(encode_command(b"RAFTCACHE", b"WATCH", b"big:*", b"VALUES"))
    value = b"v" * 200_000
    with cluster.leader().redis() as w:
        for i in range(200):  # 40 MB of pushes: past the 32 MB pub/sub-class output limit
            w.set(f"big:{i % 5}", value)
        assert w.get("big:0") == value  # writes and other clients never waited for the watcher

    host, port = sock.getsockname()[:2]
    address = f"{host}:{port}"

    def closed() -> bool:  # the server's view: this socket is never read here
        with node.redis(socket_timeout=5) as r:
            return f"addr={address} " not in r.execute_command("CLIENT", "LIST").decode()

    wait_until(closed, 30, 0.1, "the server to drop the non-reading watcher")
    sock.close()


# ------------------------------------------------------------------------ near-cache
def test_near_cache_serves_from_memory_and_sees_writes_through_another_node(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    with Client([follower.client_address], near_cache=100) as reader, Client([leader.client_address]) as writer:
        writer.set("nc:k", "v1")
        assert reader.get("nc:k") == b"v1"  # starts the stream; served from memory once it is up
        near = reader.near_cache
        wait_until(lambda: near.serving, 5, 0.02, "the near-cache's stream to be up")
        assert reader.get("nc:k") == b"v1"
        assert reader.get("nc:k") == b"v1"
        assert near.hits >= 1
        writer.set("nc:k", "v2")  # through another node
        wait_until(lambda: reader.get("nc:k") == b"v2", 5, 0.005, "the near-cache to see the write")
        writer.delete("nc:k")
        wait_until(lambda: reader.get("nc:k") is None, 5, 0.005, "the near-cache to see the delete")
        assert reader.get("nc:missing") is None and reader.get("nc:missing") is None  # absent keys are cached too
        writer.set("nc:missing", "now")
        wait_until(lambda: reader.get("nc:missing") == b"now", 5, 0.005, "a cached absence to be invalidated")
        writer.flushall()
        wait_until(lambda: reader.get("nc:missing") is None, 5, 0.005, "FLUSHALL to empty the near-cache")
        assert reader.get("nc:k", consistency="linearizable") is None  # explicit: always the cluster


def test_async_client_near_cache_serves_from_memory_and_sees_writes(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)

    async def until(predicate, what: str) -> None:
        deadline = time.monotonic() + 5
        while not await predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.005)

    async def run() -> None:
        async with AsyncClient([follower.client_address], near_cache=100) as reader, \
                AsyncClient([leader.client_address]) as writer:
            await writer.set("anc:k", "v1")
            assert await reader.get("anc:k") == b"v1"  # starts the stream
            near = reader.near_cache
            assert near.serving
            assert await reader.get("anc:k") == b"v1" and near.hits >= 1
            await writer.set("anc:k", "v2")  # through another node

            async def fresh() -> bool:
                return await reader.get("anc:k") == b"v2"

            await until(fresh, "the near-cache to see the write")
            assert await reader.get("anc:k", consistency="linearizable") == b"v2"

    asyncio.run(run())


def test_near_cache_is_dropped_while_its_stream_is_down(cluster):
    leader = cluster.leader()
    victim = next(n for n in cluster.nodes if n is not leader)
    with Client([victim.client_address, leader.client_address], near_cache=100) as reader:
        reader.get("down:k")  # its stream starts on the victim
        near = reader.near_cache
        wait_until(lambda: near.serving, 5, 0.02, "the stream to be up")
        reader.get("down:k")
        assert near.lookup(b"down:k") is None and len(near) == 1  # held (as absent)
        drops = near.drops
        started = time.monotonic()
        victim.pause()  # silent, not closed: the stream goes quiet
        try:
            wait_until(lambda: near.drops > drops, 5, 0.01, "the near-cache to drop what it held")
            quiet_for = time.monotonic() - started
            assert near.lookup(b"down:k") is near.MISS
            # back, through the other node, without serving anything from before
            wait_until(lambda: near.serving, 10, 0.02, "the stream to resume on the leader")
            assert len(near) == 0
        finally:
            victim.resume()
    assert quiet_for < near.config.max_silence_s + 1.0


def test_near_cache_lag_is_measured(cluster):
    """Time from a write acknowledged through another node until the near-cache returns it."""
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    lags = []
    with Client([follower.client_address], near_cache=100) as reader, Client([leader.client_address]) as writer:
        for i in range(40):
            writer.set("lag:k", i)
            reader.get("lag:k")
            writer.set("lag:k", f"new{i}")
            acked = time.perf_counter()
            wait_until(lambda i=i: reader.get("lag:k") == f"new{i}".encode(), 5, 0.0005, "the write in the near-cache")
            lags.append(time.perf_counter() - acked)
    lags.sort()
    p50, p99 = statistics.median(lags), lags[int(len(lags) * 0.99) - 1]
    print(f"near-cache lag after a write through another node: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert p99 < 2.0  # far inside the documented bound (max_silence_s after the last word)


def test_watch_errors_of_the_client_are_definite(cluster):
    with Client(cluster.endpoints) as client:
        with pytest.raises(ValueError):
            client.watch("*", start_index=-1)
        with pytest.raises(ValueError):
            AsyncClient(cluster.endpoints).watch("*", start_index="7")
    with cluster.nodes[0].redis() as r, pytest.raises(redis.ResponseError, match="longer than"):
        r.execute_command("RAFTCACHE", "WATCH", "*" * 5000)
    assert issubclass(WatchCompactedError, CommandError)
