"""status.py: the INFO raft fields of a NodeStatus, out and back."""

from __future__ import annotations

from dataclasses import dataclass, fields

from raftcache.client.core import parse_info
from raftcache.status import RAFT_FIELDS, NodeStatus, from_info, to_info


@dataclass(frozen=True)
class Peer:
    name: str
    client: str


REGISTRY = {
    "10.0.0.1:7101": Peer("n1", "10.0.0.1:7001"),
    "10.0.0.2:7102": Peer("n2", "10.0.0.2:7002"),
    "10.0.0.3:7103": Peer("n3", "10.0.0.3:7003"),
}

LOCAL = NodeStatus(
    id="n2",
    address="10.0.0.2:7102",
    role="follower",
    leader="10.0.0.1:7101",
    term=7,
    commit_index=120,
    applied_index=119,
    log_len=20,
    last_snapshot_index=100,
    keys=42,
    members=("10.0.0.1:7101", "10.0.0.2:7102", "10.0.0.3:7103"),
    revision=99,
    replicated_time_ms=1_700_000_000_000,
    snapshots_taken=3,
    last_snapshot_seconds=0.25,
    inflight_entries=1,
    queued_requests=2,
    connected_peers=("10.0.0.3:7103", "10.0.0.1:7101"),
)


def _as_info_text(status: NodeStatus) -> str:
    """What a server sends: the raft section plus the keyspace line."""
    lines = ["# Raft", *(f"{k}:{v}" for k, v in to_info(status, REGISTRY.__getitem__).items())]
    return "\r\n".join([*lines, "", "# Keyspace", f"db0:keys={status.keys},expires=0,avg_ttl=0", ""])


def test_every_status_field_travels_in_info() -> None:
    carried = {f.attr for f in RAFT_FIELDS if f.attr} | {"keys"}  # keys: the keyspace section
    assert carried == {f.name for f in fields(NodeStatus)}
    keys = [f.key for f in RAFT_FIELDS]
    assert len(keys) == len(set(keys)) and all(k.startswith("raft_") for k in keys)


def test_the_server_shows_members_by_id_and_the_leaders_client_address() -> None:
    info = to_info(LOCAL, REGISTRY.__getitem__)
    assert info["raft_leader_id"] == "n1"
    assert info["raft_leader_addr"] == "10.0.0.1:7101"
    assert info["raft_leader_client"] == "10.0.0.1:7001"
    assert info["raft_members"] == "n1,n2,n3"
    assert info["raft_connected_peers"] == "n1,n3"
    assert info["raft_term"] == 7 and info["raft_last_snapshot_seconds"] == "0.250"


def test_read_back_from_info_text() -> None:
    status = from_info(parse_info(_as_info_text(LOCAL)))
    expected = {
        **{f.name: getattr(LOCAL, f.name) for f in fields(NodeStatus)},
        "leader": "n1",  # as the server names it
        "members": ("n1", "n2", "n3"),
        "connected_peers": ("n1", "n3"),
        "leader_client": "10.0.0.1:7001",
    }
    assert status == NodeStatus(**expected)


def test_a_leader_without_registry_and_a_node_without_a_leader() -> None:
    alone = NodeStatus(**{**{f.name: getattr(LOCAL, f.name) for f in fields(NodeStatus)}, "leader": None})
    info = to_info(alone)  # default naming: Raft addresses, no client addresses
    assert info["raft_leader_id"] == info["raft_leader_client"] == info["raft_leader_addr"] == ""
    assert info["raft_members"] == "10.0.0.1:7101,10.0.0.2:7102,10.0.0.3:7103"
    back = from_info({k: str(v) for k, v in info.items()})
    assert back.leader is None and back.leader_client is None and back.keys == 0


def test_missing_or_garbled_fields_take_defaults() -> None:
    status = from_info({"raft_term": "x", "raft_last_snapshot_seconds": "", "db0": "keys=zz"})
    assert status.role == "unknown" and status.term == 0 and status.last_snapshot_seconds is None
    assert status.keys == 0 and status.members == () and status.id == ""
