"""The replica: the cache state machine driven by Raft. Everything user-facing sits on this.

Responsibilities (none of them specific to a Raft library: the replica talks to Raft only
through the :class:`~raftcache.consensus.Consensus` protocol, pysyncobj by default):

* **Group commit** — writes from every caller queue up; one Raft entry carries many of them
  (up to ``max_batch_commands`` / ``max_batch_bytes``), with ``max_inflight`` entries in
  flight per node. Under load batches grow by themselves; idle, a write goes out at once.
* **Linearizable reads (ReadIndex)** — no log entry: the reads that arrived are handed to
  ``raft.read_index`` together (one call per burst); once the leader confirmed its
  leadership by a majority round started after they arrived (``consensus/readindex.py``),
  they run on the Raft thread as soon as this node has applied the index it returned and
  answered every write submitted here before them (a pipelined SET then GET on one
  connection reads its own write, as Redis runs a connection's commands in order). A
  deposed leader's round never confirms, so it can never answer. Time: such a read judges
  TTLs by the leader's clock at confirmation (``ReadIndex.time_ms``), as the entry it no
  longer rides would have; when a key expires between replicated time and that clock (not
  yet swept), the reads take the log-entry barrier instead (see ``_answer_index_reads``).
  The barrier (the read waits for the next entry this node proposes and runs right after it
  is applied) also serves ``run_at_barrier`` (backups). ``consistency="stale"`` reads local
  state.
* **Exactly-once writes** — each write carries (client id, seq, ack). Proposals whose outcome
  is unknown (timeout, leader change) are retried with the same tag until the request's
  deadline; the state machine answers a retry from its session table.
* **Replicated clock and expiry** — every entry carries this node's time, and nothing else
  moves the replicated clock: an idle cluster proposes no entries at all. A linearizable
  read's own entry brings the clock up to the reader's time, so TTL/PTTL/EXISTS after a long
  idle stretch are exact. The leader proposes a ``Sweep`` (which carries its time too) when
  the earliest expiry in the replicated state (``fsm.next_expiry_ms()``) is due by its clock,
  so any node that becomes leader takes the schedule over. Sweeps are at least
  ``clock_interval_s`` apart unless one left a backlog; client sessions need no entries (they
  expire against the time of the next batch).

Threading: ``submit`` is thread-safe. Results are delivered by calling ``on_done(result)``
where ``result`` is a value or an exception instance, on the Raft thread (or on the caller's
thread for stale reads and immediate refusals). Callers hop threads themselves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import commands as c
from .api import LINEARIZABLE, STALE
from .blocking import BlockingPops
from .clock import Clock, SystemClock, proposal_clock
from .consensus import (
    ConsensusFactory,
    Events,
    Failure,
    LogPosition,
    RaftSettings,
    RaftStatus,
    ReadIndex,
    Role,
    SnapshotMeta,
    default_factory,
)
from .errors import (
    CommandError,
    NodeClosedError,
    NoLeaderError,
    OutcomeUnknownError,
    OverloadedError,
    SessionExpiredError,
    StorageError,
)
from .feed import Feed
from .lua_runtime import check_runtime as check_lua_runtime
from .session import ClientSession
from .snapshot import SnapshotReader, compute_in_child, write_in_child, write_snapshot
from .statemachine import CacheStateMachine
from .stats import LatencyHistogram
from .status import NodeStatus

log = logging.getLogger(__name__)


OnDone = Callable[[Any], None]
_INLINE_DIGEST_KEYS = 20_000  # above this, hash in a forked child (it takes ~5 µs per key)
# Reads no longer ride entries, so their LRU/LFU accesses (fsm.take_read_accesses) ride the
# next write, or, with no write for this long, an entry of their own (only under a policy
# that uses them).
_ACCESS_FLUSH_S = 1.0


_SWEEP_MIN = 64  # the smallest Sweep the apply-time budget shrinks to (progress under any load)
_SWEEP_SAMPLE_MIN = 32  # entries expiring fewer keys are too small to time


@dataclass(frozen=True, slots=True)
class ReplicaOptions:
    raft: RaftSettings
    request_timeout_s: float = 5.0  # default deadline of one request, retries included
    entry_timeout_s: float = 2.0  # a proposal silent this long is treated as outcome-unknown
    max_inflight: int = 1  # entries in flight per node (1 keeps per-connection order on retry)
    max_batch_commands: int = 8192
    max_batch_bytes: int = 1 << 20
    clock_interval_s: float = 0.1  # least spacing of the leader's expiry sweeps (see _leader_duties_locked)
    sweep_limit: int = 1000  # most expired keys one Sweep deletes ...
    sweep_budget_s: float = 0.005  # ... and about this much apply time per Sweep (see _sweep_size)
    # Initial values of replicated settings (the cluster file's [memory]): the leader proposes
    # each one the replicated state has never had set; CONFIG SET changes them afterwards.
    initial_settings: tuple[tuple[str, bytes], ...] = ()


class _Request:
    __slots__ = ("ack", "client_id", "command", "deadline", "failure", "maybe_applied", "on_done", "seq", "size")

    def __init__(self, command: Any, on_done: OnDone, deadline: float) -> None:
        self.command = command
        self.on_done = on_done
        self.deadline = deadline
        self.size = 0
        self.client_id: int | None = None  # None: untagged (reads, internal writes)
        self.seq = 0
        self.ack = 0  # only for caller-provided tags; own-session acks are computed at encode
        self.maybe_applied = False
        self.failure: Failure | None = None


@dataclass(slots=True)
class _Entry:
    writes: list[_Request]
    reads: list[_Request]
    deadline: float
    proposed: float = 0.0


def _ignore(result: Any) -> None:
    pass


@dataclass(slots=True, eq=False)  # compared by identity: two batches may hold equal fields
class _IndexBatch:
    """Reads handed to one ``raft.read_index`` call; `index` once it is confirmed."""

    reads: list[_Request]
    after: int  # the writes submitted here up to this number must be answered first
    index: int | None = None
    time_ms: int = 0


class _AtBarrier(NamedTuple):
    """A 'read' that runs `fn` on the Raft thread right after the next entry is applied here:
    a linearizable point in the log (used for backups)."""

    fn: Callable[[], Any]


class Replica:
    """One cache replica: state machine + Raft + batching. See the module docstring."""

    def __init__(
        self,
        options: ReplicaOptions,
        *,
        node_id: str | None = None,
        clock: Clock | None = None,
        consensus: ConsensusFactory | None = None,
    ) -> None:
        self.options = options
        self.node_id = node_id or options.raft.address
        self.clock: Clock = clock or SystemClock()  # the wall clock (injectable, shiftable)
        self._proposal_clock = proposal_clock(self.clock)  # what entries are stamped with
        check_lua_runtime()  # EVAL relies on lupa's Lua 5.1 behaving as checked there; say so now
        self.fsm = CacheStateMachine()
        # Blocking pops wait here, woken by the keys this replica's state machine changes.
        self.blocking = BlockingPops(lambda cmd, tag, done: self.submit(cmd, done, tag=tag), lambda fn: self.raft.call_soon(fn))
        self.fsm.key_listener = self.blocking.key_listener
        self.feed = Feed(self.fsm)  # the change feed: each applied entry's events (feed.py)
        self._fsm_lock = threading.Lock()  # apply vs. stale reads on other threads
        self._lock = threading.Lock()  # batching state below
        self._writes: deque[_Request] = deque()
        self._reads: list[_Request] = []  # reads waiting for the next entry (the barrier)
        self._inflight: dict[int, _Entry] = {}
        # ReadIndex reads: queued for the next read_index call, then in flight / waiting for
        # this node's apply to reach their index (see _ask_read_index).
        self._index_reads: list[_Request] = []
        self._index_asking = False  # a read_index call for _index_reads is scheduled
        self._index_batches: list[_IndexBatch] = []
        self._index_retry_at = 0.0
        self._index_backoff = 0.0
        self._last_propose_at = time.monotonic()
        # Writes submitted here, by number, not yet answered (oldest first): a read waits for
        # the writes submitted before it (a pipelined SET then GET on one connection reads
        # its own write, as when every read rode the next entry).
        self._write_number = 0
        self._open_writes: deque[int] = deque()
        self._answered_writes: set[int] = set()
        self._entry_ids = 0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._hold_until = 0.0  # a leadership transfer is in progress: propose nothing
        self._session = ClientSession()
        self._retired_sessions: set[int] = set()
        self._seeded = False  # initial settings proposed during this leadership
        self._sweeping = False  # a Sweep is queued or in flight
        self._sweep_backlog = False  # the last Sweep hit its limit: more keys are due
        self._sweep_sent = 0  # the limit of the Sweep in flight
        self._sweep_key_s = 0.0  # apply time per expired key on this node (moving average; 0: unknown)
        self._next_sweep_ms = 0  # (leader or replicated) time before which no new Sweep is proposed
        self._wake_timer: threading.Timer | None = None  # ticks the Raft thread when a Sweep falls due
        self._wake_at_ms = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._fatal_listeners: list[Callable[[BaseException], None]] = []
        # proposals, commits, per-failure counts and retried writes (metrics, tests)
        self.counters: Counter[str] = Counter()
        self.commit_latency = LatencyHistogram()  # propose -> applied here, per Raft entry
        self.apply_latency = LatencyHistogram()  # the state machine's time per entry, here
        # The Raft member (a Consensus); `consensus` builds it, pysyncobj unless given.
        self.raft = (consensus or default_factory())(
            options.raft,
            _StateMachineHooks(self),
            Events(on_tick=self._on_tick, on_fatal=self._on_fatal, read_time_ms=self._proposal_clock.now_ms),
        )

    # ------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.raft.start()

    def close(self) -> None:
        """Stop the node; pending requests fail with NodeClosedError (not applied) or
        OutcomeUnknownError (proposed, outcome unknown)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._wake_timer is not None:
                self._wake_timer.cancel()
        self.raft.close()
        self._fail_everything(NodeClosedError("node closed"))

    def on_fatal(self, listener: Callable[[BaseException], None]) -> None:
        """Register a callback for a fatal storage error (the node has stopped serving)."""
        self._fatal_listeners.append(listener)

    @property
    def closed(self) -> bool:
        return self._closed or self._fatal is not None

    def _on_fatal(self, exc: BaseException) -> None:
        """Raft-thread callback: the node cannot go on safely (disk full, corrupt snapshot)."""
        self._fatal = exc
        error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
        self._fail_everything(error)
        # Release the port and threads; close() joins the Raft thread, so not from here.
        threading.Thread(target=self.raft.close, name="raft-fatal-stop", daemon=True).start()
        for listener in self._fatal_listeners:
            try:
                listener(error)
            except Exception:
                log.exception("fatal listener failed")

    def _fail_everything(self, error: BaseException) -> None:
        """Answer every pending request: queued ones were never applied; proposed writes
        may have been."""
        with self._lock:
            queued = list(self._writes) + self._reads + self._index_reads
            proposed: list[_Request] = []
            for entry in self._inflight.values():
                proposed.extend(entry.writes)
                queued.extend(entry.reads)
            for batch in self._index_batches:
                queued.extend(batch.reads)
                batch.reads = []
            self._writes.clear()
            self._reads = []
            self._index_reads = []
            self._index_batches = []
            self._inflight.clear()
        unknown = OutcomeUnknownError(f"outcome unknown: {error}")
        for req in queued:
            _deliver(req, unknown if req.maybe_applied else error)
        for req in proposed:
            _deliver(req, unknown)

    # ---------------------------------------------------------------------- submit
    def submit(
        self,
        command: Any,
        on_done: OnDone,
        *,
        consistency: str = LINEARIZABLE,
        timeout: float | None = None,
        tag: c.SessionTag | None = None,
    ) -> tuple[int, int] | None:
        """Execute a command; `on_done(result_or_exception)` is called exactly once. Returns a
        write's exactly-once tag ``(client_id, seq)``, the ``origin`` of the change-feed events
        it causes (CLIENT TRACKING's NOLOOP recognises a connection's own writes by it)."""
        if self._fatal is not None:
            on_done(self._fatal)
            return
        if self._closed:
            on_done(NodeClosedError("node closed"))
            return
        write = c.is_write(command)
        if not write and consistency == STALE:
            on_done(self.read_local(command))
            return
        if write:
            on_done = self._numbered(on_done)
        req = _Request(command, on_done, time.monotonic() + (timeout or self.options.request_timeout_s))
        if not write and type(command) is not _AtBarrier:
            self._submit_index_read(req)
            return
        with self._lock:
            if write:
                req.size = c.size_hint(command)
                if tag is not None:
                    req.client_id, req.seq, req.ack = tag
                elif type(command) is not c.Sweep:
                    req.client_id = self._session.client_id
                    req.seq = self._session.issue()
                self._writes.append(req)
            else:
                self._reads.append(req)
            self._flush_locked()
        return (req.client_id, req.seq) if req.client_id is not None else None

    # ------------------------------------------------------------ ReadIndex reads
    def _numbered(self, on_done: OnDone) -> OnDone:
        """Number a write; its answer (whatever it is) marks it done for the reads after it."""
        with self._lock:
            self._write_number += 1
            number = self._write_number
            self._open_writes.append(number)

        def answered(result: Any) -> None:
            with self._lock:
                self._answered_writes.add(number)
                open_writes, done = self._open_writes, self._answered_writes
                while open_writes and open_writes[0] in done:
                    done.discard(open_writes.popleft())
            on_done(result)

        return answered

    def _submit_index_read(self, req: _Request) -> None:
        with self._lock:
            self._index_reads.append(req)
            if self._index_asking or time.monotonic() < self._index_retry_at:
                return  # the scheduled call takes it too; or the tick asks after the backoff
            self._index_asking = True
        self.raft.call_soon(self._ask_read_index)

    def _ask_read_index(self) -> None:
        """Raft thread: one read_index call for every read queued so far (they all arrived
        before it, which is what the round it starts needs)."""
        with self._lock:
            self._index_asking = False
            if not self._index_reads:
                return
            batch = _IndexBatch(self._index_reads, self._write_number)
            self._index_reads = []
            self._index_batches.append(batch)
        self.counters["read_index_calls"] += 1
        self.raft.read_index(lambda result, failure: self._read_index_done(batch, result, failure))

    def _read_index_done(self, batch: _IndexBatch, result: ReadIndex | None, failure: Failure | None) -> None:
        """Raft thread: the index is confirmed (answer once applied here), or the attempt
        failed: nothing was answered, so the reads are asked for again after a backoff, until
        their deadline (then NoLeaderError, as a read that found no quorum always did)."""
        with self._lock:
            if batch not in self._index_batches:
                return  # failed by close() meanwhile
            if result is None:
                self._index_batches.remove(batch)
                self.counters[f"read_index_failed_{(failure or Failure.UNKNOWN).name.lower()}"] += 1
                for req in batch.reads:
                    req.failure = failure
                self._index_reads[:0] = batch.reads
                self._index_backoff = min(0.2, max(0.01, self._index_backoff * 2))
                self._index_retry_at = time.monotonic() + self._index_backoff
                return
            self._index_backoff = 0.0
            batch.index, batch.time_ms = result.index, result.time_ms
        self._answer_applied_reads()

    def _answer_applied_reads(self) -> None:
        """Raft thread: answer the confirmed batches whose index this node has applied, once
        the writes submitted before them are answered."""
        applied = self.raft.applied_index
        with self._lock:
            first_open = self._open_writes[0] if self._open_writes else self._write_number + 1
            ready = [b for b in self._index_batches if b.index is not None and b.index <= applied and b.after < first_open]
            if not ready:
                return
            self._index_batches = [b for b in self._index_batches if b not in ready]
        for batch in ready:
            self._answer_index_reads(batch.reads, batch.time_ms)

    def _answer_index_reads(self, reads: list[_Request], leader_ms: int) -> None:
        """Raft thread, state applied at least up to the read index: answer `reads`.

        Time: a read that rode an entry saw replicated time moved up to its proposer's clock.
        With no entry, the read is answered as of ``max(replicated time, leader's clock at
        confirmation)`` (``fsm.read_at``; replicated time itself does not move), so TTL, PTTL,
        EXISTS and expiry hiding answer as that entry would have made them. One case differs:
        a key whose expiry falls at or before that time but has not been swept yet would
        be hidden by this read while replicated time (and so the next write, stamped by any
        node's clock) still sees it alive. Then these reads take the log-entry barrier (an
        entry moves replicated time first), exactly as before; it lasts only until the
        leader's Sweep commits (it proposes one as soon as the earliest expiry is due)."""
        if not reads:
            return
        fsm = self.fsm
        now_ms = max(leader_ms, fsm.now_ms)
        due = fsm.next_expiry_ms()
        if due is not None and due <= now_ms:
            self.counters["read_index_barrier"] += 1
            with self._lock:
                self._reads.extend(reads)
                self._flush_locked()
            return
        delivered: list[tuple[_Request, Any]] = []
        with self._fsm_lock:  # read_at moves fsm time for the read; stale readers must not see it
            for req in reads:
                try:
                    delivered.append((req, fsm.read_at(req.command, now_ms)))
                except CommandError as err:
                    delivered.append((req, err))
        self.counters["read_index_reads"] += len(delivered)
        for req, res in delivered:
            _deliver(req, res)

    def _index_reads_tick_locked(self, now: float) -> list[tuple[_Request, BaseException]]:
        """Deadlines of ReadIndex reads (queued, in flight or waiting for apply), and the
        retry after a failed attempt."""
        expired: list[tuple[_Request, BaseException]] = []
        self._index_reads = _drop_expired(self._index_reads, now, expired)
        for batch in self._index_batches:
            batch.reads = _drop_expired(batch.reads, now, expired)
        if self._index_reads and not self._index_asking and now >= self._index_retry_at:
            self._index_asking = True
            self.raft.call_soon(self._ask_read_index)
        return expired

    def _flush_accesses_locked(self, now: float) -> None:
        """With reads but no writes, their LRU/LFU accesses still reach the replicated state."""
        if self._writes or self._inflight or now - self._last_propose_at < _ACCESS_FLUSH_S:
            return
        if not self.fsm.memory_settings.tracks_access:
            return
        accesses = self.fsm.take_read_accesses()
        if accesses:
            req = _Request(c.Access(accesses), _ignore, now + self.options.request_timeout_s)
            req.size = sum(len(k) for k in accesses)
            self._writes.append(req)

    def read_local(self, command: Any) -> Any:
        """Answer a read from this replica's state now (stale; no Raft round)."""
        try:
            with self._fsm_lock:
                return self.fsm.read(command)
        except CommandError as err:
            return err

    # ------------------------------------------------------------------- batching
    def _flush_locked(self) -> None:
        """Propose queued work while the window allows. Caller holds self._lock."""
        opts = self.options
        now = time.monotonic()
        if now < self._hold_until:
            return
        while (self._writes or self._reads) and len(self._inflight) < opts.max_inflight and now >= self._retry_at:
            writes: list[_Request] = []
            size = 0
            queue = self._writes
            while queue and len(writes) < opts.max_batch_commands and (not writes or size + queue[0].size <= opts.max_batch_bytes):
                req = queue.popleft()
                writes.append(req)
                size += req.size
            reads, self._reads = self._reads, []
            session = self._session
            rows = []
            accesses = self.fsm.take_read_accesses()  # reads as LRU/LFU accesses (eviction.py)
            if accesses:
                rows.append((None, c.Access(accesses)))
            for req in writes:
                if req.client_id is None:
                    rows.append((None, req.command))
                elif req.client_id == session.client_id:
                    rows.append((c.SessionTag(req.client_id, req.seq, session.low), req.command))
                else:
                    rows.append((c.SessionTag(req.client_id, req.seq, req.ack), req.command))
            payload = c.encode_batch(self._proposal_clock.now_ms(), rows)
            self._entry_ids += 1
            entry_id = self._entry_ids
            deadline = min([now + opts.entry_timeout_s] + [r.deadline for r in writes] + [r.deadline for r in reads])
            entry = self._inflight[entry_id] = _Entry(writes, reads, deadline, now)
            self._last_propose_at = now
            self.counters["proposed"] += 1
            refused = self.raft.propose(payload, lambda result, failure, i=entry_id: self._entry_done(i, result, failure))
            if refused is not None:
                del self._inflight[entry_id]
                self._requeue_locked(entry, refused)
                if refused is Failure.STOPPED:
                    return

    def _requeue_locked(self, entry: _Entry, failure: Failure) -> None:
        self.counters[f"failed_{failure.name.lower()}"] += 1
        self.counters["retried_writes"] += len(entry.writes)
        if entry.writes or failure is not Failure.NO_LEADER:
            log.info("entry with %d writes, %d reads not committed (%s); retrying", len(entry.writes), len(entry.reads), failure.reason)
        for req in entry.writes:
            req.failure = failure
            if not failure.definite:
                req.maybe_applied = True
        for req in entry.reads:
            req.failure = failure
        self._writes.extendleft(reversed(entry.writes))
        self._reads[:0] = entry.reads
        if failure.definite or failure is Failure.LEADER_CHANGED:
            # No leader right now: give the election a moment instead of spinning.
            self._backoff = min(0.2, max(0.01, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff

    def _entry_done(self, entry_id: int, result: Any, failure: Failure | None) -> None:
        """Raft-thread callback: entry committed and applied here (or failed)."""
        delivered: list[tuple[_Request, Any]] = []
        with self._lock:
            entry = self._inflight.pop(entry_id, None)
            if entry is None:
                return  # it timed out earlier and its requests were requeued
            if failure is None and isinstance(result, list) and len(result) == len(entry.writes):
                self._backoff = 0.0
                self.counters["committed"] += 1
                self.commit_latency.observe(time.monotonic() - entry.proposed)
                for req, res in zip(entry.writes, result):
                    if isinstance(res, SessionExpiredError) and self._retry_in_new_session(req):
                        continue
                    if req.client_id == self._session.client_id:
                        self._session.answered(req.seq)
                    if type(req.command) is c.Sweep:
                        self._sweeping = False
                    delivered.append((req, res))
                reads = entry.reads
            else:
                self._requeue_locked(entry, failure or Failure.UNKNOWN)
                reads = []
            self._flush_locked()
        # Still on the Raft thread, right after this entry was applied: the state is exactly
        # what the barrier promises, so reads run now (no lock: only this thread mutates).
        for req in reads:
            try:
                command = req.command
                result = command.fn() if type(command) is _AtBarrier else self.fsm.read(command)
                delivered.append((req, result))
            except CommandError as err:
                delivered.append((req, err))
            except Exception as exc:  # a failing barrier action answers its caller only
                log.exception("action at barrier failed")
                delivered.append((req, exc))
        for req, res in delivered:
            _deliver(req, res)
        if self._index_batches:
            self._answer_applied_reads()  # reads that waited for these writes

    def _retry_in_new_session(self, req: _Request) -> bool:
        """Our session was forgotten (idle past its TTL, or evicted). A write that was never
        possibly applied is re-issued under a fresh session; otherwise its outcome is unknown
        and the caller hears so. Caller-provided sessions are the caller's business."""
        if req.maybe_applied or req.client_id is None:
            return False
        session = self._session
        if req.client_id == session.client_id:
            old = session.client_id
            self._retired_sessions.add(old)
            session.rotate()
            log.info("client session %x expired; continuing as %x", old, session.client_id)
            for queued in self._writes:  # none of these can have been applied
                if queued.client_id == old and not queued.maybe_applied:
                    queued.client_id, queued.seq = session.client_id, session.issue()
        elif req.client_id not in self._retired_sessions:
            return False
        req.client_id, req.seq = session.client_id, session.issue()
        self._writes.appendleft(req)
        return True

    # -------------------------------------------------------------------- Raft hooks
    def _apply(self, payload: bytes) -> list[Any]:
        batch = c.decode_batch(payload)  # MalformedBatch stops the node (consensus)
        with self._fsm_lock:
            expired = self.fsm.expired_keys
            started = time.perf_counter()
            results = self.fsm.apply(batch)
            elapsed = time.perf_counter() - started
            self.apply_latency.observe(elapsed)
            swept = self.fsm.expired_keys - expired
            if swept >= _SWEEP_SAMPLE_MIN:
                self._note_sweep_cost(elapsed / swept)
            items = self.fsm.take_items()
        if items:  # right after the entry, on the Raft thread, before its callbacks
            self.feed.deliver(items)
        return results

    def _on_tick(self) -> None:
        """Raft-thread housekeeping: deadlines, retries and (leader) expiry sweeps."""
        now = time.monotonic()
        # Read on every node at every tick, stamped or not: the clock's slew limit only holds
        # if it is read regularly (see DisciplinedClock).
        clock_ms = self._proposal_clock.now_ms()
        expired: list[tuple[_Request, BaseException]] = []
        with self._lock:
            for entry_id, entry in list(self._inflight.items()):
                if entry.deadline <= now:
                    del self._inflight[entry_id]
                    self._requeue_locked(entry, Failure.TIMEOUT)
            if self._writes or self._reads:
                expired = self._expire_locked(now)
            if self._index_reads or self._index_batches:
                expired += self._index_reads_tick_locked(now)
            self._flush_accesses_locked(now)
            if self.raft.role is Role.LEADER:
                self._leader_duties_locked(clock_ms)
            else:
                self._seeded = False
            self._flush_locked()
        for req, error in expired:
            _deliver(req, error)
        if self._index_batches:
            self._answer_applied_reads()  # pysyncobj applies entries before it runs tick hooks

    def _expire_locked(self, now: float) -> list[tuple[_Request, BaseException]]:
        expired = []
        keep_writes: deque[_Request] = deque()
        for req in self._writes:
            if req.deadline <= now:
                expired.append((req, _timeout_error(req)))
                if req.client_id == self._session.client_id:
                    # Given up: let the ack move past it. Should an old proposal of it still
                    # commit later, the session table refuses it (seq below the floor).
                    self._session.answered(req.seq)
            else:
                keep_writes.append(req)
        self._writes = keep_writes
        keep_reads = []
        for req in self._reads:
            if req.deadline <= now:
                expired.append((req, _timeout_error(req)))
            else:
                keep_reads.append(req)
        self._reads = keep_reads
        for req, _ in expired:
            if type(req.command) is c.Sweep:
                self._sweeping = False
        return expired

    def _leader_duties_locked(self, clock_ms: int) -> None:
        """Propose a Sweep once the earliest expiry is due by this leader's clock (and, once per
        leadership, the cluster file's unset initial settings), and nothing else: no expiry
        due, no entry. The Sweep is stamped with this clock (>= the expiry),
        so applying it moves replicated time past the expiry and deletes the key everywhere;
        reads hide it from then on even on READONLY connections. A timer wakes the Raft thread
        for it; it waits only for `clock_interval_s` after the previous Sweep (so keys falling
        due one after another share Sweeps), unless that one left a backlog."""
        opts = self.options
        if opts.initial_settings and not self._seeded:
            self._seed_settings_locked()
        if self._sweeping:
            return
        due = self.fsm.next_expiry_ms()  # Raft thread: the state machine is ours to read
        if due is None:
            return
        now_ms = max(clock_ms, self.fsm.now_ms)  # the replicated time a Sweep now would reach
        at = due if self._sweep_backlog else max(due, self._next_sweep_ms)
        if at > now_ms:
            self._wake_at_locked(at, clock_ms)
            return
        self._sweeping = True
        self._sweep_backlog = False
        self._next_sweep_ms = now_ms + int(opts.clock_interval_s * 1000)
        self._sweep_sent = self._sweep_size()
        sweep = _Request(c.Sweep(self._sweep_sent), self._swept, time.monotonic() + opts.request_timeout_s)
        sweep.size = 16
        self._writes.append(sweep)

    def _wake_at_locked(self, due_ms: int, clock_ms: int) -> None:
        """Have the Raft thread tick when `due_ms` comes: its next tick may be 50 ms later.
        At most an hour ahead (PXAT may be centuries away): that wake-up just re-arms."""
        due_ms = min(due_ms, clock_ms + 3_600_000)
        if self._closed or (self._wake_timer is not None and self._wake_at_ms <= due_ms):
            return  # a wake-up at or before then is set; the tick it brings re-arms for later
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        timer = self._wake_timer = threading.Timer((due_ms - clock_ms) / 1000, self._woken)
        timer.args = (timer,)
        timer.daemon = True
        self._wake_at_ms = due_ms
        timer.start()

    def _woken(self, timer: threading.Timer) -> None:
        with self._lock:
            if self._wake_timer is timer:  # not one replaced while it was firing
                self._wake_timer = None
        self.raft.wake()

    def _swept(self, result: Any) -> None:
        """A Sweep's answer (keys deleted, or an error): a full one means more are due now."""
        with self._lock:
            self._sweep_backlog = result == self._sweep_sent

    def _sweep_size(self) -> int:
        """How many expired keys the next Sweep may delete: as many as fit in
        `sweep_budget_s` of apply time at the cost per key measured here, within
        [_SWEEP_MIN, sweep_limit]. Every node applies every Sweep, and a write queued behind
        one waits for it: a million keys expiring at once must come as many short entries,
        not a few long ones (the limit is part of the command, so replicas stay identical)."""
        limit = self.options.sweep_limit
        if self._sweep_key_s <= 0:
            return limit
        return max(min(_SWEEP_MIN, limit), min(limit, int(self.options.sweep_budget_s / self._sweep_key_s)))

    def _note_sweep_cost(self, per_key_s: float) -> None:
        """Raft thread: one entry's apply time per key it expired (the entry's other
        commands included, which errs towards smaller Sweeps)."""
        old = self._sweep_key_s
        self._sweep_key_s = per_key_s if old <= 0 else 0.7 * old + 0.3 * per_key_s

    def _seed_settings_locked(self) -> None:
        """Propose the cluster file's initial settings the replicated state has never had set
        (once per leadership; a lost proposal is retried at the next one)."""
        self._seeded = True
        deadline = time.monotonic() + self.options.request_timeout_s
        stored = self.fsm.memory_settings.stored
        for name, value in self.options.initial_settings:
            if name not in stored:
                seed = _Request(c.SetConfig(name, value), _ignore, deadline)
                seed.size = 32
                self._writes.append(seed)

    # ------------------------------------------------------------------ operations
    def run_at_barrier(self, fn: Callable[[], Any], on_done: OnDone, *, timeout: float | None = None) -> None:
        """Run `fn()` on the Raft thread at a linearizable point (after the next entry this
        node proposes is applied); `on_done(fn's result or an exception)`."""
        self.submit(_AtBarrier(fn), on_done, timeout=timeout)

    def backup(self, path: str, on_done: OnDone, *, timeout: float | None = None) -> None:
        """Write a consistent, point-in-time backup of the data to `path` (forked writer).
        `on_done({"keys", "applied_index", "bytes"} or an exception)`."""

        def fork_writer() -> dict[str, Any]:
            header = {
                "kind": "backup",
                "node": self.node_id,
                "applied_index": self.raft.applied_index,
                "keys": len(self.fsm),
                "created_ms": self.clock.now_ms(),
            }
            write = lambda partial: write_snapshot(partial, header, self.fsm.snapshot_sections(data_only=True))
            pid = write_in_child(path, write)
            threading.Thread(target=reap, args=(pid, header), name="backup-writer", daemon=True).start()
            return header

        def reap(pid: int, header: dict[str, Any]) -> None:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                on_done(StorageError(f"writing backup {path} failed (writer exit status {status})"))
            else:
                on_done({"keys": header["keys"], "applied_index": header["applied_index"], "bytes": os.path.getsize(path)})

        def started(result: Any) -> None:
            if isinstance(result, BaseException):
                on_done(result)

        self.run_at_barrier(fork_writer, started, timeout=timeout)

    def transfer_leadership(self, target: str | None, on_done: OnDone, *, timeout: float = 5.0) -> None:
        """Hand leadership to `target` (a raft address; None picks the most caught-up member).

        As Raft §3.10 asks, this leader proposes nothing while the transfer runs, so the target
        can catch up and stay caught up; requests queue meanwhile. `on_done(None)` once another
        node leads, or an exception.
        """
        deadline = time.monotonic() + timeout
        own = self.raft.settings.address
        with self._lock:
            self._hold_until = deadline
        self.raft.refuse_forwarded(timeout)

        def finish(result: Any) -> None:
            self.raft.refuse_forwarded(0)
            with self._lock:
                self._hold_until = 0.0
                self._flush_locked()
            on_done(result)

        def attempt() -> None:
            self.raft.transfer_leadership(target, sent)

        def sent(failure: Failure | None) -> None:
            if failure is None:
                watch()
            elif failure is Failure.DENIED and time.monotonic() < deadline:
                threading.Timer(0.02, attempt).start()  # the target is catching up: again shortly
            else:
                finish(CommandError(f"leadership transfer refused: {failure.reason} (is the target connected and caught up?)"))

        def watch() -> None:
            status = self.raft.status()
            if status.leader is not None and status.leader != own and (target is None or status.leader == target):
                finish(None)
            elif time.monotonic() < deadline:
                threading.Timer(0.02, watch).start()
            else:
                finish(CommandError("leadership did not move before the deadline; the cluster kept or re-elected this leader"))

        attempt()

    def members(self) -> list[tuple[str, str | None, str | None]]:
        """Current Raft members as (raft address, id, client address) from the registry."""
        registry = self.read_local(c.Members())
        return [(raft, *registry.get(raft, (None, None))) for raft in self.raft.status().members]

    def add_member(self, raft: str, node_id: str, client: str, on_done: OnDone) -> None:
        """Record the member in the registry, then add it to the Raft configuration."""

        def registered(result: Any) -> None:
            if isinstance(result, BaseException):
                on_done(result)
                return
            self.raft.add_member(raft, lambda failure: on_done(_membership_result(failure, "add")))

        self.submit(c.SetMember(raft, node_id, client), registered)

    def remove_member(self, raft: str, on_done: OnDone) -> None:
        """Remove the member from the Raft configuration, then from the registry."""

        def removed(failure: Failure | None) -> None:
            if failure is not None:
                on_done(_membership_result(failure, "remove"))
                return
            self.submit(c.RemoveMember(raft), lambda result: on_done(True if not isinstance(result, BaseException) else result))

        self.raft.remove_member(raft, removed)

    # -------------------------------------------------------------------- snapshots
    def _write_state(self, path: str, meta: SnapshotMeta) -> None:
        """Runs in the forked snapshot child: a frozen copy of the state machine."""
        header = raft_snapshot_header(meta, keys=len(self.fsm), created_ms=self.clock.now_ms())
        write_snapshot(path, header, self.fsm.snapshot_sections(), fsync=self.options.raft.fsync)

    def _load_state(self, path: str) -> SnapshotMeta:
        reader = SnapshotReader(path)
        h = reader.header
        if h.get("kind") != "raft-snapshot":
            raise StorageError(f"{path} is not a raft snapshot (kind {h.get('kind')!r})")
        with self._fsm_lock:
            self.fsm.restore(reader.sections())
        self.blocking.restored()
        if self.feed.listening:
            self.feed.gap(self.fsm.feed_seq)
        log.info("restored %d keys from snapshot at index %d", len(self.fsm), h["last"][0])
        return SnapshotMeta(
            last=LogPosition(h["last"][0], h["last"][1], h["last_command"]),
            prev=LogPosition(h["prev"][0], h["prev"][1], h["prev_command"]),
            members=tuple(h["members"]),
        )

    # ------------------------------------------------------------------------ status
    def status(self) -> NodeStatus:
        raft: RaftStatus = self.raft.status()
        with self._lock:
            inflight = len(self._inflight)
            queued = len(self._writes) + len(self._reads) + len(self._index_reads)
        return NodeStatus(
            id=self.node_id,
            address=raft.address,
            role=raft.role.value,
            leader=raft.leader,
            term=raft.term,
            commit_index=raft.commit_index,
            applied_index=raft.applied_index,
            log_len=raft.log_len,
            last_snapshot_index=raft.last_snapshot_index,
            keys=len(self.fsm),
            members=raft.members,
            revision=self.fsm.revision,
            replicated_time_ms=self.fsm.now_ms,
            snapshots_taken=raft.snapshots_taken,
            last_snapshot_seconds=raft.last_snapshot_seconds,
            inflight_entries=inflight,
            queued_requests=queued,
            connected_peers=tuple(sorted(self.raft.connected_peers())),
        )

    def digest_async(self, on_done: OnDone) -> None:
        """(applied index, state digest) of one moment, without stalling the node: taken on
        the Raft thread between entries; a large state is hashed by a forked child.
        Replicas at the same applied index report the same digest."""

        def take() -> None:
            index = self.raft.applied_index
            if len(self.fsm) <= _INLINE_DIGEST_KEYS:
                on_done((index, self.fsm.digest()))
                return
            try:
                pid, read_fd = compute_in_child(lambda: self.fsm.digest().encode())
            except OSError as exc:
                on_done(StorageError(f"cannot fork to compute the digest: {exc}"))
                return

            def collect() -> None:
                with os.fdopen(read_fd, "rb") as pipe:
                    digest = pipe.read().decode()
                _, status = os.waitpid(pid, 0)
                on_done((index, digest) if status == 0 and digest else StorageError("digest computation failed"))

            threading.Thread(target=collect, name="digest", daemon=True).start()

        self.raft.call_soon(take)

    def digest(self, timeout: float = 60.0) -> tuple[int, str]:
        """Blocking form of digest_async (not from the Raft thread)."""
        result = wait_for(self.digest_async, timeout, "digest not computed in time")
        if isinstance(result, BaseException):
            raise result
        return result

    # -- cluster-operation accessors --
    # What raftcache.operations (membership, transfer, backups) and INFO need to know about
    # the Raft node, so that nothing outside this module reaches into `self.raft`.
    @property
    def address(self) -> str:
        """This node's raft (peer) address."""
        return self.raft.settings.address

    def is_leader(self) -> bool:
        return self.raft.role is Role.LEADER

    def connected_peers(self) -> frozenset[str]:
        """Raft addresses of the members this node currently has a connection to."""
        return frozenset(self.raft.connected_peers())

    def force_snapshot(self) -> None:
        """Compact the log now (RAFTCACHE COMPACT)."""
        self.raft.force_snapshot()

    def volatile_keys(self) -> int:
        """Keys with an expiry (a local, possibly stale count)."""
        return self.fsm.volatile_keys()

    def memory_info(self) -> dict[str, Any]:
        """maxmemory's view of this replica (accounted bytes, settings, eviction statistics)."""
        fsm = self.fsm
        settings = fsm.memory_settings
        return {
            "used_memory": fsm.used_memory,
            "maxmemory": settings.maxmemory,
            "maxmemory_policy": settings.get("maxmemory-policy"),
            "maxmemory_samples": settings.samples,
            "evicted_keys": fsm.evicted_keys,
            "expired_keys": fsm.expired_keys,
            "keyspace_hits": fsm.keyspace_hits,
            "keyspace_misses": fsm.keyspace_misses,
            "notify_keyspace_events": settings.get("notify-keyspace-events"),
        }

    def notify_setting(self) -> str:
        """The replicated notify-keyspace-events classes (pubsub.py), as of the last entry applied."""
        return self.fsm.memory_settings.get("notify-keyspace-events")


class _StateMachineHooks:
    """The replica as the state machine consensus drives (consensus.StateMachine)."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def apply(self, payload: bytes) -> list[Any]:
        return self._replica._apply(payload)

    def snapshot(self, path: str, meta: SnapshotMeta) -> None:
        self._replica._write_state(path, meta)

    def restore(self, path: str) -> SnapshotMeta:
        return self._replica._load_state(path)


def wait_for(start: Callable[[OnDone], None], timeout: float, what: str) -> Any:
    """Call `start(on_done)` and block until `on_done(result)` runs; return that result (a
    value or an exception instance). Raises OutcomeUnknownError(`what`) after `timeout`.
    For callers on their own threads, never the Raft thread (which delivers the result)."""
    done = threading.Event()
    box: list[Any] = []

    def on_done(result: Any) -> None:
        box.append(result)
        done.set()

    start(on_done)
    if not done.wait(timeout):
        raise OutcomeUnknownError(what)
    return box[0]


def raft_snapshot_header(meta: SnapshotMeta, *, keys: int, created_ms: int) -> dict[str, Any]:
    """The header of a node's snapshot file: where it sits in the Raft log, and the members."""
    return {
        "kind": "raft-snapshot",
        "last": [meta.last.index, meta.last.term],
        "prev": [meta.prev.index, meta.prev.term],
        "last_command": meta.last.command,
        "prev_command": meta.prev.command,
        "members": list(meta.members),
        "keys": keys,
        "created_ms": created_ms,
    }


def _deliver(req: _Request, result: Any) -> None:
    try:
        req.on_done(result)
    except Exception:
        log.exception("result callback failed")


def _membership_result(failure: Failure | None, kind: str) -> Any:
    if failure is None:
        return True
    if failure is Failure.DENIED:
        return CommandError(
            f"membership {kind} refused by Raft: another membership change is still committing, "
            "the node is already (or not) a member, or this node's leadership is too new; retry shortly"
        )
    if failure.definite:
        return NoLeaderError(f"membership {kind} not applied: {failure.reason}")
    return OutcomeUnknownError(f"membership {kind}: {failure.reason}; check `raftcache members list`")


def _drop_expired(reads: list[_Request], now: float, expired: list[tuple[_Request, BaseException]]) -> list[_Request]:
    """The reads still within their deadline; the others go to `expired` with their error."""
    keep = []
    for req in reads:
        if req.deadline <= now:
            expired.append((req, _timeout_error(req)))
        else:
            keep.append(req)
    return keep


def _timeout_error(req: _Request) -> BaseException:
    reason = req.failure.reason if req.failure is not None else "no quorum answered"
    if req.maybe_applied:
        return OutcomeUnknownError(f"outcome unknown: {reason}; the write may or may not have been applied")
    if req.failure is Failure.QUEUE_FULL:
        return OverloadedError(f"not applied: {reason}")
    return NoLeaderError(f"not applied: cluster unavailable ({reason})")
