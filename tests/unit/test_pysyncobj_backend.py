"""The pysyncobj backend without sockets: the start-up check, per-node peer compression, the
scoped journal factory, the journal over wal.py, and the backend's use of the repairs."""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysyncobj.journal
import pysyncobj.syncobj
import pysyncobj.tcp_connection
import pytest
from pysyncobj import FAIL_REASON, SyncObj
from pysyncobj.tcp_connection import TcpConnection

from raftcache.consensus import Failure, RaftSettings, Role
from raftcache.consensus import pysyncobj_backend as backend
from raftcache.consensus.pysyncobj_backend import PysyncobjNode, check_pysyncobj
from raftcache.errors import ConsensusBackendError, StorageError
from raftcache.wal import LogFile, MetaFile

SETTINGS = RaftSettings(address="127.0.0.1:7101", peers=("127.0.0.1:7102",))


class NoStateMachine:
    def apply(self, payload: bytes) -> Any:
        raise AssertionError("not driven in these tests")

    def snapshot(self, path: str, meta: Any) -> None:
        raise AssertionError("not driven in these tests")

    def restore(self, path: str) -> Any:
        raise AssertionError("not driven in these tests")


# ------------------------------------------------------------------------ start-up check
def test_the_installed_pysyncobj_has_everything_the_backend_needs():
    check_pysyncobj()


@pytest.mark.parametrize(
    ("owner", "name", "named"),
    [
        (SyncObj, "transferLeadership", "SyncObj.transferLeadership"),
        (SyncObj, "_SyncObj__onMessageReceived", "SyncObj messages.append_entries"),
        (TcpConnection, "_TcpConnection__trySendBuffer", "TcpConnection._TcpConnection__trySendBuffer"),
        (pysyncobj.syncobj, "createJournal", "pysyncobj.syncobj.createJournal"),
    ],
)
def test_building_a_node_fails_in_one_line_when_pysyncobj_lacks_something(monkeypatch, owner, name, named):
    monkeypatch.delattr(owner, name)
    with pytest.raises(ConsensusBackendError) as info:
        PysyncobjNode(SETTINGS, NoStateMachine())
    message = str(info.value)
    assert "\n" not in message
    assert named in message and "pysyncobj==0.3.17" in message


def test_a_private_attribute_its_init_no_longer_sets_is_reported(monkeypatch):
    def init_without_next_index(self, *args: Any, **kwargs: Any) -> None:
        self._SyncObj__commandsWaitingCommit = {}
        self._SyncObj__transport = None

    monkeypatch.setattr(SyncObj, "__init__", init_without_next_index)
    with pytest.raises(ConsensusBackendError, match=r"SyncObj.__init__._SyncObj__raftNextIndex"):
        check_pysyncobj()


# --------------------------------------------------------- the peer wire on a connection
class FakeConnection:
    """The parts of TcpConnection that the wire touches (no socket)."""

    def __init__(self) -> None:
        self._TcpConnection__writeBuffer = b""
        self._TcpConnection__readBuffer = b""
        self.flushed = 0
        self.disconnected = 0

    def _TcpConnection__trySendBuffer(self) -> None:  # noqa: N802
        self.flushed += 1

    def disconnect(self) -> None:
        self.disconnected += 1

    def take(self) -> bytes:
        data, self._TcpConnection__writeBuffer = self._TcpConnection__writeBuffer, b""
        return data

    def deliver(self, data: bytes) -> list[Any]:
        """What pysyncobj's read loop would hand on after `data` arrived."""
        self._TcpConnection__readBuffer += data
        out = []
        while (message := self._TcpConnection__processParseMessage()) is not None:
            out.append(message)
        return out


def secured_pair(level_a: int = 0, level_b: int = 0, secret_b: str = "s" * 32) -> tuple[FakeConnection, FakeConnection]:
    a, b = FakeConnection(), FakeConnection()
    backend._secure(a, RaftSettings(address="127.0.0.1:7101", peers=(), secret="s" * 32, peer_compression_level=level_a), initiator=True)
    backend._secure(b, RaftSettings(address="127.0.0.1:7102", peers=(), secret=secret_b, peer_compression_level=level_b), initiator=False)
    backend._start_wire(a)
    backend._start_wire(b)
    return a, b


def test_each_connection_compresses_at_its_own_nodes_level_and_any_peer_can_read_it():
    # arrays arrive as tuples (pysyncobj's entries are tuples; it only iterates the list)
    message = {"type": "append_entries", "entries": tuple((b"x" * 1000 + bytes([i]), i, 2) for i in range(20))}
    fast, small = secured_pair(level_a=0, level_b=9)
    fast.send(message)  # before the peer's hello: held, sealed once the keys are known
    assert small.deliver(fast.take()) == []
    assert fast.deliver(small.take()) == []
    confirm, fast_frame = split_frames(fast.take())
    assert small.deliver(confirm) == [] and fast.deliver(small.take()) == []
    small.send(message)
    small_frame = small.take()
    assert small.deliver(fast_frame) == [message] and fast.deliver(small_frame) == [message]
    assert len(small_frame) < len(fast_frame) / 10
    assert pysyncobj.tcp_connection.zlib is zlib  # nothing patched for the whole process
    assert fast.disconnected == small.disconnected == 0


def split_frames(data: bytes) -> tuple[bytes, bytes]:
    """(the first frame, the rest)."""
    (length,) = struct.unpack(">I", data[:4])
    return data[: 4 + length], data[4 + length :]


def test_a_peer_with_another_secret_is_dropped_at_its_first_frame():
    a, b = secured_pair(secret_b="t" * 32)
    a.send("127.0.0.1:7101")
    a_hello, b_hello = a.take(), b.take()
    assert a.deliver(b_hello) == []
    assert b.deliver(a_hello + a.take()) == []  # a's confirm frame fails to open
    assert b.disconnected == 1 and b._raftcache_wire is None


def test_an_outgoing_connection_counts_as_connected_only_once_the_peer_proved_the_secret():
    for secret_b, expected in (("s" * 32, 1), ("t" * 32, 0)):
        connected: list[str] = []
        a, b = FakeConnection(), FakeConnection()
        backend._secure(a, RaftSettings(address="127.0.0.1:7101", peers=(), secret="s" * 32), initiator=True)
        backend._secure(b, RaftSettings(address="127.0.0.1:7102", peers=(), secret=secret_b), initiator=False)
        backend._start_wire(a, on_confirmed=lambda connected=connected: connected.append("b"))
        a.send("127.0.0.1:7101")
        assert a.deliver(b"") == [] and not connected  # a TCP connect alone proves nothing
        backend._start_wire(b)
        assert a.deliver(b.take()) == [] and not connected  # a hello alone proves nothing
        b.deliver(a.take())
        a.deliver(b.take())  # b's confirm frame
        assert len(connected) == expected


def test_a_pysyncobj_pickle_frame_is_dropped_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    frame = zlib.compress(pickle.dumps(Bomb(), 2))
    conn = secured_pair()[1]
    assert conn.deliver(struct.pack("i", len(frame)) + frame) == []
    assert conn.disconnected == 1 and not marker.exists()


def test_no_pysyncobj_framing_is_left_on_a_secured_connection():
    conn = secured_pair()[0]
    assert conn.send.__module__ == backend.__name__
    assert conn._TcpConnection__processParseMessage.__module__ == backend.__name__


# ----------------------------------------------------------------------------- journal
def test_the_journal_factory_is_ours_only_while_our_syncobj_is_built():
    journal = backend._Journal(None, None, on_fatal=lambda exc: None)
    original = pysyncobj.syncobj.createJournal

    def build() -> Any:
        create = pysyncobj.syncobj.createJournal
        return create(journal), create(None)

    ours, other = backend._build_with_journal(journal, build)
    assert ours is journal
    assert isinstance(other, pysyncobj.journal.MemoryJournal)  # anyone else's request: the original's answer
    assert pysyncobj.syncobj.createJournal is original

    with pytest.raises(RuntimeError):
        backend._build_with_journal(journal, lambda: (_ for _ in ()).throw(RuntimeError("bind failed")))
    assert pysyncobj.syncobj.createJournal is original


def test_the_journal_keeps_entries_term_and_vote_in_the_wal_files(tmp_path):
    def open_journal() -> backend._Journal:
        return backend._Journal(LogFile(str(tmp_path / "raft.log"), fsync=True), MetaFile(str(tmp_path / "raft.meta")), lambda exc: None)

    journal = open_journal()
    journal.add(b"\x01", 1, 0)
    journal.add(b"payload", 2, 3)
    journal.setCurrentTerm(3, "127.0.0.1:7102")
    journal.setRaftCommitIndex(2)
    journal._destroy()
    again = open_journal()
    assert again.view() == [(b"\x01", 1, 0), (b"payload", 2, 3)]
    assert (again.getCurrentTerm(), again.getVotedForNodeId(), again.getRaftCommitIndex()) == (3, "127.0.0.1:7102", 2)


# --------------------------------------------------------------- the repairs, wired in
def test_proposals_a_snapshot_load_skipped_are_reported_as_outcome_unknown():
    # pysyncobj calls a proposal back only when it applies that index itself; a snapshot load
    # jumps past it. The adapter fails those at once (retried with the same tag), not the rest.
    calls: list[tuple[str, Any, int]] = []
    waiting = {index: [(2, lambda result, error, i=index: calls.append((f"at {i}", result, error)))] for index in (3, 7, 12)}
    node = PysyncobjNode.__new__(PysyncobjNode)
    node._sync = SimpleNamespace(raftLastApplied=10, _SyncObj__commandsWaitingCommit=waiting)
    node._fail_orphaned_proposals()
    assert calls == [("at 3", None, FAIL_REASON.UNKNOWN_OUTCOME), ("at 7", None, FAIL_REASON.UNKNOWN_OUTCOME)]
    assert list(waiting) == [12]  # still to be applied: pysyncobj calls it back itself
    assert backend._failure(FAIL_REASON.UNKNOWN_OUTCOME) is Failure.UNKNOWN and not Failure.UNKNOWN.definite


def test_a_late_ack_does_not_rewind_the_leaders_next_index():
    follower = "127.0.0.1:7102"  # pysyncobj keys these by node objects; any hashable will do
    node = PysyncobjNode.__new__(PysyncobjNode)
    node._role = Role.LEADER
    next_index = {follower: 305}
    node._sync = SimpleNamespace(_SyncObj__raftNextIndex=next_index)
    late_ack = {"type": "next_node_idx", "next_node_idx": 175, "reset": False, "success": True}
    keep = node._next_index_to_keep(follower, late_ack)
    assert keep == 305
    next_index[follower] = 175  # what pysyncobj does with the ack (it also raises the match index)
    node._keep_next_index(follower, keep)
    assert next_index[follower] == 305
    node._role = Role.FOLLOWER
    assert node._next_index_to_keep(follower, late_ack) is None


def test_incoming_append_entries_reach_pysyncobj_repaired():
    node = PysyncobjNode.__new__(PysyncobjNode)
    node._fatal, node._closing, node._backtrack, node._refuse_forwarded_until = None, False, None, 0.0
    node._sync = SimpleNamespace(raftCurrentTerm=3, raftCommitIndex=5)
    node._journal = backend._Journal(None, None, lambda exc: None)
    for index, term in enumerate([1] * 5 + [2] * 4, start=1):
        node._journal.add(b"", index, term)
    leader = SimpleNamespace(address="127.0.0.1:7103")
    message = {"type": "append_entries", "term": 3, "commit_index": 1000, "prevLogIdx": 9, "prevLogTerm": 3, "entries": []}
    out = node._filter_incoming(leader, message)
    assert (out["prevLogIdx"], out["prevLogTerm"]) == (6, -1)
    assert node._backtrack is not None and node._backtrack.index == 6
    vote = {"type": "request_vote", "term": 4}
    assert node._filter_incoming(leader, vote) is vote
    node._fatal = RuntimeError("disk full")
    assert node._filter_incoming(leader, vote) is None  # a stopped node hears nothing


# ---------------------------------------------------------- log entries without pickle
def filtering_node() -> PysyncobjNode:
    node = PysyncobjNode.__new__(PysyncobjNode)
    node._fatal, node._closing, node._backtrack, node._refuse_forwarded_until = None, False, None, 0.0
    node._sync = SimpleNamespace(raftCurrentTerm=3, raftCommitIndex=0)
    node._journal = backend._Journal(None, None, lambda exc: None)
    return node


class Bomb:
    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(
    "message",
    [
        {"type": "apply_command", "command": b"\x00" + pickle.dumps((0, (b"x",)), 2)},  # pysyncobj's @replicated entry
        {"type": "apply_command", "command": b"\x03" + pickle.dumps(2, 2)},  # its code-version entry
        {"type": "apply_command", "command": b"\x02" + pickle.dumps(["add", "h:1", "h:1"], 2)},  # its membership entry
        {"type": "append_entries", "term": 3, "commit_index": 0, "prevLogIdx": 0, "prevLogTerm": 0,
         "entries": ((b"\x10ok", 1, 3), (b"\x00" + pickle.dumps(1, 2), 2, 3))},
        {"type": "append_entries", "term": 3, "commit_index": 0, "prevLogIdx": 0, "prevLogTerm": 0,
         "transmission": "finish", "data": pickle.dumps((b"\x10", 1, 3), 2)},  # chunked entries are pickles
        {"type": "append_entries", "term": 3, "commit_index": 0, "entries": ((b"\x10", "1", 3),)},
        {"type": "append_entries", "term": 3, "commit_index": 0, "serialized": "not a chunk"},
        {"type": "utility"},
        ["status"],  # pysyncobj's admin tool
        "127.0.0.1:7101",
    ],
)
def test_messages_that_could_reach_a_pysyncobj_unpickler_or_do_not_fit_are_dropped(message, caplog):
    node = filtering_node()
    assert node._filter_incoming(SimpleNamespace(address="127.0.0.1:7102"), message) is None
    assert "dropped a message from peer 127.0.0.1:7102" in caplog.text


def test_well_formed_entries_pass():
    node = filtering_node()
    entries = ((b"\x10batch", 1, 3), (bytes([1]), 2, 3), (b"\x02" + backend._membership_entry("add", "127.0.0.1:7104"), 3, 3))
    message = {"type": "append_entries", "term": 3, "commit_index": 0, "prevLogIdx": 0, "prevLogTerm": 0, "entries": entries}
    assert node._filter_incoming(SimpleNamespace(address="x"), message)["entries"] == entries
    forwarded = {"type": "apply_command", "command": b"\x10batch", "request_id": 4}
    assert node._filter_incoming(SimpleNamespace(address="x"), forwarded) is forwarded


def test_applying_entries_never_unpickles(tmp_path):
    Bomb.path = str(tmp_path / "pwned")
    applied: list[bytes] = []
    failures: list[BaseException] = []
    fake = SimpleNamespace(_raftcache_node=SimpleNamespace(_apply=lambda p: applied.append(p) or "r", _fail=failures.append))
    apply = backend._SyncObj._SyncObj__doApplyCommand
    assert apply(fake, b"\x10payload") == "r" and applied == [b"payload"]
    assert apply(fake, bytes([1])) is None and not failures
    assert apply(fake, b"\x00" + pickle.dumps(Bomb(), 2)) is None  # an entry of the old format
    assert apply(fake, b"\x03" + pickle.dumps(Bomb(), 2)) is None
    assert len(failures) == 2 and "unknown kind 0" in str(failures[0])
    parse = backend._SyncObj._SyncObj__parseChangeClusterRequest
    assert parse(fake, b"\x02" + pickle.dumps(Bomb(), 2)) is None
    assert parse(fake, b"\x02" + backend._membership_entry("rem", "127.0.0.1:7103")) == ["rem", "127.0.0.1:7103", "127.0.0.1:7103"]
    assert parse(fake, b"\x10" + backend._membership_entry("rem", "127.0.0.1:7103")) is None
    assert not (tmp_path / "pwned").exists()


def test_membership_changes_are_written_as_msgpack():
    queued: list[tuple[bytes, Any, int]] = []
    fake = SimpleNamespace(_applyCommand=lambda command, callback, kind: queued.append((command, callback, kind)))
    backend._SyncObj.addNodeToCluster(fake, "127.0.0.1:7104", callback="cb")
    backend._SyncObj.removeNodeFromCluster(fake, SimpleNamespace(address="127.0.0.1:7105"))
    assert queued == [
        (backend._membership_entry("add", "127.0.0.1:7104"), "cb", 2),
        (backend._membership_entry("rem", "127.0.0.1:7105"), None, 2),
    ]
    with pytest.raises(ConsensusBackendError):
        backend._SyncObj.setCodeVersion(fake, 2)


def test_a_proposal_pysyncobj_would_ship_in_pickled_chunks_is_refused():
    node = PysyncobjNode.__new__(PysyncobjNode)
    node.settings = RaftSettings(address="127.0.0.1:7101", peers=(), max_entry_bytes=1000)
    node._sync, node._fatal, node._closing = SimpleNamespace(), None, False
    assert node.propose(bytes(1999), lambda result, failure: None) is Failure.DENIED


# -------------------------------------------------------------- data of the old format
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir_pickle_v1"


def test_a_journal_of_the_pickle_format_is_refused_in_one_line_that_says_what_to_do(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "n1")
    with pytest.raises(StorageError) as info:
        LogFile(str(tmp_path / "n1" / "raft.log"), fsync=False).open()
    message = str(info.value)
    assert "\n" not in message and "raftcache backup" in message and "raftcache restore --force" in message
    assert (tmp_path / "n1" / "raft.log").read_bytes() == (FIXTURE / "raft.log").read_bytes()  # left untouched


# ---------------------------------------------------------------------------- ReadIndex
@pytest.mark.parametrize(
    "message",
    [
        {"type": "read_index_probe", "term": 3},  # no round
        {"type": "read_index_probe", "term": 3, "round": 1, "extra": 1},
        {"type": "read_index_probe", "term": True, "round": 1},  # a bool is not a term
        {"type": "read_index_ack", "term": 3, "round": -1},
        {"type": "read_index_ack", "term": "3", "round": 1},
        {"type": "read_index_request", "id": 1.5},
        {"type": "read_index_reply", "id": 1, "ok": 1, "index": 5, "time_ms": 0},  # ok must be a bool
        {"type": "read_index_reply", "id": 1, "ok": True, "index": 5},
        {"type": "read_index_reply", "id": 1, "ok": True, "index": 1 << 64, "time_ms": 0},
    ],
)
def test_malformed_read_index_messages_are_dropped(message, caplog):
    node = filtering_node()
    assert node._filter_incoming(SimpleNamespace(address="127.0.0.1:7102"), message) is None
    assert "dropped a message from peer 127.0.0.1:7102" in caplog.text


def read_index_node(role: Role, *, term: int = 3, commit: int = 5, entry_term: int = 3) -> tuple[PysyncobjNode, list, list]:
    """A node with a fake pysyncobj: two peers, a journal holding the commit index's entry,
    and a transport that records what is sent."""
    sent: list = []
    peers = [SimpleNamespace(address="b:1"), SimpleNamespace(address="c:1")]
    node = filtering_node()
    node._role = role
    node._events = backend.Events(read_time_ms=lambda: 1234)
    node._leader_reads = backend.LeaderReads()
    node._index_requests = backend.IndexRequests()
    node._new_reads = backend.deque()
    node.wake = lambda: None  # no tick thread to wake
    node._journal._entries = [(b"\x01", commit, entry_term)]
    node._sync = SimpleNamespace(raftCurrentTerm=term, raftCommitIndex=commit, otherNodes=peers,
                                 _getLeader=lambda: None if role is Role.LEADER else peers[0],
                                 _SyncObj__transport=SimpleNamespace(send=lambda n, m: sent.append((n.address, m))))
    return node, peers, sent


def test_a_leader_answers_a_read_index_only_after_a_majority_acked_its_numbered_round():
    node, (b, c), sent = read_index_node(Role.LEADER)
    answers: list = []
    node._new_reads.append(lambda result, failure: answers.append((result, failure)))
    node._drive_reads()
    assert sent == [(p, {"type": "read_index_probe", "term": 3, "round": 1}) for p in ("b:1", "c:1")]
    assert answers == []
    # an ack of an older term, and one for a round never sent, confirm nothing (and never reach pysyncobj)
    assert node._filter_incoming(b, {"type": "read_index_ack", "term": 2, "round": 1}) is None
    assert node._filter_incoming(b, {"type": "read_index_ack", "term": 3, "round": 2}) is None
    assert answers == []
    assert node._filter_incoming(c, {"type": "read_index_ack", "term": 3, "round": 1}) is None
    assert answers == [(backend.ReadIndex(5, 1234), None)]


def test_a_new_leader_takes_no_index_before_an_entry_of_its_term_commits():
    node, _, sent = read_index_node(Role.LEADER, term=4, entry_term=3)
    node._new_reads.append(lambda result, failure: None)
    node._drive_reads()
    assert sent == []  # no round yet: the commit index may still lag earlier leaders' entries


def test_a_leader_that_steps_down_before_its_round_is_confirmed_fails_the_read():
    node, (b, _), _ = read_index_node(Role.LEADER)
    answers: list = []
    node._new_reads.append(lambda result, failure: answers.append((result, failure)))
    node._drive_reads()
    node._role = Role.FOLLOWER
    node._sync.raftCurrentTerm = 4
    node._observe_leadership()
    assert answers == [(None, Failure.NOT_LEADER)]
    node._filter_incoming(b, {"type": "read_index_ack", "term": 3, "round": 1})
    assert len(answers) == 1  # the late ack answers nothing


def test_a_follower_acks_probes_of_its_term_only_and_asks_the_leader_for_reads():
    node, (leader, _), sent = read_index_node(Role.FOLLOWER)
    node._filter_incoming(leader, {"type": "read_index_probe", "term": 3, "round": 7})
    node._filter_incoming(leader, {"type": "read_index_probe", "term": 2, "round": 8})
    assert sent == [("b:1", {"type": "read_index_ack", "term": 3, "round": 7})]
    answers: list = []
    node._new_reads.append(lambda result, failure: answers.append((result, failure)))
    node._drive_reads()
    assert sent[-1] == ("b:1", {"type": "read_index_request", "id": 1})
    node._filter_incoming(leader, {"type": "read_index_reply", "id": 1, "ok": True, "index": 9, "time_ms": 77})
    assert answers == [(backend.ReadIndex(9, 77), None)]


def test_a_leader_relays_its_confirmed_index_to_the_follower_that_asked():
    node, (b, c), sent = read_index_node(Role.LEADER)
    node._filter_incoming(c, {"type": "read_index_request", "id": 4})
    node._drive_reads()  # the round starts after the request arrived
    node._filter_incoming(b, {"type": "read_index_ack", "term": 3, "round": 1})
    assert sent[-1] == ("c:1", {"type": "read_index_reply", "id": 4, "ok": True, "index": 5, "time_ms": 1234})


def test_callers_share_one_pending_wake_byte_and_a_drain_rearms_it():
    node = PysyncobjNode(SETTINGS, NoStateMachine())  # not started: only its wake pipe is used
    try:
        for _ in range(5):
            node.wake()
        assert os.read(node._wake_r, 4096) == b"!"  # one byte for five callers
        node.wake()  # still pending: the drain (in the poll before the next tick) has not run
        with pytest.raises(BlockingIOError):
            os.read(node._wake_r, 4096)
        node._drain_wake(node._wake_r, 0)
        node.wake()  # after the drain a caller's work needs a new wake-up
        assert os.read(node._wake_r, 4096) == b"!"
    finally:
        os.close(node._wake_r)
        os.close(node._wake_w)
