"""Nemeses aimed at ReadIndex reads (consensus/readindex.py): a leader that believes it still
leads while the majority has moved on must never answer a read from its stale state.

Read-heavy workloads (70% of register operations are GETs, plus one read-only client per
node) whose clients stay on their node through failures ("sticky"), so some keep reading
from the deposed leader while the others write on the majority side; the linearizability checker then decides (0 stale reads), with
the lost/duplicate-write, counter and convergence checks of every nemesis."""

from __future__ import annotations

from tests.faults.harness import FAULT_SECTIONS, hold, partitioned_cluster, run_scenario


def test_leader_partitioned_away_while_clients_keep_reading_from_it(tmp_path):
    """(a) The leader is cut off from its peers (clients still reach it) for 5 s: its
    rounds find no majority, so its reads fail after their deadline, never stale; followers'
    reads and the writes go through the new leader of the majority side."""
    with partitioned_cluster(tmp_path, FAULT_SECTIONS) as cl:

        def fault():
            leader = cl.leader()
            cl.network.isolate(cl.nodes.index(leader))
            hold(5)
            cl.network.heal()

        run_scenario("ReadIndex: leader partitioned away, clients keep reading from it, 5 s", cl, fault,
                     read_share=0.7, sticky=True, readers=3)


def test_leader_paused_past_the_election_timeout_with_reads_queued(cluster):
    """(b) SIGSTOP the leader for 6 s (> election timeout): the majority elects a new leader
    and takes writes; the clients on the paused node time out after 4 s and send new reads,
    which wait in its socket buffers. On SIGCONT it still believes it leads (term t) and
    finds those reads, issued after writes it never saw: no peer acks a round of term t any
    more, it learns the new term, steps down and fails them; they are retried through the
    new leader's read index."""

    def fault():
        leader = cluster.leader()
        leader.pause()
        hold(6)
        leader.resume()

    run_scenario("ReadIndex: SIGSTOP leader 6 s with reads queued, SIGCONT", cluster, fault,
                 read_share=0.7, sticky=True, readers=3)
