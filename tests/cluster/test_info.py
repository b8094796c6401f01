"""INFO as clients and harnesses read it at connect time (Redis's field names), and the node
status read back from it by Client.status()."""

from __future__ import annotations

import re

import pytest

from raftcache import Client
from tests.helpers import ServerCluster, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ServerCluster(tmp_path_factory.mktemp("info")).start()
    yield cl
    cl.close()


def test_server_fields_spelled_as_redis(cluster):
    run_ids = set()
    for node in cluster.nodes:
        with node.redis() as r:
            info = r.info()  # the default sections, as redis-py's callers use it
            server = r.info("server")
            again = r.info("server")
            assert info["arch_bits"] in (32, 64)
            assert info["redis_mode"] == "standalone"
            assert re.fullmatch(r"7\.\d+\.\d+", str(server["redis_version"]))
            assert server["process_id"] == node.proc.pid
            assert server["tcp_port"] == node.port
            assert re.fullmatch(r"[0-9a-f]{40}", server["run_id"])
            assert again["run_id"] == server["run_id"]  # fixed for the life of the process
            assert isinstance(server["os"], str) and server["os"]
            assert server["uptime_in_seconds"] >= 0 and server["uptime_in_days"] == 0
            assert set(server) >= {"redis_version", "os", "arch_bits", "process_id", "run_id", "tcp_port"}
            assert r.info("cluster") == {"cluster_enabled": 0}
            clients = r.info("clients")
            assert clients["connected_clients"] >= 1 and clients["maxclients"] > 0
            assert "raft" not in server and "raft_state" in info  # sections filter, the default has all
        run_ids.add(server["run_id"])
    assert len(run_ids) == len(cluster.nodes)  # one per process


def test_run_id_changes_when_the_node_restarts(cluster):
    node = cluster.nodes[2]
    before = node.info("server")["run_id"]
    node.terminate()
    node.start()
    assert node.info("server")["run_id"] != before
    leader = cluster.leader()
    wait_until(lambda: node.info()["raft_leader_id"] == leader.id, 30, what="the restarted node to follow the leader")


def test_client_status_reads_every_field_back(cluster):
    leader = cluster.leader()
    with Client(cluster.endpoints) as client:
        client.set("info:k", "v")
        status = client.status()
        follower = next(n for n in cluster.nodes if n is not leader)
        remote = client.status(follower.client_address)
    assert status.id == leader.id and status.role == "leader"
    assert status.address == leader.raft
    assert status.leader == leader.id and status.leader_client == leader.client_address
    assert sorted(status.members) == ["n1", "n2", "n3"]
    assert status.keys >= 1 and status.term >= 1
    assert remote.id == follower.id and remote.role == "follower" and remote.leader == leader.id
    assert remote.leader_client == leader.client_address
