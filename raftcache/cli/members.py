"""`raftcache members list | add | remove | transfer-leader`: membership of a live cluster,
one change at a time, refused clearly when unsafe."""

from __future__ import annotations

import time

import click

from ..errors import RaftCacheError
from .common import Target, cluster_options, print_json, print_table


@click.group()
def members() -> None:
    """Inspect and change cluster membership (one change at a time)."""


def _members(target: Target) -> list[dict[str, object]]:
    rows = []
    leader = target.leader()
    for node_id, raft, client, is_leader in target.call(leader, "RAFTCACHE", "MEMBERS"):
        rows.append({"id": node_id.decode(), "raft": raft.decode(), "client": client.decode(), "leader": bool(is_leader)})
    for row in rows:
        if not row["client"]:
            row["role"] = "unknown (no client address)"
            continue
        try:
            info = target.info(str(row["client"]))
            row["role"] = info.get("raft_state", "unknown")
        except (OSError, RaftCacheError):
            row["role"] = "unreachable"
    return rows


@members.command(name="list")
@cluster_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(target: Target, as_json: bool) -> None:
    """List the members as the leader sees them."""
    rows = _members(target)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, [("id", "ID"), ("raft", "RAFT"), ("client", "CLIENT"), ("role", "ROLE")])


@members.command()
@cluster_options
@click.argument("node_id", metavar="ID")
@click.option("--raft", "raft_addr", required=True, metavar="HOST:PORT", help="the new node's peer (raft) address")
@click.option("--client", "client_addr", required=True, metavar="HOST:PORT", help="the new node's RESP address")
@click.option("--force", is_flag=True, help="add even though a member is unreachable (leaves less fault tolerance)")
def add(target: Target, node_id: str, raft_addr: str, client_addr: str, force: bool) -> None:
    """Add member ID. Start it with `raftcache serve` (its config lists every member) before
    or right after: it catches up from the leader, by snapshot if need be."""
    leader = target.leader()
    args = ["RAFTCACHE", "MEMBER", "ADD", node_id, raft_addr, client_addr] + (["FORCE"] if force else [])
    target.call(leader, *args, timeout=30)
    click.echo(f"added {node_id} (raft {raft_addr}, client {client_addr})")


@members.command()
@cluster_options
@click.argument("node_id", metavar="ID")
@click.option("--force", is_flag=True, help="remove even if the rest would have no reachable majority")
def remove(target: Target, node_id: str, force: bool) -> None:
    """Remove member ID (if it leads, leadership is handed to another member first)."""
    leader = target.leader()
    leader_id = target.info(leader).get("raft_node_id")
    if leader_id == node_id:
        new_leader = target.call(leader, "RAFTCACHE", "TRANSFER", timeout=30).decode()
        click.echo(f"{node_id} was the leader; leadership moved to {new_leader}")
        leader = _wait_new_leader(target, node_id)
    args = ["RAFTCACHE", "MEMBER", "REMOVE", node_id] + (["FORCE"] if force else [])
    target.call(leader, *args, timeout=30)
    click.echo(f"removed {node_id}; stop its process (it no longer takes part)")


def _wait_new_leader(target: Target, old: str) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            leader = target.leader()
            if target.info(leader).get("raft_node_id") != old:
                return leader
        except click.ClickException:
            pass
        time.sleep(0.1)
    raise click.ClickException("no new leader after the transfer")


@members.command(name="transfer-leader")
@cluster_options
@click.argument("node_id", metavar="[ID]", required=False)
def transfer_leader(target: Target, node_id: str | None) -> None:
    """Hand leadership to member ID (default: the most caught-up member)."""
    leader = target.leader()
    args = ["RAFTCACHE", "TRANSFER"] + ([node_id] if node_id else [])
    new_leader = target.call(leader, *args, timeout=30).decode()
    click.echo(f"leader is now {new_leader}")


COMMANDS = [members]
