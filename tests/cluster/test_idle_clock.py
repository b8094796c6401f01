"""An idle 3-node `raftcache serve` cluster costs nothing (issue 15 item 3): no clock entries,
so its commit index stands still; and TTLs keep their precision without them: a linearizable
read through any node counts from its own time, and the leader sweeps a key when it falls due.

Times are compared on one host: the nodes stamp entries with this machine's wall clock (as
disciplined by `clock.DisciplinedClock`), the test reads the same clock with `time.time()`.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import ServerCluster, Workers, wait_until

TTL_MS = 300
MARGIN_S = 0.025  # the nodes' disciplined clocks vs. this process's wall clock


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("idle")).start()
    yield cl
    cl.close()


def commit_indexes(cluster: ServerCluster) -> list[int]:
    return [int(n.info()["raft_commit_index"]) for n in cluster.nodes]


def settled(cluster: ServerCluster, quiet_s: float = 1.0) -> None:
    """Wait until every node has the same commit index and it has not moved for `quiet_s`
    (start-up's own entries, e.g. the member registry's, are done), for at most 10 s: a
    cluster that never goes quiet is what the measurement after this reports."""
    seen: dict[str, object] = {"indexes": None, "since": time.monotonic()}

    def quiet() -> list[int] | None:
        indexes = commit_indexes(cluster)
        if indexes != seen["indexes"] or len(set(indexes)) != 1:
            seen["indexes"], seen["since"] = indexes, time.monotonic()
            return None
        return indexes if time.monotonic() - seen["since"] >= quiet_s else None

    try:
        wait_until(quiet, 10, 0.1, "start-up entries to stop")
    except AssertionError:
        pass


def test_an_idle_cluster_commits_nothing(cluster):
    settled(cluster)
    before = commit_indexes(cluster)
    time.sleep(3.0)  # the observation window itself, not a wait for something to happen
    after = commit_indexes(cluster)
    growth = [b - a for a, b in zip(before, after)]
    # It was ~10 entries a second (a clock entry every 100 ms), each fsynced on every node.
    assert max(growth) <= 3, f"commit index grew by {growth} in 3 s of idleness"


def test_a_px_key_disappears_at_its_due_time_on_every_node(cluster):
    settled(cluster)
    leader = cluster.leader()
    with leader.redis() as r:
        sent = time.time()
        assert r.set("lease", "v", px=TTL_MS) is True
        answered = time.time()
    # The SET was stamped somewhere in [sent, answered]; so is its due time, TTL_MS later.
    due_early, due_late = sent + TTL_MS / 1000, answered + TTL_MS / 1000
    polls: dict[str, list[tuple[float, float, bytes | None, int]]] = {n.id: [] for n in cluster.nodes}
    gone_locally: dict[str, float] = {}
    stop = threading.Event()

    def poll(node) -> None:
        """Linearizable GET + PTTL through this node, from before the due time until two reads
        issued after it have been answered (however slow the machine)."""
        rows = polls[node.id]
        with node.redis() as r:
            while sum(issued >= due_late + MARGIN_S for issued, *_ in rows) < 2 and time.time() < due_late + 15:
                issued = time.time()
                pipe = r.pipeline(transaction=False)
                value, pttl = pipe.get("lease").pttl("lease").execute()
                rows.append((issued, time.time(), value, pttl))

    def watch_locally(node) -> None:
        """READONLY: the node's own state, which only the leader's Sweep entry changes."""
        with node.redis(single_connection_client=True) as r:
            r.execute_command("READONLY")
            wait_until(lambda: stop.is_set() or r.get("lease") is None, 10, 0.005, f"{node.id} to delete the key")
            gone_locally[node.id] = time.time()

    with Workers() as workers:
        for node in cluster.nodes:
            workers.start(poll, node, name=f"poll-{node.id}")
            workers.start(watch_locally, node, name=f"local-{node.id}")
        try:
            wait_until(lambda: len(gone_locally) == len(cluster.nodes), 10, 0.02, "every node to delete the key")
        finally:
            stop.set()
    # Precision of what clients read: exact up to the clocks' agreement (MARGIN_S), idle or not,
    # because each linearizable read's own entry carries the time it was proposed at.
    for node_id, rows in polls.items():
        assert sum(issued >= due_late + MARGIN_S for issued, *_ in rows) >= 2, (node_id, "no reads after the due time")
        for issued, replied, value, pttl in rows:
            if issued >= due_late + MARGIN_S:  # read stamped after the due time: the key is gone
                assert (value, pttl) == (None, -2), (node_id, issued - due_late)
            elif replied <= due_early - MARGIN_S:  # stamped before it: still there, counting down
                assert value == b"v" and 0 < pttl <= TTL_MS, (node_id, replied - due_early, pttl)
    # The Sweep, proposed by the leader when the key fell due, reached every replica's state
    # (a tick, a commit and a heartbeat later; loose bound: the machine is shared).
    late = {node_id: round(at - due_late, 3) for node_id, at in gone_locally.items()}
    assert max(late.values()) <= 1.0, f"seconds after the due time each node deleted the key: {late}"
    with leader.redis() as r:
        assert r.dbsize() == 0
