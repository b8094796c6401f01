"""The systems bench_all.py measures, each started on 127.0.0.1 with OS-assigned ports in a
temp dir and stopped afterwards: a raftcache cluster (`raftcache serve` per node), one
redis-server, an etcd cluster, a raw pysyncobj cluster (`pysyncobj_node.py`), and the stub
servers that measure the load generator's ceiling.

Every process goes through `PROCESSES`, which kills whatever is still running on exit (the
harness calls `PROCESSES.stop_all()` in a `finally`, and children get SIGKILL if the harness
itself dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import etcd_call, parse_info, resp_call

from raftcache.errors import ProtocolError
from raftcache.resp import ReplyParser

HERE = Path(__file__).resolve().parent
T = TypeVar("T")


class SkipTarget(Exception):
    """The target cannot run here (binary missing, ...); the message says why."""


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, ConnectionError, ValueError, KeyError, TimeoutError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


try:  # resolved once here, so the child does no symbol lookup between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child: SIGKILL when the harness dies, even by kill -9 (no orphans)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Processes:
    """Every child the harness starts; `stop_all` leaves none behind."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def spawn(self, cmd: list[str], log_path: Path | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        if log_path is not None:
            with open(log_path, "ab") as log:
                kwargs.setdefault("stdout", log)
                kwargs.setdefault("stderr", subprocess.STDOUT)
                proc = self._popen(cmd, kwargs)
        else:
            proc = self._popen(cmd, kwargs)
        self.procs.append(proc)
        return proc

    @staticmethod
    def _popen(cmd: list[str], kwargs: dict[str, Any]) -> subprocess.Popen[Any]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        # preexec_fn with threads (RaftWatcher) is safe enough here: the hook only calls a
        # pre-resolved prctl, as `raftcache up` does for its children.
        return subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def kill(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            try:
                self.stop(proc, timeout=5)
            except Exception:  # keep stopping the others  # noqa: BLE001
                proc.kill()


PROCESSES = Processes()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SkipTarget(f"`{name}` not found (apt-get install -y {package})")
    return path


def command_version(cmd: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else "unknown"


# ------------------------------------------------------------------------- raftcache
@dataclass
class RaftcacheNode:
    id: str
    client_port: int
    raft_port: int
    log_path: Path
    proc: subprocess.Popen[Any] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def info(self, timeout: float = 5.0) -> dict[str, str]:
        return parse_info(resp_call(self.client_port, "INFO", "raft", timeout=timeout))

    def call(self, *args: str, timeout: float = 10.0) -> Any:
        return resp_call(self.client_port, *args, timeout=timeout)


def raftcache_command() -> list[str]:
    exe = shutil.which("raftcache", path=str(Path(sys.executable).parent)) or shutil.which("raftcache")
    return [exe] if exe else [sys.executable, "-m", "raftcache"]


class RaftcacheCluster:
    """`raftcache serve` per node, from a generated TOML with a data_dir per node."""

    name = "raftcache"

    def __init__(self, root: Path, fsync: str = "always", size: int = 3) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size)
        self.nodes = [RaftcacheNode(f"n{i + 1}", ports[2 * i + 1], ports[2 * i], root / f"n{i + 1}.log") for i in range(size)]
        lines = ["[cluster]", 'secret = "bench-secret-not-for-production"', f'fsync = "{fsync}"', ""]
        for n in self.nodes:
            lines += ["[[nodes]]", f'id = "{n.id}"', f'raft = "127.0.0.1:{n.raft_port}"',
                      f'client = "127.0.0.1:{n.client_port}"', f'data_dir = "data/{n.id}"', ""]
        self.config = root / "cluster.toml"
        self.config.write_text("\n".join(lines))

    def start_node(self, node: RaftcacheNode) -> None:
        cmd = [*raftcache_command(), "serve", "--config", str(self.config), "--node", node.id, "--log-level", "info"]
        node.proc = PROCESSES.spawn(cmd, node.log_path, cwd=str(self.root))

    def start(self, timeout: float = 60.0) -> RaftcacheCluster:
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            wait_until(lambda n=node: self.node_accepting(n), timeout, what=f"raftcache {node.id} to accept connections")
        self.leader(timeout)
        return self

    def node_accepting(self, node: RaftcacheNode) -> bool:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"raftcache {node.id} exited with {node.proc.returncode}; log {node.log_path}:\n"
                               + node.log_path.read_text(errors="replace")[-2000:])
        return accepting(node.client_port)

    def leader(self, timeout: float = 30.0) -> RaftcacheNode:
        def find() -> RaftcacheNode | None:
            leaders = [n for n in self.nodes if n.alive and n.info()["raft_state"] == "leader"]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(find, timeout, 0.1, "a single raftcache leader")

    def followers(self) -> list[RaftcacheNode]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader]

    def kill(self, node: RaftcacheNode) -> None:
        if node.proc is not None:
            PROCESSES.kill(node.proc)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                PROCESSES.stop(node.proc, timeout=15)

    @staticmethod
    def version() -> str:
        try:
            from importlib.metadata import version

            return version("raftcache")
        except Exception:  # noqa: BLE001 - a version string is informational only
            return "unknown"


class RaftWatcher(threading.Thread):
    """Polls `INFO raft` on every node (one kept-open connection each) and records each change
    of (role, term, leader) or reachability, with the harness's current phase: the evidence of
    elections and stalls. A node that does not answer within `timeout` is 'unresponsive'."""

    def __init__(self, cluster: RaftcacheCluster, interval: float = 0.2, timeout: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.interval = interval
        self.timeout = timeout
        self.phase = "start"
        self.events: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        self._socks: dict[str, socket.socket] = {}
        self._t0 = time.monotonic()

    def _poll(self, node: RaftcacheNode) -> tuple[str, ...]:
        sock = self._socks.get(node.id)
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", node.client_port), timeout=self.timeout)
                self._socks[node.id] = sock
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$4\r\nraft\r\n")
            (reply,) = ReplyParser().read_replies(1, lambda: sock.recv(65536))
            if not isinstance(reply, bytes):  # an error reply: as good as down
                raise ValueError(f"INFO answered {reply!r}")
            info = parse_info(reply)
            return (info["raft_state"], info["raft_term"], info["raft_leader_id"])
        except TimeoutError:
            self._drop(node.id)
            return ("unresponsive",)
        except (OSError, ConnectionError, ValueError, KeyError, ProtocolError):
            self._drop(node.id)
            return ("down",)

    def _drop(self, node_id: str) -> None:
        sock = self._socks.pop(node_id, None)
        if sock is not None:
            sock.close()

    def run(self) -> None:
        last: dict[str, tuple[str, ...]] = {}
        while not self._stop_event.is_set():
            for node in self.cluster.nodes:
                state = self._poll(node)
                if last.get(node.id) != state:
                    last[node.id] = state
                    self.events.append({"t_s": round(time.monotonic() - self._t0, 2), "time": time.strftime("%H:%M:%S"),
                                        "phase": self.phase, "node": node.id, "state": "/".join(state)})
            self._stop_event.wait(self.interval)
        for node_id in list(self._socks):
            self._drop(node_id)

    def stop(self) -> list[dict[str, Any]]:
        self._stop_event.set()
        self.join(10)
        return self.events


# ----------------------------------------------------------------------------- redis
class RedisServer:
    """One redis-server without persistence: the upper bound for a RESP cache."""

    name = "redis"

    def __init__(self, root: Path) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.root), "--daemonize", "no", "--protected-mode", "yes"]
        self.proc = PROCESSES.spawn(cmd, self.root / "redis.log")
        wait_until(lambda: resp_call(self.port, "PING", timeout=1) == b"PONG", 20, what="redis-server PING")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc)

    @staticmethod
    def version() -> str:
        return command_version(["redis-server", "--version"], r"v=(\S+)")


# ------------------------------------------------------------------------------ etcd
class EtcdCluster:
    """A 3-member etcd (v3.4, Debian's etcd-server) cluster; clients use the v3 JSON gateway."""

    name = "etcd"

    def __init__(self, root: Path, size: int = 3) -> None:
        self.binary = require_binary("etcd", "etcd-server")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size)
        self.members = [(f"e{i + 1}", ports[2 * i], ports[2 * i + 1]) for i in range(size)]  # name, client, peer
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self) -> EtcdCluster:
        initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in self.members)
        for name, client, peer in self.members:
            cmd = [self.binary, "--name", name, "--data-dir", str(self.root / name),
                   "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
                   "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                   "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "bench",
                   "--logger", "zap", "--log-level", "warn"]
            self.procs.append(PROCESSES.spawn(cmd, self.root / f"{name}.log"))
        wait_until(self._all_see_leader, 60, 0.2, "an etcd leader")
        return self

    def _status(self, client_port: int) -> dict[str, Any]:
        return etcd_call(client_port, "/v3/maintenance/status", {}, timeout=2)

    def _all_see_leader(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {proc.returncode}; see {self.root}")
        return all(int(self._status(client).get("leader", 0)) != 0 for _, client, _ in self.members)

    def leader_port(self) -> int:
        for _, client, _ in self.members:
            status = self._status(client)
            if status["leader"] == status["header"]["member_id"]:
                return client
        raise RuntimeError("no etcd member reports itself as leader")

    def stop(self) -> None:
        for proc in self.procs:
            PROCESSES.stop(proc)

    @staticmethod
    def version() -> str:
        return command_version(["etcd", "--version"], r"etcd Version: (\S+)")


# ------------------------------------------------------------------------- pysyncobj
class PysyncobjCluster:
    """Three `pysyncobj_node.py` processes: raw pysyncobj replicating a dict, RESP front end."""

    name = "pysyncobj"

    def __init__(self, root: Path, size: int = 3) -> None:
        try:
            import pysyncobj  # noqa: F401
        except ImportError as exc:
            raise SkipTarget(f"pysyncobj is not importable by {sys.executable}") from exc
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size)
        self.nodes = [(f"p{i + 1}", ports[2 * i], ports[2 * i + 1]) for i in range(size)]  # name, raft, resp
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self) -> PysyncobjCluster:
        for name, raft, resp in self.nodes:
            peers = [f"127.0.0.1:{r}" for n, r, _ in self.nodes if n != name]
            cmd = [sys.executable, str(HERE / "pysyncobj_node.py"), "--raft", f"127.0.0.1:{raft}", "--port", str(resp)]
            for p in peers:
                cmd += ["--peer", p]
            self.procs.append(PROCESSES.spawn(cmd, self.root / f"{name}.log"))
        self.leader_port(timeout=60)
        return self

    def leader_port(self, timeout: float = 30.0) -> int:
        def find() -> int | None:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"pysyncobj node exited with {proc.returncode}; see {self.root}")
            leaders = [resp for _, _, resp in self.nodes if resp_call(resp, "ROLE", timeout=2) == b"leader"]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(find, timeout, 0.1, "a single pysyncobj leader")

    def stop(self) -> None:
        for proc in self.procs:
            PROCESSES.stop(proc)

    @staticmethod
    def version() -> str:
        try:
            from importlib.metadata import version

            return version("pysyncobj")
        except Exception:  # noqa: BLE001
            return "not installed"


# ------------------------------------------------------------------------------ stubs
class StubServer:
    """`loadgen.py stub`: answers every request at once (the load generator's ceiling)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.proc: subprocess.Popen[Any] | None = None
        self.port = 0

    def start(self) -> StubServer:
        self.proc = PROCESSES.spawn([sys.executable, str(HERE / "loadgen.py"), "stub", "--protocol", self.protocol],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        if not ready:
            raise RuntimeError("stub server did not print its port")
        self.port = int(self.proc.stdout.readline())
        return self

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc)


def json_dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))
