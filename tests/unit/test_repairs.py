"""The log repairs (raftcache/consensus/repairs.py), driven with plain data: the messages a
deposed leader receives after a partition heals (found by the fault suite:
`test_partition_with_the_leader_in_the_minority` took up to minutes to converge), snapshot
offers, late acks and proposals a snapshot load skipped. Moved from
test_append_entries_filter.py when the repairs became pure functions; every assertion keeps
its meaning."""

from __future__ import annotations

from typing import Any

import pytest

from raftcache.consensus import repairs
from raftcache.consensus.repairs import Backtrack

LEADER = "127.0.0.1:7103"


def log_of(terms: list[int], first: int = 1) -> list[tuple[bytes, int, int]]:
    """(payload, index, term) entries from index `first`, as the journal holds them."""
    return [(b"", first + i, term) for i, term in enumerate(terms)]


class Follower:
    """A deposed leader's view: its log, term and commit index, and the backtracking state
    the backend keeps between messages."""

    def __init__(self, terms: list[int], *, term: int = 3, commit: int = 0, first: int = 1) -> None:
        self.log = log_of(terms, first)
        self.term = term
        self.commit = commit
        self.backtrack: Backtrack | None = None

    def receive(self, message: dict[str, Any], sender: str = LEADER) -> dict[str, Any]:
        out, self.backtrack = repairs.repair_append_entries(
            message, self.log, sender=sender, current_term=self.term, commit_index=self.commit, backtrack=self.backtrack
        )
        return out


def append_entries(prev: int, prev_term: int, *, term: int = 3, entries: list[Any] | None = None, commit: int = 1000) -> dict[str, Any]:
    return {"type": "append_entries", "term": term, "commit_index": commit, "prevLogIdx": prev,
            "prevLogTerm": prev_term, "entries": entries or []}


# entries 1..5 committed in term 1; 6..9 written by the deposed leader in term 2; leader of term 3
TERMS = [1] * 5 + [2] * 4


def test_a_conflict_asks_for_the_first_index_of_the_conflicting_term():
    node = Follower(TERMS)
    out = node.receive(append_entries(9, 3))
    assert (out["prevLogIdx"], out["prevLogTerm"], out["entries"]) == (6, -1, [])  # pysyncobj answers "send from 6"
    assert node.backtrack == Backtrack(3, LEADER, 6)


def test_pipelined_messages_do_not_undo_the_backtracking():
    node = Follower(TERMS)
    node.receive(append_entries(9, 3))
    # the leader's next messages were sent before it heard our answer: our log is "too short"
    for prev in (40, 41, 42):
        out = node.receive(append_entries(prev, 3, entries=[(b"x", prev + 1, 3)]))
        assert (out["prevLogIdx"], out["prevLogTerm"], out["entries"]) == (6, -1, [])


def test_agreement_ends_the_backtracking():
    node = Follower(TERMS)
    node.receive(append_entries(9, 3))
    matching = append_entries(5, 1, entries=[(b"x", 6, 3)])
    assert node.receive(matching) is matching  # pysyncobj truncates 6.. and appends
    assert node.backtrack is None
    too_short = append_entries(40, 3)
    assert node.receive(too_short) is too_short  # its own answer is right again


def test_a_new_term_or_leader_starts_afresh():
    node = Follower(TERMS)
    node.receive(append_entries(9, 3))
    node.term = 4
    too_short = append_entries(40, 4, term=4)
    assert node.receive(too_short, sender="127.0.0.1:7102") is too_short


def test_backtracking_never_asks_below_the_first_entry_after_a_snapshot():
    node = Follower([2] * 6, first=100)  # log starts at the snapshot entry 100 (term 2)
    out = node.receive(append_entries(104, 3))
    assert out["prevLogIdx"] == 101  # the leader then checks 100, which we hold


def test_without_a_conflict_messages_pass_unchanged():
    node = Follower([1] * 9)
    message = append_entries(9, 1, entries=[(b"x", 10, 3)])
    assert node.receive(message) is message
    stale = append_entries(9, 3, term=2)  # an older term: pysyncobj ignores it anyway
    assert node.receive(stale) is stale


@pytest.mark.parametrize("serialized", [None, (b"data", True, False), (b"data", False, False), (b"", False, True)],
                         ids=["not-ready", "first-chunk", "middle-chunk", "last-chunk"])
def test_no_snapshot_offer_commits_our_possibly_conflicting_entries(serialized):
    # Between two chunks pysyncobj would commit (and apply, and acknowledge) entries 6..9, which
    # the deposed leader wrote in term 2 and the snapshot is about to replace; a last chunk that
    # fails to load would leave them in place. After a load, the next append-entries commits.
    node = Follower(TERMS, commit=5)
    offer = {"type": "append_entries", "term": 3, "commit_index": 1000, "serialized": serialized}
    out = node.receive(offer)
    assert out["commit_index"] == 5
    assert out["serialized"] == serialized
    assert offer["commit_index"] == 1000  # the repairs never change the message they were given


def test_a_snapshot_chunk_ends_the_backtracking_and_a_not_ready_offer_keeps_it():
    node = Follower(TERMS)
    node.receive(append_entries(9, 3))
    node.receive({"type": "append_entries", "term": 3, "commit_index": 1000, "serialized": None})
    assert node.backtrack == Backtrack(3, LEADER, 6)
    node.receive({"type": "append_entries", "term": 3, "commit_index": 1000, "serialized": (b"data", True, False)})
    assert node.backtrack is None  # the snapshot replaces our log


def test_an_overlapping_message_from_the_leader_of_our_last_entry_is_trimmed():
    # Our last entry (9) is from the sender's term, so our log equals the leader's up to 9:
    # entries the message repeats are dropped instead of truncating and re-appending them.
    node = Follower([1] * 5 + [3] * 4)
    message = append_entries(6, 3, entries=[(b"x", i, 3) for i in range(7, 12)])
    out = node.receive(message)
    assert (out["prevLogIdx"], out["prevLogTerm"]) == (9, 3)
    assert [e[1] for e in out["entries"]] == [10, 11]
    # our last entry from another term proves nothing: pass through (pysyncobj checks prevLog)
    other = Follower([1] * 9)
    overlapping = append_entries(6, 1, entries=[(b"x", i, 3) for i in range(7, 12)])
    assert other.receive(overlapping) is overlapping


def test_proposals_a_snapshot_load_skipped_are_the_ones_at_or_below_the_applied_index():
    # pysyncobj calls a proposal back only when it applies that index itself; a snapshot load
    # jumps past it. Those (and not the rest) are failed at once as outcome unknown.
    assert repairs.orphaned_proposals({12: [], 3: [], 7: []}, applied_index=10) == [3, 7]
    assert repairs.orphaned_proposals([], applied_index=10) == []


def test_a_late_ack_does_not_rewind_the_leaders_next_index():
    # A resumed follower acks entries from its backlog long after the leader moved on;
    # pysyncobj would set the next index back to each (then, being past its log start, resend
    # the whole snapshot). The backend restores the next index after pysyncobj handles an ack.
    late_ack = {"type": "next_node_idx", "next_node_idx": 175, "reset": False, "success": True}
    assert repairs.next_index_to_keep(late_ack, is_leader=True, current=305) == 305
    # a conflict or gap reply must move it back; a newer ack moves it forward; followers ignore it
    assert repairs.next_index_to_keep({**late_ack, "reset": True, "success": False}, is_leader=True, current=305) is None
    assert repairs.next_index_to_keep({**late_ack, "next_node_idx": 400}, is_leader=True, current=305) is None
    assert repairs.next_index_to_keep(late_ack, is_leader=False, current=305) is None
    assert repairs.next_index_to_keep(late_ack, is_leader=True, current=None) is None  # unknown follower
