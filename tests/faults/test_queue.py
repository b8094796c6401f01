"""The queue workload (tests/faults/queue.py): its checker on synthetic histories (no
sockets: a correct history passes, each kind of broken one is caught and named), then
producers (LPUSH) and BLMOVE consumers (into their own lists, LREM when done) under kill -9,
SIGSTOP and a partition of the leader, next to a lighter register / append / counter
workload. Each scenario fails if an acknowledged item is lost (neither consumed nor queued),
an item is delivered, consumed or queued twice, an item whose LPUSH failed shows up, or the
replicas do not converge."""

from __future__ import annotations

import random

import pytest

from tests.faults.harness import FAULT_SECTIONS, hold, partitioned_cluster, run_scenario
from tests.faults.queue import Item, QueueRecord, ambiguous_pushes, check_queue, queue_summary

# The queue is the subject here: its producers and consumers, fewer of the mixed workload's;
# enough items consumed after the fault (100) that the cluster runs on well past the heal.
LOAD = {"workers": 2, "queue_consumers": 3, "min_ok": 300, "min_consumed": 100}


# ------------------------------------------------------------------ the checker alone
def simulate(seed: int, items: int = 300, consumers: int = 3) -> tuple[QueueRecord, dict[str, list[str]]]:
    """A history a correct server could produce, ambiguous calls included."""
    rng = random.Random(seed)
    rec = QueueRecord("q", [f"mine:{c}" for c in range(consumers)])
    queue: list[str] = []
    mine: list[list[str]] = [[] for _ in range(consumers)]
    for n in range(items):
        item = rec.items.setdefault(f"p.{n}", Item(f"p.{n}", invoke=float(n)))
        roll = rng.random()
        item.push = "fail" if roll < 0.05 else "unknown" if roll < 0.1 else "ok"
        if item.push == "ok" or (item.push == "unknown" and roll < 0.08):
            queue.insert(0, item.id)
        # consumers take from the tail now and then
        while queue and rng.random() < 0.6:
            c = rng.randrange(consumers)
            taken = rec.items[queue.pop()]
            mine[c].insert(0, taken.id)
            if rng.random() < 0.1:  # the BLMOVE's reply was lost: found later by LRANGE
                rec.moves["unknown"] += 1
                taken.recovered_by.append(c)
            else:
                rec.moves["ok"] += 1
                taken.delivered_to.append(c)
            done = rng.random()
            if done < 0.7:
                mine[c].remove(taken.id)
                taken.removed += 1
            elif done < 0.8:  # LREM without a reply, which applied
                mine[c].remove(taken.id)
                taken.removed_maybe += 1
            # else: still in the consumer's list at the end
    final = {"q": queue, **{rec.consumer_keys[c]: mine[c] for c in range(consumers)}}
    return rec, final


def acked(rec: QueueRecord) -> list[Item]:
    return [item for item in rec.items.values() if item.push == "ok"]


@pytest.mark.parametrize("seed", range(5))
def test_a_correct_history_passes(seed):
    rec, final = simulate(seed)
    assert sum(item.removed for item in rec.items.values()) > 100  # the history has substance
    assert check_queue(rec, final) == []
    verdicts = ambiguous_pushes(rec, final)
    assert verdicts["applied"] > 0 and verdicts["not applied"] > 0  # both allowed, both named
    assert "of the unknown ones: applied" in queue_summary(rec, final)


def test_an_acknowledged_item_lost_is_caught():
    rec, final = simulate(1)
    key, item = next((k, i) for i in acked(rec) for k, values in final.items() if i.id in values and not i.removed_maybe)
    final[key].remove(item.id)  # an acknowledged item, queued, that vanished
    problems = check_queue(rec, final)
    assert any(f"acknowledged item {item.id}" in p and "lost" in p for p in problems), problems


def test_a_delivered_then_vanished_item_is_caught():
    rec, final = simulate(2)
    item = next(i for i in acked(rec) if i.delivered_to and i.removed == 1 and not i.removed_maybe)
    item.removed = 0  # the consumer got it, its LREM never succeeded, and it is gone
    problems = check_queue(rec, final)
    assert any(f"acknowledged item {item.id}" in p and "delivered to" in p for p in problems), problems


def test_an_item_consumed_and_still_queued_is_caught():
    rec, final = simulate(3)
    item = next(i for i in acked(rec) if i.removed == 1)
    final["q"].append(item.id)  # a second copy: e.g. a pop applied on one replica only
    problems = check_queue(rec, final)
    assert any(f"item {item.id}" in p and "duplicated" in p for p in problems), problems


def test_an_item_delivered_twice_is_caught():
    rec, final = simulate(4)
    item = next(i for i in acked(rec) if i.delivered_to)
    item.delivered_to.append((item.delivered_to[0] + 1) % 3)
    problems = check_queue(rec, final)
    assert any(f"item {item.id}" in p and "delivered twice" in p for p in problems), problems


def test_a_failed_push_that_applied_is_caught():
    rec, final = simulate(5)
    item = next(i for i in rec.items.values() if i.push == "fail")
    final["mine:0"].append(item.id)
    problems = check_queue(rec, final)
    assert any(f"item {item.id}" in p and "although its LPUSH failed" in p for p in problems), problems


def test_items_nobody_pushed_are_caught():
    rec, final = simulate(6)
    final["q"].append("ghost")
    rec.strangers.append((1, "phantom"))
    problems = check_queue(rec, final)
    assert any("'ghost'" in p and "never pushed" in p for p in problems), problems
    assert any("'phantom'" in p and "never pushed" in p for p in problems), problems


def test_an_item_in_another_consumers_list_is_caught():
    rec, final = simulate(7)
    item = next(i for i in acked(rec) if i.delivered_to and i.id in final[rec.consumer_keys[i.delivered_to[0]]])
    own = rec.consumer_keys[item.delivered_to[0]]
    other = rec.consumer_keys[(item.delivered_to[0] + 1) % 3]
    final[own].remove(item.id)
    final[other].append(item.id)
    problems = check_queue(rec, final)
    assert any(f"item {item.id}" in p and "delivered to consumer" in p for p in problems), problems


def test_no_work_is_a_problem():
    rec = QueueRecord("q", ["mine:0"])
    problems = check_queue(rec, {"q": [], "mine:0": []})
    assert any("no LPUSH was acknowledged" in p for p in problems)
    assert any("no item was consumed" in p for p in problems)


# ---------------------------------------------------------------------- under faults
def test_queue_across_kill_pause_and_partition_of_the_leader(tmp_path):
    """One cluster, one load, the three faults one after the other (cheaper than three runs);
    the partition only where network namespaces exist."""
    with partitioned_cluster(tmp_path, FAULT_SECTIONS, required=False) as cl:
        def kill():
            leader = cl.leader()
            leader.kill()  # pushes, moves and removals in flight there end unknown
            hold(3)
            leader.start()

        def pause():
            leader = cl.leader()
            leader.pause()  # SIGSTOP past the election timeout; its blocked consumers wait on it
            hold(4)
            leader.resume()

        def partition():
            leader = cl.leader()
            cl.network.isolate(cl.nodes.index(leader))  # its consumers still reach it; its peers do not
            hold(5)
            cl.network.heal()

        faults = [kill, pause] + ([partition] if cl.network is not None else [])
        run_scenario("queue: kill -9 leader, restart after 3 s; SIGSTOP leader 4 s, SIGCONT; partition, leader alone "
                     "in the minority, 5 s", cl, faults, **LOAD)
