"""The pub/sub workload (tests/faults/pubsub.py): its checker on synthetic histories, then a
subscriber on every node and publishers through any node under kill -9 of the leader,
SIGSTOP, a partition of a follower healed by a snapshot install (when namespaces exist):
every node's received sequence is part of one common order, gaps only across the
subscriber's own disconnects (reported), nothing received twice or from a failed PUBLISH."""

from __future__ import annotations

from tests.faults.harness import FAULT_SECTIONS, hold, partitioned_cluster
from tests.faults.pubsub import DISCONNECT, PubSubWorkload
from tests.helpers import wait_until


def synthetic(received: dict[int, list[str]], published: dict[str, str] | None = None) -> PubSubWorkload:
    w = PubSubWorkload(list)
    w.record.received = received
    w.record.published = published or {}
    return w


def test_checker_accepts_a_correct_history_with_reported_gaps():
    log = [f"p0.{n}" for n in range(10)]
    w = synthetic({0: log, 1: log[:3] + [DISCONNECT] + log[6:], 2: log[2:]})
    assert w.check() == []
    assert "sub1: 7 received, 1 disconnects" in w.summary()


def test_checker_catches_disorder_gaps_duplicates_and_failed_publishes():
    log = [f"p0.{n}" for n in range(6)] + [f"p1.{n}" for n in range(3)]
    swapped = log[:6] + [log[7], log[6], log[8]]
    assert any("no common order" in p for p in synthetic({0: log, 1: swapped}).check())
    gap = log[:2] + log[3:]  # lost one without a disconnect
    assert any("missed ['p0.2']" in p for p in synthetic({0: log, 1: gap}).check())
    assert any("twice" in p for p in synthetic({0: log + ["p0.1"]}).check())
    assert any("definitely failed" in p for p in synthetic({0: log}, {"p0.3": "fail"}).check())
    acked = {"p0.1": "ok", "p0.2": "ok"}
    assert any("out of their order" in p for p in synthetic({0: ["p0.2", "p0.1"]}, acked).check())
    assert synthetic({0: ["p0.2", "p0.1"]}, {"p0.1": "unknown", "p0.2": "ok"}).check() == []  # may commit late


def test_pubsub_through_kill_pause_and_a_snapshot_install(tmp_path):
    sections = {**FAULT_SECTIONS, "snapshot": {"min_entries": 200}}
    with partitioned_cluster(tmp_path, sections, required=False) as cl:  # partitions only where namespaces exist
        ps = PubSubWorkload(lambda: cl.endpoints, publishers=2, seed=3).start()
        try:
            wait_until(lambda: ps.ok_publishes >= 100, 30, 0.05, "messages before the faults")
            leader = cl.leader()
            leader.kill()
            hold(2)
            leader.start()
            paused = cl.leader()
            paused.pause()  # SIGSTOP past the election timeout
            hold(2.5)
            paused.resume()
            if cl.network is not None:  # a follower cut off while the log is compacted past it
                follower = next(n for n in cl.nodes if n is not cl.leader())
                cl.network.isolate(cl.nodes.index(follower))
                hold(2)
                with cl.leader().redis() as r:
                    r.execute_command("RAFTCACHE", "COMPACT")
                cl.network.heal()
            target = ps.ok_publishes + 100
            wait_until(lambda: ps.ok_publishes >= target, 60, 0.05, "messages after the faults")
        finally:
            ps.stop()
        print(ps.summary(), flush=True)
        problems = ps.check()
        assert not problems, "\n".join(problems[:20])
        assert all(len(r) > 100 for r in ps.record.received.values())
