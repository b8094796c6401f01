"""The pysyncobj implementation of :class:`~raftcache.consensus.protocol.Consensus`.

**The only module in raftcache that imports pysyncobj**, and the only one that touches its
private state (``_SyncObj__...``, ``_TcpConnection__...``). :func:`check_pysyncobj` verifies,
each time a node is built, that the installed pysyncobj still has every attribute, method,
option and message type relied on here, and fails with one line if not.

What lives here and why (README "What the adapter does" has the longer story):

* **Security** — pysyncobj's peer messages, log entries and membership changes are pickles;
  none of them is used. Every connection speaks raftcache's wire instead (``wire.py``:
  msgpack frames sealed with AES-256-GCM under per-connection keys derived from the cluster
  secret; :func:`_secure` replaces the connection's send and parse), log entries are a kind
  byte + our msgpack batch (:class:`_SyncObj` replaces pysyncobj's apply and membership
  parsing), and messages that would reach one of pysyncobj's remaining ``pickle.loads``
  (chunked "transmission" entries) are dropped. The raft port binds to the node's own
  address, never 0.0.0.0. A non-loopback raft address without a secret is refused
  (``types.check_settings``).
* **Durable journal** — pysyncobj's mmap journal never fsyncs; we hand it our own
  (:class:`_Journal` over a ``LogStore``/``MetaStore``: ``wal.LogFile``/``wal.MetaFile``). The
  guarded transport syncs the journal before *any* message leaves the node, so no entry is
  acknowledged (follower ack, or a leader counting itself) before it is on disk. (Letting a
  leader's append-entries leave before its own fsync, Raft thesis §10.2.1, and sending a new
  commit index before the leader's own apply were measured and not kept: benchmarks/README.md.)
* **Log repairs** — ``repairs.py`` (pure functions) decides; :class:`_GuardedTransport` feeds
  it every incoming message and applies the answer: overlap trimming, the snapshot-offer
  commit cap, backtracking to agreement, late acks, proposals orphaned by a snapshot load.
* **Snapshots** — pysyncobj's custom serializer runs on its tick thread; we fork, and the
  child writes a msgpack snapshot of the state machine while the parent keeps ticking.
* **Per-node peer compression** — the wire compresses at this node's level, not process-wide.
* **Tuned config** — no 100 ms batching delay, our own deadlines, fast reconnects.
* **ReadIndex reads** — pysyncobj has no read index; its "has quorum" is TCP connection
  state. Four message types of our own (``read_index_probe``/``_ack`` between the leader and
  its peers, ``read_index_request``/``_reply`` from a follower to the leader) carry numbered
  rounds, kept by ``readindex.py`` (sans I/O; the rules and the safety argument are there);
  they never reach pysyncobj. It relies on pysyncobj appending a no-op entry on election (so
  an entry of the leader's own term commits without client writes): checked at start-up.

Threading: pysyncobj runs one tick thread; apply, proposal callbacks and tick hooks run on
it. :meth:`PysyncobjNode.propose` is thread-safe; other mutations are marshalled onto the tick
thread with :meth:`PysyncobjNode.call_soon`.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import pysyncobj.syncobj as _pso_syncobj
import pysyncobj.version as _pso_version
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.monotonic import monotonic as _pso_monotonic
from pysyncobj.node import TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _COMMAND_TYPE
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from ..errors import BindError, ConsensusBackendError, StorageError
from ..snapshot import remove_partial_files, unlink_quietly, write_in_child
from ..wal import LogFile, MetaFile
from . import repairs
from .protocol import Events, LogStore, MetaStore, StateMachine
from .readindex import Confirmed, IndexRequests, LeaderReads, follower_acks
from .types import (
    DEV_SECRET,
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
from .wire import WireError, WireSession

log = logging.getLogger(__name__)

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


def _failure(error: int) -> Failure | None:
    return None if error == FAIL_REASON.SUCCESS else _FAILURES.get(error, Failure.UNKNOWN)


# ------------------------------------------------------------------------ start-up check
def _init_names(cls: type) -> frozenset[str]:
    """Attribute names a class's __init__ stores or reads (private ones appear mangled)."""
    return frozenset(cls.__init__.__code__.co_names)  # type: ignore[misc]


def _code_names(owner: Any, method: str) -> frozenset[str]:
    """Names a method's code uses: the private methods it calls appear mangled."""
    return frozenset(getattr(owner, method).__code__.co_names)


def _message_constants() -> frozenset[str]:
    handler = getattr(SyncObj, "_SyncObj__onMessageReceived", None)
    return frozenset(c for c in handler.__code__.co_consts if isinstance(c, str)) if handler else frozenset()


# What this module relies on, by where it lives. Instance attributes are checked against the
# names the class's __init__ sets; message types and keys against the constants of
# SyncObj's message handler. Keep in step with every use below.
_NEEDS: tuple[tuple[str, Callable[[], Any], tuple[str, ...]], ...] = (
    ("pysyncobj.syncobj", lambda: vars(_pso_syncobj), ("createJournal",)),
    ("SyncObj", lambda: SyncObj, (
        "_getLeader", "_getRaftLogSize", "isReady", "forceLogCompaction", "addNodeToCluster",
        "removeNodeFromCluster", "transferLeadership", "isNodeConnected", "addOnTickCallback",
        "destroy", "tick_thread_alive", "raftCurrentTerm", "raftCommitIndex", "raftLastApplied",
        "otherNodes", "_applyCommand", "setCodeVersion", "_SyncObj__doApplyCommand",
        "_SyncObj__parseChangeClusterRequest", "_SyncObj__doChangeCluster",
    )),
    # The entry readers _SyncObj replaces must still be the ones pysyncobj calls.
    ("SyncObj._SyncObj__applyLogEntries", lambda: _code_names(SyncObj, "_SyncObj__applyLogEntries"), (
        "_SyncObj__doApplyCommand",
    )),
    ("SyncObj._checkCommandsToApply", lambda: _code_names(SyncObj, "_checkCommandsToApply"), (
        "_SyncObj__parseChangeClusterRequest",
    )),
    ("SyncObj._SyncObj__onMessageReceived", lambda: _code_names(SyncObj, "_SyncObj__onMessageReceived"), (
        "_SyncObj__parseChangeClusterRequest",
    )),
    # ReadIndex: a new leader appends a no-op of its term (so its reads need no client write to
    # commit one), and a tick applies committed entries before it runs the tick callbacks
    # (where applied reads are answered).
    ("SyncObj._SyncObj__onBecomeLeader", lambda: _code_names(SyncObj, "_SyncObj__onBecomeLeader"), (
        "NO_OP", "add",
    )),
    ("SyncObj._onTick", lambda: _code_names(SyncObj, "_onTick"), (
        "_SyncObj__applyLogEntries", "_SyncObj__onTickCallbacks",
    )),
    ("SyncObj.__init__", lambda: _init_names(SyncObj), (
        "_SyncObj__raftNextIndex", "_SyncObj__commandsWaitingCommit", "_SyncObj__transport",
        "_SyncObj__raftElectionDeadline", "_SyncObj__raftLog", "_poller",
    )),
    ("SyncObjConf", lambda: vars(SyncObjConf()), (
        "password", "bindAddress", "autoTick", "autoTickPeriod", "appendEntriesUseBatch",
        "appendEntriesPeriod", "appendEntriesBatchSizeBytes", "raftMinTimeout", "raftMaxTimeout",
        "connectionTimeout", "connectionRetryTime", "leaderFallbackTimeout", "commandsWaitLeader",
        "commandsQueueSize", "logCompactionMinEntries", "logCompactionMinTime",
        "logCompactionBatchSize", "sendBufferSize", "recvBufferSize", "fullDumpFile", "journalFile",
        "serializer", "deserializer", "serializeChecker", "dynamicMembershipChange", "onStateChanged",
    )),
    ("TCPTransport", lambda: TCPTransport, (
        "send", "addNode", "_onMessageReceived", "_onNodeConnected", "_onNodeDisconnected",
        "_onNewIncomingConnection", "_onOutgoingConnected", "_onIncomingMessageReceived",
        "_sendSelfAddress", "_connToNode", "_shouldConnect",
    )),
    ("TCPTransport.__init__", lambda: _init_names(TCPTransport), (
        "_syncObj", "_connections", "_unknownConnections", "_nodeAddrToNode",
    )),
    ("TcpConnection", lambda: TcpConnection, (
        "_TcpConnection__trySendBuffer", "_TcpConnection__processParseMessage", "disconnect", "send",
    )),
    ("TcpConnection.__init__", lambda: _init_names(TcpConnection), (
        "_TcpConnection__writeBuffer", "_TcpConnection__readBuffer",
    )),
    # Our parser replaces the one its read loop calls.
    ("TcpConnection._TcpConnection__processConnection", lambda: _code_names(TcpConnection, "_TcpConnection__processConnection"), (
        "_TcpConnection__processParseMessage",
    )),
    ("FAIL_REASON", lambda: FAIL_REASON, (
        "SUCCESS", "QUEUE_FULL", "MISSING_LEADER", "DISCARDED", "NOT_LEADER", "LEADER_CHANGED",
        "REQUEST_DENIED", "UNKNOWN_OUTCOME",
    )),
    ("SERIALIZER_STATE", lambda: SERIALIZER_STATE, ("NOT_SERIALIZING", "SERIALIZING", "SUCCESS", "FAILED")),
    ("SyncObj messages", _message_constants, (
        "append_entries", "apply_command", "apply_command_response", "next_node_idx", "prevLogIdx",
        "prevLogTerm", "entries", "commit_index", "serialized", "transmission", "request_id", "error",
        "reset", "success", "command", "request_vote", "response_vote", "next_node_idx", "timeout_now",
    )),
)


def _wire_problem() -> str | None:
    """Round-trip one message through two wire sessions (AES-GCM, HKDF, msgpack)."""
    try:
        a = WireSession(b"probe", initiator=True)
        b = WireSession(b"probe", initiator=False)
        a.send({"type": "probe"})
        b.receive(a.hello())
        a.receive(b.hello())
        a.next_message()
        b.receive(a.take_output())
        if b.next_message() != {"type": "probe"}:
            return "peer wire round trip returned something else"
    except Exception as exc:  # noqa: BLE001 - whatever broke, report it in one line
        return f"peer wire ({type(exc).__name__}: {exc})"
    return None


def check_pysyncobj() -> None:
    """Raise ConsensusBackendError (one line) unless the installed pysyncobj has everything
    this module relies on. Called whenever a node is built."""
    missing: list[str] = []
    for where, get, names in _NEEDS:
        try:
            have = get()
        except Exception as exc:  # the probe itself broke: report it as missing
            missing.append(f"{where} ({type(exc).__name__}: {exc})")
            continue
        for name in names:
            present = name in have if isinstance(have, (dict, frozenset)) else hasattr(have, name)
            if not present:
                missing.append(f"{where}.{name}")
    if getattr(_COMMAND_TYPE, "NO_OP", None) != NO_OP_ENTRY[0]:
        missing.append(f"_COMMAND_TYPE.NO_OP == {NO_OP_ENTRY[0]}")
    if getattr(_COMMAND_TYPE, "MEMBERSHIP", None) != 2:
        missing.append("_COMMAND_TYPE.MEMBERSHIP == 2")
    if _BATCH in vars(_COMMAND_TYPE).values():
        missing.append(f"_COMMAND_TYPE without kind {_BATCH}")
    clash = _READ_INDEX_MESSAGES & _message_constants()
    if clash:  # pysyncobj grew message types of these names: ours would shadow them
        missing.append(f"SyncObj messages without {', '.join(sorted(clash))}")
    wire = _wire_problem()
    if wire is not None:
        missing.append(wire)
    if missing:
        version = getattr(_pso_version, "VERSION", "?")
        raise ConsensusBackendError(
            f"installed pysyncobj {version} lacks what raftcache's adapter needs ({', '.join(missing)}); "
            "install pysyncobj==0.3.17"
        )


# ---------------------------------------------------------------------------- the journal
class _Journal:
    """pysyncobj's journal interface over a LogStore and a MetaStore (or memory only)."""

    def __init__(self, store: LogStore | None, meta: MetaStore | None, on_fatal: Callable[[BaseException], None]) -> None:
        self._on_fatal = on_fatal
        self._file = store
        self._meta_file = meta
        self._meta: dict[str, Any] = meta.load() if meta is not None else {}
        self._meta_dirty = False
        self._entries: list[tuple[bytes, int, int]] = store.open() if store is not None else []

    # -- what the adapter uses
    def sync(self) -> None:
        if self._file is not None and self._file.dirty:
            self._file.sync()

    @property
    def payload_bytes(self) -> int:
        return self._file.bytes if self._file is not None else 0

    def view(self) -> list[tuple[bytes, int, int]]:
        """The entries, for the repairs (a plain list; read, never changed, by them)."""
        return self._entries

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


# pysyncobj builds its journal inside SyncObj.__init__ with `createJournal(conf.journalFile)`, a
# global of its syncobj module, and its tick thread starts inside that same __init__, so the
# journal cannot be swapped in afterwards. The only way in is to let that name answer with our
# journal while our SyncObj is built: scoped to the construction, under a lock (two nodes built
# at once in one process each get their own), restored right after. Any other SyncObj built
# meanwhile gets the original factory's answer (ours delegates for every other argument).
_construct_lock = threading.Lock()


def _build_with_journal(journal: _Journal, build: Callable[[], Any]) -> Any:
    with _construct_lock:
        original = _pso_syncobj.createJournal

        def create_journal(journal_file: Any) -> Any:
            return journal if journal_file is journal else original(journal_file)

        _pso_syncobj.createJournal = create_journal
        try:
            return build()
        finally:
            _pso_syncobj.createJournal = original


# ------------------------------------------------------------------------- the peer wire
def _write(conn: Any, data: bytes) -> None:
    """Queue raw bytes on a pysyncobj connection and try to send them now."""
    if data:
        conn._TcpConnection__writeBuffer += data
        conn._TcpConnection__trySendBuffer()


def _secure(conn: Any, settings: RaftSettings, *, initiator: bool) -> None:
    """Put raftcache's peer wire (wire.py) on one of pysyncobj's connections, for this
    connection only (never process-wide): its ``send`` and its frame parser are replaced, so
    pysyncobj's ``zlib(pickle)``/Fernet framing is neither written nor read, and nothing that
    arrives is unpickled. Called once per connection object, before any byte is read;
    :func:`_start_wire` then begins each TCP session (an outgoing connection object is reused
    across reconnects) with a fresh :class:`~raftcache.consensus.wire.WireSession`.

    The per-node compression level (``peer_compression_level``, 0 by default: zlib cost 2 ms
    per 100 KB batch on the Raft thread, pure cost on loopback and LAN links) is applied here."""
    conn._raftcache_wire = None
    conn._raftcache_initiator = initiator
    conn._raftcache_settings = settings
    conn._raftcache_on_confirmed = None

    def send(message: Any) -> None:
        session: WireSession | None = conn._raftcache_wire
        if session is None:  # not connected: pysyncobj's own send would drop it too
            return
        try:
            data = session.send(message)
        except WireError as exc:  # a message we cannot encode is a bug here: say so, lose it
            log.error("not sent to peer: %s", exc)
            return
        _write(conn, data)

    def parse() -> Any:
        session: WireSession | None = conn._raftcache_wire
        buffered = conn._TcpConnection__readBuffer
        if session is None:
            if buffered:  # bytes before our session began: cannot be ours
                conn.disconnect()
            return None
        if buffered:
            conn._TcpConnection__readBuffer = b""
            session.receive(buffered)
        confirmed = session.confirmed
        try:
            message = session.next_message()
        except WireError as exc:
            log.warning("peer connection dropped: %s", exc)
            conn._raftcache_wire = None
            conn.disconnect()
            return None
        _write(conn, session.take_output())
        if session.confirmed and not confirmed and conn._raftcache_on_confirmed is not None:
            conn._raftcache_on_confirmed()  # before the message that came with it
        return message

    conn.send = send
    conn._TcpConnection__processParseMessage = parse


def _start_wire(conn: Any, on_confirmed: Callable[[], None] | None = None) -> None:
    """Begin a new TCP session on a secured connection: new keys, our hello out at once;
    `on_confirmed` runs once the peer has proven it holds the secret."""
    settings: RaftSettings = conn._raftcache_settings
    conn._raftcache_on_confirmed = on_confirmed
    session = WireSession(
        _secret_bytes(settings),
        initiator=conn._raftcache_initiator,
        compress_level=settings.peer_compression_level,
        max_frame=_max_frame(settings),
    )
    conn._raftcache_wire = session
    _write(conn, session.hello())


def _secret_bytes(settings: RaftSettings) -> bytes:
    return (settings.secret or DEV_SECRET).encode()


def _max_frame(settings: RaftSettings) -> int:
    # An append-entries batch holds entries up to 2 * max_entry_bytes (appendEntriesBatchSizeBytes)
    # plus one more entry; snapshots travel in 64 KiB chunks. Anything larger is not a peer.
    return max(64 << 20, 4 * settings.max_entry_bytes + (1 << 20))


# -------------------------------------------------------------------------- the transport
class _GuardedTransport(TCPTransport):
    """TCP transport with our hooks: journal sync before send, the repairs on every incoming
    message, raftcache's peer wire on every connection."""

    def addNode(self, node: Any) -> None:  # noqa: N802
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None and not hasattr(conn, "_raftcache_wire"):
            _secure(conn, self._syncObj._raftcache_node.settings, initiator=True)

    def _onOutgoingConnected(self, conn: Any) -> None:  # noqa: N802
        # Without a password pysyncobj would report the node connected on a bare TCP connect
        # (which even a stopped process's kernel completes, or a node with another secret):
        # connected would count toward quorum checks and status. As with pysyncobj's own
        # handshake, report it once the peer's first frame authenticates. Our address goes
        # out now (held by the wire until the keys are known).
        _start_wire(conn, on_confirmed=lambda: self._confirmed(conn))
        self._sendSelfAddress(conn)

    def _confirmed(self, conn: Any) -> None:
        node = self._connToNode(conn)
        if node is not None:  # still a member
            self._onNodeConnected(node)

    def _onNewIncomingConnection(self, conn: Any) -> None:  # noqa: N802
        super()._onNewIncomingConnection(conn)
        _secure(conn, self._syncObj._raftcache_node.settings, initiator=False)
        _start_wire(conn)

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # noqa: N802
        # The first message on an incoming connection names the peer. pysyncobj also takes
        # its admin tool's "utility" commands here (lists): raftcache has its own admin path,
        # so anything but an address string ends the connection.
        # Nor may a member we connect to ourselves connect to us (pysyncobj has the node with
        # the greater address connect): it would replace our connection to that member, and
        # pysyncobj would then reconnect through the wrong object and lose the member.
        known = self._nodeAddrToNode.get(message) if isinstance(message, str) else None
        if not isinstance(message, str) or (known is not None and self._shouldConnect(known)):
            log.warning("incoming peer connection dropped: first message %s",
                        "is not a node address" if not isinstance(message, str) else f"claims {message}, which we connect to")
            self._unknownConnections.discard(conn)
            conn.disconnect()
            return
        super()._onIncomingMessageReceived(conn, message)

    def send(self, node: Any, message: Any) -> bool:
        node_impl: PysyncobjNode = self._syncObj._raftcache_node
        if not node_impl._before_send():
            return False
        return super().send(node, message)

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        node_impl: PysyncobjNode = self._syncObj._raftcache_node
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


# ------------------------------------------------------------------------ log entries
# A log entry is one kind byte + its body, never a pickle. pysyncobj's own kinds carry pickles
# (REGULAR: the @replicated call, MEMBERSHIP: a Node object, VERSION: an int), so raftcache
# writes batches under a kind of its own and membership changes as msgpack, and _SyncObj
# replaces the two places that read entries (apply, membership parsing).
_BATCH = 0x10  # body: the replica's msgpack batch, as proposed
_MEMBERSHIP = _COMMAND_TYPE.MEMBERSHIP  # body: msgpack ["add"|"rem", "host:port"]
_ENTRY_KINDS = frozenset({_BATCH, _COMMAND_TYPE.NO_OP, _MEMBERSHIP})


def _membership_entry(kind: str, address: str) -> bytes:
    """The body of a membership entry (pysyncobj prepends the kind byte)."""
    return msgpack.packb([kind, address], use_bin_type=True)


def _parse_membership(command: bytes) -> tuple[str, str] | None:
    """(kind, address) of a well-formed membership entry, else None."""
    if command[:1] != bytes([_MEMBERSHIP]):
        return None
    try:
        kind, address = msgpack.unpackb(command[1:], raw=False, use_list=False, strict_map_key=True)
    except (ValueError, TypeError):  # malformed msgpack, or not a pair
        return None
    if kind not in ("add", "rem") or not isinstance(address, str):
        return None
    return kind, address


def _entry_problem(command: Any) -> str | None:
    """Why a log entry from a peer cannot be one of ours (None: it can)."""
    if not isinstance(command, bytes) or not command:
        return "not a byte string"
    if command[0] not in _ENTRY_KINDS:
        return f"unknown entry kind {command[0]}"
    if command[0] == _MEMBERSHIP and _parse_membership(command) is None:
        return "malformed membership change"
    return None


def _append_entries_problem(message: dict[str, Any]) -> str | None:
    if "transmission" in message:
        # pysyncobj's chunked path for an entry above appendEntriesBatchSizeBytes: it
        # reassembles the chunks with pickle.loads. Ours never sends it (entries are capped
        # well below, see PysyncobjNode.propose), so it only comes from a broken or hostile peer.
        return "chunked entry transmission (pickled)"
    entries = message.get("entries", ())
    if not isinstance(entries, (tuple, list)):
        return "entries is not an array"
    for entry in entries:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 3 and isinstance(entry[1], int) and isinstance(entry[2], int)):
            return "malformed entry"
        problem = _entry_problem(entry[0])
        if problem is not None:
            return f"entry {entry[1]}: {problem}"
    serialized = message.get("serialized")
    if serialized is not None and not (isinstance(serialized, (tuple, list)) and len(serialized) == 3 and isinstance(serialized[0], bytes)):
        return "malformed snapshot chunk"
    return None


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 1 << 63  # not a bool, not negative


def _exact_fields(message: dict[str, Any], fields: dict[str, Callable[[Any], bool]]) -> str | None:
    """None if `message` has exactly `type` and `fields`, each passing its check."""
    extra = set(message) - {"type", *fields}
    if extra:
        return f"unexpected fields {sorted(map(str, extra))}"
    for name, ok in fields.items():
        if name not in message or not ok(message[name]):
            return f"field {name!r} missing or malformed"
    return None


# ReadIndex (readindex.py): handled by PysyncobjNode, never passed to pysyncobj.
_READ_INDEX_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "read_index_probe": {"term": _is_count, "round": _is_count},  # leader -> peers
    "read_index_ack": {"term": _is_count, "round": _is_count},  # peer -> leader
    "read_index_request": {"id": _is_count},  # follower -> leader
    "read_index_reply": {"id": _is_count, "ok": lambda v: type(v) is bool, "index": _is_count, "time_ms": _is_count},
}
_READ_INDEX_MESSAGES = frozenset(_READ_INDEX_FIELDS)

# What a peer may send once connected, by type: the check each must pass (None: fine).
# Anything else is dropped before pysyncobj sees it.
_MESSAGE_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "append_entries": _append_entries_problem,
    "apply_command": lambda message: _entry_problem(message.get("command")),
    "apply_command_response": lambda message: None,
    "request_vote": lambda message: None,
    "response_vote": lambda message: None,
    "next_node_idx": lambda message: None,
    "timeout_now": lambda message: None,
    **{kind: (lambda message, f=fields: _exact_fields(message, f)) for kind, fields in _READ_INDEX_FIELDS.items()},
}


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return f"a {type(message).__name__}, not a message"
    check = _MESSAGE_CHECKS.get(message.get("type"))  # type: ignore[arg-type]
    if check is None:
        return f"unknown message type {message.get('type')!r}"
    return check(message)


class _SyncObj(SyncObj):
    def __init__(self, node: PysyncobjNode, conf: SyncObjConf) -> None:
        self._raftcache_node = node  # read by the transport, built inside SyncObj.__init__
        super().__init__(node.settings.address, list(node.settings.peers), conf, transportClass=_GuardedTransport)

    def propose_batch(self, payload: bytes, callback: Callable[[Any, int], None]) -> None:
        self._applyCommand(payload, callback, _BATCH)

    # -- pysyncobj's entry readers, replaced (they unpickle)
    def _SyncObj__doApplyCommand(self, command: bytes) -> Any:  # noqa: N802
        kind = command[0]
        if kind == _BATCH:
            return self._raftcache_node._apply(command[1:])
        if kind == _MEMBERSHIP:
            # Needed after a restart that replays the journal; a no-op when already applied.
            request = self._SyncObj__parseChangeClusterRequest(command)
            if request is not None:
                self._SyncObj__doChangeCluster(request)
            return None
        if kind != _COMMAND_TYPE.NO_OP:
            self._raftcache_node._fail(StorageError(f"log entry of unknown kind {kind}: not written by this raftcache"))
        return None

    def _SyncObj__parseChangeClusterRequest(self, command: bytes) -> list[str] | None:  # noqa: N802
        parsed = _parse_membership(command)
        if parsed is None:
            return None
        kind, address = parsed
        return [kind, address, address]  # pysyncobj builds the node from the address

    # -- pysyncobj's entry writers that would pickle, replaced
    def addNodeToCluster(self, node: Any, callback: Any = None) -> None:  # noqa: N802
        self._applyCommand(_membership_entry("add", getattr(node, "address", node)), callback, _MEMBERSHIP)

    def removeNodeFromCluster(self, node: Any, callback: Any = None) -> None:  # noqa: N802
        self._applyCommand(_membership_entry("rem", getattr(node, "address", node)), callback, _MEMBERSHIP)

    def setCodeVersion(self, newVersion: int, callback: Any = None) -> None:  # noqa: N802
        raise ConsensusBackendError("pysyncobj code versions are not used by raftcache")


# --------------------------------------------------------------------------- the adapter
@dataclass
class _SnapshotJob:
    pid: int
    index: int
    started: float


class PysyncobjNode:
    """One Raft member running pysyncobj: a :class:`~raftcache.consensus.protocol.Consensus`."""

    def __init__(self, settings: RaftSettings, state_machine: StateMachine, events: Events | None = None) -> None:
        check_pysyncobj()
        check_settings(settings)
        self.settings = settings
        self._fsm = state_machine
        self._events = events or Events()
        self._role = Role.FOLLOWER
        self._fatal: BaseException | None = None
        self._closing = False
        self._calls: deque[Callable[[], None]] = deque()
        self._refuse_forwarded_until = 0.0  # leadership transfer: refuse commands forwarded to us
        # ReadIndex (readindex.py): callbacks handed in by read_index (any thread), then the
        # leader's rounds and the follower's requests (Raft thread only).
        self._new_reads: deque[ReadIndexCallback] = deque()
        self._leader_reads = LeaderReads(retry_s=max(0.1, 2 * settings.heartbeat_s))
        self._index_requests = IndexRequests(retry_s=max(0.5, settings.election_timeout_s[0] / 2))
        self._index_leader: Any = None  # the node object the request in flight went to
        self._backtrack: repairs.Backtrack | None = None
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
        store: LogStore | None = None
        meta: MetaStore | None = None
        if settings.data_dir is not None:
            remove_partial_files(self._dump_path)  # left by writers killed with an earlier run
            store = LogFile(os.path.join(settings.data_dir, "raft.log"), fsync=settings.fsync)
            meta = MetaFile(os.path.join(settings.data_dir, "raft.meta"))
        self._journal = _Journal(store, meta, self._fail)
        self._sync: _SyncObj | None = None
        self._owner: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._wake_pending = False
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
                conf = self._conf()
                self._sync = _build_with_journal(self._journal, lambda: _SyncObj(self, conf))
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
        if not s.secret:
            log.warning("no cluster secret: using the built-in development key (loopback only, NOT secure)")
        low, high = s.election_timeout_s
        return SyncObjConf(
            password=None,  # no Fernet/pickle framing: the wire (_secure) encrypts with the secret
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

    @property
    def running(self) -> bool:
        sync = self._sync
        return sync is not None and sync.tick_thread_alive()

    def _fail(self, exc: BaseException) -> None:
        """Stop participating at once (no further sends, no acks) and report upwards."""
        if self._fatal is not None:
            return
        self._fatal = exc
        log.critical("raft node %s stopping: %s", self.settings.address, exc)
        try:
            self._events.on_fatal(exc)
        except Exception:
            log.exception("fatal-error hook failed")

    # -------------------------------------------------------------------- proposals
    def propose(self, payload: bytes, callback: ProposalCallback) -> Failure | None:
        """Replicate `payload`. Thread-safe. See Consensus.propose."""
        sync = self._sync
        if sync is None or self._fatal is not None or self._closing:
            return Failure.STOPPED
        if len(payload) + 1 >= 2 * self.settings.max_entry_bytes:
            # pysyncobj would ship such an entry in pickled chunks, which no peer of ours accepts.
            log.error("proposal of %d bytes refused: above twice max_entry_bytes", len(payload))
            return Failure.DENIED
        guard = threading.Lock()
        refused: list[Failure] = []
        proposing = True

        def done(result: Any, error: int) -> None:
            failure = _failure(error)
            with guard:
                if proposing:
                    refused.append(failure or Failure.UNKNOWN)
                    return
            callback(result, failure)

        sync.propose_batch(payload, done)
        with guard:
            proposing = False
        return refused[0] if refused else None

    def _apply(self, payload: bytes) -> Any:
        if self._fatal is not None:
            return None
        try:
            return self._fsm.apply(payload)
        except Exception as exc:
            # apply must not raise into pysyncobj: it would re-apply the entry on the next tick.
            self._fail(exc if isinstance(exc, StorageError) else StorageError(f"cannot apply log entry: {exc}"))
            return None

    # ------------------------------------------------------------------- read index
    def read_index(self, callback: ReadIndexCallback) -> None:
        """See Consensus.read_index. The round (or the request to the leader) is made on the
        Raft thread after this call, so after the reads it stands for arrived."""
        if self._sync is None or self._fatal is not None or self._closing:
            self.call_soon(lambda: callback(None, Failure.STOPPED))
            return
        self._new_reads.append(callback)
        self.wake()

    def _drive_reads(self) -> None:
        """Raft thread, every tick: hand new reads to the leader's rounds or to the follower's
        requests, start a round / send a request when one is due."""
        sync = self._sync
        if sync is None:
            return
        leading = self._observe_leadership()
        reads = self._new_reads
        if leading:
            for callback in self._index_requests.fail_all():  # asked as a follower: ask again
                callback(None, Failure.LEADER_CHANGED)
            while reads:
                self._leader_reads.add(reads.popleft())
            self._start_round()
            return
        while reads:
            self._index_requests.add(reads.popleft())
        leader = sync._getLeader()
        action = self._index_requests.next_request(None if leader is None else leader.address, time.monotonic())
        if isinstance(action, tuple):
            self._index_leader = leader
            self._send(leader, {"type": "read_index_request", "id": action[1]})
        elif action:
            for callback in action:
                callback(None, Failure.NO_LEADER)

    def _observe_leadership(self) -> bool:
        """Tell the rounds the current term and role; a change fails the reads not confirmed
        (a deposed leader never answers them: the replica retries, through the new leader)."""
        sync = self._sync
        leading = self._role is Role.LEADER
        if sync is not None:
            for waiter in self._leader_reads.observe(sync.raftCurrentTerm, leading):
                self._fail_read(waiter, Failure.NOT_LEADER)
        return leading

    def _start_round(self) -> None:
        sync = self._sync
        assert sync is not None
        number = self._leader_reads.start_round(sync.raftCommitIndex, self._own_term_committed(), time.monotonic())
        if number is not None:
            probe = {"type": "read_index_probe", "term": sync.raftCurrentTerm, "round": number}
            for node in sync.otherNodes:
                self._send(node, probe)
        self._deliver_reads(self._leader_reads.confirm(self._voters()))  # a lone node is its own majority

    def _own_term_committed(self) -> bool:
        """Whether the entry at the commit index is of the current term (then every entry any
        earlier leader committed is at or below the commit index)."""
        sync = self._sync
        assert sync is not None
        view = self._journal.view()
        pos = repairs.find(view, sync.raftCommitIndex)
        return pos is not None and view[pos][2] == sync.raftCurrentTerm

    def _voters(self) -> list[str]:
        sync = self._sync
        return [] if sync is None else [n.address for n in sync.otherNodes]

    def _deliver_reads(self, confirmed: list[Confirmed]) -> None:
        if not confirmed:
            return
        time_ms = self._events.read_time_ms()  # after the round confirmed, before any answer
        for batch in confirmed:
            for waiter in batch.waiters:
                if callable(waiter):
                    waiter(ReadIndex(batch.index, time_ms), None)
                else:  # (node, request id) of a follower
                    self._send(waiter[0], {"type": "read_index_reply", "id": waiter[1], "ok": True,
                                           "index": batch.index, "time_ms": time_ms})

    def _fail_read(self, waiter: Any, failure: Failure) -> None:
        if callable(waiter):
            waiter(None, failure)
        else:
            self._send(waiter[0], {"type": "read_index_reply", "id": waiter[1], "ok": False, "index": 0, "time_ms": 0})

    def _send(self, node: Any, message: dict[str, Any]) -> None:
        sync = self._sync
        if sync is not None and node is not None:
            sync._SyncObj__transport.send(node, message)  # type: ignore[attr-defined]

    def _on_read_index_message(self, node: Any, message: dict[str, Any]) -> None:
        """One of the four ReadIndex messages (already validated), on the Raft thread."""
        sync = self._sync
        assert sync is not None
        kind = message["type"]
        leading = self._observe_leadership()
        if kind == "read_index_probe":
            if follower_acks(sync.raftCurrentTerm, leading, message["term"]):
                self._send(node, {"type": "read_index_ack", "term": message["term"], "round": message["round"]})
        elif kind == "read_index_ack":
            address = getattr(node, "address", None)
            self._deliver_reads(self._leader_reads.on_ack(address, message["term"], message["round"], self._voters()))
        elif kind == "read_index_request":
            waiter = (node, message["id"])
            if self._leader_reads.add(waiter):
                self.wake()  # the round starts at the next tick, after this request arrived
            else:
                self._fail_read(waiter, Failure.NOT_LEADER)
        else:  # read_index_reply
            waiters = self._index_requests.on_reply(message["id"], message["ok"])
            if message["ok"]:
                result = ReadIndex(message["index"], message["time_ms"])
                for callback in waiters:
                    callback(result, None)
            else:
                for callback in waiters:
                    callback(None, Failure.NOT_LEADER)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the Raft thread at its next tick (woken at once)."""
        self._calls.append(fn)
        self.wake()

    def wake(self) -> None:
        """Cut the Raft thread's idle poll short (it sleeps up to 50 ms between ticks). One
        byte per wake-up, not per caller: while one is pending (written, not yet drained),
        the tick that drains it will see this caller's work too."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is pending anyway) or closed

    def _drain_wake(self, fd: int, event: int) -> None:
        """Inside pysyncobj's poll, so a tick follows. The flag is cleared after the pipe
        is emptied: work queued before the clear is seen by that tick, work queued after it
        writes a new byte."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._wake_pending = False

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

    def add_member(self, address: str, callback: DoneCallback) -> None:
        self._membership_change("add", address, callback)

    def remove_member(self, address: str, callback: DoneCallback) -> None:
        self._membership_change("remove", address, callback)

    def _membership_change(self, kind: str, address: str, callback: DoneCallback) -> None:
        check_member_address(address, self.settings)
        sync = self._sync
        if sync is None:
            callback(Failure.STOPPED)
            return

        def done(result: Any, error: int) -> None:
            callback(_failure(error))

        if kind == "add":
            sync.addNodeToCluster(address, callback=done)
        else:
            sync.removeNodeFromCluster(address, callback=done)

    def refuse_forwarded(self, seconds: float) -> None:
        self._refuse_forwarded_until = time.monotonic() + seconds if seconds > 0 else 0.0

    def transfer_leadership(self, target: str | None, callback: DoneCallback) -> None:
        def run() -> None:
            assert self._sync is not None
            self._sync.transferLeadership(target, callback=lambda result, error: callback(_failure(error)))

        self.call_soon(run)

    def connected_peers(self) -> set[str]:
        """Raft addresses of the members this node currently has a connection to."""
        sync = self._sync
        if sync is None:
            return set()
        return {n.address for n in sync.otherNodes if sync.isNodeConnected(n)}

    # --------------------------------------------------------------- tick-thread hooks
    def _on_tick(self) -> None:
        if self._fatal is not None:
            return
        if not self._sync_journal():  # covers a single-node cluster, which never sends
            return
        while self._calls:
            fn = self._calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("raft-thread call failed")
        try:
            self._drive_reads()
        except Exception:
            log.exception("read index bookkeeping failed")
        if self._journal.payload_bytes > self.settings.snapshot_max_log_bytes and self._snapshot is None:
            self.force_snapshot()
        sync = self._sync
        if sync is not None and not sync.otherNodes and len(self._journal) and self._journal[-1][1] > sync.raftCommitIndex:
            # A lone node commits on its next tick, and no peer ack will wake it: tick again now.
            self.wake()
        try:
            self._events.on_tick()
        except Exception:
            log.exception("tick hook failed")

    def _on_state_changed(self, old: int, new: int) -> None:
        self._role = _ROLES.get(new, Role.FOLLOWER)
        sync = self._sync
        if sync is not None:  # pysyncobj becomes candidate before it increments the term
            log.info("role %s (term %s)", self._role.value, sync.raftCurrentTerm + (self._role is Role.CANDIDATE))
        self._observe_leadership()  # a leader stepping down fails its unconfirmed reads now
        try:
            self._events.on_role(self._role)
        except Exception:
            log.exception("role hook failed")

    def _before_send(self) -> bool:
        """Called by the transport before every message: nothing leaves before the disk has it."""
        if self._fatal is not None or self._closing:
            return False
        return self._sync_journal()

    def _sync_journal(self) -> bool:
        try:
            self._journal.sync()
        except StorageError as exc:
            self._fail(exc)
            return False
        return True

    def _filter_incoming(self, node: Any, message: Any) -> Any:
        """The message pysyncobj should handle instead of `message` (None: drop it)."""
        if self._fatal is not None or self._closing:
            return None
        problem = _message_problem(message)
        if problem is not None:
            log.warning("dropped a message from peer %s: %s", getattr(node, "address", node), problem)
            return None
        if isinstance(message, dict):
            kind = message.get("type")
            if kind in _READ_INDEX_MESSAGES:
                if self._sync is not None:
                    self._on_read_index_message(node, message)
                return None
            if kind == "append_entries" and self._sync is not None:
                repaired, self._backtrack = repairs.repair_append_entries(
                    message,
                    self._journal.view(),
                    sender=getattr(node, "address", ""),
                    current_term=self._sync.raftCurrentTerm,
                    commit_index=self._sync.raftCommitIndex,
                    backtrack=self._backtrack,
                )
                return repaired
            if kind == "apply_command" and self._refuse_forwarded_until and time.monotonic() < self._refuse_forwarded_until:
                if "request_id" in message and self._sync is not None:
                    self._sync._SyncObj__transport.send(  # type: ignore[attr-defined]
                        node,
                        {"type": "apply_command_response", "request_id": message["request_id"], "error": FAIL_REASON.NOT_LEADER},
                    )
                return None
        return message

    def _next_index_to_keep(self, node: Any, message: Any) -> int | None:
        """See repairs.next_index_to_keep: the follower's next index to restore after
        pysyncobj handled `message`, if it would move back."""
        sync = self._sync
        if sync is None or self._role is not Role.LEADER:
            return None
        current = sync._SyncObj__raftNextIndex.get(node)  # type: ignore[attr-defined]
        return repairs.next_index_to_keep(message, is_leader=True, current=current)

    def _keep_next_index(self, node: Any, index: int) -> None:
        next_index = self._sync._SyncObj__raftNextIndex  # type: ignore[union-attr]
        if node in next_index and next_index[node] < index:
            next_index[node] = index

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
            pid = write_in_child(self._dump_path, lambda partial: self._fsm.snapshot(partial, meta))
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
            meta = self._fsm.restore(path)
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
        pos = repairs.find(self._journal.view(), meta.prev.index)
        if pos is not None and pos + 1 < len(self._journal):
            held_prev, held_last = self._journal[pos], self._journal[pos + 1]
            if held_prev[2] == meta.prev.term and held_last[2] == meta.last.term and pos > 0:
                self._journal.deleteEntriesTo(pos)
        last = (meta.last.command, meta.last.index, meta.last.term)
        prev = (meta.prev.command, meta.prev.index, meta.prev.term)
        return last, prev, {TCPNode(address) for address in meta.members}

    def _fail_orphaned_proposals(self) -> None:
        """Say "outcome unknown" now to proposals a snapshot load skipped past (see
        repairs.orphaned_proposals), so the replica retries them at once instead of at their
        deadline. Runs on the tick after the load."""
        sync = self._sync
        if sync is None:
            return
        waiting = sync._SyncObj__commandsWaitingCommit  # type: ignore[attr-defined]
        orphaned = repairs.orphaned_proposals(waiting, sync.raftLastApplied)
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


def pysyncobj_node(settings: RaftSettings, state_machine: StateMachine, events: Events) -> PysyncobjNode:
    """The default :data:`~raftcache.consensus.protocol.ConsensusFactory`."""
    return PysyncobjNode(settings, state_machine, events)


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
