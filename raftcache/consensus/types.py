"""The plain types of the consensus boundary: roles, outcomes, log positions, status, settings.

Nothing here knows which Raft implementation runs underneath; the values that must match
what is already on disk (the no-op entry of a seeded snapshot) are spelled out and checked
against the backend at start-up (``pysyncobj_backend.check_pysyncobj``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import cluster_secret
from ..addresses import validate_address
from ..errors import ConfigError

# Used only when every raft address is loopback and no secret was configured: traffic is still
# Fernet-framed, but anyone on this host could forge it. Documented; warned about at start.
DEV_SECRET = "raftcache-insecure-loopback-development-secret"

Entry = tuple[bytes, int, int]  # (payload, index, term): one log entry, as the journal stores it


class Role(enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"


class Failure(enum.Enum):
    """Why a proposal did not commit. ``definite`` means: certainly not applied."""

    NO_LEADER = ("no leader is known", True)
    QUEUE_FULL = ("proposal queue is full", True)
    NOT_LEADER = ("the node it was forwarded to is no longer leader", True)
    DISCARDED = ("overwritten by a new leader before commit", True)
    DENIED = ("request denied", True)
    STOPPED = ("node is stopping", True)
    LEADER_CHANGED = ("leader changed before the proposal committed", False)
    UNKNOWN = ("outcome could not be tracked", False)
    TIMEOUT = ("no commit before the deadline", False)

    def __init__(self, reason: str, definite: bool) -> None:
        self.reason = reason
        self.definite = definite


# callback(result, None) once the entry is applied on this node; callback(None, failure) if not.
ProposalCallback = Callable[[Any, "Failure | None"], None]


@dataclass(frozen=True, slots=True)
class ReadIndex:
    """A confirmed read index: every write acknowledged before the read arrived is at or below
    `index`; `time_ms` is the leader's clock when it confirmed (``Events.read_time_ms``)."""

    index: int
    time_ms: int


# callback(ReadIndex, None) once the leader confirmed an index; callback(None, failure) if not.
ReadIndexCallback = Callable[["ReadIndex | None", "Failure | None"], None]
# callback(None) once a membership change or a leadership transfer took effect; or a Failure.
DoneCallback = Callable[["Failure | None"], None]


@dataclass(frozen=True, slots=True)
class LogPosition:
    index: int
    term: int
    command: bytes  # the raw log entry (kept so a restore can rebuild the log head)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot sits in the log, and the membership at that point."""

    last: LogPosition
    prev: LogPosition
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RaftStatus:
    address: str
    role: Role
    leader: str | None
    term: int
    commit_index: int
    applied_index: int
    log_len: int
    last_snapshot_index: int
    members: tuple[str, ...]
    ready: bool
    snapshots_taken: int
    last_snapshot_seconds: float | None


@dataclass(frozen=True, slots=True)
class RaftSettings:
    """Everything a consensus node needs; built from the TOML config or `Cache(...)` arguments."""

    address: str
    peers: tuple[str, ...]
    secret: str | None = None
    data_dir: str | None = None
    fsync: bool = True
    heartbeat_s: float = 0.05
    election_timeout_s: tuple[float, float] = (1.0, 2.0)
    leader_lease_s: float = 2.5  # a leader without majority contact this long steps down
    connect_retry_s: float = 0.5
    snapshot_min_entries: int = 20_000
    snapshot_min_interval_s: float = 600.0
    snapshot_max_log_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 2 * 1024 * 1024
    peer_compression_level: int = 0  # zlib level of peer messages (0: none; worth it only on slow links)


# The type byte of a no-op log entry (pysyncobj's _COMMAND_TYPE.NO_OP; the start-up check
# verifies it). Seeded snapshots and existing data dirs carry it, so it can never change.
NO_OP_ENTRY = bytes([1])


def seed_snapshot_meta(members: tuple[str, ...]) -> SnapshotMeta:
    """The log position of a snapshot that seeds a brand-new cluster (``raftcache restore``).

    Every node of the new cluster gets the same seed: two no-op entries of term 0, so they all
    start at log index 2 with the same state and elect a leader in term 1 as usual.
    """
    return SnapshotMeta(
        last=LogPosition(2, 0, NO_OP_ENTRY), prev=LogPosition(1, 0, NO_OP_ENTRY), members=tuple(sorted(members))
    )


def check_settings(settings: RaftSettings) -> None:
    """Raise ConfigError for settings no node may run with (any backend)."""
    validate_address(settings.address)
    for peer in settings.peers:
        validate_address(peer, "peer address")
    if settings.address in settings.peers:
        raise ConfigError(f"raft address {settings.address!r} is listed among its own peers")
    problem = cluster_secret.problem(settings.secret or "", (settings.address, *settings.peers))
    if problem:  # no secret, or a weak one, for traffic that leaves the host
        raise ConfigError(problem)
    low, high = settings.election_timeout_s
    if not (settings.heartbeat_s * 3 < low < high):
        raise ConfigError("need heartbeat * 3 < election timeout min < election timeout max")
    if settings.leader_lease_s <= settings.heartbeat_s:
        raise ConfigError("leader lease must exceed the heartbeat interval")
    if settings.snapshot_min_entries < 2:
        raise ConfigError("snapshot min_entries must be at least 2")


def check_member_address(address: str, settings: RaftSettings) -> None:
    """Raise ConfigError unless `address` may join a cluster run with `settings`."""
    validate_address(address)
    problem = cluster_secret.problem(settings.secret or "", (address,))
    if problem:
        raise ConfigError(problem)
