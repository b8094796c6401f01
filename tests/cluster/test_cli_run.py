"""`raftcache serve` and `raftcache up` as a user runs them: real processes, real signals."""

from __future__ import annotations

import array
import fcntl
import os
import signal
import socket
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import redis

from tests.helpers import REPO, OutputReader, ServerCluster, wait_until, write_cluster_config


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


def _start_up(tmp_path: Path, *, stderr: Any = subprocess.PIPE, sections: dict | None = None) -> tuple[subprocess.Popen, Path, OutputReader]:
    """`raftcache up` on a 3-node config, its stdout read on a thread; returns once it is ready."""
    cfg = write_cluster_config(tmp_path, 3, sections=sections)
    proc = raftcache("up", "--config", str(cfg), stdout=subprocess.PIPE, stderr=stderr)
    out = OutputReader(proc.stdout)

    def ready() -> bool:
        if proc.poll() is not None and "Ctrl-C to stop" not in out.text:
            raise AssertionError(f"`up` exited with {proc.returncode}:\n{out.close()}")
        return "Ctrl-C to stop" in out.text

    try:
        wait_until(ready, 90, what="`up` to report the cluster ready")
    except BaseException:
        proc.kill()
        raise
    assert "raftcache cluster up (3 nodes" in out.text, out.text
    assert "<- leader" in out.text
    return proc, cfg, out


def test_up_runs_the_cluster_and_ctrl_c_stops_everything(tmp_path):
    proc, cfg, _ = _start_up(tmp_path)
    err = OutputReader(proc.stderr)  # read as it comes: `up` must never wait on us
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
        assert "all nodes stopped." in err.close()
        assert processes_mentioning(str(cfg)) == []
        assert (tmp_path / "logs" / "n1.log").read_text().count("stopping") >= 1
    finally:
        if proc.poll() is None:
            proc.kill()


def _pipe_bytes_queued(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def test_ctrl_c_stops_up_whose_stderr_nobody_reads(tmp_path):
    """A full stderr pipe must not keep Ctrl-C from stopping the cluster: `up` echoes node
    warnings, and when nobody read them the echo blocked the log pumps, then the nodes on
    their own logging (deaf to SIGTERM), then `up`'s main thread on "stopping...": forever."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: few warnings fill it
    try:
        # Each client that overruns the query buffer costs its node one WARNING line.
        proc, cfg, out = _start_up(tmp_path, stderr=w, sections={"limits": {"max_query_buffer_bytes": 1024}})
    finally:
        os.close(w)
    try:
        from raftcache.config import load_config

        ports = [int(n.client.rsplit(":", 1)[1]) for n in load_config(str(cfg)).nodes]
        # Well past what fills `up`'s pipe (4 KiB) and, behind it, each node's own (64 KiB):
        # ~110 bytes a line, so ~600 lines per node stall a node that cannot get rid of them.
        stalled = []  # nodes that stopped answering (blocked writing their log)
        for _ in range(800):
            for port in [p for p in ports if p not in stalled]:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"*1\r\n$100000\r\n" + b"x" * 2048)
                    try:
                        assert s.recv(200).startswith(b"-ERR Protocol error: query buffer limit exceeded")
                    except TimeoutError:
                        stalled.append(port)
        assert _pipe_bytes_queued(r) > 4096 - 200  # nobody has read it: it is full
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert processes_mentioning(str(cfg)) == []
        assert stalled == [], "nodes stalled on their log when nobody read `up`'s stderr"
        for node in ("n1", "n2", "n3"):
            assert f"node {node} stopping" in (tmp_path / "logs" / f"{node}.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(r)


def test_nodes_do_not_outlive_a_killed_up(tmp_path):
    proc, cfg, _ = _start_up(tmp_path)
    proc.kill()  # kill -9: no chance to clean up
    proc.wait(10)
    wait_until(lambda: processes_mentioning(str(cfg)) == [], 30, what="orphaned nodes to stop")
