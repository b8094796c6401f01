"""Blocking pops on a real 3-node cluster, through redis-py and raw sockets: woken across
nodes, FIFO among the waiters of one node, timeouts, a client that disconnects while blocked
does not swallow the next element, BLMOVE, BZPOPMIN, MULTI, pipelines waiting behind a
blocked command, and the nil and error replies byte for byte against redis-server 7.0."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.cluster.differential import HAVE_REDIS_SERVER
from tests.helpers import ServerNode, Workers, wait_until


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture(scope="module")
def leader(cluster) -> ServerNode:
    return cluster.leader()


@pytest.fixture(scope="module")
def follower(cluster, leader) -> ServerNode:
    return next(n for n in cluster.nodes if n is not leader)


def client(node: ServerNode, **kwargs: Any) -> Any:
    return node.redis(retry=Retry(NoBackoff(), 0), **kwargs)  # a retried pop could pop twice


def blocked(node: ServerNode) -> int:
    return int(node.info("clients")["blocked_clients"])


def wait_blocked(node: ServerNode, count: int) -> None:
    wait_until(lambda: blocked(node) == count, 10, 0.02, f"{count} blocked clients on {node.id}")


def in_thread(fn, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Run fn(*args) in a thread; its result (or exception) lands in the returned box."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001  # re-raised by the test through the box
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def result(thread: threading.Thread, box: list[Any], timeout: float = 15.0) -> Any:
    thread.join(timeout)
    assert not thread.is_alive(), "the blocked call never returned"
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def blpop(node: ServerNode, key: str, timeout: float = 0) -> Any:
    with client(node) as r:
        return r.blpop([key], timeout=timeout)


@pytest.mark.parametrize("waiter_on, pusher_on", [("follower", "leader"), ("leader", "follower")])
def test_blpop_woken_by_a_push_through_another_node(request, waiter_on, pusher_on):
    waiter, pusher = request.getfixturevalue(waiter_on), request.getfixturevalue(pusher_on)
    key = f"wake:{waiter_on}"
    thread, box = in_thread(blpop, waiter, key)
    wait_blocked(waiter, 1)
    with client(pusher) as r:
        r.rpush(key, "hello")
    assert result(thread, box) == (key.encode(), b"hello")
    with client(pusher) as r:
        assert r.exists(key) == 0
    wait_blocked(waiter, 0)


def test_waiters_on_one_node_are_served_in_arrival_order(leader, follower):
    threads = []
    for i in range(3):
        threads.append(in_thread(blpop, follower, "fifo"))
        wait_blocked(follower, i + 1)  # each parks before the next arrives
    with client(leader) as r:
        r.rpush("fifo", "first", "second", "third")  # one push, three elements
    assert [result(*t)[1] for t in threads] == [b"first", b"second", b"third"]


def test_one_element_at_a_time_goes_to_the_longest_waiter(leader, follower):
    threads = []
    for i in range(3):
        threads.append(in_thread(blpop, follower, "fifo1"))
        wait_blocked(follower, i + 1)
    with client(leader) as r:
        for i, (thread, box) in enumerate(threads):
            r.rpush("fifo1", f"e{i}")
            assert result(thread, box) == (b"fifo1", f"e{i}".encode())


def test_timeouts_answer_nil(follower):
    with client(follower) as r:
        start = time.monotonic()
        assert r.blpop(["none"], timeout=0.1) is None
        elapsed = time.monotonic() - start
        assert 0.1 <= elapsed < 3, elapsed
        start = time.monotonic()
        assert r.execute_command("BZPOPMIN", "none", "1") is None
        assert r.brpoplpush("none", "dst", 1) is None
        assert r.execute_command("BLMPOP", "0.2", "1", "none", "LEFT") is None
        assert 2.2 <= time.monotonic() - start < 6
    wait_blocked(follower, 0)


def test_a_client_that_disconnects_while_blocked_gets_nothing(leader, follower):
    dead = socket.create_connection((follower.host, follower.port))
    dead.sendall(b"*3\r\n$5\r\nBLPOP\r\n$4\r\ngone\r\n$1\r\n0\r\n")
    wait_blocked(follower, 1)
    thread, box = in_thread(blpop, follower, "gone")  # a live waiter behind the dead one
    wait_blocked(follower, 2)
    dead.close()
    wait_blocked(follower, 1)
    with client(leader) as r:
        r.rpush("gone", "precious")
    assert result(thread, box) == (b"gone", b"precious")
    # no waiter at all: the element stays queued
    dead = socket.create_connection((follower.host, follower.port))
    dead.sendall(b"*3\r\n$5\r\nBLPOP\r\n$5\r\ngone2\r\n$1\r\n0\r\n")
    wait_blocked(follower, 1)
    dead.close()
    wait_blocked(follower, 0)
    with client(leader) as r:
        r.rpush("gone2", "kept")
        assert r.lrange("gone2", 0, -1) == [b"kept"]


def test_blmove_waits_then_moves(leader, follower):
    def move() -> Any:
        with client(follower) as r:
            return r.blmove("jobs", "mine", 0, "LEFT", "RIGHT")

    thread, box = in_thread(move)
    wait_blocked(follower, 1)
    with client(leader) as r:
        r.lpush("jobs", "job1")
        assert result(thread, box) == b"job1"
        assert r.lrange("mine", 0, -1) == [b"job1"] and r.exists("jobs") == 0


def test_bzpopmin_waits_for_a_member(leader, follower):
    def pop() -> Any:
        with client(follower) as r:
            return r.bzpopmin(["board"], timeout=0)

    thread, box = in_thread(pop)
    wait_blocked(follower, 1)
    with client(leader) as r:
        r.zadd("board", {"b": 2, "a": 1.5})
    assert result(thread, box) == (b"board", b"a", 1.5)


def test_inside_multi_a_blocking_pop_does_not_block(follower):
    with client(follower) as r:
        pipe = r.pipeline(transaction=True)
        pipe.blpop(["never"], timeout=0)
        pipe.rpush("never", "x")
        pipe.blpop(["never"], timeout=0)
        assert pipe.execute() == [None, 1, (b"never", b"x")]


def test_commands_pipelined_behind_a_blocked_one_wait_for_it(leader, follower):
    sock = socket.create_connection((follower.host, follower.port), timeout=10)
    sock.sendall(b"*3\r\n$5\r\nBLPOP\r\n$4\r\npipe\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n")
    wait_blocked(follower, 1)
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(100)  # PING waits behind the blocked BLPOP
    with client(leader) as r:
        r.rpush("pipe", "v")
    sock.settimeout(10)
    expected = b"*2\r\n$4\r\npipe\r\n$1\r\nv\r\n+PONG\r\n"
    data = b""
    while len(data) < len(expected):
        data += sock.recv(100)
    sock.close()
    assert data == expected


def test_many_waiters_and_pushers_lose_and_duplicate_nothing(cluster, leader):
    items = [f"item{i}" for i in range(60)]
    got: list[bytes] = []
    lock = threading.Lock()

    def consume(node: ServerNode) -> None:
        with client(node) as r:
            while True:
                popped = r.blpop(["many"], timeout=3)
                if popped is None:
                    return
                with lock:
                    got.append(popped[1])

    def produce(chunk: list[str], node: ServerNode) -> None:
        with client(node) as r:
            for item in chunk:
                r.rpush("many", item)

    with Workers() as workers:
        for i in range(6):
            workers.start(consume, cluster.nodes[i % 3])
        for i in range(3):
            workers.start(produce, items[i::3], cluster.nodes[i])
    assert sorted(got) == sorted(i.encode() for i in items)
    cluster.converged()


# --------------------------------------------------------- against redis-server
def _wire(host: str, port: int, *commands: tuple[str, ...], protocol: int = 2) -> bytes:
    """The raw reply bytes of commands sent one by one on a fresh connection."""
    out = b""
    with socket.create_connection((host, port), timeout=10) as sock:
        if protocol == 3:  # HELLO's map reply is skipped by reading up to PING's PONG
            sock.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n")
            seen = b""
            while not seen.endswith(b"+PONG\r\n"):
                seen += sock.recv(65536)
        for words in commands:
            sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words))
            out += _read_reply(sock)
    return out


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while _reply_end(data, 0) is None:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    return data


def _reply_end(data: bytes, at: int) -> int | None:
    """Where the RESP2/RESP3 reply starting at `at` ends, or None if incomplete."""
    line_end = data.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, head, end = data[at : at + 1], data[at + 1 : line_end], line_end + 2
    if kind in (b"$", b"=", b"!") and head != b"-1":
        end += int(head) + 2
        return end if len(data) >= end else None
    if kind in (b"*", b"%", b"~", b">") and head != b"-1":
        for _ in range(int(head) * (2 if kind == b"%" else 1)):
            end = _reply_end(data, end)
            if end is None:
                return None
    return end


NIL_AND_ERRORS: list[tuple[str, ...] | list[tuple[str, ...]]] = [
    ("SET", "str", "v"),
    ("BLPOP", "none", "0.01"), ("BRPOP", "none", "none2", "0.01"), ("BLMOVE", "none", "d", "LEFT", "RIGHT", "0.01"),
    ("BRPOPLPUSH", "none", "d", "0.01"), ("BLMPOP", "0.01", "1", "none", "LEFT"), ("BZPOPMIN", "none", "0.01"),
    ("BZPOPMAX", "none", "0.01"), ("BZMPOP", "0.01", "2", "none", "none2", "MAX", "COUNT", "2"),
    ("BLPOP", "none", "0.0001"), ("BLPOP", "str", "0.01"), ("BLPOP", "none", "str", "0.01"), ("BLPOP", "none", "abc"),
    ("BLPOP", "none", "-1"), ("BLPOP", "none", "inf"), ("BLPOP", "none", "nan"), ("BLPOP", "none", " 1"),
    ("BLPOP", "none", "1e17"), ("BLPOP", "none"), ("BLMPOP", "0.01", "0", "a", "LEFT"), ("BLMPOP", "-1", "1", "a", "MIDDLE"),
    ("BLMPOP", "-1", "1", "a", "LEFT"), ("BLMPOP", "0.01", "2", "a", "LEFT"), ("BLMPOP", "0.01", "1", "a", "LEFT", "COUNT", "0"),
    ("BLMPOP", "0.01", "1", "str", "LEFT"), ("BZMPOP", "0.01", "1", "a", "LEFT"), ("BZPOPMIN", "str", "0.01"),
    ("BLMOVE", "none", "d", "UP", "RIGHT", "x"), ("BLMOVE", "none", "d", "LEFT", "RIGHT", "x"), ("BLMOVE", "str", "d", "LEFT", "RIGHT", "0.01"),
    ("BRPOPLPUSH", "none", "d", "-1"), ("RPUSH", "l", "a", "b"), ("BLMOVE", "l", "str", "LEFT", "RIGHT", "0"),
    ("BLPOP", "l", "str", "0"), ("BLMPOP", "0", "1", "l", "RIGHT", "COUNT", "9"),
    ("EVAL", "return redis.call('BLPOP', 'none', '0')", "0"), ("EVAL", "return redis.pcall('BLMOVE', 'a', 'b', 'LEFT', 'LEFT', '0')", "0"),
    ("EVAL", "return redis.call('BLMPOP', '0', '1', 'none', 'LEFT')", "0"),
    [("MULTI",), ("BLPOP", "none", "0"), ("BLMOVE", "none", "d", "LEFT", "LEFT", "0"), ("BZMPOP", "0", "1", "x", "MIN"), ("EXEC",)],
    ("DEL", "str", "l"),
]  # a list: commands sent on one connection


@pytest.mark.skipif(not HAVE_REDIS_SERVER, reason="redis-server is not installed")
@pytest.mark.parametrize("protocol", [2, 3])
def test_nil_and_error_replies_are_redis_bytes(real_redis, follower, protocol):
    kwargs = real_redis.connection_pool.connection_kwargs
    real_redis.flushall()
    scenarios = [entry if isinstance(entry, list) else [entry] for entry in NIL_AND_ERRORS]
    theirs = [_wire(kwargs["host"], kwargs["port"], *cmds, protocol=protocol) for cmds in scenarios]
    ours = [_wire(follower.host, follower.port, *cmds, protocol=protocol) for cmds in scenarios]
    for cmds, mine, real in zip(scenarios, ours, theirs):
        words = cmds[0]
        if words[0] == "EVAL" and b"not allowed" in real:
            # Redis names the script in its error; the verdict is what must match
            assert mine.startswith(b"-ERR This Redis command is not allowed from script"), (words, mine)
        else:
            assert mine == real, cmds
