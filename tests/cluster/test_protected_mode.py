"""Protected mode, from a real non-loopback address: the node runs in a network namespace
(tests/faults/netns.py) and the test connects from the segment's other end. Needs root and
iproute2/nftables; skips cleanly without them."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from raftcache.server import DENIED_PROTECTED_MODE
from tests.faults import netns
from tests.helpers import ServerCluster, no_retry

pytestmark = pytest.mark.timeout(180)

STRONG = "Zq8vN2xL5pR7tK1wY4mB9cH3jF6dG0sA-strong"


@pytest.fixture
def net():  # a Network per test: a restarted node never meets its predecessor's ports
    ok, why = netns.available()
    if not ok:
        pytest.skip(why)
    with netns.Network(1) as network:
        yield network


def start(root: Path, net, server: dict) -> ServerCluster:
    root.mkdir()
    cluster = ServerCluster(root, size=1, persistent=True, sections={"cluster": {"secret": STRONG}, "server": server},
                            hosts=[net.node_ip(0)], exec_prefixes=[net.exec_prefix(0)])
    cluster.nodes[0].start()
    return cluster


def read_all(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        data = b""  # nothing sent: the refusal comes unasked, then the close
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_no_password_refuses_clients_off_loopback_with_redis_words(tmp_path, net):
    cluster = start(tmp_path / "a", net, {})
    node = cluster.nodes[0]
    try:
        assert read_all(node.host, node.port) == DENIED_PROTECTED_MODE  # and the connection is closed
        assert DENIED_PROTECTED_MODE.startswith(b"-DENIED Redis is running in protected mode because protected mode is enabled")
        cli = shutil.which("redis-cli")
        if cli:  # what a Redis user sees (redis-py only reports an unasked reply as "Connection not ready")
            out = subprocess.run([cli, "-h", node.host, "-p", str(node.port), "PING"], capture_output=True, text=True, timeout=30)
            assert "DENIED Redis is running in protected mode" in out.stdout + out.stderr
        log = node.log_text()
        assert "is not loopback and there is no requirepass: protected mode refuses" in log
        assert node.alive
    finally:
        cluster.close()


def test_protected_mode_off_or_a_password_lets_them_in(tmp_path, net):
    cluster = start(tmp_path / "off", net, {"protected_mode": False})
    node = cluster.nodes[0]
    try:
        with redis.Redis(host=node.host, port=node.port, socket_timeout=10) as r:
            assert r.set("k", "v") and r.get("k") == b"v"
            assert r.info("stats")["rejected_connections"] == 0
        assert "protected_mode = false: anyone who reaches it can read and write" in node.log_text()
    finally:
        cluster.close()
    cluster = start(tmp_path / "pass", net, {"requirepass": "a-password"})
    node = cluster.nodes[0]
    try:
        with redis.Redis(host=node.host, port=node.port, socket_timeout=10, retry=no_retry()) as r:
            with pytest.raises(redis.AuthenticationError):
                r.get("k")
        with redis.Redis(host=node.host, port=node.port, password="a-password", socket_timeout=10) as r:
            assert r.ping() is True
    finally:
        cluster.close()
