"""Nothing leaves a node before its journal is on disk, and a leader never commits past its
own disk: three real pysyncobj nodes in this process, on loopback, with fsynced journals
(pysyncobj_backend's module doc, "Durable journal"). Every send and every apply is checked,
not only those of one message type: a follower's ack, a vote or a leader's append-entries
that left over an unsynced journal would each be reported.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from raftcache.consensus import RaftSettings, Role
from raftcache.consensus import pysyncobj_backend as backend
from raftcache.consensus.pysyncobj_backend import PysyncobjNode
from tests.helpers import free_ports, wait_until


class Recorder:
    """Every sync, send and apply of the three nodes, in one order (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, Any]] = []  # (node address, what, detail)
        self.durable: dict[str, int] = {}  # node -> last journal index covered by a sync
        self.violations: list[str] = []

    def add(self, node: str, what: str, detail: Any) -> None:
        with self.lock:
            self.events.append((node, what, detail))


class Machine:
    def __init__(self) -> None:
        self.applied: list[bytes] = []

    def apply(self, payload: bytes) -> Any:
        self.applied.append(payload)
        return len(self.applied)

    def snapshot(self, path: str, meta: Any) -> None:  # never reached: no compaction here
        raise AssertionError("no snapshot expected")

    def restore(self, path: str) -> Any:
        raise AssertionError("no snapshot expected")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    rec = Recorder()
    owners: dict[int, str] = {}  # id(journal) -> node address

    real_sync = backend._Journal.sync

    def sync(journal: backend._Journal) -> None:
        dirty = journal._file is not None and journal._file.dirty
        real_sync(journal)
        node = owners.get(id(journal))
        if node is not None and dirty and journal.view():
            rec.durable[node] = journal.view()[-1][1]
            rec.add(node, "synced", rec.durable[node])

    real_send = backend._GuardedTransport.send

    def send(transport: Any, peer: Any, message: Any) -> bool:
        node: PysyncobjNode = transport._syncObj._raftcache_node
        me = node.settings.address
        ok = real_send(transport, peer, message)
        if ok and isinstance(message, dict):
            kind = message.get("type")
            journal = node._journal
            last = journal.view()[-1][1] if journal.view() else 0
            unsynced = journal._file is not None and journal._file.dirty
            if unsynced:
                rec.violations.append(f"{me} sent {kind} with entries up to {last} not synced")
        return ok

    real_apply = backend._SyncObj._SyncObj__doApplyCommand

    def apply_entry(sync_obj: Any, command: bytes) -> Any:
        node: PysyncobjNode = sync_obj._raftcache_node
        me = node.settings.address
        if sync_obj._isLeader():
            with rec.lock:
                durable = rec.durable.get(me, 0)
            if sync_obj.raftCommitIndex > durable:
                rec.violations.append(f"leader {me} committed {sync_obj.raftCommitIndex} with its journal synced only to {durable}")
            rec.add(me, "leader applies", sync_obj.raftLastApplied + 1)  # pysyncobj counts it after the apply
        return real_apply(sync_obj, command)

    monkeypatch.setattr(backend._Journal, "sync", sync)
    monkeypatch.setattr(backend._GuardedTransport, "send", send)
    monkeypatch.setattr(backend._SyncObj, "_SyncObj__doApplyCommand", apply_entry)

    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    nodes = []
    for i, address in enumerate(addresses):
        settings = RaftSettings(address=address, peers=tuple(a for a in addresses if a != address),
                                data_dir=str(tmp_path / f"n{i}"), secret="order-test-secret",
                                election_timeout_s=(0.3, 0.6))
        node = PysyncobjNode(settings, Machine())
        owners[id(node._journal)] = address
        nodes.append(node)
    try:
        for node in nodes:
            node.start()
        yield rec, nodes
    finally:
        for node in nodes:
            node.close()


def test_no_message_leaves_and_no_commit_is_counted_before_the_journal_is_on_disk(recorded):
    rec, nodes = recorded
    leader = wait_until(lambda: next((n for n in nodes if n.role is Role.LEADER), None), 20, what="a leader")
    followers = [n for n in nodes if n is not leader]
    results: list[Any] = []
    for i in range(40):  # one at a time: each entry's path is its own
        done = threading.Event()

        def callback(result: Any, failure: Any, done: threading.Event = done) -> None:
            results.append((result, failure))
            done.set()

        assert leader.propose(b"entry %d" % i, callback) is None
        assert done.wait(10), f"entry {i} not committed"
    assert all(failure is None for _, failure in results)
    wait_until(lambda: all(len(n._fsm.applied) == len(leader._fsm.applied) for n in followers), 10,
               what="followers to apply every entry")

    assert rec.violations == []
    with rec.lock:
        events = list(rec.events)
    me = leader.settings.address
    assert sum(1 for node, what, _ in events if node == me and what == "leader applies") >= 40  # every entry checked
    assert sum(1 for node, what, _ in events if node != me and what == "synced") >= 40  # followers synced each
    # The state machines agree.
    assert all(n._fsm.applied == leader._fsm.applied for n in followers)
