"""Fixtures of the compat tests: one 3-node `raftcache serve` cluster per test module (each
module kills its leader once, in its last test) and a follower to talk through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerCluster, ServerNode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ServerCluster]:
    cl = ServerCluster(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])).start()
    try:
        yield cl
    finally:
        cl.close()


@pytest.fixture(scope="module")
def follower(cluster: ServerCluster) -> ServerNode:
    leader = cluster.leader()
    return next(n for n in cluster.nodes if n is not leader)
