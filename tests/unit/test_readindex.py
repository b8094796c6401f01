"""ReadIndex bookkeeping (consensus/readindex.py): numbered rounds, majority counting, stale
acks, step-down, a new leader's first entry, and the follower's requests. Sans I/O."""

from __future__ import annotations

from raftcache.consensus.readindex import IndexRequests, LeaderReads, follower_acks

PEERS = ["b", "c"]  # a 3-node cluster seen from its leader "a"
FIVE = ["b", "c", "d", "e"]


def leading(term: int = 5) -> LeaderReads:
    reads = LeaderReads(retry_s=0.1)
    assert reads.observe(term, True) == []
    return reads


def test_a_round_is_confirmed_by_a_majority_and_carries_the_commit_index_taken_after_the_reads():
    reads = leading()
    reads.add("r1")
    reads.add("r2")
    number = reads.start_round(commit_index=40, own_term_committed=True, now=0.0)
    assert number == 1
    assert reads.confirm(PEERS) == []  # the leader alone is no majority of 3
    [confirmed] = reads.on_ack("b", 5, number, PEERS)
    assert (confirmed.index, confirmed.waiters) == (40, ["r1", "r2"])
    assert reads.on_ack("c", 5, number, PEERS) == []  # already answered: nothing twice
    assert reads.pending == 0


def test_five_nodes_need_two_acks_besides_the_leader():
    reads = leading()
    reads.add("r")
    number = reads.start_round(7, True, 0.0)
    assert reads.on_ack("b", 5, number, FIVE) == []
    assert [c.waiters for c in reads.on_ack("d", 5, number, FIVE)] == [["r"]]


def test_a_lone_node_is_its_own_majority():
    reads = leading()
    reads.add("r")
    reads.start_round(3, True, 0.0)
    assert [(c.index, c.waiters) for c in reads.confirm([])] == [(3, ["r"])]


def test_acks_to_an_older_round_never_confirm_a_newer_one():
    """etcd's bug: a read retried (or arriving) after round 1 went out, confirmed by the acks
    to round 1, made before it arrived."""
    reads = leading()
    reads.add("early")
    first = reads.start_round(10, True, 0.0)
    reads.add("late")
    second = reads.start_round(12, True, 0.01)
    assert second == first + 1
    [confirmed] = reads.on_ack("b", 5, first, PEERS)
    assert confirmed.waiters == ["early"]
    assert reads.on_ack("c", 5, first, PEERS) == []  # still only acks to round 1
    assert reads.pending == 1
    [confirmed] = reads.on_ack("c", 5, second, PEERS)
    assert (confirmed.index, confirmed.waiters) == (12, ["late"])


def test_an_ack_to_a_later_round_confirms_the_earlier_ones_too():
    reads = leading()
    reads.add("a")
    first = reads.start_round(10, True, 0.0)
    reads.add("b")
    second = reads.start_round(11, True, 0.0)
    confirmed = reads.on_ack("c", 5, second, PEERS)
    assert [(c.index, c.waiters) for c in confirmed] == [(10, ["a"]), (11, ["b"])]
    assert first < second


def test_a_retry_probes_with_a_fresh_number_and_only_after_the_retry_interval():
    reads = leading()
    reads.add("r")
    first = reads.start_round(10, True, 0.0)
    assert reads.start_round(10, True, 0.05) is None  # nothing new, not yet due
    again = reads.start_round(10, True, 0.2)
    assert again == first + 1
    [confirmed] = reads.on_ack("b", 5, again, PEERS)
    assert confirmed.index == 10  # the index recorded when the reads' round started


def test_acks_of_another_term_of_unissued_rounds_or_of_non_members_count_for_nothing():
    reads = leading(term=5)
    reads.add("r")
    number = reads.start_round(10, True, 0.0)
    assert reads.on_ack("b", 4, number, PEERS) == []  # an old term's ack
    assert reads.on_ack("b", 6, number, PEERS) == []  # a term this node does not lead in
    assert reads.on_ack("b", 5, number + 1, PEERS) == []  # a round never sent
    assert reads.on_ack("x", 5, number, PEERS) == []  # not a member
    assert reads.pending == 1
    assert reads.on_ack("b", 5, number, PEERS)


def test_stepping_down_fails_every_read_not_yet_confirmed():
    reads = leading(term=5)
    reads.add("confirmed")
    number = reads.start_round(10, True, 0.0)
    assert reads.on_ack("b", 5, number, PEERS)
    reads.add("in a round")
    later = reads.start_round(11, True, 0.0)
    reads.add("queued")
    assert sorted(reads.observe(5, False)) == ["in a round", "queued"]
    assert reads.pending == 0
    assert reads.on_ack("c", 5, later, PEERS) == []  # a late ack answers nothing
    assert not reads.add("after")  # not leading: refused, the caller fails it


def test_a_new_term_fails_the_old_terms_reads_even_when_leading_again():
    """Deposed and re-elected between two looks: acks of the old term must not confirm."""
    reads = leading(term=5)
    reads.add("r")
    number = reads.start_round(10, True, 0.0)
    assert reads.observe(7, True) == ["r"]
    assert reads.on_ack("b", 5, number, PEERS) == []
    reads.add("new")
    fresh = reads.start_round(12, True, 0.0)
    assert fresh > number  # numbers are never reused, across terms too
    assert reads.on_ack("b", 5, fresh, PEERS) == []  # right round, wrong term
    assert [c.waiters for c in reads.on_ack("b", 7, fresh, PEERS)] == [["new"]]


def test_a_new_leader_waits_for_an_entry_of_its_own_term_before_taking_an_index():
    reads = leading()
    reads.add("r")
    assert reads.start_round(10, own_term_committed=False, now=0.0) is None
    assert reads.confirm(PEERS) == [] and reads.pending == 1
    number = reads.start_round(11, own_term_committed=True, now=0.01)
    [confirmed] = reads.on_ack("b", 5, number, PEERS)
    assert confirmed.index == 11


def test_a_follower_acks_only_probes_of_its_own_term():
    assert follower_acks(own_term=5, leading=False, probe_term=5)
    assert not follower_acks(own_term=6, leading=False, probe_term=5)  # moved on: a newer leader may exist
    assert not follower_acks(own_term=4, leading=False, probe_term=5)  # not caught up: next round
    assert not follower_acks(own_term=5, leading=True, probe_term=5)


# ----------------------------------------------------------------------- follower side
def test_one_request_in_flight_and_reads_arriving_meanwhile_wait_for_the_next():
    requests = IndexRequests(retry_s=0.5)
    requests.add("r1")
    leader, first = requests.next_request("n1", 0.0)
    assert leader == "n1"
    requests.add("r2")
    assert requests.next_request("n1", 0.1) is None
    assert requests.on_reply(first, True) == ["r1"]
    _, second = requests.next_request("n1", 0.2)
    assert second != first
    assert requests.on_reply(first, True) == []  # a duplicate answer answers nothing
    assert requests.on_reply(second, True) == ["r2"]


def test_an_unanswered_request_is_given_up_and_asked_anew_and_its_late_answer_ignored():
    requests = IndexRequests(retry_s=0.5)
    requests.add("r")
    _, first = requests.next_request("n1", 0.0)
    _, second = requests.next_request("n1", 0.6)
    assert requests.on_reply(first, True) == []
    assert requests.on_reply(second, True) == ["r"]


def test_a_leader_change_resends_and_no_leader_fails_the_reads():
    requests = IndexRequests(retry_s=0.5)
    requests.add("r")
    _, first = requests.next_request("n1", 0.0)
    leader, second = requests.next_request("n2", 0.1)
    assert leader == "n2" and second != first
    assert requests.next_request(None, 0.2) == ["r"]
    assert requests.pending == 0
