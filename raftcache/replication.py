"""The Raft adapter: the only module that imports pysyncobj.

Everything above this module sees :class:`RaftNode` with typed outcomes
(:class:`Failure`), a typed :class:`RaftStatus` and our own exceptions. What lives here and
why (see the project README's architecture section for the full picture):

* **Security** — peer messages are pickles, so every node sets pysyncobj's ``password``
  (Fernet: authenticated encryption) and binds the raft port to its own address, never
  0.0.0.0. A non-loopback raft address without a secret is refused.
* **Durable journal** — pysyncobj's mmap journal never fsyncs; we hand it our own
  (:class:`_Journal` over :class:`raftcache.wal.LogFile`). The guarded transport syncs the
  journal before *any* message leaves the node, so no entry is acknowledged (follower ack,
  or a leader counting itself) before it is on disk.
* **Append-entries filter** — pysyncobj followers truncate and re-append whenever an
  append-entries overlaps their log, even without a conflict (Raft §5.3 only allows it on a
  conflict), which can briefly drop entries they already acknowledged. When our last entry
  is from the sender's term, our whole log provably matches the leader's, so overlapping
  entries are dropped from the message instead. Two more follower-side fixes: a leader's
  snapshot-transfer messages never raise the commit index over a possibly conflicting log,
  and log-conflict backtracking cannot be undone by the leader's pipelined messages (which
  left a deposed leader unable to rejoin for minutes under steady writes). Leader side: a
  follower's late acks (from a backlog after a pause) no longer rewind its next index, which
  made the leader resend its whole snapshot once per late ack.
* **Snapshots** — pysyncobj's custom serializer runs on its tick thread; we fork, and the
  child writes a msgpack snapshot of the state machine while the parent keeps ticking.
* **Tuned config** — no 100 ms batching delay, our own deadlines, fast reconnects.

Threading: pysyncobj runs one tick thread; apply, proposal callbacks and tick hooks run on
it. :meth:`RaftNode.propose` is thread-safe; other mutations are marshalled onto the tick
thread with :meth:`RaftNode.call_soon`.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import os
import random
import signal
import socket
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pysyncobj.syncobj as _pso_syncobj
import pysyncobj.tcp_connection as _pso_tcp
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.monotonic import monotonic as _pso_monotonic
from pysyncobj.node import TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.transport import TCPTransport

from .errors import BindError, ConfigError, StorageError
from .snapshot import remove_partial_files, unlink_quietly, write_in_child
from .wal import Entry, LogFile, MetaFile

log = logging.getLogger(__name__)

# Used only when every raft address is loopback and no secret was configured: traffic is still
# Fernet-framed, but anyone on this host could forge it. Documented; warned about at start.
DEV_SECRET = "raftcache-insecure-loopback-development-secret"


# ----------------------------------------------------------------------------- public types
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


_FAILURES = {
    FAIL_REASON.QUEUE_FULL: Failure.QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER: Failure.NO_LEADER,
    FAIL_REASON.DISCARDED: Failure.DISCARDED,
    FAIL_REASON.NOT_LEADER: Failure.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED: Failure.LEADER_CHANGED,
    FAIL_REASON.REQUEST_DENIED: Failure.DENIED,
    FAIL_REASON.UNKNOWN_OUTCOME: Failure.UNKNOWN,
}

_ROLES = {0: Role.FOLLOWER, 1: Role.CANDIDATE, 2: Role.LEADER}


@dataclass(frozen=True, slots=True)
class LogPosition:
    index: int
    term: int
    command: bytes  # the raw pysyncobj entry (kept so a restore can rebuild the log head)


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
    """Everything the adapter needs; built from the TOML config or `Cache(...)` arguments."""

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


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_address(address: str, what: str = "raft address") -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {address!r} must be host:port")
    if host.strip("[]") in ("0.0.0.0", "::"):
        raise ConfigError(f"{what} {address!r} must be an address peers can reach, not a wildcard")


# ---------------------------------------------------------------------------- the journal
class _Journal:
    """pysyncobj's journal interface, persisted by our LogFile/MetaFile (or memory only)."""

    def __init__(self, data_dir: str | None, fsync: bool, on_fatal: Callable[[BaseException], None]) -> None:
        self._on_fatal = on_fatal
        self._file: LogFile | None = None
        self._meta_file: MetaFile | None = None
        self._meta: dict[str, Any] = {}
        self._meta_dirty = False
        self._entries: list[Entry] = []
        if data_dir is not None:
            self._file = LogFile(os.path.join(data_dir, "raft.log"), fsync=fsync)
            self._meta_file = MetaFile(os.path.join(data_dir, "raft.meta"))
            self._meta = self._meta_file.load()
            self._entries = self._file.open()

    # -- what the adapter uses
    def sync(self) -> None:
        if self._file is not None and self._file.dirty:
            self._file.sync()

    @property
    def payload_bytes(self) -> int:
        return self._file.bytes if self._file is not None else 0

    def find(self, index: int) -> int | None:
        """Position of the entry with this log index, if held."""
        if not self._entries:
            return None
        pos = index - self._entries[0][1]
        return pos if 0 <= pos < len(self._entries) else None

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except StorageError as exc:
            self._on_fatal(exc)

    # -- pysyncobj's Journal interface
    def add(self, command: bytes, idx: int, term: int) -> None:
        self._entries.append((command, idx, term))
        if self._file is not None:
            self._guard(lambda: self._file.append(command, idx, term))  # type: ignore[union-attr]

    def clear(self) -> None:
        self._entries = []
        if self._file is not None:
            self._guard(lambda: self._file.truncate(0))  # type: ignore[union-attr]

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 - pysyncobj's name
        del self._entries[entryFrom:]
        if self._file is not None:
            self._guard(lambda: self._file.truncate(entryFrom))  # type: ignore[union-attr]

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802
        self._entries = self._entries[entryTo:]
        if self._file is not None:
            self._guard(lambda: self._file.rewrite(self._entries))  # type: ignore[union-attr]

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if self._meta_dirty:
            self._store_meta()
        if self._file is not None:
            self._guard(self._file.close)

    def flush(self) -> None:
        if self._file is not None:
            self._guard(self._file.flush)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802
        if self._meta.get("commit") != raftCommitIndex:
            self._meta["commit"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return self._meta.get("commit", 1)

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:  # noqa: N802
        # Raft: term and vote must be durable before any message reflecting them is sent.
        self._meta["term"] = term
        self._meta["vote"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._meta.get("term", 0)

    def getVotedForNodeId(self) -> Any:  # noqa: N802
        return self._meta.get("vote")

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if self._meta_dirty:
            self._store_meta()

    def _store_meta(self) -> None:
        self._meta_dirty = False
        if self._meta_file is not None:
            self._guard(lambda: self._meta_file.store(dict(self._meta)))  # type: ignore[union-attr]


# pysyncobj builds its journal with `createJournal(conf.journalFile)`. We pass our journal
# object as `journalFile` and let this factory hand it back; anything else goes to the original.
_original_create_journal = _pso_syncobj.createJournal


def _create_journal(journal_file: Any) -> Any:
    if isinstance(journal_file, _Journal):
        return journal_file
    return _original_create_journal(journal_file)


_pso_syncobj.createJournal = _create_journal


# ----------------------------------------------------------------- peer message compression
class _PeerCompression:
    """pysyncobj zlib-compresses every peer message at level 3, once per follower, on the Raft
    thread: 2 ms per 100 KB batch here, more than the whole rest of the commit path. On
    loopback and LAN links that is pure cost, so the level is configurable and 0 by default.
    Level 0 still writes a zlib stream (stored blocks), which any pysyncobj decompresses."""

    level = 0

    @staticmethod
    def compress(data: bytes, level: int = -1) -> bytes:
        return zlib.compress(data, _PeerCompression.level)

    decompress = staticmethod(zlib.decompress)


_pso_tcp.zlib = _PeerCompression  # type: ignore[assignment]


# -------------------------------------------------------------------------- the transport
class _GuardedTransport(TCPTransport):
    """TCP transport with our hooks: journal sync before send, message filter, fault drops."""

    def send(self, node: Any, message: Any) -> bool:
        node_impl: RaftNode = self._syncObj._raftcache_node
        if not node_impl._before_send(node):
            return False
        return super().send(node, message)

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        node_impl: RaftNode = self._syncObj._raftcache_node
        message = node_impl._filter_incoming(node, message)
        if message is None:
            return
        keep = node_impl._next_index_to_keep(node, message)
        super()._onMessageReceived(node, message)
        if keep is not None:
            node_impl._keep_next_index(node, keep)

    def _onNodeConnected(self, node: Any) -> None:  # noqa: N802
        log.info("peer %s connected", getattr(node, "address", node))
        super()._onNodeConnected(node)

    def _onNodeDisconnected(self, node: Any) -> None:  # noqa: N802
        log.info("peer %s disconnected", getattr(node, "address", node))
        super()._onNodeDisconnected(node)


class _SyncObj(SyncObj):
    def __init__(self, node: RaftNode, conf: SyncObjConf) -> None:
        self._raftcache_node = node  # read by the transport, built inside SyncObj.__init__
        super().__init__(node.settings.address, list(node.settings.peers), conf, transportClass=_GuardedTransport)

    @replicated
    def _apply_batch(self, payload: bytes) -> Any:
        return self._raftcache_node._apply(payload)


# --------------------------------------------------------------------------- the adapter
ApplyFn = Callable[[bytes], Any]
WriteStateFn = Callable[[str, SnapshotMeta], None]
LoadStateFn = Callable[[str], SnapshotMeta]
ProposalCallback = Callable[[Any, "Failure | None"], None]


@dataclass
class _Hooks:
    apply: ApplyFn
    write_state: WriteStateFn
    load_state: LoadStateFn
    on_tick: Callable[[], None] = lambda: None
    on_role: Callable[[Role], None] = lambda role: None
    on_fatal: Callable[[BaseException], None] = lambda exc: None


@dataclass
class _SnapshotJob:
    pid: int
    index: int
    started: float


@dataclass
class _Faults:
    """Test-only message drops (a transport-level partition)."""

    isolated: set[str] = field(default_factory=set)


class RaftNode:
    """One Raft member running pysyncobj, seen through typed, thread-safe methods."""

    def __init__(
        self,
        settings: RaftSettings,
        *,
        apply: ApplyFn,
        write_state: WriteStateFn,
        load_state: LoadStateFn,
        on_tick: Callable[[], None] | None = None,
        on_role: Callable[[Role], None] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        _check_settings(settings)
        self.settings = settings
        self._hooks = _Hooks(apply, write_state, load_state)
        if on_tick:
            self._hooks.on_tick = on_tick
        if on_role:
            self._hooks.on_role = on_role
        if on_fatal:
            self._hooks.on_fatal = on_fatal
        self._role = Role.FOLLOWER
        self._fatal: BaseException | None = None
        self._closing = False
        self._calls: deque[Callable[[], None]] = deque()
        self._faults = _Faults()
        self._refuse_forwarded_until = 0.0  # leadership transfer: refuse commands forwarded to us
        self._backtrack: tuple[tuple[int, str], int] | None = None  # ((term, leader), next index we asked for)
        self._snapshot: _SnapshotJob | None = None
        # pysyncobj only re-arms its serializer after a SUCCESS or FAILED report; set when a
        # snapshot ended without the child reporting (fork failed, child killed).
        self._snapshot_failed = False
        self._last_snapshot_index = 0
        self._snapshots_taken = 0
        self._last_snapshot_seconds: float | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if settings.data_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="raftcache-mem-")
            dump_dir = self._tmpdir.name
            log.warning(
                "node %s runs MEMORY-ONLY (no data_dir): its data lives only in the replicas; "
                "a restarted memory-only node rejoins empty and must catch up from peers",
                settings.address,
            )
        else:
            os.makedirs(settings.data_dir, exist_ok=True)
            dump_dir = settings.data_dir
        self._dump_path = os.path.join(dump_dir, "snapshot.rcs")
        if settings.data_dir is not None:
            remove_partial_files(self._dump_path)  # left by writers killed with an earlier run
        self._journal = _Journal(settings.data_dir, settings.fsync, self._fail)
        self._sync: _SyncObj | None = None
        self._owner: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start ticking. The SyncObj is built on an owner thread that lives until close():
        pysyncobj stops its tick thread when the thread that built it exits."""
        _check_bindable(self.settings.address)
        built = threading.Event()
        errors: list[BaseException] = []

        def own() -> None:
            try:
                self._sync = _SyncObj(self, self._conf())
                self._sync._poller.subscribe(self._wake_r, self._drain_wake, POLL_EVENT_TYPE.READ)
                self._sync.addOnTickCallback(self._on_tick)
            except BaseException as exc:  # surfaced to start()'s caller
                errors.append(exc)
                return
            finally:
                built.set()
            self._stop.wait()

        self._owner = threading.Thread(target=own, name=f"raft-owner-{self.settings.address}", daemon=True)
        self._owner.start()
        built.wait()
        if errors:
            raise errors[0]

    def _conf(self) -> SyncObjConf:
        s = self.settings
        _PeerCompression.level = s.peer_compression_level
        secret = s.secret
        if not secret:
            log.warning("no cluster secret: using the built-in development key (loopback only, NOT secure)")
            secret = DEV_SECRET
        low, high = s.election_timeout_s
        return SyncObjConf(
            password=secret,
            bindAddress=s.address,
            autoTick=True,
            autoTickPeriod=0.05,
            appendEntriesUseBatch=False,  # send entries at once instead of every 100 ms
            appendEntriesPeriod=s.heartbeat_s,
            appendEntriesBatchSizeBytes=2 * s.max_entry_bytes,  # above any entry: avoids its chunking path
            raftMinTimeout=low,
            raftMaxTimeout=high,
            connectionTimeout=max(3.5, high * 1.5),
            connectionRetryTime=s.connect_retry_s,
            leaderFallbackTimeout=s.leader_lease_s,
            commandsWaitLeader=False,  # fail fast with NO_LEADER; the replica retries
            commandsQueueSize=100_000,
            logCompactionMinEntries=s.snapshot_min_entries,
            logCompactionMinTime=s.snapshot_min_interval_s,
            logCompactionBatchSize=1 << 20,
            sendBufferSize=1 << 20,
            recvBufferSize=1 << 20,
            fullDumpFile=self._dump_path,
            journalFile=self._journal,
            serializer=self._serialize,
            deserializer=self._deserialize,
            serializeChecker=self._check_serialize,
            dynamicMembershipChange=True,
            onStateChanged=self._on_state_changed,
        )

    def close(self) -> None:
        """Stop Raft and wait for its thread; idempotent."""
        if self._closing:
            return
        self._closing = True
        sync = self._sync
        if sync is not None:
            sync.destroy()
            deadline = time.monotonic() + 5
            while sync.tick_thread_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._stop.set()
        self._kill_snapshot_child()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    @property
    def fatal_error(self) -> BaseException | None:
        return self._fatal

    def _fail(self, exc: BaseException) -> None:
        """Stop participating at once (no further sends, no acks) and report upwards."""
        if self._fatal is not None:
            return
        self._fatal = exc
        log.critical("raft node %s stopping: %s", self.settings.address, exc)
        try:
            self._hooks.on_fatal(exc)
        except Exception:
            log.exception("fatal-error hook failed")

    # -------------------------------------------------------------------- proposals
    def propose(self, payload: bytes, callback: ProposalCallback) -> Failure | None:
        """Replicate `payload`. Thread-safe.

        Returns a Failure when the proposal is refused on the spot (then `callback` never
        runs); otherwise `callback(result, failure)` runs later on the Raft thread. Never
        calling back from inside propose() lets callers propose while holding their locks.
        """
        sync = self._sync
        if sync is None or self._fatal is not None or self._closing:
            return Failure.STOPPED
        guard = threading.Lock()
        refused: list[Failure] = []
        proposing = True

        def done(result: Any, error: int) -> None:
            failure = None if error == FAIL_REASON.SUCCESS else _FAILURES.get(error, Failure.UNKNOWN)
            with guard:
                if proposing:
                    refused.append(failure or Failure.UNKNOWN)
                    return
            callback(result, failure)

        sync._apply_batch(payload, callback=done)
        with guard:
            proposing = False
        return refused[0] if refused else None

    def _apply(self, payload: bytes) -> Any:
        if self._fatal is not None:
            return None
        try:
            return self._hooks.apply(payload)
        except Exception as exc:
            # apply must not raise into pysyncobj: it would re-apply the entry on the next tick.
            self._fail(exc if isinstance(exc, StorageError) else StorageError(f"cannot apply log entry: {exc}"))
            return None

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the Raft thread at its next tick (woken at once)."""
        self._calls.append(fn)
        self.wake()

    def wake(self) -> None:
        """Cut the Raft thread's idle poll short (it sleeps up to 50 ms between ticks)."""
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is pending anyway) or closed

    def _drain_wake(self, fd: int, event: int) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # ----------------------------------------------------------------------- status
    def status(self) -> RaftStatus:
        sync = self._sync
        if sync is None:
            raise StorageError("raft node not started")
        leader = sync._getLeader()
        members = tuple(sorted([self.settings.address, *(n.address for n in sync.otherNodes)]))
        return RaftStatus(
            address=self.settings.address,
            role=self._role,
            leader=None if leader is None else leader.address,
            term=sync.raftCurrentTerm,
            commit_index=sync.raftCommitIndex,
            applied_index=sync.raftLastApplied,
            log_len=sync._getRaftLogSize(),
            last_snapshot_index=self._last_snapshot_index,
            members=members,
            ready=sync.isReady(),
            snapshots_taken=self._snapshots_taken,
            last_snapshot_seconds=self._last_snapshot_seconds,
        )

    @property
    def role(self) -> Role:
        return self._role

    @property
    def applied_index(self) -> int:
        return 0 if self._sync is None else self._sync.raftLastApplied

    # ------------------------------------------------------------------ operations
    def force_snapshot(self) -> None:
        if self._sync is not None:
            self._sync.forceLogCompaction()

    def add_member(self, address: str, callback: Callable[[Failure | None], None]) -> None:
        self._membership_change("add", address, callback)

    def remove_member(self, address: str, callback: Callable[[Failure | None], None]) -> None:
        self._membership_change("remove", address, callback)

    def _membership_change(self, kind: str, address: str, callback: Callable[[Failure | None], None]) -> None:
        validate_address(address)
        if not is_loopback(address) and not self.settings.secret:
            raise ConfigError(f"raft address {address!r} is not loopback: a cluster secret is required")
        sync = self._sync
        if sync is None:
            callback(Failure.STOPPED)
            return

        def done(result: Any, error: int) -> None:
            callback(None if error == FAIL_REASON.SUCCESS else _FAILURES.get(error, Failure.UNKNOWN))

        if kind == "add":
            sync.addNodeToCluster(address, callback=done)
        else:
            sync.removeNodeFromCluster(address, callback=done)

    def refuse_forwarded(self, seconds: float) -> None:
        """For a leadership transfer (Raft §3.10): answer commands that followers forward to
        this leader with NOT_LEADER (definitely not applied; they retry) for `seconds`;
        0 ends it."""
        self._refuse_forwarded_until = time.monotonic() + seconds if seconds > 0 else 0.0

    def transfer_leadership(self, target: str | None, callback: Callable[[Failure | None], None]) -> None:
        def run() -> None:
            assert self._sync is not None
            self._sync.transferLeadership(
                target,
                callback=lambda result, error: callback(
                    None if error == FAIL_REASON.SUCCESS else _FAILURES.get(error, Failure.UNKNOWN)
                ),
            )

        self.call_soon(run)

    def connected_peers(self) -> set[str]:
        """Raft addresses of the members this node currently has a connection to."""
        sync = self._sync
        if sync is None:
            return set()
        return {n.address for n in sync.otherNodes if sync.isNodeConnected(n)}

    def isolate(self, peers: set[str]) -> None:
        """Test hook: drop all traffic to and from these peers (a one-sided partition)."""
        self._faults.isolated = set(peers)

    # --------------------------------------------------------------- tick-thread hooks
    def _on_tick(self) -> None:
        if self._fatal is not None:
            return
        try:
            self._journal.sync()  # covers a single-node cluster, which never sends
        except StorageError as exc:
            self._fail(exc)
            return
        while self._calls:
            fn = self._calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("raft-thread call failed")
        if self._journal.payload_bytes > self.settings.snapshot_max_log_bytes and self._snapshot is None:
            self.force_snapshot()
        sync = self._sync
        if sync is not None and not sync.otherNodes and len(self._journal) and self._journal[-1][1] > sync.raftCommitIndex:
            # A lone node commits on its next tick, and no peer ack will wake it: tick again now.
            self.wake()
        try:
            self._hooks.on_tick()
        except Exception:
            log.exception("tick hook failed")

    def _on_state_changed(self, old: int, new: int) -> None:
        self._role = _ROLES.get(new, Role.FOLLOWER)
        sync = self._sync
        if sync is not None:  # pysyncobj becomes candidate before it increments the term
            log.info("role %s (term %s)", self._role.value, sync.raftCurrentTerm + (self._role is Role.CANDIDATE))
        try:
            self._hooks.on_role(self._role)
        except Exception:
            log.exception("role hook failed")

    def _before_send(self, node: Any) -> bool:
        """Called by the transport before every message: nothing leaves before the disk has it."""
        if self._fatal is not None or self._closing:
            return False
        if node is not None and getattr(node, "address", None) in self._faults.isolated:
            return False
        try:
            self._journal.sync()
        except StorageError as exc:
            self._fail(exc)
            return False
        return True

    def _filter_incoming(self, node: Any, message: Any) -> Any:
        if self._fatal is not None or self._closing:
            return None
        if getattr(node, "address", None) in self._faults.isolated:
            return None
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == "append_entries":
                checked = self._check_append_entries(node, message)
                return self._trim_append_entries(checked) if checked is message else checked
            if kind == "apply_command" and self._refuse_forwarded_until and time.monotonic() < self._refuse_forwarded_until:
                if "request_id" in message and self._sync is not None:
                    self._sync._SyncObj__transport.send(  # type: ignore[attr-defined]
                        node,
                        {"type": "apply_command_response", "request_id": message["request_id"], "error": FAIL_REASON.NOT_LEADER},
                    )
                return None
        return message

    def _next_index_to_keep(self, node: Any, message: Any) -> int | None:
        """*A late ack must not rewind the leader.* pysyncobj's leader sets a follower's next
        index to whatever a success reply names. A follower that was paused (or slow) works
        through a backlog of append-entries the leader pipelined long ago and acks each, so
        every late ack moved the next index back; once behind the leader's log start, each one
        made the leader send its whole snapshot again (55-180 loads of the same snapshot in
        1-2 s after a pause, each rewinding the follower's state). Acks still raise the match
        index; only a reset reply (a log conflict or gap) moves the next index back. Returns
        the next index to restore after pysyncobj has handled `message`, if it would go back."""
        if self._role is not Role.LEADER or not isinstance(message, dict) or message.get("type") != "next_node_idx":
            return None
        if message.get("reset") or not message.get("success") or self._sync is None:
            return None
        current = self._sync._SyncObj__raftNextIndex.get(node)  # type: ignore[attr-defined]
        return current if current is not None and message.get("next_node_idx", current) < current else None

    def _keep_next_index(self, node: Any, index: int) -> None:
        next_index = self._sync._SyncObj__raftNextIndex  # type: ignore[union-attr]
        if node in next_index and next_index[node] < index:
            next_index[node] = index

    def _check_append_entries(self, node: Any, message: dict[str, Any]) -> dict[str, Any]:
        """Two fixes to pysyncobj's follower side of append-entries (see module doc); returns
        `message` itself when neither applies."""
        sync = self._sync
        if sync is None or message.get("term", -1) < sync.raftCurrentTerm or "transmission" in message:
            return message
        if "prevLogIdx" not in message:
            return self._snapshot_offer(message, sync.raftCommitIndex)
        return self._backtrack_to_agreement(node, message)

    def _snapshot_offer(self, message: dict[str, Any], commit_index: int) -> dict[str, Any]:
        """*Commit only over a matching log.* A leader's snapshot-transfer messages carry no
        prevLogIdx, and pysyncobj raises its commit index from each of them as from any other,
        up to the end of our log. Until the last chunk has arrived and loaded, our log may still
        hold entries the leader never had (a deposed leader's uncommitted writes): between two
        chunks they would be committed, applied and acknowledged to clients, and then replaced
        by the snapshot (a lost acknowledged write; the soak found it). A last chunk that fails
        to load leaves that log in place too. So no such message advances our commit index;
        after a load, the leader's next append-entries (matched at the snapshot) does."""
        if message.get("serialized") is not None:
            self._backtrack = None  # the snapshot replaces our log
        capped = dict(message)
        capped["commit_index"] = min(message.get("commit_index") or 0, commit_index)
        return capped

    def _backtrack_to_agreement(self, node: Any, message: dict[str, Any]) -> dict[str, Any]:
        """*Backtracking that converges.* On a log conflict pysyncobj answers "try index p",
        the leader steps back one entry, but every later append-entries already on its way (the
        leader pipelines) finds our log too short and answers "try the end of your log",
        undoing the step; under steady writes a follower that missed a term never catches up.
        We remember the index we asked for and give that same answer to the too-short
        messages, and on a conflict we ask for the first index of our conflicting term, so the
        leader skips a whole term per round trip (Raft §5.3's optimisation)."""
        journal = self._journal
        if not len(journal):
            return message
        source = (message["term"], getattr(node, "address", ""))
        if self._backtrack is not None and self._backtrack[0] != source:
            self._backtrack = None
        prev = message["prevLogIdx"]
        pos = journal.find(prev)
        if pos is None:
            if self._backtrack is not None and prev > journal[-1][1] and journal.find(self._backtrack[1]) is not None:
                return self._ask_for(message, self._backtrack[1])
            return message
        ours = journal[pos][2]
        if ours == message["prevLogTerm"]:
            self._backtrack = None  # found where we agree: pysyncobj's answers are right from here
            return message
        first = pos  # back to the first entry of our conflicting term, never to our first entry
        while first > 1 and journal[first - 1][2] == ours:  # (the snapshot boundary, which the leader has)
            first -= 1
        self._backtrack = (source, journal[first][1])
        return self._ask_for(message, journal[first][1])

    @staticmethod
    def _ask_for(message: dict[str, Any], index: int) -> dict[str, Any]:
        """The message as a heartbeat that makes pysyncobj answer "send from `index`": a
        prevLogTerm no entry has forces its conflict reply for that index (and nothing is
        appended or committed)."""
        asked = dict(message)
        asked["prevLogIdx"] = index
        asked["prevLogTerm"] = -1
        asked["entries"] = []
        return asked

    def _trim_append_entries(self, message: dict[str, Any]) -> dict[str, Any]:
        """Keep a follower from truncating entries it already holds (see module doc).

        If our last entry carries the sender's term, it was written by this very leader, so
        (log matching) our whole log equals the leader's up to it. Entries the message
        repeats are dropped and the message re-anchored at our last entry.
        """
        if "prevLogIdx" not in message or "transmission" in message or self._sync is None:
            return message
        term = message["term"]
        if term < self._sync.raftCurrentTerm or not len(self._journal):
            return message
        _, last_index, last_term = self._journal[-1]
        if last_term != term or last_index <= message["prevLogIdx"]:
            return message
        entries = message.get("entries") or []
        trimmed = dict(message)
        trimmed["prevLogIdx"] = last_index
        trimmed["prevLogTerm"] = last_term
        trimmed["entries"] = [e for e in entries if e[1] > last_index]
        return trimmed

    # -------------------------------------------------------------------- snapshots
    def _serialize(self, tmp_path: str, raft_data: Any) -> None:
        """pysyncobj's serializer hook, on the tick thread: fork and return at once.

        pysyncobj renames `tmp_path` over the dump right after we return. We keep `tmp_path`
        absent so that rename fails harmlessly; the child renames its own complete file, and
        `_check_serialize` reports the outcome once the child exits.
        """
        last, prev, nodes = raft_data
        meta = SnapshotMeta(
            last=LogPosition(last[1], last[2], last[0]),
            prev=LogPosition(prev[1], prev[2], prev[0]),
            members=tuple(sorted(n.address for n in nodes)),
        )
        unlink_quietly(tmp_path)
        try:
            pid = write_in_child(self._dump_path, lambda partial: self._hooks.write_state(partial, meta))
        except OSError as exc:
            log.error("cannot fork a snapshot writer: %s", exc)
            self._snapshot_failed = True
            return
        self._snapshot = _SnapshotJob(pid=pid, index=meta.last.index, started=time.monotonic())

    def _check_serialize(self) -> int:
        job = self._snapshot
        if job is None:
            if self._snapshot_failed:
                self._snapshot_failed = False
                return SERIALIZER_STATE.FAILED
            return SERIALIZER_STATE.NOT_SERIALIZING
        try:
            pid, status = os.waitpid(job.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = job.pid, 1
        if pid == 0:
            return SERIALIZER_STATE.SERIALIZING
        self._snapshot = None
        if status != 0:
            log.error("snapshot at index %d failed (child exit status %d)", job.index, status)
            return SERIALIZER_STATE.FAILED
        self._last_snapshot_index = job.index
        self._snapshots_taken += 1
        self._last_snapshot_seconds = time.monotonic() - job.started
        log.info("snapshot at index %d written in %.3fs", job.index, self._last_snapshot_seconds)
        return SERIALIZER_STATE.SUCCESS

    def _deserialize(self, path: str) -> tuple[Any, Any, set[Any]]:
        """pysyncobj's deserializer hook: restore the state machine from a snapshot file.

        Called at start (our own snapshot) and after a snapshot streamed from the leader was
        installed; a local snapshot still being written is abandoned in that case.
        """
        self._kill_snapshot_child()
        try:
            with open(path, "rb") as f:  # pysyncobj renamed a streamed file without fsync
                os.fsync(f.fileno())
            meta = self._hooks.load_state(path)
        except BaseException as exc:
            # pysyncobj would swallow this and run on with an empty state machine: stop instead.
            self._fail(exc if isinstance(exc, StorageError) else StorageError(f"cannot load snapshot {path}: {exc}"))
            raise
        self._last_snapshot_index = meta.last.index
        self._rearm_election_timer()
        self.call_soon(self._fail_orphaned_proposals)
        # pysyncobj clears the journal unless it starts exactly at the snapshot's (prev, last).
        # After a crash between writing a snapshot and compacting, it holds older entries too:
        # drop just those, so the entries after the snapshot survive.
        pos = self._journal.find(meta.prev.index)
        if pos is not None and pos + 1 < len(self._journal):
            held_prev, held_last = self._journal[pos], self._journal[pos + 1]
            if held_prev[2] == meta.prev.term and held_last[2] == meta.last.term and pos > 0:
                self._journal.deleteEntriesTo(pos)
        last = (meta.last.command, meta.last.index, meta.last.term)
        prev = (meta.prev.command, meta.prev.index, meta.prev.term)
        return last, prev, {TCPNode(address) for address in meta.members}

    def _fail_orphaned_proposals(self) -> None:
        """Proposals waiting for a log index that a snapshot load skipped are never called
        back by pysyncobj (it calls back only when it applies that index itself). Their outcome
        is unknown: say so now, so the replica retries them (same exactly-once tag) at once
        instead of at their deadline. Runs on the tick after the load."""
        sync = self._sync
        if sync is None:
            return
        waiting = sync._SyncObj__commandsWaitingCommit  # type: ignore[attr-defined]
        applied = sync.raftLastApplied
        orphaned = sorted(i for i in waiting if i <= applied)
        if orphaned:
            log.info("proposals at log indexes %s..%s were skipped by the snapshot load: outcome unknown, retrying",
                     orphaned[0], orphaned[-1])
        for index in orphaned:
            for _term, callback in waiting.pop(index):
                callback(None, FAIL_REASON.UNKNOWN_OUTCOME)

    def _rearm_election_timer(self) -> None:
        """Loading a large snapshot can take longer than an election timeout, and pysyncobj's
        timer kept running meanwhile: the node would call an election before it even heard
        from the leader, raising the term and unseating a healthy leader. Give it a full
        timeout from now instead."""
        sync = self._sync
        if sync is not None:
            # pysyncobj's deadlines are on its own clock (CLOCK_MONOTONIC_RAW), not time.monotonic.
            sync._SyncObj__raftElectionDeadline = _pso_monotonic() + random.uniform(*self.settings.election_timeout_s)  # type: ignore[attr-defined]

    def _kill_snapshot_child(self) -> None:
        job = self._snapshot
        if job is None:
            return
        try:
            os.kill(job.pid, signal.SIGKILL)
            os.waitpid(job.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        remove_partial_files(self._dump_path, job.pid)
        self._snapshot = None
        self._snapshot_failed = True


def seed_snapshot_meta(members: tuple[str, ...]) -> SnapshotMeta:
    """The log position of a snapshot that seeds a brand-new cluster (``raftcache restore``).

    Every node of the new cluster gets the same seed: two no-op entries of term 0, so they all
    start at log index 2 with the same state and elect a leader in term 1 as usual.
    """
    noop = bytes([_PSO_NO_OP])
    return SnapshotMeta(last=LogPosition(2, 0, noop), prev=LogPosition(1, 0, noop), members=tuple(sorted(members)))


_PSO_NO_OP = 1  # pysyncobj's _COMMAND_TYPE.NO_OP: the type byte of its no-op entries


def _check_settings(settings: RaftSettings) -> None:
    validate_address(settings.address)
    for peer in settings.peers:
        validate_address(peer, "peer address")
    if settings.address in settings.peers:
        raise ConfigError(f"raft address {settings.address!r} is listed among its own peers")
    if not settings.secret:
        public = [a for a in (settings.address, *settings.peers) if not is_loopback(a)]
        if public:
            raise ConfigError(
                f"raft address {public[0]!r} is not loopback: set a cluster secret "
                "(peer traffic is pickled; without a secret anyone reaching the port could run code)"
            )
    low, high = settings.election_timeout_s
    if not (settings.heartbeat_s * 3 < low < high):
        raise ConfigError("need heartbeat * 3 < election timeout min < election timeout max")
    if settings.leader_lease_s <= settings.heartbeat_s:
        raise ConfigError("leader lease must exceed the heartbeat interval")
    if settings.snapshot_min_entries < 2:
        raise ConfigError("snapshot min_entries must be at least 2")


def _check_bindable(address: str) -> None:
    """pysyncobj retries a failed bind forever without a word; say it now instead."""
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
    except OSError as exc:
        raise BindError(f"cannot listen on raft address {address}: {exc.strerror or exc}") from None
