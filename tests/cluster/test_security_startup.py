"""Start-up refusals and warnings of `raftcache serve`: one line, a non-zero exit status and
nothing written to the data directory for what must never run; a warning for what is merely
risky. The refused nodes have non-loopback raft addresses but are stopped before they open
any socket, so no traffic leaves 127.0.0.0/8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftcache import cluster_secret
from tests.helpers import REPO, ServerCluster, free_ports

pytestmark = pytest.mark.timeout(120)

STRONG = "Zq8vN2xL5pR7tK1wY4mB9cH3jF6dG0sA-strong"


def config(root: Path, cluster: str, *, raft: str = "10.255.0.1:7101", server: str = "") -> Path:
    (client_port,) = free_ports(1)
    path = root / "cluster.toml"
    path.write_text(
        f"[cluster]\n{cluster}\n\n[server]\n{server}\n\n"
        f'[[nodes]]\nid = "n1"\nraft = "{raft}"\nclient = "127.0.0.1:{client_port}"\ndata_dir = "data/n1"\n'
    )
    return path


def serve(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftcache", "serve", "--config", str(path), "--node", "n1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    "cluster, env, problem",
    [
        ('secret = "change-me"', None, "cluster.secret: the cluster secret is a known placeholder"),
        ('secret = "short-but-random-Xy7"', None, "cluster.secret: the cluster secret is shorter than 32 characters"),
        ('secret = "abababababababababababababababababab"', None, "fewer than 10 distinct characters"),
        ('secret = "Zq8vN2xL5pZq8vN2xL5pZq8vN2xL5pZq8vN2xL5p"', None, "is a short string repeated"),
        ("", None, "cluster.secret: the cluster secret is not set"),
        ('secret_env = "RC_SECRET"', {"RC_SECRET": "change-me"}, "cluster.secret_env: the cluster secret is a known placeholder"),
        ('secret_env = "RC_SECRET_UNSET"', None, "cluster.secret_env: environment variable RC_SECRET_UNSET is not set"),
        ('secret_file = "nope.txt"', None, "cluster.secret_file: cannot read"),
    ],
)
def test_weak_or_missing_secret_off_loopback_is_refused(tmp_path, cluster, env, problem):
    path = config(tmp_path, cluster)
    result = serve(path, env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: ") and problem in lines[0], result.stderr
    if "the cluster secret" in problem:
        assert cluster_secret.HOW_TO_MAKE_ONE in lines[0]
    assert not (tmp_path / "data").exists()


def test_unreadable_tls_files_are_refused(tmp_path):
    path = config(tmp_path, f'secret = "{STRONG}"', raft="127.0.0.1:%d" % free_ports(1)[0],
                  server='tls_cert_file = "missing.crt"\ntls_key_file = "missing.key"\ntls_auth_clients = "no"')
    result = serve(path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "server.tls_cert_file: certificate and key: file not found" in lines[0]
    assert not (tmp_path / "data").exists()


def test_mutual_tls_without_a_ca_is_refused(tmp_path):
    from tests.cluster.certs import CA

    ca = CA(tmp_path, "ca")
    node = ca.issue("node")
    path = config(tmp_path, f'secret = "{STRONG}"', raft="127.0.0.1:%d" % free_ports(1)[0],
                  server=f'tls_cert_file = "{node.cert}"\ntls_key_file = "{node.key}"')
    result = serve(path)
    assert result.returncode != 0 and "server.tls_ca_cert_file: is needed to check client certificates" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "data").exists()


def test_the_example_placeholder_still_runs_on_loopback_with_a_warning(tmp_path):
    cluster = ServerCluster(tmp_path, size=1, sections={"cluster": {"secret": "change-me"}})
    try:
        node = cluster.nodes[0].start()
        with node.redis(socket_timeout=10) as r:
            assert r.set("k", "v") and r.get("k") == b"v"
        log = node.log_text()
        assert "WARNING" in log and "the cluster secret is a known placeholder" in log
    finally:
        cluster.close()


def test_a_secret_from_the_environment_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RC_TEST_CLUSTER_SECRET", STRONG)  # inherited by the node process
    cluster = ServerCluster(tmp_path, size=1, sections={"cluster": {"secret_env": "RC_TEST_CLUSTER_SECRET"}})
    try:
        node = cluster.nodes[0].start()
        with node.redis(socket_timeout=10) as r:
            assert r.ping() is True
        assert "the cluster secret" not in node.log_text()  # a strong secret: no warning
    finally:
        cluster.close()


def test_a_file_from_raftcache_init_runs(tmp_path):
    from tests.helpers import ServerNode

    raft, client = free_ports(2)
    path = tmp_path / "cluster.toml"
    made = subprocess.run([sys.executable, "-m", "raftcache", "init", str(path), "--nodes", "1", "--raft-port", str(raft),
                           "--client-port", str(client), "--secret-file", str(tmp_path / "secret")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    node = ServerNode(path, "n1", f"127.0.0.1:{client}", f"127.0.0.1:{raft}", tmp_path / "data" / "n1").start()
    try:
        with node.redis(socket_timeout=10) as r:
            assert r.set("k", "v") and r.get("k") == b"v"
        assert "the cluster secret" not in node.log_text()  # a strong secret, read from its file
    finally:
        node.terminate()
