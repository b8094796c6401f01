"""Client and AsyncClient honour ``consistency=`` and per-call ``timeout=`` (they used to take
both and ignore them): against a 3-node cluster cut down to one live follower, a stale read
is answered from that node's state while a linearizable one cannot be, and ``wait_ready``
gives up when its own timeout says, not at the retry policy's deadline."""

from __future__ import annotations

import asyncio
import time

import pytest
from click.testing import CliRunner

from raftcache import AsyncClient, Client, RetryPolicy
from raftcache.cli.main import cli
from raftcache.errors import NoLeaderError
from tests.helpers import ServerCluster, wait_until

SHORT = RetryPolicy(deadline=2.0)


@pytest.fixture(scope="module")
def survivor(tmp_path_factory):
    """The one live node of a cluster that lost its quorum, holding s:k = v and s:n = 5."""
    cluster = ServerCluster(tmp_path_factory.mktemp("stale")).start()
    try:
        with Client(cluster.endpoints) as client:
            client.mset({"s:k": "v", "s:n": 5})
        cluster.converged()  # every replica holds both keys
        leader = cluster.leader()
        node = next(n for n in cluster.nodes if n is not leader)
        for other in cluster.nodes:
            if other is not node:
                other.kill()
        wait_until(lambda: node.info()["raft_state"] != "leader", 10, what="the survivor to hold no leadership")
        yield node
    finally:
        cluster.close()


def test_a_stale_read_is_answered_without_a_quorum(survivor):
    with Client([survivor.client_address], retry=SHORT) as client:
        assert client.get("s:k", consistency="stale") == b"v"
        assert client.mget("s:k", "s:n", "s:none", consistency="stale") == [b"v", b"5", None]
        assert client.exists("s:k", "s:n", consistency="stale") == 2
        assert client.dbsize(consistency="stale") == 2
        with pytest.raises(NoLeaderError):  # no quorum: a linearizable read cannot be served
            client.get("s:k")
        # the connection that carried the stale read is back to linearizable reads
        with pytest.raises(NoLeaderError):
            client.get("s:k", consistency="linearizable")


def test_a_stale_read_in_a_pipeline(survivor):
    with Client([survivor.client_address], retry=SHORT) as client, client.pipeline() as p:
        p.get("s:k", consistency="stale").ttl("s:n", consistency="stale")
        assert p.execute() == [b"v", -1]


def test_async_stale_read_without_a_quorum(survivor):
    async def scenario():
        async with AsyncClient([survivor.client_address], retry=SHORT) as client:
            assert await client.get("s:k", consistency="stale") == b"v"
            assert await client.keys("s:*", consistency="stale") in ([b"s:k", b"s:n"], [b"s:n", b"s:k"])
            with pytest.raises(NoLeaderError):
                await client.get("s:k")

    asyncio.run(scenario())


def test_an_unknown_consistency_is_refused(survivor):
    with Client([survivor.client_address], retry=SHORT) as client, pytest.raises(ValueError):
        client.get("s:k", consistency="eventual")


def test_wait_ready_gives_up_at_its_own_timeout(survivor):
    with Client([survivor.client_address]) as client:  # the policy's deadline is 15 s
        start = time.monotonic()
        with pytest.raises(NoLeaderError):
            client.wait_ready(timeout=1.0)
        assert time.monotonic() - start < 4.0


def test_async_wait_ready_gives_up_at_its_own_timeout(survivor):
    async def scenario():
        async with AsyncClient([survivor.client_address]) as client:
            start = time.monotonic()
            with pytest.raises(NoLeaderError):
                await client.wait_ready(timeout=1.0)
            return time.monotonic() - start

    assert asyncio.run(scenario()) < 4.0


def test_cli_get_stale_reads_the_nodes_state(survivor):
    endpoints = ["--endpoints", survivor.client_address]
    result = CliRunner().invoke(cli, ["get", "--stale", "s:k", *endpoints], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == "v\n"
    result = CliRunner().invoke(cli, ["get", "s:k", *endpoints])
    assert result.exit_code != 0
