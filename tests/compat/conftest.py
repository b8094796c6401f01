"""Fixtures of the compat tests: one 3-node `raftcache serve` cluster, taken by each test
module in turn, found whole and empty (each module kills its leader once, in its last test,
and restarts it), and a follower to talk through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerCluster, ServerNode


@pytest.fixture(scope="package")
def compat_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerCluster]:
    """One cluster for every compat module, in turn (a start costs seconds)."""
    cl = ServerCluster(tmp_path_factory.mktemp("compat")).start()
    try:
        yield cl
    finally:
        cl.close()


@pytest.fixture(scope="module")
def cluster(compat_cluster: ServerCluster) -> Iterator[ServerCluster]:
    """The compat cluster as a module finds a fresh one: every node up, no keys, every replica
    converged; afterwards the node a module killed is back (its own test restarts it; this
    is for a test that failed before it could)."""
    cl = compat_cluster
    for node in cl.nodes:
        if not node.alive:
            node.start()
    with cl.leader().redis() as r:
        r.flushall()
    cl.converged()
    yield cl
    for node in cl.nodes:
        if not node.alive:
            node.start()


@pytest.fixture(scope="module")
def follower(cluster: ServerCluster) -> ServerNode:
    leader = cluster.leader()
    return next(n for n in cluster.nodes if n is not leader)
