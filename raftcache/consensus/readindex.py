"""ReadIndex bookkeeping (Raft thesis §6.4, etcd's ReadIndex), sans I/O.

A linearizable read needs no log entry if the node that answers it knows an index ``i`` such
that every write acknowledged before the read arrived is at or below ``i``, and answers from
state applied up to ``i``. The leader finds ``i`` like this:

1. It must have committed an entry of its own term (pysyncobj appends a no-op on election;
   until that commits, a new leader's commit index may lag entries earlier leaders committed,
   so its reads wait).
2. Reads that arrived are put in a **round** with a fresh number, never reused; the round
   records the commit index *now* (after the reads arrived) and the leader sends every peer a
   probe ``(term, round)``.
3. A peer acks ``(term, round)`` only while its own term is that term. The round is confirmed
   once a majority (the leader included) acked it **or a later round** of this term: an ack
   of round ``n`` was made after round ``n`` was started, so after every read of any round
   ``m <= n`` arrived. An ack of an older round never confirms a newer one (etcd shipped that
   bug: a retried read confirmed by the acks to an earlier attempt).
4. If the term changes or the node stops leading before a round is confirmed, every read
   not yet confirmed fails (never answered): the caller retries elsewhere. A confirmed round's
   index stays valid even if leadership is lost right after (etcd's "read index ready" vs.
   "leader changed" race: here the two cannot interleave, both run on the one Raft thread,
   and the check is made on the term the acks carry).

Why a majority's acks in term ``t`` after the read arrived suffice: a leader of a later term
needs votes from a majority; one of them also acked us, and terms never go down, so it voted
after it acked, i.e. after the read arrived. Writes that later leader commits were therefore
acknowledged after the read arrived (concurrent with it); writes acknowledged before were
committed in terms ``<= t`` and are in this leader's log at or below its commit index (Leader
Completeness, once an entry of term ``t`` committed).

A follower asks the leader for an index (:class:`IndexRequests`): a request sent after its
reads arrived, answered by the leader after a round started after the request arrived, so
the same argument holds; it then waits until it has applied that index itself.

:class:`LeaderReads` and :class:`IndexRequests` hold only numbers and opaque waiters; the
backend sends the messages they ask for and calls them back on its Raft thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Round:
    number: int
    index: int
    waiters: list[Any]


@dataclass(slots=True)
class Confirmed:
    """Waiters whose read index is known."""

    index: int
    waiters: list[Any]


class LeaderReads:
    """The leader's side: numbered rounds, acks per peer, majority counting.

    Drive it from the Raft thread: :meth:`observe` at every tick and role change (term and
    leadership, which may fail waiters), :meth:`add` for each read, :meth:`start_round`
    (returns the round number to probe the peers with, or None), :meth:`on_ack` for each ack.
    """

    def __init__(self, retry_s: float = 0.1) -> None:
        self.retry_s = retry_s  # re-probe (with a fresh number) when no majority answered by then
        self._term: int | None = None  # the term this node leads in; None: not leading
        self._number = 0  # the last round number issued: only grows, across terms too
        self._acked: dict[str, int] = {}  # peer -> highest round number it acked in self._term
        self._queued: list[Any] = []  # waiters no round covers yet
        self._rounds: list[_Round] = []  # unconfirmed rounds, oldest (smallest number) first
        self._probed_at = 0.0  # when the last probe went out

    @property
    def last_round(self) -> int:
        return self._number

    @property
    def pending(self) -> int:
        return len(self._queued) + sum(len(r.waiters) for r in self._rounds)

    def observe(self, term: int, leading: bool) -> list[Any]:
        """The node's current term and whether it leads. A change of either ends the
        leadership being tracked: the waiters not yet confirmed are returned, to be failed."""
        now_term = term if leading else None
        if now_term == self._term:
            return []
        failed = self._queued + [w for r in self._rounds for w in r.waiters]
        self._queued, self._rounds, self._acked = [], [], {}
        self._term = now_term
        return failed

    def add(self, waiter: Any) -> bool:
        """Queue a read that has just arrived; False (not queued) when not leading."""
        if self._term is None:
            return False
        self._queued.append(waiter)
        return True

    def start_round(self, commit_index: int, own_term_committed: bool, now: float) -> int | None:
        """The number of a round to probe every peer with now, or None. Starts one for the
        queued waiters (recording `commit_index`, which is taken after they arrived), and
        re-probes with a fresh number when the oldest round went unconfirmed for `retry_s`
        (lost probes or acks; a fresh number, because acks to it prove something new)."""
        if self._term is None or not own_term_committed:
            return None
        if self._queued:
            self._number += 1
            self._rounds.append(_Round(self._number, commit_index, self._queued))
            self._queued = []
        elif self._rounds and now - self._probed_at >= self.retry_s:
            self._number += 1
        else:
            return None
        self._probed_at = now
        return self._number

    def on_ack(self, peer: str, term: int, number: int, voters: Iterable[str]) -> list[Confirmed]:
        """A peer acked round `number` in `term`. `voters`: the other voting members now.
        Returns the rounds this confirms (in order). Acks of another term, of rounds never
        issued, or from non-members count for nothing."""
        if term != self._term or number > self._number or number <= self._acked.get(peer, 0):
            return []
        voters = set(voters)
        if peer not in voters:
            return []
        self._acked[peer] = number
        return self.confirm(voters)

    def confirm(self, voters: Iterable[str]) -> list[Confirmed]:
        """The rounds a majority of {self} + `voters` has acked (all, for a lone node)."""
        voters = list(voters)
        confirmed: list[Confirmed] = []
        while self._rounds:
            first = self._rounds[0]
            votes = 1 + sum(1 for v in voters if self._acked.get(v, 0) >= first.number)
            if votes * 2 <= len(voters) + 1:
                break
            self._rounds.pop(0)
            confirmed.append(Confirmed(first.index, first.waiters))
        return confirmed


def follower_acks(own_term: int, leading: bool, probe_term: int) -> bool:
    """Whether a node acks a probe: only in the probe's own term (then its sender is that
    term's one leader, and this node has not moved on to a later one), never as a leader."""
    return not leading and probe_term == own_term


@dataclass(slots=True)
class _Request:
    id: int
    leader: str
    sent_at: float
    waiters: list[Any] = field(default_factory=list)


class IndexRequests:
    """A follower's side: one request for a read index in flight to the leader at a time; the
    reads that arrive meanwhile wait for the next request (one sent after they arrived)."""

    def __init__(self, retry_s: float = 0.5) -> None:
        self.retry_s = retry_s  # give a request up (lost message, dead leader) and ask anew
        self._ids = 0
        self._queued: list[Any] = []
        self._inflight: _Request | None = None

    @property
    def pending(self) -> int:
        return len(self._queued) + (len(self._inflight.waiters) if self._inflight else 0)

    def add(self, waiter: Any) -> None:
        self._queued.append(waiter)

    def next_request(self, leader: str | None, now: float) -> tuple[str, int] | list[Any] | None:
        """What to do now: ``(leader, request id)`` to send; a list of waiters to fail (no
        leader known); or None (nothing to send). A request unanswered for `retry_s`, or sent
        to a node that is no longer the leader, is given up (its waiters are asked for again:
        a new request is sent after they arrived too)."""
        current = self._inflight
        if current is not None:
            if current.leader == leader and now - current.sent_at < self.retry_s:
                return None
            self._queued[:0] = current.waiters
            self._inflight = None
        if not self._queued:
            return None
        if leader is None:
            failed, self._queued = self._queued, []
            return failed
        self._ids += 1
        self._inflight = _Request(self._ids, leader, now, self._queued)
        self._queued = []
        return leader, self._ids

    def on_reply(self, request_id: int, ok: bool) -> list[Any]:
        """The leader answered request `request_id`: its waiters (none if the id is not the
        one in flight: a late answer to a request given up, whose waiters were asked again)."""
        current = self._inflight
        if current is None or current.id != request_id:
            return []
        self._inflight = None
        return current.waiters

    def fail_all(self) -> list[Any]:
        failed = self._queued + (self._inflight.waiters if self._inflight else [])
        self._queued, self._inflight = [], None
        return failed
