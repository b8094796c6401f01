"""The watch workload (tests/faults/watch.py): its checker on synthetic records (no sockets),
then writers and resuming watchers through kill -9 of a watched node, SIGSTOP of another and
a partition of the leader (where network namespaces exist), on one cluster: every
acknowledged change reaches every watcher once, in log order, whichever nodes it resumed
through."""

from __future__ import annotations

import pytest

from tests.faults.harness import FAULT_SECTIONS, hold, partitioned_cluster
from tests.faults.watch import WatchRecord, WatchWorkload, check_watch
from tests.helpers import wait_until


def record(watchers: int = 2) -> WatchRecord:
    rec = WatchRecord(seen=[[] for _ in range(watchers)], resumes=[0] * watchers)
    for n, outcome in enumerate(["ok", "ok", "unknown", "fail", "ok"]):
        value = f"0.{n}"
        rec.writes[value] = ("k", outcome)
        rec.order.setdefault("k", []).append(value)
    stream = [(10, "k", "0.0"), (11, "k", "0.1"), (13, "k", "0.4")]
    rec.seen = [list(stream) for _ in range(watchers)]
    return rec


def test_a_correct_record_passes():
    assert check_watch(record()) == []


@pytest.mark.parametrize("breakage, words", [
    (lambda r: r.seen[0].pop(1), "never seen"),
    (lambda r: r.seen[1].append((14, "k", "0.4")), "seen 2 times"),
    (lambda r: r.seen[0].insert(1, (9, "k", "0.9")), "never written"),
    (lambda r: r.seen[0].append((20, "k", "0.3")), "its SET failed"),
    (lambda r: r.seen[0].__setitem__(slice(0, 2), [(10, "k", "0.1"), (11, "k", "0.0")]), "out of their order"),
    (lambda r: r.seen[0].__setitem__(1, (9, "k", "0.1")), "repeated or out of order"),
    (lambda r: r.seen[0].insert(2, (12, "k", "0.2")), "seen by watchers [0] only"),
])
def test_each_breakage_is_caught(breakage, words):
    rec = record()
    breakage(rec)
    problems = check_watch(rec)
    assert any(words in p for p in problems), problems


def test_watchers_across_kill_pause_and_partition(tmp_path):
    sections = {**FAULT_SECTIONS, "watch": {"progress_ms": 100}}
    with partitioned_cluster(tmp_path, sections, required=False) as cl:
        watch = WatchWorkload(lambda: cl.endpoints, writers=2, watchers=3, seed=3)
        watch.start()
        try:
            wait_until(lambda: watch.ok_writes >= 30, 30, 0.05, "writes before the faults")
            watched = cl.nodes[0]  # watcher 0 starts here
            watched.kill()
            hold(1)
            watched.start()
            wait_until(lambda: watch.ok_writes >= 60, 30, 0.05, "writes after the kill")
            paused = cl.nodes[1]  # watcher 1's node: silent, so it resumes elsewhere
            paused.pause()
            hold(1.5)
            paused.resume()
            if cl.network is not None:
                cl.network.isolate(cl.nodes.index(cl.leader()))
                hold(2)
                cl.network.heal()
            wait_until(lambda: watch.ok_writes >= 90, 30, 0.05, "writes after the faults")
        finally:
            watch.stop()
        print(watch.summary(), flush=True)
        problems = watch.check()
        assert not problems, "\n".join(problems)
