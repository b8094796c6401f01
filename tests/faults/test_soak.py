"""Soak: random fault mixes for a long time (30 minutes by default).

    python -m pytest -m soak -n 0 tests/faults/test_soak.py [-s]   # -n 0: one process, so -s shows progress
    RAFTCACHE_SOAK_MINUTES=5 python -m pytest -m soak -n 0 tests/faults/test_soak.py

The run is cut into segments of about a minute; each segment runs the mixed workload,
the bank (transfers by MULTI/EXEC with WATCH and by Lua script, tests/faults/bank.py) and
the queue (LPUSH producers, BLMOVE consumers, LREM when done, tests/faults/queue.py), pub/sub
(a subscriber on every node, one publisher, tests/faults/pubsub.py), the eviction workload
(a cache at its maxmemory, tests/faults/eviction.py) and the watch workload (writers and
resuming RAFTCACHE WATCH streams, tests/faults/watch.py) through a random
sequence of faults, heals, and is verified (linearizability, lost and duplicated writes,
counters, the bank's atomicity, every queued item consumed once or still queued, evicted
keys gone whole and the limit kept, every change watched once and in log order, convergence)
before the next one starts.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.faults.bank import BankWorkload
from tests.faults.eviction import EvictionWorkload
from tests.faults.harness import FAULT_SECTIONS, Workload, hold, judge, partitioned_cluster
from tests.faults.pubsub import PubSubWorkload
from tests.faults.queue import QueueWorkload
from tests.faults.watch import WatchWorkload

MINUTES = float(os.environ.get("RAFTCACHE_SOAK_MINUTES", "30"))
# The suite-wide 300 s test timeout would cut the soak short: allow its length plus healing.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(MINUTES * 60) + 900)]


def faults(cluster, rng: random.Random):
    def kill_leader():
        node = cluster.leader()
        node.kill()
        hold(rng.uniform(0.5, 4))
        node.start()

    def kill_follower():
        node = rng.choice([n for n in cluster.nodes if n is not cluster.leader()])
        node.kill()
        hold(rng.uniform(0.5, 4))
        node.start()

    def pause_any():
        node = rng.choice(cluster.nodes)
        node.pause()
        hold(rng.uniform(0.5, 5))
        node.resume()

    def kill_all():
        for node in cluster.nodes:
            node.kill()
        for node in rng.sample(cluster.nodes, len(cluster.nodes)):
            node.start()
            hold(rng.uniform(0, 1))

    def compact():
        for node in cluster.nodes:
            with node.redis() as r:
                r.execute_command("RAFTCACHE", "COMPACT")

    def transfer():
        with cluster.leader().redis() as r:
            r.execute_command("RAFTCACHE", "TRANSFER")

    def clock_jump():
        with rng.choice(cluster.nodes).redis() as r:
            r.execute_command("RAFTCACHE", "DEBUG", "CLOCK-OFFSET", rng.choice([-600_000, 0, 600_000]))

    menu = [kill_leader, kill_follower, pause_any, kill_all, compact, transfer, clock_jump]
    network = getattr(cluster, "network", None)
    if network is not None:
        def partition():
            network.isolate(rng.randrange(len(cluster.nodes)))
            hold(rng.uniform(1, 6))
            network.heal()

        def split_leader():
            network.isolate(cluster.nodes.index(cluster.leader()))
            hold(rng.uniform(1, 6))
            network.heal()

        menu += [partition, split_leader]
    return menu


def stop_all(*stops) -> None:
    """Stop every workload even when one of them fails; the first failure is raised after."""
    failure = None
    for stop in stops:
        try:
            stop()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others stopped
            failure = failure or exc
    if failure is not None:
        raise failure


def test_random_fault_mix(tmp_path):
    minutes = MINUTES
    rng = random.Random(int(os.environ.get("RAFTCACHE_SOAK_SEED", "7")))
    sections = {**FAULT_SECTIONS, "snapshot": {"min_entries": 500}}
    with partitioned_cluster(tmp_path, sections, required=False) as cluster:  # partitions only where namespaces exist
        network = cluster.network
        end = time.monotonic() + minutes * 60
        segment = 0
        while time.monotonic() < end:
            segment += 1
            bank = BankWorkload(lambda: cluster.endpoints, workers=3, seed=segment, prefix=f"s{segment}:").start()
            # 1 MB of headroom for what the other workloads add in a segment; 2-6 KB values fill it
            evict = EvictionWorkload(lambda: cluster.endpoints, workers=1, seed=segment, prefix=f"s{segment}:ev:",
                                     headroom=1 << 20, value_bytes=(2048, 6144)).start()
            queue = QueueWorkload(lambda: cluster.endpoints, consumers=3, seed=segment, prefix=f"s{segment}:").start()
            pubsub = PubSubWorkload(lambda: cluster.endpoints, publishers=1, seed=segment, prefix=f"s{segment}:").start()
            watch = WatchWorkload(lambda: cluster.endpoints, writers=1, watchers=2, seed=segment, prefix=f"s{segment}:wt:").start()
            workload = Workload(lambda: cluster.endpoints, workers=6, seed=segment, prefix=f"s{segment}:").start()
            started = time.monotonic()
            try:
                segment_end = min(end, started + 60)
                menu = faults(cluster, rng)
                while time.monotonic() < segment_end:
                    fault = rng.choice(menu)
                    print(f"  {time.monotonic() - started:6.1f}s {fault.__name__}", flush=True)
                    fault()
                    hold(rng.uniform(1, 5))
            finally:
                stop_all(workload.stop, bank.stop, queue.stop, evict.stop, watch.stop)
            if network is not None:
                network.heal()  # the pub/sub workload's END marker must reach every subscriber
            pubsub.stop(drain_timeout=90)

            def heal_network_and_clocks():
                if network is not None:
                    network.heal()
                for node in cluster.nodes:
                    with node.redis() as r:
                        r.execute_command("RAFTCACHE", "DEBUG", "CLOCK-OFFSET", 0)

            judge(f"soak segment {segment}", cluster, workload, started, min_ok=100, converge_timeout=90,
                  after=heal_network_and_clocks, bank=bank, queue=queue)
            problems = evict.check(cluster)
            print(evict.summary(), flush=True)
            assert not problems, "\n".join(problems[:20])
            problems = pubsub.check()
            print(pubsub.summary(), flush=True)
            assert not problems, "\n".join(problems[:20])
            problems = watch.check()
            print(watch.summary(), flush=True)
            assert not problems, "\n".join(problems[:20])
