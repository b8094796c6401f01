"""`raftcache compact`: force log compaction (a snapshot) on every node."""

from __future__ import annotations

import time

import click

from ..errors import RaftCacheError
from .common import Target, cluster_options, print_table


@click.command()
@cluster_options
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds to wait for the snapshots")
def compact(target: Target, timeout: float) -> None:
    """Snapshot every node now and truncate its log; waits until each one has finished."""
    before: dict[str, int] = {}
    rows = []
    for endpoint, info in target.info_all().items():
        if isinstance(info, Exception):
            rows.append({"node": target.names.get(endpoint, endpoint), "result": f"unreachable: {info}"})
            continue
        before[endpoint] = int(info.get("raft_snapshots_taken", 0))
        target.call(endpoint, "RAFTCACHE", "COMPACT")
    deadline = time.monotonic() + timeout
    pending = dict(before)
    while pending and time.monotonic() < deadline:
        for endpoint in list(pending):
            try:
                info = target.info(endpoint)
            except (OSError, RaftCacheError):
                continue
            if int(info.get("raft_snapshots_taken", 0)) > pending[endpoint]:
                rows.append({
                    "node": info.get("raft_node_id", endpoint),
                    "result": f"snapshot at log index {info.get('raft_last_snapshot_index')}, log now {info.get('raft_log_len')} entries",
                })
                del pending[endpoint]
        time.sleep(0.1)
    for endpoint in pending:
        rows.append({"node": target.names.get(endpoint, endpoint), "result": "no snapshot before the timeout (nothing new to compact?)"})
    print_table(rows, [("node", "NODE"), ("result", "RESULT")])
    if pending or len(before) < len(target.endpoints):  # a node unreachable or not done
        raise SystemExit(1)


COMMANDS = [compact]
