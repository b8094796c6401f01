"""The consensus boundary, shaped like hashicorp/raft's: what the replica asks of Raft, what
Raft asks of the state machine, and what it asks of storage.

::

    Replica ──propose/status/membership──▶ Consensus ──apply/snapshot/restore──▶ StateMachine
                                               │
                                               └──records──▶ LogStore, MetaStore (wal.py)

Implementations: ``pysyncobj_backend.PysyncobjNode`` (the real one, the only module that
imports pysyncobj) and ``memory.MemoryConsensus`` (a single-node fake for unit tests).

Threading contract (both implementations): one consensus thread applies entries and runs
every callback, ``call_soon`` functions and the tick hook; ``propose`` and the read-only
accessors may be called from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .types import (
    DoneCallback,
    Entry,
    Failure,
    ProposalCallback,
    RaftSettings,
    RaftStatus,
    ReadIndexCallback,
    Role,
    SnapshotMeta,
)


class StateMachine(Protocol):
    """What consensus drives (hashicorp/raft's FSM): deterministic apply, snapshot, restore."""

    def apply(self, payload: bytes) -> Any:
        """Apply one committed entry; the result goes to the proposer's callback. Raising
        stops the node (an entry that cannot be applied cannot be skipped either)."""
        ...

    def snapshot(self, path: str, meta: SnapshotMeta) -> None:
        """Write the state as of `meta.last` to `path` (may run in a forked child)."""
        ...

    def restore(self, path: str) -> SnapshotMeta:
        """Discard all state, load the snapshot at `path`, and say where it sits in the log."""
        ...


def _nothing(*args: Any) -> None:
    pass


@dataclass(frozen=True)
class Events:
    """Optional hooks, all called on the consensus thread."""

    on_tick: Callable[[], None] = _nothing  # every tick (housekeeping: deadlines, retries)
    on_role: Callable[[Role], None] = _nothing  # after a role change
    on_fatal: Callable[[BaseException], None] = _nothing  # the node stopped (storage error)
    # The leader's clock (ms) when it confirms a read index: handed to the reader with the
    # index (ReadIndex.time_ms), so reads without a log entry judge expiry by the leader's time.
    read_time_ms: Callable[[], int] = lambda: 0


class Consensus(Protocol):
    """One Raft member. `settings.address` is its raft address."""

    settings: RaftSettings

    def start(self) -> None: ...

    def close(self) -> None:
        """Stop and release threads, sockets and files; idempotent."""
        ...

    def propose(self, payload: bytes, callback: ProposalCallback) -> Failure | None:
        """Replicate `payload`. Thread-safe. Returns a Failure when refused on the spot (then
        `callback` never runs; such failures are all definite); otherwise `callback(result,
        failure)` runs later on the consensus thread, with `failure.definite` telling
        "certainly not applied" from "outcome unknown". Never calls back from inside propose,
        so callers may hold their own locks."""
        ...

    def read_index(self, callback: ReadIndexCallback) -> None:
        """Find a read index for reads that arrived before this call (Raft thesis §6.4; see
        ``readindex.py`` for the rules and the safety argument). Thread-safe. Later, on the
        consensus thread: ``callback(ReadIndex, None)`` once this node (leader) or the leader
        (asked by this follower) confirmed its leadership by a majority round that started
        after the call; the caller must then wait until ``applied_index >= index`` and answer
        from its own state. Or ``callback(None, failure)``: no leader known, leadership lost
        before confirming, or the node stopping (never a stale answer; nothing was applied, so
        every failure is definite and the read may be retried). No log entry, no fsync."""
        ...

    def status(self) -> RaftStatus: ...

    @property
    def role(self) -> Role: ...

    @property
    def applied_index(self) -> int: ...

    @property
    def fatal_error(self) -> BaseException | None: ...

    @property
    def running(self) -> bool:
        """Whether the consensus thread is still alive."""
        ...

    def connected_peers(self) -> set[str]:
        """Raft addresses of the members this node has a live connection to."""
        ...

    def add_member(self, address: str, callback: DoneCallback) -> None: ...

    def remove_member(self, address: str, callback: DoneCallback) -> None: ...

    def transfer_leadership(self, target: str | None, callback: DoneCallback) -> None:
        """Ask `target` (None: the most caught-up member) to take over; `callback(None)` once
        the request went out, or a Failure (DENIED while the target is catching up)."""
        ...

    def refuse_forwarded(self, seconds: float) -> None:
        """During a leadership transfer (Raft §3.10): refuse proposals forwarded by followers
        (definitely not applied; they retry) for `seconds`; 0 ends it."""
        ...

    def force_snapshot(self) -> None:
        """Compact now: snapshot the state machine and drop the log before it."""
        ...

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the consensus thread at its next tick (woken at once)."""
        ...

    def wake(self) -> None:
        """Cut the consensus thread's idle wait short."""
        ...


# Builds a node: the replica passes its settings, state machine and hooks.
ConsensusFactory = Callable[[RaftSettings, StateMachine, Events], Consensus]


class LogStore(Protocol):
    """Durable log records (``wal.LogFile``: CRC-framed, torn-tail recovery). Consensus-thread
    only."""

    bytes: int  # payload bytes held (size-triggered compaction)

    def open(self) -> list[Entry]: ...

    @property
    def dirty(self) -> bool: ...

    def append(self, payload: bytes, index: int, term: int) -> None: ...

    def flush(self) -> None:
        """Hand buffered records to the kernel (survives a process crash)."""
        ...

    def sync(self) -> None:
        """Flush and, by policy, fsync (survives power loss)."""
        ...

    def truncate(self, keep: int) -> None:
        """Keep the first `keep` records."""
        ...

    def rewrite(self, entries: list[Entry]) -> None:
        """Replace every record with `entries`, atomically (after compaction)."""
        ...

    def close(self) -> None: ...


class MetaStore(Protocol):
    """Term, vote and commit index (``wal.MetaFile``: msgpack map, replaced atomically)."""

    def load(self) -> dict[str, Any]: ...

    def store(self, meta: dict[str, Any]) -> None: ...
