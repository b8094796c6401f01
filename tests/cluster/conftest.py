"""Session fixtures of the differential tests (test_differential*.py): one real redis-server
and one 3-node raftcache cluster (clients talk to a follower), shared by every such file."""

from __future__ import annotations

import pytest

from tests.cluster.differential import start_raftcache, start_real_redis


@pytest.fixture(scope="session")
def real_redis(tmp_path_factory):
    yield from start_real_redis(tmp_path_factory)


@pytest.fixture(scope="session")
def raftcache(tmp_path_factory):
    yield from start_raftcache(tmp_path_factory)
