"""The atomicity workload (tests/faults/bank.py) under kill -9, pause and partition of the
leader, one after the other on one cluster: bank transfers by MULTI/EXEC with WATCH and by Lua script, with atomic snapshots,
next to a lighter register / append / counter workload. Each test fails if the total
changes, a transfer is lost, applied twice or applied although it failed, a snapshot is torn
or stale, the serial order contradicts real time, or the replicas do not converge."""

from __future__ import annotations


from tests.faults.harness import FAULT_SECTIONS, hold, partitioned_cluster, run_scenario

# The bank is the subject here: more of its clients, fewer of the mixed workload's; enough
# acknowledged transfers after the fault (150) that the cluster runs on well past the heal.
LOAD = {"workers": 2, "bank_workers": 4, "min_ok": 300, "min_transfers": 150}


def test_transfers_across_kill_pause_and_partition_of_the_leader(tmp_path):
    """One cluster, one load, the three faults one after the other (cheaper than three runs);
    the partition only where network namespaces exist."""
    with partitioned_cluster(tmp_path, FAULT_SECTIONS, required=False) as cl:
        def kill():
            leader = cl.leader()
            leader.kill()  # EXECs and scripts in flight there end unknown; none may apply twice
            hold(3)
            leader.start()

        def pause():
            leader = cl.leader()
            leader.pause()  # SIGSTOP past the election timeout: it wakes up believing it leads
            hold(4)
            leader.resume()

        def partition():
            leader = cl.leader()
            cl.network.isolate(cl.nodes.index(leader))  # its clients still reach it; its peers do not
            hold(5)
            cl.network.heal()

        faults = [kill, pause] + ([partition] if cl.network is not None else [])
        run_scenario("bank: kill -9 leader, restart after 3 s; SIGSTOP leader 4 s, SIGCONT; partition, leader alone in "
                     "the minority, 5 s", cl, faults, **LOAD)
