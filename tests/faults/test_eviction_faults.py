"""The eviction workload (tests/faults/eviction.py) under kill -9, pause and partition of the
leader and a snapshot install, next to the mixed register / append / counter workload: an
acknowledged key holds its value or was evicted, the dataset stays under maxmemory on every
node, keys without a TTL are never evicted (volatile-lru: the mixed workload's checks would
see them as lost), and the replicas converge (digest: data, settings, LRU table)."""

from __future__ import annotations

from collections.abc import Callable

from tests.faults.eviction import EvictionWorkload
from tests.faults.harness import FAULT_SECTIONS, Workload, hold, judge, partitioned_cluster
from tests.helpers import wait_until


def run_eviction_scenario(name: str, cluster, fault: Callable[[], None]) -> None:
    seed = hash(name) % 1000
    evict = EvictionWorkload(lambda: cluster.endpoints, workers=2, seed=seed).start()
    workload = Workload(lambda: cluster.endpoints, workers=3, seed=seed).start()
    started = workload.started
    try:
        wait_until(lambda: workload.ok_ops >= 50 and evict.ok_writes >= 150, 60, 0.05, "load before the fault")
        fault()
        target = (workload.ok_ops + 100, evict.ok_writes + 150)
        wait_until(lambda: workload.ok_ops >= target[0] and evict.ok_writes >= target[1], 90, 0.05, "load after the fault")
    finally:
        try:
            workload.stop()
        finally:
            evict.stop()
    judge(name, cluster, workload, started, min_ok=100)  # converged, and the mixed workload's checks
    problems = evict.check(cluster)
    print(evict.summary(), flush=True)
    assert not problems, "\n".join(problems[:20])


def test_eviction_through_kill_pause_partition_and_snapshot_install(tmp_path):
    """One cluster, one load, the four faults one after the other (cheaper than four runs)."""
    sections = {**FAULT_SECTIONS, "snapshot": {"min_entries": 200}}
    with partitioned_cluster(tmp_path, sections, required=False) as cl:  # partitions only where namespaces exist
        def faults():
            leader = cl.leader()
            leader.kill()
            hold(2)
            leader.start()
            hold(1)
            leader = cl.leader()
            leader.pause()  # SIGSTOP past the election timeout: it wakes up believing it leads
            hold(3)
            leader.resume()
            hold(1)
            if cl.network is not None:
                cl.network.isolate(cl.nodes.index(cl.leader()))
                hold(3)
                cl.network.heal()
                hold(1)
            follower = next(n for n in cl.nodes if n is not cl.leader())
            follower.kill()  # it misses enough entries that the leader compacts past them
            hold(2)
            with cl.leader().redis() as r:
                r.execute_command("RAFTCACHE", "COMPACT")
            hold(1)
            follower.start()  # catches up from the leader's snapshot

        run_eviction_scenario("eviction: kill -9, SIGSTOP, partition of the leader; snapshot install", cl, faults)
