"""Bad input against a live node: errors or closes, the node keeps serving, data intact,
memory bounded. Small limits in the config so the tests run fast."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.helpers import ServerCluster, no_retry, wait_until

LIMITS = {
    "server": {"maxclients": 300, "frame_timeout_s": 1.0, "requirepass": ""},
    "limits": {"max_value_bytes": 4096, "max_bulk_bytes": 65536, "max_array_len": 1000, "max_query_buffer_bytes": 262144},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("limits"), sections=LIMITS).start()
    with cl.nodes[0].redis() as r:
        r.set("precious", "data")
    yield cl
    cl.close()


def talk(port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes; return everything the server sends until it closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data


def still_healthy(cluster) -> None:
    for node in cluster.nodes:
        with node.redis() as r:
            assert r.get("precious") == b"data"
            assert r.ping() is True


@pytest.mark.parametrize(
    "payload, error",
    [
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$x\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b'SET k "unbalanced\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        # absurd declared lengths: refused on the header, before any payload is sent
        (b"*1\r\n$99999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*99999999999\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$65537\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1001\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    ],
)
def test_malformed_frames_get_an_error_and_a_close(cluster, payload, error):
    node = cluster.nodes[0]
    # a valid command first: it is answered before the bad frame closes the connection
    reply = talk(node.port, b"PING\r\n" + payload, timeout=5)
    assert reply == b"+PONG\r\n" + error
    still_healthy(cluster)


def test_values_above_the_limit_are_refused_cleanly(cluster):
    with cluster.nodes[1].redis() as r:
        with pytest.raises(redis.ResponseError, match="string exceeds maximum allowed size"):
            r.set("big", b"x" * 5000)
        assert r.ping() is True  # the connection stays usable
        assert r.get("big") is None


def test_query_buffer_limit_closes_the_connection(cluster):
    node = cluster.nodes[2]
    # One command whose arguments are each within limits but together exceed the 256 KiB
    # query buffer before the command is complete.
    chunk = b"$60000\r\n" + b"x" * 60000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        data = b""
        try:
            s.sendall(b"*200\r\n$3\r\nDEL\r\n")
            for _ in range(8):
                s.sendall(chunk)
            while piece := s.recv(65536):
                data += piece
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert data == b"-ERR Protocol error: query buffer limit exceeded (limits.max_query_buffer_bytes)\r\n"
    still_healthy(cluster)


def test_slowloris_connections_are_closed_and_memory_stays_bounded(cluster):
    node = cluster.nodes[0]
    rss_before = node.rss_bytes()
    sockets = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nslow" + str(i % 10).encode())  # and then nothing more
            sockets.append(s)
        # meanwhile the node serves everyone else
        with node.redis() as r:
            assert r.set("during-slowloris", "ok") is True

        def all_closed() -> bool:
            closed = 0
            for s in sockets:
                s.settimeout(0.01)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except TimeoutError:
                    pass
                except OSError:
                    closed += 1
            return closed == len(sockets)

        wait_until(all_closed, 10, 0.2, "half-sent connections to be closed")
    finally:
        for s in sockets:
            s.close()
    assert node.rss_bytes() - rss_before < 20 * 1024 * 1024
    assert node.info("clients")["connected_clients"] < 50
    still_healthy(cluster)


def test_too_many_clients_are_turned_away(cluster):
    node = cluster.nodes[1]
    sockets = []
    try:
        refused = None
        for _ in range(320):
            s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
            sockets.append(s)
            s.sendall(b"PING\r\n")
            reply = s.recv(100)
            if reply != b"+PONG\r\n":
                refused = reply
                break
        assert refused == b"-ERR max number of clients reached\r\n"
        assert len(sockets) <= 301
    finally:
        for s in sockets:
            s.close()
    wait_until(lambda: node.info("clients")["connected_clients"] < 10, 10, what="connections to drain")
    still_healthy(cluster)


def test_garbage_storm_leaves_node_and_data_intact(cluster):
    import random

    rng = random.Random(7)
    node = cluster.nodes[2]
    for _ in range(40):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        talk(node.port, junk, timeout=0.2)  # whatever the node makes of it, it must live on
    still_healthy(cluster)
    cluster.converged()


def test_requirepass_needs_auth(tmp_path):
    cl = ServerCluster(tmp_path, size=1, sections={"server": {"requirepass": "s3cret"}}).start()
    try:
        port = cl.nodes[0].port
        # QUIT (allowed before AUTH) closes the connection, so `talk` returns without waiting out its timeout
        assert talk(port, b"GET k\r\nQUIT\r\n", timeout=1) == b"-NOAUTH Authentication required.\r\n+OK\r\n"
        assert talk(port, b"AUTH wrong\r\nQUIT\r\n", timeout=2) == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n"
        assert talk(port, b"AUTH s3cret\r\nSET k v\r\nGET k\r\nQUIT\r\n", timeout=2) == b"+OK\r\n+OK\r\n$1\r\nv\r\n+OK\r\n"
        with redis.Redis(port=port, password="s3cret") as r:
            assert r.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="nope", retry=no_retry()).ping()
        # before AUTH, Redis 7's tighter limits apply: a big unauthenticated frame is refused
        assert talk(port, b"*100\r\n", timeout=2) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    finally:
        cl.close()
