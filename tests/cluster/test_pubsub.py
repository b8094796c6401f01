"""Pub/sub and keyspace notifications on a real 3-node cluster, through redis-py (sync,
asyncio, RESP2 and RESP3) and raw sockets: one order of messages on every node whatever
node published them, PUBLISH's answer, subscribe mode's rules with Redis 7.0's errors,
PUBSUB, RESET, keyspace notifications (expired and evicted included) with the replicated
setting, and the limits (a subscriber that never reads is disconnected
and slows nobody, a 100 MB PUBLISH, huge patterns, many channels on one connection)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis

from tests.helpers import ServerCluster, wait_until

HARD_MB = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ServerCluster(
        tmp_path_factory.mktemp("pubsub"), size=3, persistent=False,
        sections={
            "pubsub": {"output_buffer_hard_mb": HARD_MB, "output_buffer_soft_mb": 1, "output_buffer_soft_seconds": 2,
                       "max_subscriptions_per_client": 50_000, "max_pattern_bytes": 256},
        },
    ).start()
    yield c
    c.close()


def client(node, **kwargs):
    return node.redis(socket_timeout=10, **kwargs)


def drain(pubsub, count: int, timeout: float = 20.0, until=None) -> list[tuple]:
    """`count` messages (not confirmations) from a redis-py PubSub, in arrival order; with
    `until`, only until `until(messages so far)` holds (when the count is not known)."""
    got: list[tuple] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline and not (until and until(got)):
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] in ("message", "pmessage", "smessage"):
            got.append((m["type"], m.get("pattern"), m["channel"], m["data"]))
    return got


def subscribed(pubsub, n: int) -> None:
    """Wait for `n` subscribe confirmations (the subscription is in place on the node)."""
    seen = 0
    deadline = time.monotonic() + 10
    while seen < n and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] in ("subscribe", "psubscribe", "ssubscribe"):
            seen += 1
    assert seen == n


# ----------------------------------------------------------------------------- order
def test_every_node_delivers_one_order_whoever_publishes(cluster):
    subs = []
    for node in cluster.nodes:  # a channel and a pattern subscriber on every node, leader included
        r = client(node)
        p = r.pubsub()
        p.subscribe("order")
        p.psubscribe("ord*")
        subscribed(p, 2)
        subs.append((r, p))
    errors: list[BaseException] = []

    def publish(node, tag: str) -> None:
        try:
            with client(node) as r:
                for i in range(40):
                    r.publish("order", f"{tag}-{i}")
        except BaseException as exc:  # noqa: BLE001 - collected: a thread cannot fail the test
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(node, node.id)) for node in cluster.nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sequences = [drain(p, 240) for _, p in subs]
    for seq in sequences:
        assert len(seq) == 240
        plain = [data for kind, _, _, data in seq if kind == "message"]
        patterned = [data for kind, _, _, data in seq if kind == "pmessage"]
        assert plain == patterned  # each message: the channel's copy, then the pattern's
        for tag in (n.id for n in cluster.nodes):  # each publisher's own order is kept
            mine = [d for d in plain if d.decode().startswith(tag + "-")]
            assert mine == [f"{tag}-{i}".encode() for i in range(40)]
    assert sequences[0] == sequences[1] == sequences[2]  # and all nodes agree on one order
    for r, p in subs:
        p.close()
        r.close()


def test_publish_answers_this_nodes_receivers(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    with client(follower) as sub_r, client(follower) as pub_r, client(leader) as other:
        p = sub_r.pubsub()
        p.subscribe("counted")
        p.psubscribe("count*")
        subscribed(p, 2)
        assert pub_r.publish("counted", "x") == 2  # channel + pattern, on the node that took it
        assert other.publish("counted", "y") == 0  # nobody subscribes on the leader
        assert [m[3] for m in drain(p, 4)] == [b"x", b"x", b"y", b"y"]  # yet the message arrives here
        assert pub_r.execute_command("PUBSUB", "NUMSUB", "counted", "nobody") == [b"counted", 1, b"nobody", 0]
        assert pub_r.execute_command("PUBSUB", "NUMPAT") == 1
        assert b"counted" in pub_r.execute_command("PUBSUB", "CHANNELS", "cou*")
        assert other.execute_command("PUBSUB", "CHANNELS") == []  # PUBSUB is per node, as Redis
        with pytest.raises(redis.ResponseError, match="unknown subcommand 'NOPE'. Try PUBSUB HELP."):
            pub_r.execute_command("PUBSUB", "NOPE")
        with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'NUMPAT'"):
            pub_r.execute_command("PUBSUB", "NUMPAT", "x")
        p.close()


def test_asyncio_pubsub_on_a_follower(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)

    async def run() -> list[bytes]:
        r = aioredis.Redis(host=follower.host, port=follower.port, socket_timeout=10)
        p = r.pubsub()
        await p.subscribe("async")
        got: list[bytes] = []
        with client(leader) as pub:
            for i in range(10):
                pub.publish("async", str(i))
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            m = await p.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if m:
                got.append(m["data"])
        await p.aclose()
        await r.aclose()
        return got

    assert asyncio.run(run()) == [str(i).encode() for i in range(10)]


def test_resp3_pushes_and_commands_while_subscribed(cluster):
    node = cluster.nodes[1]
    with client(node, protocol=3) as r:
        p = r.pubsub()
        p.subscribe("three")
        subscribed(p, 1)
        r.set("k3", "v")
        with client(cluster.nodes[0]) as pub:
            pub.publish("three", "pushed")
        assert drain(p, 1) == [("message", None, b"three", b"pushed")]
        p.close()
    # On the wire: confirmations and messages are RESP3 pushes, and other commands still run.
    with socket.create_connection((node.host, node.port), timeout=10) as s:
        s.sendall(b"HELLO 3\r\n")
        _read_until(s, b"modules\r\n*0\r\n")
        s.sendall(b"SUBSCRIBE wire\r\nGET k3\r\n")
        assert _read_until(s, b"$1\r\nv\r\n").endswith(b">3\r\n$9\r\nsubscribe\r\n$4\r\nwire\r\n:1\r\n$1\r\nv\r\n")
        with client(cluster.nodes[2]) as pub:
            pub.publish("wire", "hi")
        assert _read_until(s, b"hi\r\n") == b">3\r\n$7\r\nmessage\r\n$4\r\nwire\r\n$2\r\nhi\r\n"


def _read_until(s: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_resp2_subscribe_mode_allows_only_what_redis_allows(cluster):
    node = cluster.nodes[0]
    with socket.create_connection((node.host, node.port), timeout=10) as s:
        s.sendall(b"SUBSCRIBE a b\r\nGET x\r\nPING\r\nPING hi\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\n")
        out = _read_until(s, b"+PONG\r\n")
        assert out == (
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
            b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
            b"in this context\r\n"
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n+PONG\r\n"
        )
        s.sendall(b"PSUBSCRIBE p*\r\nSSUBSCRIBE sh\r\nCONFIG GET maxmemory\r\nRESET\r\nGET nothing\r\n")
        out = _read_until(s, b"$-1\r\n")
        assert out == (b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:1\r\n*3\r\n$10\r\nssubscribe\r\n$2\r\nsh\r\n:1\r\n"
                       b"-ERR Can't execute 'config|get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                       b"are allowed in this context\r\n+RESET\r\n$-1\r\n")
    with client(node) as r:
        wait_until(lambda: r.execute_command("PUBSUB", "NUMPAT") == 0, 5, 0.02, "the closed connection's pattern gone")
        with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'subscribe' command"):
            r.execute_command("SUBSCRIBE")


# ---------------------------------------------------------------- keyspace notifications
def test_keyspace_notifications_expired_and_evicted_in_one_order(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    with client(follower, decode_responses=True) as r:
        with pytest.raises(redis.ResponseError, match="Invalid event class character. Use 'Ag\\$lshzxeKEtmdn'."):
            r.config_set("notify-keyspace-events", "Q")
        assert r.config_set("notify-keyspace-events", "KEA") is True
    wait_until(lambda: all(client(n, decode_responses=True).config_get("notify-keyspace-events")["notify-keyspace-events"]
                           == "AKE" for n in cluster.nodes), 10, 0.05, "the setting on every node")
    subs = []
    for node in cluster.nodes:
        r = client(node)
        p = r.pubsub()
        p.psubscribe("__keyspace@0__:ks:*", "__keyevent@0__:*")
        subscribed(p, 2)
        subs.append((r, p))
    with client(follower) as w:
        w.set("ks:a", "1")
        w.hset("ks:h", "f", "v")
        w.lpush("ks:l", "x")
        w.rpop("ks:l")  # rpop, then del: the list is empty
        w.delete("ks:a")
    with client(leader) as w:  # evictions: a limit below the data makes the next write evict
        w.config_set("maxmemory-policy", "allkeys-random")
        w.set("ks:filler", "x" * 2000)
        w.config_set("maxmemory", 1000)
        w.set("ks:new", "y")
        w.config_set("maxmemory", 0)
        w.set("ks:t", "v", px=50)  # then expires: the leader's sweep deletes it everywhere
    expected = [(b"__keyspace@0__:ks:a", b"set"), (b"__keyevent@0__:set", b"ks:a"),
                (b"__keyspace@0__:ks:h", b"hset"), (b"__keyevent@0__:hset", b"ks:h"),
                (b"__keyspace@0__:ks:l", b"lpush"), (b"__keyevent@0__:lpush", b"ks:l"),
                (b"__keyspace@0__:ks:l", b"rpop"), (b"__keyevent@0__:rpop", b"ks:l"),
                (b"__keyspace@0__:ks:l", b"del"), (b"__keyevent@0__:del", b"ks:l"),
                (b"__keyspace@0__:ks:a", b"del"), (b"__keyevent@0__:del", b"ks:a")]
    # The expiry of ks:t is the last event (nothing else has a TTL and no write follows), and
    # its keyevent message is sent after its keyspace one: once that arrived, all did. (The
    # number of evictions is not fixed, so there is no count to wait for.)
    last = ("pmessage", b"__keyevent@0__:*", b"__keyevent@0__:expired", b"ks:t")
    sequences = []
    for _, p in subs:
        seq = [(ch, data) for _, _, ch, data in drain(p, 60, timeout=8, until=lambda got: last in got)]
        assert seq[-1] == last[2:], seq  # else the expiry never arrived
        assert [x for x in seq[:12]] == expected
        assert (b"__keyevent@0__:expired", b"ks:t") in seq
        assert any(ch == b"__keyevent@0__:evicted" for ch, _ in seq)
        sequences.append(seq)
    assert sequences[0] == sequences[1] == sequences[2]
    for r, p in subs:
        p.close()
        r.close()
    with client(leader) as w:
        w.config_set("notify-keyspace-events", "")
        w.config_set("maxmemory-policy", "noeviction")


# ---------------------------------------------------------------------------- limits
def test_a_subscriber_that_never_reads_is_dropped_and_slows_nobody(cluster):
    node = cluster.nodes[0]
    stuck = socket.create_connection((node.host, node.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"SUBSCRIBE flood\r\n")
    with client(node) as r:
        wait_until(lambda: r.execute_command("PUBSUB", "NUMSUB", "flood")[1] == 1, 5, 0.02, "the stuck subscriber")
        reader = r.pubsub()
        reader.subscribe("flood")
        subscribed(reader, 1)
        payload = b"z" * 64 * 1024
        started = time.monotonic()
        received = 0
        for i in range(160):  # 10 MB: five times the hard limit
            r.publish("flood", payload)
            received += len(drain(reader, 1, timeout=5))
        elapsed = time.monotonic() - started
        assert received == 160  # the reading subscriber got everything
        wait_until(lambda: r.execute_command("PUBSUB", "NUMSUB", "flood")[1] == 1, 10, 0.05, "the stuck one dropped")
        assert r.info("stats")["client_output_buffer_limit_disconnections"] >= 1
        assert elapsed < 30
        reader.close()
    stuck.close()
    assert "does not read its pub/sub messages" in node.log_text()


def test_bad_input_gets_clear_errors(cluster):
    node = cluster.nodes[1]
    with client(node) as r:
        with pytest.raises(redis.ResponseError, match="longer than pubsub.max_pattern_bytes"):
            r.execute_command("PSUBSCRIBE", "*a" * 200)
        big = "c" * 70_000
        with pytest.raises(redis.ResponseError, match="exceeds limits.max_key_bytes"):
            r.publish(big, "x")
        with pytest.raises(redis.ResponseError, match="exceeds maximum allowed size"):
            r.publish("ch", "x" * (2 << 20))  # above limits.max_value_bytes (1 MiB)
    # Tens of thousands of channels on one connection work, up to the configured bound.
    with socket.create_connection((node.host, node.port), timeout=30) as s:
        names = [b"c%d" % i for i in range(20_000)]
        s.sendall(b"*20001\r\n$9\r\nSUBSCRIBE\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(n), n) for n in names))
        _read_until(s, b"$6\r\nc19999\r\n:20000\r\n")
        s.sendall(b"UNSUBSCRIBE\r\n")
        _read_until(s, b":0\r\n")
    # A 100 MB PUBLISH is refused on its header (limits.max_bulk_bytes), before the payload.
    with socket.create_connection((node.host, node.port), timeout=10) as s:
        s.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$104857600\r\n")
        assert b"Protocol error: invalid bulk length" in _read_until(s, b"\r\n")
    with client(node) as r:
        assert r.ping()  # the node is unaffected


# --------------------------------------------- keyspace events of the moves, against redis-server
_MOVES: list[tuple[str, ...]] = [
    ("RPUSH", "km:a", "1", "2", "3"),
    ("LMOVE", "km:a", "km:b", "LEFT", "RIGHT"),  # a new destination
    ("LMOVE", "km:a", "km:b", "RIGHT", "LEFT"),
    ("LMOVE", "km:a", "km:a", "LEFT", "RIGHT"),  # one list: rotated
    ("RPOPLPUSH", "km:a", "km:c"),  # the source empties: del
    ("LMOVE", "km:nothing", "km:c", "LEFT", "LEFT"),  # no source: no event
    ("BLMOVE", "km:b", "km:d", "RIGHT", "LEFT", "0"),
    ("BLMOVE", "km:b", "km:d", "LEFT", "RIGHT", "0"),  # the source empties
    ("BRPOPLPUSH", "km:d", "km:d", "0"),
    ("SADD", "km:s1", "x", "y"),
    ("SADD", "km:s2", "y"),
    ("SMOVE", "km:s1", "km:s2", "y"),  # already in the destination: no sadd
    ("SMOVE", "km:s1", "km:s3", "x"),  # the source empties: srem, del, then sadd
    ("SMOVE", "km:s2", "km:s2", "y"),  # one set: nothing
    ("SMOVE", "km:s2", "km:s4", "absent"),
]


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _served_blmove(r: redis.Redis, port: int) -> None:
    """A BLMOVE that blocks, then is served by an RPUSH to its source (which it empties)."""
    got: list[object] = []
    with redis.Redis(port=port, socket_timeout=10) as blocker:
        waiter = threading.Thread(target=lambda: got.append(blocker.blmove("km:w", "km:x", 5, "RIGHT", "LEFT")))
        waiter.start()
        wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 1, 10, what="BLMOVE to block")
        r.rpush("km:w", "v")
        waiter.join(10)
    assert got == [b"v"]


def _move_events(port: int) -> list[tuple[bytes, bytes]]:
    with redis.Redis(port=port, socket_timeout=10) as r:
        r.delete(*{part for command in _MOVES for part in command[1:3] if part.startswith("km:")}, "km:w", "km:x")
        assert r.config_set("notify-keyspace-events", "KEA") is True
        try:
            # the setting is replicated: wait for it to reach this node before subscribing
            wait_until(lambda: _str(next(iter(r.config_get("notify-keyspace-events").values()))) == "AKE", 10)
            p = r.pubsub()
            p.psubscribe("__keyspace@0__:km:*", "__keyevent@0__:*")
            subscribed(p, 2)
            for command in _MOVES:
                r.execute_command(*command)
            _served_blmove(r, port)
            r.set("km:end", "1")  # the last event: everything before it has arrived
            events: list[tuple[bytes, bytes]] = []
            deadline = time.monotonic() + 20
            while (b"__keyevent@0__:set", b"km:end") not in events and time.monotonic() < deadline:
                events += [(ch, data) for _, _, ch, data in drain(p, 1, timeout=0.5)]
            p.close()
            return events
        finally:
            r.config_set("notify-keyspace-events", "")


def test_move_commands_notify_what_redis_notifies_in_its_order(real_redis, raftcache):
    """LMOVE, BLMOVE, RPOPLPUSH, BRPOPLPUSH and SMOVE: the same keyspace and keyevent messages
    as redis-server 7.0, in the same order (names, the source's del, no-op moves silent)."""
    theirs = _move_events(real_redis.connection_pool.connection_kwargs["port"])
    ours = _move_events(raftcache.connection_pool.connection_kwargs["port"])
    assert theirs[-1] == (b"__keyevent@0__:set", b"km:end")
    assert ours == theirs
