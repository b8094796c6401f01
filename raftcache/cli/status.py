"""`raftcache status`: one row per node, like `etcdctl endpoint status -w table`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from ..client.core import describe_error
from ..status import from_info
from .common import Target, cluster_options, human_bytes, human_seconds, print_json, print_table

COLUMNS = [
    ("id", "ID"),
    ("client", "CLIENT"),
    ("role", "ROLE"),
    ("leader", "LEADER"),
    ("term", "TERM"),
    ("commit_index", "COMMIT"),
    ("applied_index", "APPLIED"),
    ("log_len", "LOG"),
    ("last_snapshot_index", "SNAPSHOT"),
    ("keys", "KEYS"),
    ("memory_h", "USED/MAXMEMORY"),
    ("rss_h", "RSS"),
    ("clients", "CLIENTS"),
    ("uptime_h", "UPTIME"),
    ("lag", "LAG"),
]


def _int(info: dict[str, str], key: str) -> int | None:
    try:
        return int(info[key])
    except (KeyError, ValueError):
        return None


# Row fields read from the node's status (INFO raft, through status.from_info).
_STATUS_COLUMNS = ("role", "leader", "term", "commit_index", "applied_index", "log_len", "last_snapshot_index", "keys")


def node_rows(target: Target) -> list[dict[str, Any]]:
    """A status row per node; unreachable nodes keep their place with role 'unreachable'."""
    rows = []
    for endpoint, info in target.info_all().items():
        if isinstance(info, Exception):
            rows.append({"id": target.names.get(endpoint, ""), "client": endpoint, "role": "unreachable", "error": describe_error(info)})
            continue
        status = from_info(info)
        rows.append(
            {
                "id": status.id or target.names.get(endpoint, ""),
                "client": endpoint,
                **{name: getattr(status, name) for name in _STATUS_COLUMNS},
                "memory": _int(info, "used_memory"),
                "maxmemory": _int(info, "maxmemory"),
                "rss": _int(info, "used_memory_rss"),
                "clients": _int(info, "connected_clients"),
                "uptime": _int(info, "uptime_in_seconds"),
            }
        )
    leaders = [r for r in rows if r["role"] == "leader"]
    leader_commit = max((r["commit_index"] for r in leaders), default=None)
    for row in rows:
        if row["role"] != "unreachable" and leader_commit is not None:
            row["lag"] = max(0, leader_commit - (row["applied_index"] or 0))
        else:
            row.setdefault("lag", None)
        used, limit = human_bytes(row.get("memory")), row.get("maxmemory")
        row["memory_h"] = None if used is None else used + "/" + (human_bytes(limit) if limit else "-")
        row["rss_h"] = human_bytes(row.get("rss"))
        row["uptime_h"] = human_seconds(row.get("uptime"))
    return rows


def healthy(rows: list[dict[str, Any]]) -> tuple[bool, str]:
    """(whether the cluster is healthy, the one-line verdict; an unreachable node with its reason)."""
    unreachable = "; ".join(f"{r['id'] or r['client']} ({r['error']})" for r in rows if r["role"] == "unreachable")
    leaders = {r["id"] for r in rows if r["role"] == "leader"}
    if not leaders:
        return False, "no leader" + (f"; unreachable: {unreachable}" if unreachable else "")
    if len(leaders) > 1:
        return False, f"several nodes claim leadership: {', '.join(sorted(leaders))}"
    if unreachable:
        return False, f"unreachable: {unreachable}"
    return True, f"healthy: leader {leaders.pop()}"


@click.command()
@cluster_options
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of objects instead of a table")
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
def status(target: Target, as_json: bool, watch: float | None) -> None:
    """Status of every node: role, leader, term, indexes, keys, memory, lag.

    Exits non-zero when there is no leader or a node is unreachable.
    """
    while True:
        rows = node_rows(target)
        ok, verdict = healthy(rows)
        if watch:
            click.clear()
            click.echo(f"{datetime.now():%H:%M:%S}  {verdict}  (every {watch:g}s, Ctrl-C to stop)")
        if as_json:
            print_json([{k: v for k, v in row.items() if not k.endswith("_h")} for row in rows])
        else:
            print_table(rows, COLUMNS)
            if not watch:
                click.echo(verdict, err=not ok)
        if not watch:
            break
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            break
    raise SystemExit(0 if ok else 1)


COMMANDS = [status]
