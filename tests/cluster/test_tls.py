"""TLS on the client port: real `raftcache serve` processes, certificates made per test.

Server-only and mutual TLS through redis-py (`rediss://`), redis-cli --tls, raftcache.Client,
AsyncClient and the CLI; the wrong-protocol cases (plain text on the TLS port, TLS on the plain
port) fail cleanly and leave the node serving; expired and untrusted certificates are refused
both ways; SIGHUP swaps the certificate without a restart.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from raftcache import AsyncClient, Client, RetryPolicy
from tests.cluster.certs import CA
from tests.helpers import REPO, ServerCluster, no_retry, wait_until

pytestmark = pytest.mark.timeout(180)


def tls_node(root: Path, ca: CA, auth_clients: str, *, expired: bool = False) -> tuple[ServerCluster, Path]:
    root.mkdir()
    server = ca.issue("node", expired=expired, cert_path=root / "node.crt", key_path=root / "node.key")
    sections = {"server": {"tls_cert_file": "node.crt", "tls_key_file": "node.key", "tls_ca_cert_file": str(ca.cert_path),
                           "tls_auth_clients": auth_clients}}
    cluster = ServerCluster(root, size=1, persistent=False, sections=sections)
    cluster.nodes[0].start()
    return cluster, server.cert


def tls_redis(node, ca: CA, cert=None, **kwargs) -> redis.Redis:
    # one attempt: a refused handshake is what several tests expect, and redis-py's own
    # retries would repeat it ten times with backoff
    kwargs.setdefault("retry", no_retry())
    return redis.Redis(host="127.0.0.1", port=node.port, ssl=True, ssl_ca_certs=str(ca.cert_path),
                       ssl_certfile=str(cert.cert) if cert else None, ssl_keyfile=str(cert.key) if cert else None,
                       socket_timeout=10, **kwargs)


def raftcache_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftcache", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def redis_cli() -> str:
    path = shutil.which("redis-cli")
    helped = subprocess.run([path, "--help"], capture_output=True, text=True) if path else None
    if helped is None or "--tls" not in helped.stdout + helped.stderr:
        pytest.skip("redis-cli with TLS is not installed (apt package redis-tools)")
    return path


def served_by(node, ca: CA, cert=None) -> bool:
    """The node still answers a well-behaved TLS client."""
    with tls_redis(node, ca, cert) as r:
        return r.ping() is True


def test_server_only_tls_with_every_client(tmp_path):
    ca = CA(tmp_path, "ca")
    cluster, _ = tls_node(tmp_path / "n", ca, "no")
    node = cluster.nodes[0]
    endpoint = node.client_address
    try:
        url = redis.Redis.from_url(f"rediss://127.0.0.1:{node.port}/0", ssl_ca_certs=str(ca.cert_path), socket_timeout=10)
        with url as r:
            assert r.set("k", "from-redis-py") and r.get("k") == b"from-redis-py"
        with tls_redis(node, ca, protocol=3) as r:  # RESP3 over TLS too
            assert r.incr("n") == 1
        with Client(endpoint, ssl=True, ssl_ca_certs=str(ca.cert_path)) as client:
            client.set("k2", "from-client")
            assert client.get("k") == b"from-redis-py"
        with Client.from_config(str(cluster.config_path)) as client:  # the config's own CA
            assert client.get("k2") == b"from-client"

        async def async_round_trip() -> bytes:
            async with AsyncClient(endpoint, ssl=True, ssl_ca_certs=str(ca.cert_path)) as client:
                await client.set("k3", "from-async")
                return await client.get("k3")

        assert asyncio.run(async_round_trip()) == b"from-async"
        got = raftcache_cli("get", "k2", "--endpoints", endpoint, "--tls", "--cacert", str(ca.cert_path))
        assert got.returncode == 0 and got.stdout.strip() == "from-client", got.stderr
        status = raftcache_cli("status", "--config", str(cluster.config_path))
        assert status.returncode == 0 and "healthy" in status.stdout, status.stdout + status.stderr

        cli = redis_cli()
        out = subprocess.run([cli, "--tls", "--cacert", str(ca.cert_path), "-h", "127.0.0.1", "-p", str(node.port), "GET", "k3"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "from-async", out.stderr
    finally:
        cluster.close()


def test_wrong_protocol_either_way_is_a_clean_error_and_the_node_keeps_serving(tmp_path):
    ca = CA(tmp_path, "ca")
    cluster, _ = tls_node(tmp_path / "tls", ca, "no")
    (tmp_path / "plain").mkdir()
    plain = ServerCluster(tmp_path / "plain", size=1, persistent=False)
    plain.nodes[0].start()
    tls_node_, plain_node = cluster.nodes[0], plain.nodes[0]
    try:
        # plain text on the TLS port: the handshake fails, the connection closes
        with redis.Redis(host="127.0.0.1", port=tls_node_.port, socket_timeout=10, retry=no_retry()) as r:
            with pytest.raises(redis.ConnectionError):
                r.ping()
        assert served_by(tls_node_, ca)
        # TLS on the plain port: closed at the ClientHello, at once rather than after a timeout
        started = time.monotonic()
        with redis.Redis(host="127.0.0.1", port=plain_node.port, ssl=True, ssl_ca_certs=str(ca.cert_path), socket_timeout=10,
                         retry=no_retry()) as r:  # one attempt: redis-py's own retries back off for seconds
            with pytest.raises(redis.ConnectionError):
                r.ping()
        assert time.monotonic() - started < 3
        with plain_node.redis(socket_timeout=10) as r:
            assert r.ping() is True
        started = time.monotonic()
        cli = raftcache_cli("get", "k", "--endpoints", plain_node.client_address, "--tls", "--cacert", str(ca.cert_path))
        assert cli.returncode == 1 and "TLS handshake failed" in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert time.monotonic() - started < 3  # a setting to fix: no retrying until the 5 s deadline
        # plain CLI and clients on the TLS port: the error says what to try
        cli = raftcache_cli("get", "k", "--endpoints", tls_node_.client_address)
        assert cli.returncode == 1 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert "Traceback" not in cli.stderr and "TLS-only? Then connect with TLS: --tls" in cli.stderr, cli.stderr
        cli = raftcache_cli("status", "--endpoints", tls_node_.client_address)  # one connection per node, no retries
        assert cli.returncode == 1 and "TLS-only?" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
        with Client(tls_node_.client_address, retry=RetryPolicy(deadline=1)) as client:
            with pytest.raises(Exception, match="TLS-only"):
                client.get("k")

        async def plain_async() -> None:
            async with AsyncClient(tls_node_.client_address, retry=RetryPolicy(deadline=1)) as client:
                await client.get("k")

        with pytest.raises(Exception, match="TLS-only"):
            asyncio.run(plain_async())
        assert tls_node_.alive and plain_node.alive and served_by(tls_node_, ca)
    finally:
        cluster.close()
        plain.close()


def test_mutual_tls_requires_a_trusted_unexpired_client_certificate(tmp_path):
    ca, rogue = CA(tmp_path, "ca"), CA(tmp_path, "rogue")
    cluster, _ = tls_node(tmp_path / "n", ca, "yes")
    node = cluster.nodes[0]
    good = ca.issue("app", client=True)
    expired = ca.issue("old-app", client=True, expired=True)
    untrusted = rogue.issue("intruder", client=True)
    try:
        with tls_redis(node, ca, good) as r:
            assert r.set("m", "mutual") and r.get("m") == b"mutual"
        for cert in (None, expired, untrusted):
            with tls_redis(node, ca, cert) as r:
                with pytest.raises(redis.ConnectionError):
                    r.ping()
        with Client(node.client_address, ssl=True, ssl_ca_certs=str(ca.cert_path), ssl_certfile=str(good.cert),
                    ssl_keyfile=str(good.key)) as client:
            assert client.get("m") == b"mutual"
        with Client(node.client_address, ssl=True, ssl_ca_certs=str(ca.cert_path), retry=RetryPolicy(deadline=1)) as client:
            with pytest.raises(Exception, match="TLS handshake failed"):
                client.get("m")
        got = raftcache_cli("get", "m", "--endpoints", node.client_address, "--cacert", str(ca.cert_path),
                            "--cert", str(good.cert), "--key", str(good.key))
        assert got.returncode == 0 and got.stdout.strip() == "mutual", got.stderr
        cli = redis_cli()
        out = subprocess.run([cli, "--tls", "--cacert", str(ca.cert_path), "--cert", str(good.cert), "--key", str(good.key),
                              "-h", "127.0.0.1", "-p", str(node.port), "GET", "m"], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "mutual", out.stderr
        assert node.alive and served_by(node, ca, good)
    finally:
        cluster.close()


def test_expired_or_untrusted_server_certificate_is_refused_by_clients(tmp_path):
    ca, rogue = CA(tmp_path, "ca"), CA(tmp_path, "rogue")
    cluster, _ = tls_node(tmp_path / "n", ca, "no", expired=True)
    node = cluster.nodes[0]
    try:
        with tls_redis(node, ca) as r:
            with pytest.raises(redis.ConnectionError, match="certificate has expired"):
                r.ping()
        with redis.Redis(host="127.0.0.1", port=node.port, ssl=True, ssl_ca_certs=str(rogue.cert_path), socket_timeout=10,
                         retry=no_retry()) as r:
            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                r.ping()
        with Client(node.client_address, ssl=True, ssl_ca_certs=str(ca.cert_path), retry=RetryPolicy(deadline=1)) as client:
            with pytest.raises(Exception, match="certificate is not trusted .*expired"):
                client.get("k")
        # still serving: a client that skips verification gets through
        with redis.Redis(host="127.0.0.1", port=node.port, ssl=True, ssl_cert_reqs="none", socket_timeout=10) as r:
            assert r.ping() is True
    finally:
        cluster.close()


def _served_serial(port: int, ca: CA) -> int:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return int(tls.getpeercert()["serialNumber"], 16)


def test_sighup_reloads_the_certificate_without_a_restart(tmp_path):
    ca = CA(tmp_path, "ca")
    cluster, _ = tls_node(tmp_path / "n", ca, "no")
    node = cluster.nodes[0]
    root = tmp_path / "n"
    try:
        first = _served_serial(node.port, ca)
        with tls_redis(node, ca) as kept:
            assert kept.set("before", "1")
            renewed = ca.issue("node", cert_path=root / "node.crt", key_path=root / "node.key")
            assert renewed.serial != first
            pid = node.proc.pid
            node.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: _served_serial(node.port, ca) == renewed.serial, 10, 0.05, "the renewed certificate")
            assert node.proc.pid == pid and node.alive
            assert kept.get("before") == b"1"  # an open connection is not disturbed
        # a broken file on SIGHUP: logged, the working certificate stays
        (root / "node.key").write_text("not a key")
        node.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS files not reloaded" in node.log_text(), 10, 0.05, "the reload error in the log")
        assert _served_serial(node.port, ca) == renewed.serial and served_by(node, ca)
    finally:
        cluster.close()


def test_optional_client_certificates_are_checked_only_when_sent(tmp_path):
    ca, rogue = CA(tmp_path, "ca"), CA(tmp_path, "rogue")
    cluster, _ = tls_node(tmp_path / "n", ca, "optional")
    node = cluster.nodes[0]
    try:
        assert served_by(node, ca)  # no certificate: fine
        assert served_by(node, ca, ca.issue("app", client=True))
        with tls_redis(node, ca, rogue.issue("intruder", client=True)) as r:
            with pytest.raises(redis.ConnectionError):
                r.ping()
    finally:
        cluster.close()
