"""When the adapter makes the journal durable relative to the messages it sends and reads.

A follower's ack (and any other message) leaves only after its journal is on disk; a
leader's append-entries leave first, so that its fsync overlaps its followers'; the leader
syncs before it reads any follower reply, and at the end of every tick, so pysyncobj never
counts the leader toward a commit majority over entries that are only in memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from raftcache.errors import StorageError
from raftcache.replication import RaftNode

PEER = SimpleNamespace(address="127.0.0.1:7102")


class RecordingJournal:
    def __init__(self, fail: bool = False) -> None:
        self.dirty = True
        self.syncs = 0
        self.fail = fail
        self.payload_bytes = 0

    def sync(self) -> None:
        if self.fail:
            raise StorageError("fsync of journal: No space left on device")
        if self.dirty:
            self.syncs += 1
            self.dirty = False

    def __len__(self) -> int:
        return 0


def node_with(journal: RecordingJournal) -> RaftNode:
    node = RaftNode.__new__(RaftNode)  # only the hooks' state; no sockets, no pysyncobj
    node._fatal = None
    node._closing = False
    node._faults = SimpleNamespace(isolated=set())
    node._journal = journal
    node._refuse_forwarded_until = 0.0
    node._failures = []
    node._fail = node._failures.append
    return node


def test_a_leaders_append_entries_leave_before_its_fsync():
    journal = RecordingJournal()
    node = node_with(journal)
    assert node._before_send(PEER, {"type": "append_entries", "term": 2, "entries": []}) is True
    assert journal.dirty and journal.syncs == 0


@pytest.mark.parametrize("kind", ["append_entries_response", "request_vote_response", "apply_command_response", "request_vote"])
def test_every_other_message_leaves_after_the_journal_is_on_disk(kind):
    journal = RecordingJournal()
    node = node_with(journal)
    assert node._before_send(PEER, {"type": kind, "term": 2}) is True
    assert not journal.dirty and journal.syncs == 1


def test_the_leader_syncs_before_it_reads_a_follower_reply():
    journal = RecordingJournal()
    node = node_with(journal)
    reply = {"type": "append_entries_response", "term": 2, "success": True, "current_index": 7}
    assert node._filter_incoming(PEER, reply) is reply
    assert not journal.dirty and journal.syncs == 1


def test_a_reply_is_dropped_and_the_node_fails_when_the_journal_cannot_sync():
    journal = RecordingJournal(fail=True)
    node = node_with(journal)
    assert node._filter_incoming(PEER, {"type": "append_entries_response", "term": 2}) is None
    assert node._before_send(PEER, {"type": "append_entries_response", "term": 2}) is False
    assert len(node._failures) == 2 and all(isinstance(f, StorageError) for f in node._failures)
