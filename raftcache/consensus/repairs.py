"""Repairs to pysyncobj 0.3.17's log replication, as pure functions of plain data.

Each takes a peer message (pysyncobj's wire dict: ``type``, ``term``, ``prevLogIdx``, ...) and
a plain view of the local log (a sequence of ``(payload, index, term)`` entries, oldest
first) and returns the message to hand to pysyncobj instead, or a decision. No sockets, no
pysyncobj import: ``pysyncobj_backend`` feeds them and applies their answers, and the unit
tests feed them lists. Found by the fault suite and the soak; README "What the adapter does"
and docs/reliability.md tell the stories.

* :func:`repair_append_entries` (follower): overlap trimming, the snapshot-offer commit cap
  and backtracking to agreement, in that order of precedence.
* :func:`next_index_to_keep` (leader): a late ack never moves a follower's next index back.
* :func:`orphaned_proposals`: proposals a snapshot load skipped past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .types import Entry

Message = dict[str, Any]
LogView = Sequence[Entry]  # (payload, index, term), consecutive indexes, oldest first


@dataclass(frozen=True, slots=True)
class Backtrack:
    """A follower's pending request "send from `index`" to the leader of `term` at `leader`."""

    term: int
    leader: str
    index: int


def find(log: LogView, index: int) -> int | None:
    """Position in `log` of the entry with log index `index`, if held."""
    if not len(log):
        return None
    pos = index - log[0][1]
    return pos if 0 <= pos < len(log) else None


def repair_append_entries(
    message: Message,
    log: LogView,
    *,
    sender: str,
    current_term: int,
    commit_index: int,
    backtrack: Backtrack | None,
) -> tuple[Message, Backtrack | None]:
    """A follower's view of an incoming append-entries: returns (the message pysyncobj
    should see, the backtracking state to keep). The message is returned as the same object
    when nothing needs repair."""
    if message.get("term", -1) < current_term or "transmission" in message:
        return message, backtrack
    if "prevLogIdx" not in message:
        return cap_snapshot_offer(message, commit_index), (None if message.get("serialized") is not None else backtrack)
    checked, backtrack = backtrack_to_agreement(message, log, sender=sender, backtrack=backtrack)
    if checked is not message:
        return checked, backtrack
    return trim_overlap(message, log, current_term), backtrack


def cap_snapshot_offer(message: Message, commit_index: int) -> Message:
    """*Commit only over a matching log.* A leader's snapshot-transfer messages carry no
    prevLogIdx, and pysyncobj raises its commit index from each of them as from any other,
    up to the end of our log. Until the last chunk has arrived and loaded, our log may still
    hold entries the leader never had (a deposed leader's uncommitted writes): between two
    chunks they would be committed, applied and acknowledged to clients, and then replaced
    by the snapshot (a lost acknowledged write; the soak found it). A last chunk that fails
    to load leaves that log in place too. So no such message advances our commit index;
    after a load, the leader's next append-entries (matched at the snapshot) does.
    (A message with ``serialized`` data replaces our log, which ends any backtracking:
    :func:`repair_append_entries` drops it.)"""
    capped = dict(message)
    capped["commit_index"] = min(message.get("commit_index") or 0, commit_index)
    return capped


def backtrack_to_agreement(
    message: Message, log: LogView, *, sender: str, backtrack: Backtrack | None
) -> tuple[Message, Backtrack | None]:
    """*Backtracking that converges.* On a log conflict pysyncobj answers "try index p",
    the leader steps back one entry, but every later append-entries already on its way (the
    leader pipelines) finds our log too short and answers "try the end of your log",
    undoing the step; under steady writes a follower that missed a term never catches up.
    We remember the index we asked for and give that same answer to the too-short
    messages, and on a conflict we ask for the first index of our conflicting term, so the
    leader skips a whole term per round trip (Raft §5.3's optimisation)."""
    if not len(log):
        return message, backtrack
    if backtrack is not None and (backtrack.term, backtrack.leader) != (message["term"], sender):
        backtrack = None  # a new term or leader starts afresh
    prev = message["prevLogIdx"]
    pos = find(log, prev)
    if pos is None:
        if backtrack is not None and prev > log[-1][1] and find(log, backtrack.index) is not None:
            return ask_for(message, backtrack.index), backtrack
        return message, backtrack
    ours = log[pos][2]
    if ours == message["prevLogTerm"]:
        return message, None  # found where we agree: pysyncobj's answers are right from here
    first = pos  # back to the first entry of our conflicting term, never to our first entry
    while first > 1 and log[first - 1][2] == ours:  # (the snapshot boundary, which the leader has)
        first -= 1
    index = log[first][1]
    return ask_for(message, index), Backtrack(message["term"], sender, index)


def ask_for(message: Message, index: int) -> Message:
    """The message as a heartbeat that makes pysyncobj answer "send from `index`": a
    prevLogTerm no entry has forces its conflict reply for that index (and nothing is
    appended or committed)."""
    asked = dict(message)
    asked["prevLogIdx"] = index
    asked["prevLogTerm"] = -1
    asked["entries"] = []
    return asked


def trim_overlap(message: Message, log: LogView, current_term: int) -> Message:
    """Keep a follower from truncating entries it already holds. pysyncobj followers
    truncate and re-append whenever an append-entries overlaps their log, even without a
    conflict (Raft §5.3 only allows it on a conflict), which can briefly drop entries they
    already acknowledged.

    If our last entry carries the sender's term, it was written by this very leader, so
    (log matching) our whole log equals the leader's up to it. Entries the message
    repeats are dropped and the message re-anchored at our last entry.
    """
    if "prevLogIdx" not in message or "transmission" in message:
        return message
    term = message["term"]
    if term < current_term or not len(log):
        return message
    _, last_index, last_term = log[-1]
    if last_term != term or last_index <= message["prevLogIdx"]:
        return message
    entries = message.get("entries") or []
    trimmed = dict(message)
    trimmed["prevLogIdx"] = last_index
    trimmed["prevLogTerm"] = last_term
    trimmed["entries"] = [e for e in entries if e[1] > last_index]
    return trimmed


def next_index_to_keep(message: Any, *, is_leader: bool, current: int | None) -> int | None:
    """*A late ack must not rewind the leader.* pysyncobj's leader sets a follower's next
    index to whatever a success reply names. A follower that was paused (or slow) works
    through a backlog of append-entries the leader pipelined long ago and acks each, so
    every late ack moved the next index back; once behind the leader's log start, each one
    made the leader send its whole snapshot again (55-180 loads of the same snapshot in
    1-2 s after a pause, each rewinding the follower's state). Acks still raise the match
    index; only a reset reply (a log conflict or gap) moves the next index back.

    `current` is the follower's next index before pysyncobj handles `message`; returns the
    value to restore afterwards, if the message would move it back."""
    if not is_leader or not isinstance(message, dict) or message.get("type") != "next_node_idx":
        return None
    if message.get("reset") or not message.get("success"):
        return None
    return current if current is not None and message.get("next_node_idx", current) < current else None


def orphaned_proposals(waiting: Iterable[int], applied_index: int) -> list[int]:
    """Log indexes of proposals that wait for an entry a snapshot load skipped past.
    pysyncobj calls a proposal back only when it applies that index itself, so these would
    wait for ever: their outcome is unknown (the replica retries them with the same
    exactly-once tag at once instead of at their deadline)."""
    return sorted(i for i in waiting if i <= applied_index)
