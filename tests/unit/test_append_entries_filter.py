"""The adapter's follower-side fixes to pysyncobj's append-entries handling, driven with the
messages a deposed leader receives after a partition heals (found by the fault suite:
`test_partition_with_the_leader_in_the_minority` took up to minutes to converge)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from raftcache.replication import RaftNode

LEADER = SimpleNamespace(address="127.0.0.1:7103")


class FakeJournal:
    """(command, index, term) entries from index `first`, like the adapter's journal."""

    def __init__(self, terms: list[int], first: int = 1) -> None:
        self.entries = [(b"", first + i, term) for i, term in enumerate(terms)]

    def find(self, index: int) -> int | None:
        pos = index - self.entries[0][1]
        return pos if 0 <= pos < len(self.entries) else None

    def __getitem__(self, item: Any) -> Any:
        return self.entries[item]

    def __len__(self) -> int:
        return len(self.entries)


def deposed_leader(terms: list[int], *, term: int = 3, commit: int = 0, first: int = 1) -> RaftNode:
    node = RaftNode.__new__(RaftNode)  # only the filter's state; no sockets, no pysyncobj
    node._sync = SimpleNamespace(raftCurrentTerm=term, raftCommitIndex=commit)
    node._journal = FakeJournal(terms, first)
    node._backtrack = None
    return node


def append_entries(prev: int, prev_term: int, *, term: int = 3, entries: list[Any] | None = None, commit: int = 1000) -> dict[str, Any]:
    return {"type": "append_entries", "term": term, "commit_index": commit, "prevLogIdx": prev,
            "prevLogTerm": prev_term, "entries": entries or []}


# entries 1..5 committed in term 1; 6..9 written by the deposed leader in term 2; leader of term 3
TERMS = [1] * 5 + [2] * 4


def test_a_conflict_asks_for_the_first_index_of_the_conflicting_term():
    node = deposed_leader(TERMS)
    out = node._check_append_entries(LEADER, append_entries(9, 3))
    assert (out["prevLogIdx"], out["prevLogTerm"], out["entries"]) == (6, -1, [])  # pysyncobj answers "send from 6"


def test_pipelined_messages_do_not_undo_the_backtracking():
    node = deposed_leader(TERMS)
    node._check_append_entries(LEADER, append_entries(9, 3))
    # the leader's next messages were sent before it heard our answer: our log is "too short"
    for prev in (40, 41, 42):
        out = node._check_append_entries(LEADER, append_entries(prev, 3, entries=[(b"x", prev + 1, 3)]))
        assert (out["prevLogIdx"], out["prevLogTerm"], out["entries"]) == (6, -1, [])


def test_agreement_ends_the_backtracking():
    node = deposed_leader(TERMS)
    node._check_append_entries(LEADER, append_entries(9, 3))
    matching = append_entries(5, 1, entries=[(b"x", 6, 3)])
    assert node._check_append_entries(LEADER, matching) is matching  # pysyncobj truncates 6.. and appends
    too_short = append_entries(40, 3)
    assert node._check_append_entries(LEADER, too_short) is too_short  # its own answer is right again


def test_a_new_term_or_leader_starts_afresh():
    node = deposed_leader(TERMS)
    node._check_append_entries(LEADER, append_entries(9, 3))
    node._sync.raftCurrentTerm = 4
    other = SimpleNamespace(address="127.0.0.1:7102")
    too_short = append_entries(40, 4, term=4)
    assert node._check_append_entries(other, too_short) is too_short


def test_backtracking_never_asks_below_the_first_entry_after_a_snapshot():
    node = deposed_leader([2] * 6, first=100)  # log starts at the snapshot entry 100 (term 2)
    out = node._check_append_entries(LEADER, append_entries(104, 3))
    assert out["prevLogIdx"] == 101  # the leader then checks 100, which we hold


def test_without_a_conflict_messages_pass_unchanged():
    node = deposed_leader([1] * 9)
    message = append_entries(9, 1, entries=[(b"x", 10, 3)])
    assert node._check_append_entries(LEADER, message) is message
    stale = append_entries(9, 3, term=2)  # an older term: pysyncobj ignores it anyway
    assert node._check_append_entries(LEADER, stale) is stale


@pytest.mark.parametrize("serialized", [None, (b"data", True, False), (b"data", False, False), (b"", False, True)],
                         ids=["not-ready", "first-chunk", "middle-chunk", "last-chunk"])
def test_no_snapshot_offer_commits_our_possibly_conflicting_entries(serialized):
    # Between two chunks pysyncobj would commit (and apply, and acknowledge) entries 6..9, which
    # the deposed leader wrote in term 2 and the snapshot is about to replace; a last chunk that
    # fails to load would leave them in place. After a load, the next append-entries commits.
    node = deposed_leader(TERMS, commit=5)
    offer = {"type": "append_entries", "term": 3, "commit_index": 1000, "serialized": serialized}
    out = node._check_append_entries(LEADER, offer)
    assert out["commit_index"] == 5
    assert out["serialized"] == serialized


def test_proposals_a_snapshot_load_skipped_are_reported_as_outcome_unknown():
    # pysyncobj calls a proposal back only when it applies that index itself; a snapshot load
    # jumps past it. The adapter fails those at once (retried with the same tag), not the rest.
    from pysyncobj import FAIL_REASON

    from raftcache.replication import _FAILURES, Failure

    calls: list[tuple[str, Any, int]] = []
    waiting = {index: [(2, lambda result, error, i=index: calls.append((f"at {i}", result, error)))] for index in (3, 7, 12)}
    node = RaftNode.__new__(RaftNode)
    node._sync = SimpleNamespace(raftLastApplied=10, _SyncObj__commandsWaitingCommit=waiting)
    node._fail_orphaned_proposals()
    assert calls == [("at 3", None, FAIL_REASON.UNKNOWN_OUTCOME), ("at 7", None, FAIL_REASON.UNKNOWN_OUTCOME)]
    assert list(waiting) == [12]  # still to be applied: pysyncobj calls it back itself
    assert not _FAILURES[FAIL_REASON.UNKNOWN_OUTCOME].definite and _FAILURES[FAIL_REASON.UNKNOWN_OUTCOME] is Failure.UNKNOWN


def test_a_late_ack_does_not_rewind_the_leaders_next_index():
    # A resumed follower acks entries from its backlog long after the leader moved on;
    # pysyncobj would set the next index back to each (then, being past its log start, resend
    # the whole snapshot). The adapter restores the next index after pysyncobj handles an ack.
    from raftcache.replication import Role

    follower = "127.0.0.1:7102"  # pysyncobj keys these by node objects; any hashable will do
    node = RaftNode.__new__(RaftNode)
    node._role = Role.LEADER
    next_index = {follower: 305}
    node._sync = SimpleNamespace(_SyncObj__raftNextIndex=next_index)
    late_ack = {"type": "next_node_idx", "next_node_idx": 175, "reset": False, "success": True}
    keep = node._next_index_to_keep(follower, late_ack)
    assert keep == 305
    next_index[follower] = 175  # what pysyncobj does with the ack (it also raises the match index)
    node._keep_next_index(follower, keep)
    assert next_index[follower] == 305
    # a conflict or gap reply must move it back; a newer ack moves it forward; followers ignore it
    assert node._next_index_to_keep(follower, {**late_ack, "reset": True, "success": False}) is None
    assert node._next_index_to_keep(follower, {**late_ack, "next_node_idx": 400}) is None
    node._role = Role.FOLLOWER
    assert node._next_index_to_keep(follower, late_ack) is None
