"""A node's status, and its INFO ``raft`` fields, defined once.

``NodeStatus`` is what ``Cache.status()`` returns for the local replica and what
``Client.status()`` reads back from a server's INFO. ``RAFT_FIELDS`` is the one table of
INFO ``raft`` keys: for each, how the server shows it (``to_info``) and which ``NodeStatus``
attribute it fills when read back (``from_info``). The server's INFO, the client's
``status()``, its leader discovery and ``raftcache status`` all go through this table.

Naming: a local status names other nodes by their Raft address (an embedded replica knows
no node ids). A server shows them by node id where its member registry knows one, so a
status read back from INFO carries ids in ``leader``, ``members`` and ``connected_peers``,
and the leader's client address in ``leader_client``.

This module imports nothing from the consensus layer, so the network client can use it
without loading pysyncobj.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """Typed status of one node (what `Cache.status()` and INFO raft report)."""

    id: str
    address: str  # this node's Raft address
    role: str  # leader / follower / candidate
    leader: str | None
    term: int
    commit_index: int
    applied_index: int
    log_len: int
    last_snapshot_index: int
    keys: int
    members: tuple[str, ...]
    revision: int
    replicated_time_ms: int
    snapshots_taken: int
    last_snapshot_seconds: float | None
    inflight_entries: int
    queued_requests: int
    connected_peers: tuple[str, ...] = ()  # members this node has a live connection to
    leader_client: str | None = None  # the leader's RESP address; known to servers only


class PeerView(Protocol):
    """How a server shows one member: its node id (or Raft address) and client address."""

    @property
    def name(self) -> str: ...

    @property
    def client(self) -> str: ...


Naming = Callable[[str], PeerView]  # Raft address -> PeerView


@dataclass(frozen=True, slots=True)
class _Unnamed:
    """A member the registry knows nothing about: shown by its Raft address."""

    name: str
    client: str = ""


def by_address(raft_address: str) -> PeerView:
    return _Unnamed(raft_address)


# ---------------------------------------------------------------- value codecs
def _text(value: str) -> str:
    return value


def _optional_text(value: str) -> str | None:
    return value or None


def _names(value: str) -> tuple[str, ...]:
    return tuple(name for name in value.split(",") if name)


def _optional_float(value: str) -> float | None:
    return float(value) if value else None


@dataclass(frozen=True, slots=True)
class RaftField:
    """One INFO ``raft`` key."""

    key: str
    attr: str | None  # the NodeStatus attribute it reads back into (None: shown only)
    show: Callable[[NodeStatus, Naming], Any]
    parse: Callable[[str], Any] = int
    missing: Any = 0  # the value when a node does not report the key (or garbles it)


def _plain(key: str, attr: str, parse: Callable[[str], Any] = int, missing: Any = 0) -> RaftField:
    return RaftField(key, attr, lambda status, naming: getattr(status, attr), parse, missing)


def _leader_name(status: NodeStatus, naming: Naming) -> str:
    return naming(status.leader).name if status.leader else ""


def _leader_client(status: NodeStatus, naming: Naming) -> str:
    if status.leader_client:
        return status.leader_client
    return naming(status.leader).client if status.leader else ""


def _member_names(status: NodeStatus, naming: Naming) -> str:
    return ",".join(naming(address).name for address in status.members)


def _connected_names(status: NodeStatus, naming: Naming) -> str:
    return ",".join(sorted(naming(address).name for address in status.connected_peers))


def _seconds(status: NodeStatus, naming: Naming) -> str:
    return "" if status.last_snapshot_seconds is None else f"{status.last_snapshot_seconds:.3f}"


RAFT_FIELDS: tuple[RaftField, ...] = (
    _plain("raft_node_id", "id", _text, ""),
    _plain("raft_address", "address", _text, ""),
    _plain("raft_state", "role", _text, "unknown"),
    RaftField("raft_leader_id", "leader", _leader_name, _optional_text, None),
    RaftField("raft_leader_addr", None, lambda status, naming: status.leader or ""),
    RaftField("raft_leader_client", "leader_client", _leader_client, _optional_text, None),
    _plain("raft_term", "term"),
    _plain("raft_commit_index", "commit_index"),
    _plain("raft_applied_index", "applied_index"),
    _plain("raft_log_len", "log_len"),
    _plain("raft_last_snapshot_index", "last_snapshot_index"),
    _plain("raft_snapshots_taken", "snapshots_taken"),
    RaftField("raft_last_snapshot_seconds", "last_snapshot_seconds", _seconds, _optional_float, None),
    RaftField("raft_members", "members", _member_names, _names, ()),
    RaftField("raft_connected_peers", "connected_peers", _connected_names, _names, ()),
    _plain("raft_revision", "revision"),
    _plain("raft_replicated_time_ms", "replicated_time_ms"),
    _plain("raft_inflight_entries", "inflight_entries"),
    _plain("raft_queued_requests", "queued_requests"),
)

# The key count travels in INFO's keyspace section, as Redis spells it (db0:keys=N,...).
KEYSPACE_KEY = "db0"


def to_info(status: NodeStatus, naming: Naming = by_address) -> dict[str, Any]:
    """The INFO ``raft`` section of a status: key -> value, in the table's order."""
    return {f.key: f.show(status, naming) for f in RAFT_FIELDS}


def keyspace_keys(info: Mapping[str, str]) -> int:
    """The key count from INFO's ``db0:keys=N,expires=M,...`` line (0 without one)."""
    for part in info.get(KEYSPACE_KEY, "").split(","):
        if part.startswith("keys="):
            try:
                return int(part[5:])
            except ValueError:
                return 0
    return 0


def from_info(info: Mapping[str, str]) -> NodeStatus:
    """A NodeStatus from parsed INFO fields (``client.core.parse_info``). Keys a node does
    not report, or reports garbled, take their ``missing`` value."""
    values: dict[str, Any] = {"keys": keyspace_keys(info)}
    for f in RAFT_FIELDS:
        if f.attr is None:
            continue
        raw = info.get(f.key)
        try:
            values[f.attr] = f.missing if raw is None else f.parse(raw)
        except ValueError:
            values[f.attr] = f.missing
    return NodeStatus(**values)
