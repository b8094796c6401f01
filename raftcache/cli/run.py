"""`raftcache serve` (one node in the foreground) and `raftcache up` (every node of a config
file as child processes on this machine)."""

from __future__ import annotations

import ctypes
import logging
import os
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


class _Child:
    def __init__(self, node_id: str, config_path: str, log_path: Path, echo: bool) -> None:
        self.node_id = node_id
        self.log_path = log_path
        cmd = [sys.executable, "-m", "raftcache", "serve", "--config", config_path, "--node", node_id]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._pump = threading.Thread(target=self._copy_log, args=(self.proc.stderr, echo), daemon=True)
        self._pump.start()

    def _copy_log(self, stream: IO[bytes], echo: bool) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                if echo or b" WARNING " in line or b" ERROR " in line or b" CRITICAL " in line:
                    click.echo(line.decode("utf-8", "replace").rstrip(), err=True)

    def stop(self, timeout: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._pump.join(2)


def _wait_ready(config: ClusterConfig, children: list[_Child], timeout: float) -> str:
    """Wait until every node answers and agrees on a leader; return the leader's id."""
    from ..client import Client

    deadline = time.monotonic() + timeout
    password = config.server.requirepass or None
    last_problem = "starting"
    while time.monotonic() < deadline:
        for child in children:
            if child.proc.poll() is not None:
                tail = child.log_path.read_text(errors="replace").splitlines()[-15:]
                raise click.ClickException(
                    f"node {child.node_id} exited with status {child.proc.returncode}:\n  " + "\n  ".join(tail)
                )
        leaders = set()
        try:
            for node in config.nodes:
                with Client(node.client, password=password) as client:
                    status = client.status(node.client)
                leaders.add(status.leader)
            if len(leaders) == 1 and None not in leaders:
                return leaders.pop()
            last_problem = f"no agreed leader yet ({sorted(map(str, leaders))})"
        except (OSError, RaftCacheError) as exc:
            last_problem = str(exc)
        time.sleep(0.2)
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
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        for node in config.nodes:
            children.append(_Child(node.id, os.path.abspath(config_path), logs / f"{node.id}.log", verbose))
        leader = _wait_ready(config, children, ready_timeout)
        click.echo(f"raftcache cluster up ({len(children)} nodes, config {config_path}, logs in {logs}/)")
        click.echo(f"  {'node':6} {'client (RESP)':22} {'raft':22} {'data':s}")
        for node in config.nodes:
            mark = "  <- leader" if node.id == leader else ""
            click.echo(f"  {node.id:6} {node.client:22} {node.raft:22} {node.data_dir or 'memory only'}{mark}")
        first = config.nodes[0].client
        click.echo(f"try: redis-cli -p {first.rsplit(':', 1)[1]} SET greeting hello   (any node works)")
        click.echo("Ctrl-C to stop.")
        while not stopping.is_set():
            for child in children:
                if child.proc.poll() is not None and not getattr(child, "reported", False):
                    child.reported = True  # type: ignore[attr-defined]
                    click.echo(f"node {child.node_id} exited with status {child.proc.returncode}; see {child.log_path}", err=True)
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping...", err=True)
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in children:
            child.stop(timeout=15)
        click.echo("all nodes stopped.", err=True)


COMMANDS = [serve, up]
