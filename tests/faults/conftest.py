"""Fixtures shared by the fault scenarios."""

from __future__ import annotations

import pytest

from tests.faults.harness import FAULT_SECTIONS
from tests.helpers import ServerCluster


@pytest.fixture
def cluster(tmp_path):
    """A 3-node `raftcache serve` cluster with the fault suite's settings; paused nodes are
    resumed before it is closed."""
    cl = ServerCluster(tmp_path, sections=FAULT_SECTIONS).start()
    yield cl
    for node in cl.nodes:
        if node.alive:
            node.resume()
    cl.close()
