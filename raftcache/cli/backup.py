"""`raftcache backup FILE` and `raftcache restore FILE`: consistent point-in-time backups
(versioned msgpack snapshot files with a checksum), and seeding a new cluster from one."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ..config import load_config
from ..consensus import seed_snapshot_meta
from ..errors import RaftCacheError
from ..replica import raft_snapshot_header
from ..snapshot import SnapshotReader, write_snapshot
from .common import Target, cluster_options, human_bytes

_CHUNK = 1 << 20


@click.command()
@cluster_options
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
def backup(target: Target, file: str) -> None:
    """Write a consistent point-in-time backup of the data to FILE.

    The leader takes it at a linearizable point (a forked writer: no stall), then it is
    streamed here and its checksum verified before FILE is put in place.
    """
    leader = target.leader()
    started = time.monotonic()
    backup_id, size, keys, index = target.call(leader, "RAFTCACHE", "BACKUP", "START", timeout=600)
    backup_id = backup_id.decode()
    partial = f"{file}.partial"
    try:
        with open(partial, "wb") as out, click.progressbar(length=size, label=f"backup {keys} keys", file=sys.stderr) as bar:
            offset = 0
            while offset < size:
                chunk = target.call(leader, "RAFTCACHE", "BACKUP", "READ", backup_id, offset, _CHUNK, timeout=60)
                if not chunk:
                    raise click.ClickException("the node's backup ended early")
                out.write(chunk)
                offset += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        reader = SnapshotReader(partial)  # verifies magic, format and checksum
        if reader.header.get("kind") != "backup":
            raise click.ClickException(f"{partial}: unexpected file kind {reader.header.get('kind')!r}")
        os.replace(partial, file)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
        try:
            target.call(leader, "RAFTCACHE", "BACKUP", "END", backup_id)
        except (OSError, RaftCacheError):
            pass
    click.echo(
        f"backup of {keys} keys at log index {index} written to {file} "
        f"({human_bytes(size)}, {time.monotonic() - started:.1f}s)"
    )


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_path", required=True, envvar="RAFTCACHE_CONFIG", help="the NEW cluster's TOML file")
@click.option("--node", "node_ids", multiple=True, metavar="ID", help="node(s) to seed [default: every node of the file]")
@click.option("--force", is_flag=True, help="replace a node's existing data")
def restore(file: str, config_path: str, node_ids: tuple[str, ...], force: bool) -> None:
    """Seed a NEW cluster's nodes from backup FILE (run before starting them).

    Every node of the new cluster must be seeded (that is the default), so they all start
    from the same state; then start them with `raftcache up` or `raftcache serve`.
    """
    reader = SnapshotReader(file)
    if reader.header.get("kind") != "backup":
        raise click.ClickException(f"{file} is not a raftcache backup (kind {reader.header.get('kind')!r})")
    config = load_config(config_path)
    nodes = [config.node(n) for n in node_ids] if node_ids else list(config.nodes)
    members = tuple(n.raft for n in config.nodes)
    keys = reader.header.get("keys", 0)
    for node in nodes:
        if node.data_dir is None:
            raise click.ClickException(f"node {node.id} is memory-only (no data_dir): nothing to restore into")
        data_dir = Path(node.data_dir)
        existing = [p for p in ("raft.log", "raft.meta", "snapshot.rcs") if (data_dir / p).exists()]
        if existing and not force:
            raise click.ClickException(f"node {node.id}: {data_dir} already holds data ({', '.join(existing)}); use --force to replace it")
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in existing:
            (data_dir / name).unlink()
        header = raft_snapshot_header(seed_snapshot_meta(members), keys=keys, created_ms=reader.header.get("created_ms", 0))
        with click.progressbar(length=max(1, keys), label=f"restore {node.id}", file=sys.stderr) as bar:
            def progress(records: int, _bar=bar) -> None:
                _bar.update(1)  # one record is up to 8192 keys; the bar shows progress, not keys

            write_snapshot(str(data_dir / "snapshot.rcs"), header, reader.sections(), progress=progress)
        click.echo(f"node {node.id}: {keys} keys restored into {data_dir}")
    click.echo("start the nodes (raftcache up / raftcache serve) to bring the new cluster up")


COMMANDS = [backup, restore]
