"""Shared test helpers: deadlines instead of sleeps, free ports per test worker, real processes."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


# A lone node elects itself once its first election timeout (1-2 s by default) runs out, and
# with no peer there is nobody to disagree: for a single-node test cluster that timeout only
# delays the start. So single-node nodes run with a short one (ServerCluster of size 1 and
# the embedded `Cache(..., raft=LONE_RAFT)`); clusters of three keep the defaults, which guard
# against spurious elections on a loaded machine.
LONE_RAFT_SECTION = {"election_timeout_min_ms": 200, "election_timeout_max_ms": 400}
LONE_RAFT = {"election_timeout_s": (0.2, 0.4)}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last failure at the deadline
            last_error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


class Workers:
    """Threads a test starts, whose exceptions fail the test: `join()` (or leaving the `with`
    block) waits for them all and re-raises, in the test's thread, the first exception any of
    them raised. (An exception in a bare thread only prints a warning and is lost.)"""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def start(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # handed to the test thread by join()
                with self._lock:
                    self._errors.append(exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    @property
    def errors(self) -> list[BaseException]:
        with self._lock:
            return list(self._errors)

    def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        errors = self.errors
        if errors:
            raise errors[0]
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise AssertionError(f"threads still running after {timeout}s: {stuck}")

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.join()


class OutputReader:
    """Reads a process's text stream on a thread as it comes, so the process never blocks on
    a full pipe while the test waits for something else; `text` is what arrived so far."""

    def __init__(self, stream: Any) -> None:
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._lock:
                self._chunks.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, needle: str, timeout: float, what: str | None = None) -> str:
        return wait_until(lambda: needle in self.text and self.text, timeout, 0.02, what or repr(needle))

    def close(self, timeout: float = 10.0) -> str:
        """Wait for the end of the stream (the process exited); return everything."""
        self._thread.join(timeout)
        return self.text


def no_retry() -> Any:
    """A redis-py retry policy of no retries, for a client that is expected to be refused:
    redis-py >= 6 retries every ConnectionError (AuthenticationError and TLS handshake failures
    included) ten times with backoff, so one expected refusal would otherwise cost seconds."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


# Test ports come from a span below Linux's ephemeral range (32768-60999 by default): a port
# that `bind(port 0)` hands out is ephemeral, so between the test releasing it and the node
# binding it, any outgoing connection on the machine (a node dialling a peer, a client) could
# take it as its source port. Each pytest-xdist worker owns its own slice of the span, so two
# workers never offer each other's ports, and a run starts at an offset from its PID, so two
# concurrent runs rarely overlap; every port is still checked free by binding it.
PORT_SPAN = (12000, 32000)
_port_cursor = itertools.count()


def port_slice(worker: str | None, workers: int) -> range:
    """The ports the xdist worker named `worker` (``gw0``, ``gw1``, ...; None outside xdist) may offer."""
    low, high = PORT_SPAN
    index = int(worker[2:]) if worker else 0
    width = (high - low) // max(workers, 1)
    return range(low + index * width, low + (index + 1) * width)


def worker_ports() -> range:
    """This process's slice (pytest-xdist names its workers in the environment)."""
    return port_slice(os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports of this worker's slice that nothing holds now (not even a closed socket)."""
    ports = worker_ports()
    start = os.getpid() * 7919
    chosen: list[int] = []
    for _ in range(len(ports)):
        port = ports[(start + next(_port_cursor)) % len(ports)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))  # no SO_REUSEADDR: a port in TIME_WAIT is not offered either
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"no {count} free ports in {ports}")


class RemoteError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


class _Process:
    """Signals for a node process: kill -9, SIGSTOP, SIGCONT."""

    proc: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class EmbeddedNode(_Process):
    """An OS process embedding one Cache replica (tests/cluster/embedded_node.py)."""

    def __init__(self, address: str, peers: list[str], log_path: Path, data_dir: Path | None = None, **options: Any) -> None:
        self.address = address
        self.peers = peers
        self.data_dir = data_dir
        self.log_path = log_path
        self.options = options
        self.proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._started: Future[Any] = Future()
        self._lock = threading.Lock()

    def start(self) -> EmbeddedNode:
        self.spawn()
        return self.wait_started()

    def spawn(self) -> None:
        """Start the process without waiting for it (`wait_started` waits)."""
        cmd = [sys.executable, "-m", "tests.cluster.embedded_node", "--address", self.address]
        for peer in self.peers:
            cmd += ["--peer", peer]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        for key, value in self.options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
        )
        log.close()
        started: Future[Any] = Future()
        self._pending = {0: started}
        self._started = started
        threading.Thread(target=self._read_replies, args=(self.proc,), daemon=True).start()

    def wait_started(self) -> EmbeddedNode:
        self._started.result(timeout=30)
        return self

    def _read_replies(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            with self._lock:
                future = self._pending.pop(message.get("id"), None)
            if future is None:
                continue
            if "error" in message:
                future.set_exception(RemoteError(message["error"], message["message"]))
            else:
                future.set_result(_decode(message["ok"]))
        with self._lock:  # the process is gone: nobody will answer these
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(RemoteError("ProcessGone", f"node {self.address} exited"))

    def call_async(self, op: str, *args: Any, **kwargs: Any) -> Future[Any]:
        assert self.proc is not None and self.proc.stdin is not None
        rid = next(self._ids)
        future: Future[Any] = Future()
        with self._lock:
            self._pending[rid] = future
        line = json.dumps({"id": rid, "op": op, "args": _encode(list(args)), "kwargs": {k: _encode(v) for k, v in kwargs.items()}})
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            with self._lock:
                self._pending.pop(rid, None)
            future.set_exception(RemoteError("ProcessGone", f"node {self.address} exited"))
        return future

    def call(self, op: str, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        return self.call_async(op, *args, **kwargs).result(timeout=timeout)

    def close(self) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        self.resume()
        try:
            self.call("close", timeout=10)
            self.proc.wait(10)
        except Exception:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class EmbeddedCluster:
    """N embedded replicas on 127.0.0.1 with OS-assigned ports, data under `root`."""

    def __init__(self, root: Path, size: int = 3, *, persistent: bool = True, **options: Any) -> None:
        ports = free_ports(size)
        self.addresses = [f"127.0.0.1:{p}" for p in ports]
        self.nodes: list[EmbeddedNode] = []
        for i, address in enumerate(self.addresses):
            peers = [a for a in self.addresses if a != address]
            data_dir = root / f"n{i}" if persistent else None
            self.nodes.append(EmbeddedNode(address, peers, root / f"n{i}.log", data_dir, **options))

    def start(self) -> EmbeddedCluster:
        for node in self.nodes:  # all at once: their start-ups overlap (each costs ~a second)
            node.spawn()
        for node in self.nodes:
            node.wait_started()
        for node in self.nodes:
            node.call("wait_ready", 20, timeout=30)
        return self

    def status(self, node: EmbeddedNode) -> dict[str, Any]:
        return node.call("status", timeout=10)

    def leader(self, timeout: float = 20.0) -> EmbeddedNode:
        def find() -> EmbeddedNode | None:
            leaders = [n for n in self.nodes if n.alive and self.status(n)["role"] == "leader"]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(find, timeout, 0.05, "a single leader")

    def followers(self) -> list[EmbeddedNode]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader]

    def converged(self, nodes: list[EmbeddedNode] | None = None, timeout: float = 20.0) -> tuple[int, str]:
        """Wait until the nodes report the same (applied index, digest); return it."""
        nodes = nodes or [n for n in self.nodes if n.alive]

        def same() -> tuple[int, str] | None:
            digests = {tuple(n.call("digest", timeout=10)) for n in nodes}
            return digests.pop() if len(digests) == 1 else None

        return wait_until(same, timeout, 0.05, "replicas to converge")

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.close()
            finally:
                node.kill()


# ------------------------------------------------------------------ raftcache serve clusters
def write_cluster_config(root: Path, size: int = 3, *, persistent: bool = True, sections: dict[str, Any] | None = None,
                         hosts: list[str] | None = None) -> Path:
    """A cluster TOML under `root`; returns its path. On 127.0.0.1 with OS-assigned ports, or,
    with `hosts` (one address per node, e.g. network namespaces), fixed ports on those hosts."""
    ports = free_ports(2 * size) if hosts is None else [7100, 7000] * size
    lines = []
    sections = {"cluster": {"secret": "test-secret"}, **({"raft": LONE_RAFT_SECTION} if size == 1 else {}), **(sections or {})}
    for name, values in sections.items():
        for table in values if isinstance(values, list) else [values]:  # a list: [[name]] tables
            lines.append(f"[[{name}]]" if isinstance(values, list) else f"[{name}]")
            for key, value in table.items():
                lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
    for i in range(size):
        host = "127.0.0.1" if hosts is None else hosts[i]
        lines += ["[[nodes]]", f'id = "n{i + 1}"', f'raft = "{host}:{ports[2 * i]}"', f'client = "{host}:{ports[2 * i + 1]}"']
        if persistent:
            lines.append(f'data_dir = "data/n{i + 1}"')
        lines.append("")
    path = root / "cluster.toml"
    path.write_text("\n".join(lines))
    return path


class ServerNode(_Process):
    """One `raftcache serve` process."""

    def __init__(self, config: Path, node_id: str, client: str, raft: str, data_dir: Path | None, password: str = "",
                 exec_prefix: list[str] | None = None) -> None:
        self.config = config
        self.password = password or None
        self.exec_prefix = exec_prefix or []  # e.g. ["ip", "netns", "exec", NS]
        self.host = client.rsplit(":", 1)[0]
        self.id = node_id
        self.client_address = client
        self.raft = raft
        self.port = int(client.rsplit(":", 1)[1])
        self.data_dir = data_dir
        self.log_path = config.parent / f"{node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerNode:
        self.spawn()
        return self.wait_started()

    def spawn(self) -> None:
        """Start the process without waiting for it (`wait_started` waits)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.exec_prefix, sys.executable, "-m", "raftcache", "serve", "--config", str(self.config), "--node", self.id],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()

    def wait_started(self) -> ServerNode:
        wait_until(self._accepting, 30, 0.05, f"{self.id} to accept connections")
        return self

    def _accepting(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.id} exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def redis(self, **kwargs: Any) -> Any:
        import redis

        kwargs.setdefault("socket_timeout", 30)
        kwargs.setdefault("password", self.password)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def info(self, section: str = "raft") -> dict[str, Any]:
        with self.redis(socket_timeout=5) as r:
            return r.info(section)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def rss_bytes(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServerCluster:
    """A cluster of `raftcache serve` processes described by a config file under `root`."""

    def __init__(self, root: Path, size: int = 3, *, persistent: bool = True, sections: dict[str, dict[str, Any]] | None = None,
                 hosts: list[str] | None = None, exec_prefixes: list[list[str]] | None = None) -> None:
        from raftcache.config import load_config

        self.config_path = write_cluster_config(root, size, persistent=persistent, sections=sections, hosts=hosts)
        self.config = load_config(str(self.config_path))
        self.nodes = [
            ServerNode(self.config_path, n.id, n.client, n.raft, Path(n.data_dir) if n.data_dir else None,
                       self.config.server.requirepass, exec_prefixes[i] if exec_prefixes else None)
            for i, n in enumerate(self.config.nodes)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [n.client_address for n in self.nodes]

    def start(self) -> ServerCluster:
        for node in self.nodes:  # all at once: their start-ups overlap (each costs ~a second)
            node.spawn()
        for node in self.nodes:
            node.wait_started()
        leader = self.leader()
        # fully formed: every node follows that leader (a late starter may not have heard of it yet)
        wait_until(lambda: all(n.info()["raft_leader_id"] == leader.id for n in self.nodes), 30, 0.05, "every node to follow the leader")
        return self

    def leader(self, timeout: float = 30.0) -> ServerNode:
        def find() -> ServerNode | None:
            leaders = [n for n in self.nodes if n.alive and n.info()["raft_state"] == "leader"]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(find, timeout, 0.05, "a single leader")

    def node(self, node_id: str) -> ServerNode:
        return next(n for n in self.nodes if n.id == node_id)

    def digests(self, nodes: list[ServerNode] | None = None) -> set[tuple[int, bytes]]:
        result = set()
        for node in nodes or [n for n in self.nodes if n.alive]:
            with node.redis(socket_timeout=5) as r:
                index, digest = r.execute_command("RAFTCACHE", "DIGEST")
            result.add((int(index), digest))
        return result

    def converged(self, timeout: float = 30.0) -> tuple[int, bytes]:
        def same() -> tuple[int, bytes] | None:
            digests = self.digests()
            return digests.pop() if len(digests) == 1 else None

        return wait_until(same, timeout, 0.05, "replicas to converge")

    def close(self) -> None:
        # SIGTERM to every node first, then wait: the nodes stop side by side, not one by one
        for node in self.nodes:
            if node.alive:
                assert node.proc is not None  # (alive says so)
                node.proc.send_signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.kill()
