"""Session fixtures of the differential tests (test_differential*.py): one real redis-server
and one 3-node raftcache cluster (clients talk to a follower), shared by every such file; and
one plain 3-node cluster shared by the modules that only read and write (`shared_cluster`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.differential import start_raftcache, start_real_redis
from tests.helpers import ServerCluster


@pytest.fixture(scope="session")
def real_redis(tmp_path_factory):
    yield from start_real_redis(tmp_path_factory)


@pytest.fixture(scope="session")
def raftcache(tmp_path_factory):
    yield from start_raftcache(tmp_path_factory)


@pytest.fixture(scope="package")
def shared_cluster(tmp_path_factory) -> Iterator[ServerCluster]:
    """One default 3-node `raftcache serve` cluster for the modules whose tests only read and
    write (no kill, pause, partition, membership or config change): a cluster start costs
    seconds. Take it through `emptied_shared_cluster`. Lives until tests/cluster is done."""
    cl = ServerCluster(tmp_path_factory.mktemp("shared")).start()
    yield cl
    cl.close()


@pytest.fixture(scope="module")
def emptied_shared_cluster(shared_cluster: ServerCluster) -> ServerCluster:
    """The shared cluster as a module finds a fresh one: no keys (FLUSHALL, then every
    replica converged, so stale reads see the empty keyspace too)."""
    with shared_cluster.leader().redis() as r:
        r.flushall()
    shared_cluster.converged()
    return shared_cluster
