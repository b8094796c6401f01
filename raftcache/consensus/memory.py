"""An in-memory, single-node :class:`~raftcache.consensus.protocol.Consensus` for unit tests.

No sockets, no threads unless asked for, no pysyncobj. Proposals "commit" when the node
ticks: :meth:`MemoryConsensus.tick` applies every pending proposal in order, calls each
proposer back, runs ``call_soon`` functions and the tick hook, all on the caller's thread,
which thereby plays the consensus thread. :meth:`MemoryConsensus.start_ticking` runs ticks on
a thread of its own instead. Faults are set on the object:

* ``set_leader(False)``: no leader: proposals are refused with ``Failure.NO_LEADER``;
* ``lose_proposals = True``: proposals are accepted and never called back (a lost message:
  the outcome is unknown to the proposer, and nothing is applied);
* ``lose_acks = True``: proposals commit and apply, but the proposer is never called back
  (the commit happened; its news was lost: what exactly-once retries are for);
* ``fail_pending(failure)``: call every pending proposal back with `failure` unapplied;
* ``refuse_next(failure)``: refuse the next proposal on the spot with `failure`;
* ``hold = True``: accept proposals but commit none until ``hold`` is cleared.

Read indexes (``read_index``) are answered at the next tick with the applied index (a lone
node is its own majority), unless ``hold`` or ``lose_proposals`` is set (no majority would
answer a round: they wait); with no leader they fail with ``Failure.NO_LEADER``, and losing
leadership fails those waiting with ``Failure.NOT_LEADER``, as the real rounds do.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable

from .protocol import Events, StateMachine
from .types import (
    NO_OP_ENTRY,
    DoneCallback,
    Failure,
    LogPosition,
    ProposalCallback,
    RaftSettings,
    RaftStatus,
    ReadIndex,
    ReadIndexCallback,
    Role,
    SnapshotMeta,
    check_member_address,
    check_settings,
)


class MemoryConsensus:
    """A single Raft member that commits what it is told to, when it is told to."""

    def __init__(self, settings: RaftSettings, state_machine: StateMachine, events: Events | None = None) -> None:
        check_settings(settings)
        self.settings = settings
        self._fsm = state_machine
        self._events = events or Events()
        self._lock = threading.RLock()
        self._pending: deque[tuple[int, bytes, ProposalCallback]] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        self._read_waiters: deque[ReadIndexCallback] = deque()
        self._members = {settings.address, *settings.peers}
        self.connected: set[str] = set()  # peers connected_peers() reports
        self._role = Role.LEADER
        self._leader: str | None = settings.address
        self._term = 1
        self._last_index = 1  # the no-op every log starts with
        self._applied = 1
        self._started = False
        self._closed = False
        self._fatal: BaseException | None = None
        self._refused: deque[Failure] = deque()
        self._ticker: threading.Thread | None = None
        self._wake = threading.Event()
        self.lose_proposals = False
        self.lose_acks = False
        self.hold = False
        self.refuse_forwarded_for = 0.0
        self.applied_payloads: list[bytes] = []  # every entry applied, in order
        self.snapshots: list[SnapshotMeta] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._started = True

    def start_ticking(self, interval: float = 0.005) -> None:
        """Tick on a thread of this object's own, every `interval` or when woken."""

        def run() -> None:
            while not self._closed:
                self._wake.wait(interval)
                self._wake.clear()
                if not self._closed:
                    self.tick()

        self._ticker = threading.Thread(target=run, name="memory-consensus", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(5)

    @property
    def fatal_error(self) -> BaseException | None:
        return self._fatal

    @property
    def running(self) -> bool:
        return self._started and not self._closed and self._fatal is None

    # ------------------------------------------------------------------- controls
    def set_leader(self, leading: bool) -> None:
        with self._lock:
            self._role = Role.LEADER if leading else Role.FOLLOWER
            self._leader = self.settings.address if leading else None
            if leading:
                self._term += 1
            waiting = list(self._read_waiters) if not leading else []
            if not leading:
                self._read_waiters.clear()
        for callback in waiting:  # leadership lost before a round confirmed them
            callback(None, Failure.NOT_LEADER)
        self._events.on_role(self._role)

    def refuse_next(self, failure: Failure) -> None:
        self._refused.append(failure)

    def fail_pending(self, failure: Failure) -> None:
        """Call every pending proposal back with `failure`; nothing of them is applied."""
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
        for _, _, callback in pending:
            callback(None, failure)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def tick(self) -> None:
        """One round of the consensus thread: commit and apply the proposals pending when it
        starts (unless held), run queued calls, then the tick hook."""
        if self._closed or self._fatal is not None:
            return
        with self._lock:
            due = len(self._pending)  # what is proposed from the callbacks waits for the next tick
        for _ in range(due):
            with self._lock:
                if self.hold or not self._pending:
                    break
                index, payload, callback = self._pending.popleft()
            try:
                result = self._fsm.apply(payload)
            except Exception as exc:
                self._fatal = exc
                self._events.on_fatal(exc)
                return
            self._applied = index
            self.applied_payloads.append(payload)
            if not self.lose_acks:
                callback(result, None)
        while self._calls:
            self._calls.popleft()()
        self._answer_reads()
        self._events.on_tick()

    def _answer_reads(self) -> None:
        with self._lock:
            if self.hold or self.lose_proposals or not self._read_waiters:
                return
            waiting = list(self._read_waiters)
            self._read_waiters.clear()
            leading = self._leader == self.settings.address
            index = self._applied
        for callback in waiting:
            if leading:
                callback(ReadIndex(index, self._events.read_time_ms()), None)
            else:
                callback(None, Failure.NO_LEADER)

    # -------------------------------------------------------------------- proposals
    def propose(self, payload: bytes, callback: ProposalCallback) -> Failure | None:
        if not self._started or self._closed or self._fatal is not None:
            return Failure.STOPPED
        if self._refused:
            return self._refused.popleft()
        with self._lock:
            if self._leader is None:
                return Failure.NO_LEADER
            self._last_index += 1
            if not self.lose_proposals:
                self._pending.append((self._last_index, payload, callback))
        self._wake.set()
        return None

    def read_index(self, callback: ReadIndexCallback) -> None:
        if not self._started or self._closed or self._fatal is not None:
            self.call_soon(lambda: callback(None, Failure.STOPPED))
            return
        with self._lock:
            self._read_waiters.append(callback)
        self._wake.set()

    @property
    def pending_reads(self) -> int:
        with self._lock:
            return len(self._read_waiters)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._calls.append(fn)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # ----------------------------------------------------------------------- status
    def status(self) -> RaftStatus:
        with self._lock:
            return RaftStatus(
                address=self.settings.address,
                role=self._role,
                leader=self._leader,
                term=self._term,
                commit_index=self._applied,
                applied_index=self._applied,
                log_len=self._last_index,
                last_snapshot_index=self.snapshots[-1].last.index if self.snapshots else 0,
                members=tuple(sorted(self._members)),
                ready=self._started,
                snapshots_taken=len(self.snapshots),
                last_snapshot_seconds=None,
            )

    @property
    def role(self) -> Role:
        return self._role

    @property
    def applied_index(self) -> int:
        return self._applied

    def connected_peers(self) -> set[str]:
        return set(self.connected & self._members)

    # ------------------------------------------------------------------ operations
    def add_member(self, address: str, callback: DoneCallback) -> None:
        check_member_address(address, self.settings)

        def run() -> None:
            if address in self._members or self._leader != self.settings.address:
                callback(Failure.DENIED)
                return
            self._members.add(address)
            callback(None)

        self.call_soon(run)

    def remove_member(self, address: str, callback: DoneCallback) -> None:
        check_member_address(address, self.settings)

        def run() -> None:
            if address not in self._members or self._leader != self.settings.address:
                callback(Failure.DENIED)
                return
            self._members.discard(address)
            callback(None)

        self.call_soon(run)

    def transfer_leadership(self, target: str | None, callback: DoneCallback) -> None:
        """Hands leadership to `target` (or any other member) at the next tick; DENIED when
        there is no other member."""

        def run() -> None:
            others = sorted(self._members - {self.settings.address})
            chosen = target if target is not None else (others[0] if others else None)
            if chosen is None or chosen not in others or self._leader != self.settings.address:
                callback(Failure.DENIED)
                return
            with self._lock:
                self._role, self._leader = Role.FOLLOWER, chosen
            callback(None)

        self.call_soon(run)

    def refuse_forwarded(self, seconds: float) -> None:
        self.refuse_forwarded_for = seconds

    def force_snapshot(self) -> None:
        """Snapshot the state machine now, in this thread, to ``<data_dir>/snapshot.rcs``
        (data_dir must be set)."""
        if self.settings.data_dir is None:
            raise ValueError("MemoryConsensus.force_snapshot needs settings.data_dir")
        with self._lock:
            meta = SnapshotMeta(
                last=LogPosition(self._applied, self._term, NO_OP_ENTRY),
                prev=LogPosition(self._applied - 1, self._term, NO_OP_ENTRY),
                members=tuple(sorted(self._members)),
            )
        self._fsm.snapshot(self.snapshot_path, meta)
        self.snapshots.append(meta)

    @property
    def snapshot_path(self) -> str:
        return os.path.join(self.settings.data_dir or "", "snapshot.rcs")

    def load_snapshot(self, path: str) -> SnapshotMeta:
        """Restore the state machine from `path` (what a leader's snapshot install does)."""
        meta = self._fsm.restore(path)
        with self._lock:
            self._applied = max(self._applied, meta.last.index)
            self._last_index = max(self._last_index, meta.last.index)
        return meta


def memory_consensus(settings: RaftSettings, state_machine: StateMachine, events: Events) -> MemoryConsensus:
    """A :data:`~raftcache.consensus.protocol.ConsensusFactory` building a MemoryConsensus."""
    return MemoryConsensus(settings, state_machine, events)
