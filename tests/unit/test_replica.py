"""The replica (group commit, exactly-once sessions, deadlines, read barriers, expiry sweeps,
snapshot hooks, membership) on the in-memory consensus fake: no sockets, no processes.

The test thread plays the consensus thread: ``fake.tick()`` commits and applies what is
pending, calls the replica back and runs its tick hook (deadlines, retries, leader duties).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from raftcache import commands as c
from raftcache.clock import Clock, ManualClock
from raftcache.consensus import Failure, RaftSettings, ReadIndex
from raftcache.consensus.memory import MemoryConsensus, memory_consensus
from raftcache.errors import NodeClosedError, NoLeaderError, OutcomeUnknownError, OverloadedError
from raftcache.replica import STALE, Replica, ReplicaOptions
from tests.helpers import wait_until

ADDRESS = "127.0.0.1:7101"


class Results:
    """on_done callbacks that record what each request was answered."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str):
        def on_done(result: Any) -> None:
            with self._lock:
                assert name not in self.values, f"{name} answered twice"
                self.values[name] = result

        return on_done

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self.values

    def __getitem__(self, name: str) -> Any:
        with self._lock:
            return self.values[name]


def make_replica(tmp_path=None, peers: tuple[str, ...] = (), clock: Clock | None = None, **options: Any) -> tuple[Replica, MemoryConsensus]:
    settings = RaftSettings(address=ADDRESS, peers=peers, data_dir=str(tmp_path) if tmp_path else None)
    replica = Replica(ReplicaOptions(raft=settings, **options), node_id="n1", clock=clock, consensus=memory_consensus)
    replica.start()
    assert isinstance(replica.raft, MemoryConsensus)
    return replica, replica.raft


@pytest.fixture
def node():
    replica, fake = make_replica()
    yield replica, fake
    replica.close()


def tick_until(fake: MemoryConsensus, predicate, timeout: float = 5.0, what: str = "condition") -> Any:
    def step() -> Any:
        fake.tick()
        return predicate()

    return wait_until(step, timeout, interval=0.005, what=what)


def batches(fake: MemoryConsensus) -> list[c.Batch]:
    return [c.decode_batch(p) for p in fake.applied_payloads]


def writes_in(batch: c.Batch) -> list[Any]:
    return [command for _, command in batch.commands if type(command) is not c.Barrier]


# ----------------------------------------------------------------------- group commit
def test_writes_queued_behind_an_entry_in_flight_go_out_as_one_entry(node):
    replica, fake = node
    results = Results()
    replica.submit(c.Set(b"first", b"1"), results("first"))  # proposed at once, alone
    for i in range(100):
        replica.submit(c.Set(b"k%d" % i, b"v%d" % i), results(f"k{i}"))
    assert fake.pending == 1  # one entry in flight (max_inflight=1); the rest wait
    fake.tick()  # commits "first"; the 100 queued writes go out as the next entry
    assert "first" in results and "k0" not in results
    assert fake.pending == 1
    fake.tick()
    assert all(results[f"k{i}"] is True for i in range(100))
    assert [len(writes_in(b)) for b in batches(fake)] == [1, 100]
    assert replica.counters["committed"] == 2


def test_a_batch_is_cut_at_the_configured_number_of_commands():
    replica, fake = make_replica(max_batch_commands=30)
    try:
        results = Results()
        for i in range(70):
            replica.submit(c.Set(b"k%d" % i, b"v"), results(f"k{i}"))
        tick_until(fake, lambda: all(f"k{i}" in results for i in range(70)), what="all writes answered")
        assert [len(writes_in(b)) for b in batches(fake)] == [1, 30, 30, 9]
    finally:
        replica.close()


# ------------------------------------------------------------------------ exactly once
def test_a_retried_tag_gets_the_first_result_and_applies_once(node):
    replica, fake = node
    results = Results()
    tag = c.SessionTag(client_id=77, seq=1, ack=1)
    replica.submit(c.IncrBy(b"n", 5), results("first"), tag=tag)
    tick_until(fake, lambda: "first" in results)
    replica.submit(c.IncrBy(b"n", 5), results("retry"), tag=tag)  # a client retrying after a timeout
    tick_until(fake, lambda: "retry" in results)
    assert results["first"] == results["retry"] == 5
    assert replica.read_local(c.Get(b"n")) == b"5"


def test_a_write_whose_commit_was_not_heard_is_retried_with_its_tag_and_applied_once():
    replica, fake = make_replica(entry_timeout_s=0.05)
    try:
        results = Results()
        fake.lose_acks = True  # the entry commits and applies; the news of it is lost
        replica.submit(c.IncrBy(b"n", 1), results("incr"))
        tick_until(fake, lambda: replica.counters["retried_writes"] >= 1, what="the entry deadline to pass")
        fake.lose_acks = False
        tick_until(fake, lambda: "incr" in results, what="the retry to be answered")
        assert results["incr"] == 1  # the first application's result, from the session table
        assert replica.read_local(c.Get(b"n")) == b"1"  # applied once
        incrs = [cmd for b in batches(fake) for cmd in writes_in(b) if type(cmd) is c.IncrBy]
        assert len(incrs) >= 2  # it really was in the log more than once
    finally:
        replica.close()


def test_a_definitely_failed_entry_is_retried_and_applied_once(node):
    replica, fake = node
    results = Results()
    fake.hold = True
    replica.submit(c.Append(b"s", b"x"), results("append"))
    fake.fail_pending(Failure.DISCARDED)  # overwritten by a new leader: certainly not applied
    fake.hold = False
    tick_until(fake, lambda: "append" in results)
    assert results["append"] == 1
    assert replica.read_local(c.Get(b"s")) == b"x"
    assert replica.counters["failed_discarded"] == 1


# --------------------------------------------------------------------------- deadlines
def test_without_a_leader_a_write_fails_as_definitely_not_applied(node):
    replica, fake = node
    results = Results()
    fake.set_leader(False)
    replica.submit(c.Set(b"k", b"v"), results("set"), timeout=0.2)
    tick_until(fake, lambda: "set" in results, what="the request deadline")
    assert isinstance(results["set"], NoLeaderError)
    assert replica.read_local(c.Get(b"k")) is None
    assert fake.applied_payloads == []


def test_without_a_leader_a_linearizable_read_fails_but_a_stale_one_is_answered(node):
    replica, fake = node
    results = Results()
    replica.submit(c.Set(b"k", b"v"), results("set"))
    tick_until(fake, lambda: "set" in results)
    fake.set_leader(False)
    replica.submit(c.Get(b"k"), results("linearizable"), timeout=0.2)
    replica.submit(c.Get(b"k"), results("stale"), consistency=STALE)
    assert results["stale"] == b"v"  # at once, from local state
    tick_until(fake, lambda: "linearizable" in results, what="the request deadline")
    assert isinstance(results["linearizable"], NoLeaderError)


def test_a_proposed_but_unconfirmed_write_ends_as_outcome_unknown_after_retries():
    replica, fake = make_replica(entry_timeout_s=0.05)
    try:
        results = Results()
        fake.lose_proposals = True  # accepted, never heard of again
        replica.submit(c.Set(b"k", b"v"), results("set"), timeout=1.0)
        tick_until(fake, lambda: "set" in results, what="the request deadline")
        assert isinstance(results["set"], OutcomeUnknownError)
        assert replica.counters["failed_timeout"] >= 2  # proposed, timed out, retried, ...
    finally:
        replica.close()


def test_a_full_queue_until_the_deadline_is_overloaded_not_applied(node):
    replica, fake = node
    results = Results()
    for _ in range(1000):
        fake.refuse_next(Failure.QUEUE_FULL)
    replica.submit(c.Set(b"k", b"v"), results("set"), timeout=0.2)
    tick_until(fake, lambda: "set" in results, what="the request deadline")
    assert isinstance(results["set"], OverloadedError)


def test_closing_fails_queued_requests_as_not_applied_and_proposed_ones_as_unknown():
    replica, fake = make_replica()
    results = Results()
    fake.hold = True
    replica.submit(c.Set(b"a", b"1"), results("proposed"))
    replica.submit(c.Set(b"b", b"1"), results("queued"))
    replica.close()
    assert isinstance(results["proposed"], OutcomeUnknownError)
    assert isinstance(results["queued"], NodeClosedError)
    replica.submit(c.Get(b"a"), results("after"))
    assert isinstance(results["after"], NodeClosedError)


# ------------------------------------------------------------------------ read barrier
def test_a_linearizable_read_proposes_no_entry_and_sees_the_writes_before_its_index(node):
    replica, fake = node
    results = Results()
    replica.submit(c.Set(b"k", b"old"), results("old"))
    tick_until(fake, lambda: "old" in results)
    proposed = replica.counters["proposed"]
    replica.submit(c.Set(b"k", b"new"), results("new"))  # in flight when the read arrives
    replica.submit(c.Get(b"k"), results("read"))
    assert "read" not in results  # nothing answers on the caller's thread
    fake.tick()  # "new" commits; the read index, taken after the read arrived, covers it
    assert results["new"] is True and results["read"] == b"new"
    assert replica.counters["proposed"] == proposed + 1  # the write's entry only
    assert replica.counters["read_index_reads"] == 1


def test_a_read_waits_until_this_node_has_applied_the_index_it_was_given(node):
    replica, fake = node
    results = Results()
    calls: list = []
    fake.read_index = calls.append  # the leader's answer arrives when the test says so
    replica.submit(c.Set(b"k", b"old"), results("old"))
    tick_until(fake, lambda: "old" in results)
    replica.submit(c.Get(b"k"), results("read"))
    fake.tick()
    [callback] = calls
    fake.hold = True
    replica.submit(c.Set(b"k", b"new"), results("new"))  # the index the leader will name
    callback(ReadIndex(fake.applied_index + 1, 0), None)
    fake.tick()
    assert "read" not in results  # this node has not applied that index yet
    fake.hold = False
    fake.tick()
    assert results["new"] is True
    tick_until(fake, lambda: "read" in results)
    assert results["read"] == b"new"


def test_a_read_waits_for_the_writes_submitted_before_it_on_this_node(node):
    """A pipelined SET then GET on one connection: the GET's index may predate the SET's
    commit, yet it must read the SET (Redis runs a connection's commands in order)."""
    replica, fake = node
    results = Results()
    calls: list = []
    fake.read_index = calls.append
    fake.hold = True
    replica.submit(c.Set(b"k", b"mine"), results("set"))
    replica.submit(c.Get(b"k"), results("get"))
    fake.tick()
    [callback] = calls
    callback(ReadIndex(fake.applied_index, 0), None)  # confirmed before the SET committed
    fake.tick()
    assert "get" not in results and "set" not in results
    fake.hold = False
    tick_until(fake, lambda: "get" in results)
    assert results["set"] is True and results["get"] == b"mine"


def test_a_failed_read_index_is_retried_and_never_answered_from_the_failed_attempt(node):
    replica, fake = node
    results = Results()
    calls: list = []
    real = fake.read_index
    fake.read_index = calls.append
    replica.submit(c.Get(b"k"), results("read"))
    fake.tick()
    [callback] = calls
    fake.read_index = real
    callback(None, Failure.NOT_LEADER)  # leadership lost before the round confirmed
    assert "read" not in results
    tick_until(fake, lambda: "read" in results, what="the retry")
    assert results["read"] is None and replica.counters["read_index_failed_not_leader"] == 1


def test_a_read_takes_the_log_barrier_while_a_key_is_expired_by_the_leaders_clock_but_not_swept():
    """The leader's clock says the key has expired; replicated time (which the next write is
    judged by) does not yet: the read rides an entry, which moves replicated time first."""
    clock = ManualClock()
    replica, fake = make_replica(clock=clock)
    try:
        results = Results()
        replica.submit(c.Set(b"k", b"v", ttl_ms=1_000), results("set"))
        tick_until(fake, lambda: "set" in results)
        clock.advance(1_500)  # due, and no tick has proposed the Sweep yet
        replica.submit(c.Get(b"k"), results("read"))
        tick_until(fake, lambda: "read" in results)
        assert results["read"] is None
        assert replica.counters["read_index_barrier"] == 1
        assert fake.applied_payloads and replica.fsm.now_ms >= clock.now_ms()  # the entry moved replicated time
    finally:
        replica.close()


def test_reads_lru_accesses_reach_the_log_without_writes_only_under_an_lru_policy(node):
    replica, fake = node
    results = Results()
    replica.submit(c.Set(b"k", b"v"), results("set"))
    tick_until(fake, lambda: "set" in results)
    replica.submit(c.Get(b"k"), results("plain"))
    tick_until(fake, lambda: "plain" in results)
    replica.submit(c.SetConfig("maxmemory-policy", b"allkeys-lru"), results("policy"))
    tick_until(fake, lambda: "policy" in results)
    replica.submit(c.Get(b"k"), results("lru"))
    tick_until(fake, lambda: "lru" in results)

    def accesses() -> list[tuple[bytes, ...]]:
        return [cmd.keys for batch in batches(fake) for _, cmd in batch.commands if type(cmd) is c.Access]

    # under noeviction a read records nothing; under LRU it gets an Access entry of its own
    # once no write has gone out for a second
    tick_until(fake, lambda: accesses(), what="an Access entry for the LRU read")
    assert accesses() == [(b"k",)]


def test_run_at_barrier_runs_on_the_consensus_thread_after_the_next_entry(node):
    replica, fake = node
    results = Results()
    seen: list[int] = []
    replica.run_at_barrier(lambda: seen.append(fake.applied_index) or "ran", results("fn"))
    assert seen == []
    fake.tick()
    assert results["fn"] == "ran" and seen == [fake.applied_index]


# ------------------------------------------------------------------------ expiry sweeps
def test_the_leader_sweeps_expired_keys_through_the_log():
    replica, fake = make_replica(clock_interval_s=0.01)
    try:
        results = Results()
        replica.submit(c.Set(b"lease", b"x", ttl_ms=30), results("set"))
        replica.submit(c.Set(b"keep", b"y"), results("keep"))
        tick_until(fake, lambda: "keep" in results)
        tick_until(fake, lambda: len(replica.fsm) == 1, what="the expired key to be swept")
        assert any(type(cmd) is c.Sweep for b in batches(fake) for cmd in writes_in(b))
        assert replica.read_local(c.Get(b"keep")) == b"y"
    finally:
        replica.close()


def test_a_follower_proposes_no_sweeps_or_clock_entries():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock, clock_interval_s=0.01)
    try:
        results = Results()
        replica.submit(c.Set(b"lease", b"x", ttl_ms=50), results("set"))
        tick_until(fake, lambda: "set" in results)  # simulated time stands still meanwhile
        fake.set_leader(False)
        applied = len(fake.applied_payloads)
        for _ in range(20):
            clock.advance(10)  # past the key's expiry
            fake.tick()
        assert len(fake.applied_payloads) == applied
    finally:
        replica.close()


# ---------------------------------------------------------- idle cost and the expiry schedule
# A ManualClock is also the replica's elapsed time (clock.proposal_clock), so these tests move
# simulated time on in steps and tick after each: no sleeping, exact stamps.
def sweeps_in(fake: MemoryConsensus) -> list[tuple[int, c.Sweep]]:
    """(batch time, Sweep) of every Sweep applied so far."""
    return [(b.time_ms, cmd) for b in batches(fake) for cmd in writes_in(b) if type(cmd) is c.Sweep]


def idle(clock: ManualClock, fake: MemoryConsensus, ms: int, step_ms: int = 10) -> None:
    for _ in range(ms // step_ms):
        clock.advance(step_ms)
        fake.tick()


def test_an_idle_replica_proposes_nothing_however_long_it_waits():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock)
    try:
        results = Results()
        replica.submit(c.Set(b"plain", b"v"), results("plain"))
        replica.submit(c.Set(b"later", b"v", ttl_ms=3_600_000), results("later"))  # due in an hour
        tick_until(fake, lambda: "later" in results)
        proposed = replica.counters["proposed"]
        idle(clock, fake, 10 * 60_000, step_ms=100)  # ten simulated minutes, 6000 ticks
        assert replica.counters["proposed"] == proposed
        assert fake.pending == 0 and len(fake.applied_payloads) == proposed
    finally:
        replica.close()


def test_a_linearizable_ttl_read_after_a_long_idle_stretch_counts_from_the_readers_time():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock)
    try:
        results = Results()
        replica.submit(c.Set(b"k", b"v", ttl_ms=60_000), results("set"))
        tick_until(fake, lambda: "set" in results)
        idle(clock, fake, 20_000, step_ms=100)
        assert replica.read_local(c.Ttl(b"k", ms=True)) == 60_000  # nothing moved local time
        replica.submit(c.Ttl(b"k", ms=True), results("pttl"))
        replica.submit(c.Ttl(b"k", ms=False), results("ttl"))
        tick_until(fake, lambda: "ttl" in results)
        assert (results["pttl"], results["ttl"]) == (40_000, 40)  # the read's entry carried its time
    finally:
        replica.close()


def test_a_200ms_key_is_swept_by_one_entry_at_its_due_time_and_reads_are_exact_before():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock)
    try:
        results = Results()
        start = clock.now_ms()
        replica.submit(c.Set(b"lease", b"x", ttl_ms=200), results("set"))
        tick_until(fake, lambda: "set" in results)
        idle(clock, fake, 199 - (clock.now_ms() - start), step_ms=1)
        assert clock.now_ms() == start + 199 and sweeps_in(fake) == []
        replica.submit(c.Get(b"lease"), results("before"))  # stamped 1 ms before the expiry
        fake.tick()
        clock.advance(1)
        replica.submit(c.Ttl(b"lease", ms=True), results("at"))  # stamped at it
        tick_until(fake, lambda: "at" in results)
        assert results["before"] == b"x" and results["at"] == -2
        idle(clock, fake, 10, step_ms=5)
        sweeps = sweeps_in(fake)
        assert len(sweeps) == 1 and start + 200 <= sweeps[0][0] <= start + 210
        assert len(replica.fsm) == 0 and replica.read_local(c.Get(b"lease")) is None
        proposed = replica.counters["proposed"]
        idle(clock, fake, 5_000)
        assert replica.counters["proposed"] == proposed  # nothing left to do, nothing proposed
    finally:
        replica.close()


def test_a_timer_wakes_the_consensus_thread_when_a_key_falls_due():
    replica, fake = make_replica()
    fake.start_ticking(interval=60.0)  # it ticks only when woken: by proposals, or the replica's timer
    try:
        results = Results()
        replica.submit(c.Set(b"lease", b"x", ttl_ms=150), results("set"))
        wait_until(lambda: "set" in results, 10, what="the SET")
        wait_until(lambda: len(replica.fsm) == 0, 10, what="the key to be swept without a periodic tick")
        assert len(sweeps_in(fake)) == 1
    finally:
        replica.close()


def test_the_sweep_is_due_by_the_leaders_clock_and_stale_reads_see_the_key_until_it_applies():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock)
    try:
        results = Results()
        replica.submit(c.Set(b"lease", b"x", ttl_ms=200), results("set"))
        tick_until(fake, lambda: "set" in results)
        fake.hold = True  # the Sweep is proposed but does not commit yet
        idle(clock, fake, 300)
        assert replica.read_local(c.Get(b"lease")) == b"x"  # local time has not moved
        fake.hold = False
        fake.tick()
        assert replica.read_local(c.Get(b"lease")) is None and len(sweeps_in(fake)) == 1
    finally:
        replica.close()


def test_sweeps_are_spaced_by_the_clock_interval_unless_a_backlog_remains():
    clock = ManualClock()
    replica, fake = make_replica(clock=clock, clock_interval_s=0.1, sweep_limit=5)
    try:
        results = Results()
        start = clock.now_ms()
        due = [100, 110, 120, 130, 140, 250] + [500] * 6
        for i, ms in enumerate(due):
            replica.submit(c.Set(b"k%d" % i, b"v", ttl_ms=ms), results(f"k{i}"))
        tick_until(fake, lambda: f"k{len(due) - 1}" in results)
        assert clock.now_ms() == start  # every SET was stamped at `start`
        idle(clock, fake, 520, step_ms=5)
        times = [t - start for t, _ in sweeps_in(fake)]
        # 100: the first key; 200 (not 110): the four due meanwhile, one Sweep; 300 (not 250);
        # 500: six keys, limit five: a second Sweep at once, not 100 ms later
        assert times[:3] == [100, 200, 300] and times[3] == 500 and 500 <= times[4] <= 505 and len(times) == 5
        assert len(replica.fsm) == 0
    finally:
        replica.close()


def test_sweeps_shrink_to_the_apply_time_budget_measured_on_this_node():
    """A write queued behind a Sweep waits for it on every node: once a Sweep's apply time
    per key is known, the next ones delete only what fits the budget (here: nothing fits,
    so the floor), and a full small Sweep still means a backlog, swept at once."""
    clock = ManualClock()
    replica, fake = make_replica(clock=clock, sweep_limit=1000, sweep_budget_s=1e-9)
    try:
        results = Results()
        for i in range(200):
            replica.submit(c.Set(b"a%d" % i, b"v", ttl_ms=100), results(f"a{i}"))
        for i in range(200):
            replica.submit(c.Set(b"b%d" % i, b"v", ttl_ms=400), results(f"b{i}"))
        tick_until(fake, lambda: "b199" in results)
        idle(clock, fake, 600, step_ms=5)
        limits = [sweep.limit for _, sweep in sweeps_in(fake)]
        assert limits == [1000, 64, 64, 64, 64], limits  # 200 keys unknown cost; then 64+64+64+8
        assert len(replica.fsm) == 0
    finally:
        replica.close()


def test_a_new_leader_takes_over_the_expiry_schedule_from_the_replicated_state(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clock = ManualClock()
    old, old_fake = make_replica(tmp_path / "a", clock=clock)
    new, new_fake = make_replica(tmp_path / "b", clock=clock)
    try:
        new_fake.set_leader(False)
        results = Results()
        start = clock.now_ms()
        old.submit(c.Set(b"lease", b"x", ttl_ms=200), results("set"))
        tick_until(old_fake, lambda: "set" in results)
        old_fake.force_snapshot()
        new_fake.load_snapshot(old_fake.snapshot_path)  # the follower has the entry too
        old_fake.set_leader(False)  # deposed before the key falls due
        for _ in range(30):
            clock.advance(10)
            old_fake.tick()
            new_fake.tick()
        assert sweeps_in(old_fake) == [] and new.counters["proposed"] == 0  # followers: no sweeps
        new_fake.set_leader(True)
        new_fake.tick()
        new_fake.tick()
        sweeps = sweeps_in(new_fake)
        assert len(sweeps) == 1 and sweeps[0][0] >= start + 200
        assert len(new.fsm) == 0
    finally:
        old.close()
        new.close()


# --------------------------------------------------------------------- snapshot hooks
def test_a_snapshot_written_through_the_hooks_restores_the_state(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source, fake = make_replica(tmp_path / "a")
    results = Results()
    try:
        source.submit(c.MSet((b"a", b"1", b"b", b"2")), results("mset"))
        tick_until(fake, lambda: "mset" in results)
        fake.force_snapshot()
    finally:
        source.close()
    target, other = make_replica(tmp_path / "b")
    try:
        meta = other.load_snapshot(fake.snapshot_path)
        assert meta == fake.snapshots[-1]
        assert target.read_local(c.Get(b"a")) == b"1" and target.read_local(c.Get(b"b")) == b"2"
        target.digest_async(results("digest"))
        tick_until(other, lambda: "digest" in results)
        assert results["digest"][1] == source.fsm.digest()
    finally:
        target.close()


# ------------------------------------------------------------------------- membership
def test_add_and_remove_member_go_through_the_registry_and_consensus(node):
    replica, fake = node
    results = Results()
    replica.add_member("127.0.0.1:7102", "n2", "127.0.0.1:7002", results("add"))
    tick_until(fake, lambda: "add" in results)
    assert results["add"] is True
    assert ("127.0.0.1:7102", "n2", "127.0.0.1:7002") in replica.members()
    replica.remove_member("127.0.0.1:7102", results("remove"))
    tick_until(fake, lambda: "remove" in results)
    assert results["remove"] is True
    assert [m[0] for m in replica.members()] == [ADDRESS]


def test_status_reports_the_consensus_view_and_the_queues(node):
    replica, fake = node
    status = replica.status()
    assert (status.role, status.leader, status.members) == ("leader", ADDRESS, (ADDRESS,))
    fake.hold = True
    replica.submit(c.Set(b"k", b"v"), Results()("set"))
    replica.submit(c.Set(b"k2", b"v"), Results()("set2"))
    status = replica.status()
    assert (status.inflight_entries, status.queued_requests) == (1, 1)


def test_a_leadership_transfer_holds_proposals_until_another_node_leads():
    replica, fake = make_replica(peers=("127.0.0.1:7102",))
    try:
        results = Results()
        replica.transfer_leadership("127.0.0.1:7102", results("transfer"), timeout=2)
        assert fake.refuse_forwarded_for == 2  # forwarded proposals are refused meanwhile
        replica.submit(c.Set(b"k", b"v"), results("set"))
        assert fake.pending == 0  # held: the target must be able to catch up
        tick_until(fake, lambda: "transfer" in results)
        assert results["transfer"] is None and fake.status().leader == "127.0.0.1:7102"
        assert fake.refuse_forwarded_for == 0
    finally:
        replica.close()
