"""`raftcache serve` (one node in the foreground) and `raftcache up` (every node of a config
file as child processes on this machine)."""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import click

from ..config import ClusterConfig, load_config
from ..errors import RaftCacheError
from ..node import run_node

_LEVELS = ["debug", "info", "warning", "error"]
_STOP_TIMEOUT_S = 15.0  # after SIGTERM, how long the nodes get before SIGKILL


@click.command()
@click.option("--config", "config_path", required=True, envvar="RAFTCACHE_CONFIG", help="cluster TOML file")
@click.option("--node", "node_id", required=True, help="id of the node to run (its [[nodes]] entry)")
@click.option("--log-level", type=click.Choice(_LEVELS), default="info", show_default=True)
def serve(config_path: str, node_id: str, log_level: str) -> None:
    """Run one node (Raft + RESP server) in the foreground; logs go to stderr.

    SIGTERM or SIGINT stops it cleanly. Exit status 3 means it stopped on a fatal storage
    error (disk full, corrupt snapshot); the log says which file.
    """
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {node_id} %(levelname)s %(name)s: %(message)s",
    )
    config = load_config(config_path)
    config.node(node_id)  # fail fast on an unknown id
    sys.exit(run_node(config, node_id))


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `raftcache up` dies, even by kill -9 (no orphans)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _StopRequest:
    """Set by SIGINT / SIGTERM. A plain flag polled in short sleeps, not a threading.Event: a
    signal handler runs on the main thread, and Event.set() would wait for the lock that
    thread may be holding inside Event.wait(), deadlocking the shutdown."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, *_: object) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.05, left))
        return self.requested


class _Echo:
    """`up`'s own stderr, written by one daemon thread so that nothing else ever blocks on it.

    When nobody reads that stderr (a pipe left unread, a stuck terminal), a blocking write
    would stall whoever makes it: a log pump (then the node it drains blocks on its own log
    and ignores SIGTERM) or the main thread (then Ctrl-C never stops the cluster). Here
    callers only queue; past a bounded backlog lines are dropped and counted, and a notice
    says how many once the stream moves again (the node logs keep every line).
    """

    def __init__(self, fd: int = 2, backlog: int = 1000) -> None:
        self._fd = fd
        self._lines: queue.Queue[bytes] = queue.Queue(backlog)
        self._lock = threading.Lock()
        self._dropped = 0
        self._broken = False
        self._thread = threading.Thread(target=self._write_all, name="echo", daemon=True)
        self._thread.start()

    def __call__(self, text: str) -> None:
        try:
            self._lines.put_nowait(text.encode("utf-8", "replace") + b"\n")
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def drain(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until every queued line is written; True if they were."""
        deadline = time.monotonic() + timeout
        while self._lines.unfinished_tasks and not self._broken and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._lines.unfinished_tasks

    def _write_all(self) -> None:
        while True:
            data = self._lines.get()
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                data = f"({dropped} log lines not shown: stderr was not being read; the node logs have them)\n".encode() + data
            try:
                if not self._broken:
                    while data:
                        data = data[os.write(self._fd, data):]
            except OSError:  # stderr closed (EPIPE): nobody will read anything; keep draining
                self._broken = True
            finally:
                self._lines.task_done()


class _Child:
    def __init__(self, node_id: str, config_path: str, log_path: Path, echo: _Echo, verbose: bool) -> None:
        self.node_id = node_id
        self.log_path = log_path
        self.reported = False
        cmd = [sys.executable, "-m", "raftcache", "serve", "--config", config_path, "--node", node_id]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._pump = threading.Thread(target=self._copy_log, args=(self.proc.stderr, echo, verbose), daemon=True)
        self._pump.start()

    def _copy_log(self, stream: IO[bytes], echo: _Echo, verbose: bool) -> None:
        # Always drains the node's stderr: echo() never blocks, so the node never stalls on its log.
        with open(self.log_path, "ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                if verbose or b" WARNING " in line or b" ERROR " in line or b" CRITICAL " in line:
                    echo(line.decode("utf-8", "replace").rstrip())

    def finish(self, deadline: float) -> None:
        """Wait for the (already signalled) node until `deadline`, then kill it."""
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._pump.join(2)


def _wait_ready(config: ClusterConfig, children: list[_Child], timeout: float, stop: _StopRequest) -> str | None:
    """Wait until every node answers and agrees on a leader; return the leader's id (None if
    asked to stop first)."""
    from ..client import Client

    from .common import TlsOptions

    deadline = time.monotonic() + timeout
    password = config.server.requirepass or None
    tls = TlsOptions().context(config)  # the config's own CA and client certificate, when TLS is on
    last_problem = "starting"
    while time.monotonic() < deadline:
        if stop.requested:
            return None
        for child in children:
            if child.proc.poll() is not None:
                tail = child.log_path.read_text(errors="replace").splitlines()[-15:]
                raise click.ClickException(
                    f"node {child.node_id} exited with status {child.proc.returncode}:\n  " + "\n  ".join(tail)
                )
        leaders = set()
        try:
            for node in config.nodes:
                with Client(node.client, password=password, ssl_context=tls) as client:
                    status = client.status(node.client)
                leaders.add(status.leader)
            if len(leaders) == 1 and None not in leaders:
                return leaders.pop()
            last_problem = f"no agreed leader yet ({sorted(map(str, leaders))})"
        except (OSError, RaftCacheError) as exc:
            last_problem = str(exc)
        stop.wait(0.2)
    raise click.ClickException(f"cluster not ready after {timeout:.0f}s: {last_problem}")


@click.command()
@click.option("--config", "config_path", default="cluster.example.toml", show_default=True, envvar="RAFTCACHE_CONFIG",
              help="cluster TOML file")
@click.option("--logs", "log_dir", default=None, help="directory for node logs [default: logs/ next to the config]")
@click.option("-v", "--verbose", is_flag=True, help="echo every node log line (default: warnings and errors)")
@click.option("--ready-timeout", default=60.0, show_default=True, help="seconds to wait for a leader")
def up(config_path: str, log_dir: str | None, verbose: bool, ready_timeout: float) -> None:
    """Run every node of the config file on this machine until Ctrl-C.

    Prints the endpoints and the leader once the cluster is ready; Ctrl-C (or SIGTERM) stops
    all nodes cleanly, and they also stop if this process is killed.
    """
    config = load_config(config_path)
    missing = [n.id for n in config.nodes if not n.client]
    if missing:
        raise click.ClickException(f"{config_path}: nodes {', '.join(missing)} have no client address")
    logs = Path(log_dir) if log_dir else Path(config_path).resolve().parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[_Child] = []
    stop = _StopRequest()
    # Ctrl-C only sets the flag, like SIGTERM: a KeyboardInterrupt raised at an arbitrary point
    # (inside Popen.poll, say, between taking and releasing its waitpid lock) could leave a
    # half-done step behind that stalls the shutdown below.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    echo = _Echo()
    try:
        for node in config.nodes:
            children.append(_Child(node.id, os.path.abspath(config_path), logs / f"{node.id}.log", echo, verbose))
        leader = _wait_ready(config, children, ready_timeout, stop)
        if leader is not None:
            click.echo(f"raftcache cluster up ({len(children)} nodes, config {config_path}, logs in {logs}/)")
            click.echo(f"  {'node':6} {'client (RESP)':22} {'raft':22} {'data':s}")
            for node in config.nodes:
                mark = "  <- leader" if node.id == leader else ""
                click.echo(f"  {node.id:6} {node.client:22} {node.raft:22} {node.data_dir or 'memory only'}{mark}")
            first = config.nodes[0].client
            tls_flags = ""
            if config.server.tls_cert_file:
                tls_flags = "--tls " + (f"--cacert {config.server.tls_ca_cert_file} " if config.server.tls_ca_cert_file else "")
            click.echo(f"try: redis-cli {tls_flags}-p {first.rsplit(':', 1)[1]} SET greeting hello   (any node works)")
            click.echo("Ctrl-C to stop.")
        while not stop.requested:
            for child in children:
                if child.proc.poll() is not None and not child.reported:
                    child.reported = True
                    echo(f"node {child.node_id} exited with status {child.proc.returncode}; see {child.log_path}")
            stop.wait(0.5)
    finally:
        echo("stopping...")
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S  # one deadline for all: they stop in parallel
        for child in children:
            child.finish(deadline)
        echo("all nodes stopped.")
        echo.drain(timeout=2)


COMMANDS = [serve, up]
