"""`raftcache serve` and `raftcache up` as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests.helpers import REPO, ServerCluster, wait_until, write_cluster_config


def raftcache(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "raftcache", *args], cwd=REPO, text=True, **kwargs)


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (to find children that must not outlive us)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                status = Path(f"/proc/{entry}/stat").read_text().split()[2]
            except OSError:
                continue
            if text.encode() in cmdline and status != "Z":
                found.append(int(entry))
    return found


def test_bad_config_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[raft]\nheartbeat_ms = "fast"\n[[nodes]]\nid = "n1"\nraft = "127.0.0.1:7101"\n')
    proc = raftcache("serve", "--config", str(bad), "--node", "n1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert err.strip() == f'Error: {bad}: raft.heartbeat_ms: must be an integer >= 1 (got \'fast\')'
    assert "Traceback" not in err


def test_unknown_node_and_missing_file(tmp_path):
    cfg = write_cluster_config(tmp_path, 1)
    proc = raftcache("serve", "--config", str(cfg), "--node", "n7", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "no node with id 'n7'" in err and "Traceback" not in err
    proc = raftcache("up", "--config", str(tmp_path / "nope.toml"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "file not found" in err and "Traceback" not in err


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    cluster = ServerCluster(tmp_path, size=1).start()
    node = cluster.nodes[0]
    with node.redis() as r:
        r.set("k", "v")
    assert node.terminate() == 0
    log = node.log_text()
    assert "n1 stopping" in log and "Traceback" not in log
    node.start()  # and it comes back with its data
    with node.redis() as r:
        wait_until(lambda: r.get("k") == b"v", 20, what="restart")
    cluster.close()


def test_serve_reports_a_busy_port(tmp_path):
    cluster = ServerCluster(tmp_path, size=1).start()
    try:
        proc = raftcache("serve", "--config", str(cluster.config_path), "--node", "n1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0
        assert "cannot listen on raft address" in err and "Traceback" not in err
    finally:
        cluster.close()


def _start_up(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    cfg = write_cluster_config(tmp_path, 3)
    proc = raftcache("up", "--config", str(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C to stop" in line:
            break
    text = "".join(lines)
    assert "raftcache cluster up (3 nodes" in text, text + (proc.stderr.read() if proc.poll() is not None else "")
    assert "<- leader" in text
    return proc, cfg


def test_up_runs_the_cluster_and_ctrl_c_stops_everything(tmp_path):
    proc, cfg = _start_up(tmp_path)
    try:
        from raftcache.config import load_config

        nodes = load_config(str(cfg)).nodes
        with redis.Redis(port=int(nodes[0].client.rsplit(":", 1)[1])) as r:
            r.set("greeting", "hello")
        with redis.Redis(port=int(nodes[2].client.rsplit(":", 1)[1])) as r:
            assert r.get("greeting") == b"hello"
        assert len(processes_mentioning(str(cfg))) == 4  # `up` and its three nodes
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert "all nodes stopped." in proc.stderr.read()
        assert processes_mentioning(str(cfg)) == []
        assert (tmp_path / "logs" / "n1.log").read_text().count("stopping") >= 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_nodes_do_not_outlive_a_killed_up(tmp_path):
    proc, cfg = _start_up(tmp_path)
    proc.kill()  # kill -9: no chance to clean up
    proc.wait(10)
    wait_until(lambda: processes_mentioning(str(cfg)) == [], 30, what="orphaned nodes to stop")
