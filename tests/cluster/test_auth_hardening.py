"""Failed AUTH on a real node: counted in INFO and Prometheus, and a connection that keeps
failing is slowed down while every other client is served at full speed."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from raftcache.resp import ReplyParser, encode_command
from tests.helpers import ServerNode, free_ports, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def node(tmp_path: Path):
    raft, client, metrics = free_ports(3)
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[cluster]\nsecret = "test-secret"\n\n[server]\nrequirepass = "right-password"\n\n'
        f'[[nodes]]\nid = "n1"\nraft = "127.0.0.1:{raft}"\nclient = "127.0.0.1:{client}"\nmetrics = "127.0.0.1:{metrics}"\n'
    )
    n = ServerNode(path, "n1", f"127.0.0.1:{client}", f"127.0.0.1:{raft}", None, password="right-password").start()
    n.metrics_port = metrics
    yield n
    if n.alive:
        n.terminate()


def metric(node, name: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_repeated_failures_hold_that_connection_only_and_are_counted(node):
    attempts = 7  # 3 answered at once, then held 0.1 + 0.2 + 0.4 + 0.8 s before each of the next 4
    with socket.create_connection(("127.0.0.1", node.port), timeout=30) as attacker:
        started = time.monotonic()
        attacker.sendall(encode_command(b"AUTH", b"guess") * attempts + encode_command(b"AUTH", b"right-password")
                         + encode_command(b"PING"))
        parser = ReplyParser()
        # meanwhile, another client is answered at once, again and again
        with node.redis(socket_timeout=10) as other:
            for _ in range(20):
                t = time.monotonic()
                assert other.ping() is True
                assert time.monotonic() - t < 0.5
        replies = parser.read_replies(attempts + 2, lambda: attacker.recv(65536))
        elapsed = time.monotonic() - started
    assert [r.prefix for r in replies[:attempts]] == ["WRONGPASS"] * attempts
    assert [str(r) for r in replies[attempts:]] == ["OK", "PONG"]  # the right password still works after the wait
    assert elapsed >= 0.1 + 0.2 + 0.4 + 0.8 - 0.05
    with node.redis(socket_timeout=10) as r:
        assert r.info("stats")["acl_access_denied_auth"] == attempts
    wait_until(lambda: metric(node, "raftcache_auth_failures_total") == attempts, 10, 0.1, "the metric")
