"""The operator CLI against a live 3-node cluster (click's CliRunner in this process, real
`raftcache serve` nodes), plus membership, backup/restore and metrics end to end."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner

from raftcache.cli.main import cli
from tests.helpers import ServerCluster, ServerNode, free_ports, wait_until, write_cluster_config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    metrics_ports = free_ports(3)
    cl = ServerCluster(root)
    # give every node a metrics endpoint
    text = cl.config_path.read_text()
    for i, port in enumerate(metrics_ports):
        text = text.replace(f'id = "n{i + 1}"\n', f'id = "n{i + 1}"\nmetrics = "127.0.0.1:{port}"\n')
    cl.config_path.write_text(text)
    from raftcache.config import load_config

    cl.config = load_config(str(cl.config_path))
    cl.metrics = [f"127.0.0.1:{p}" for p in metrics_ports]
    cl.start()
    yield cl
    cl.close()


def run(*args: str, cluster=None, input: str | None = None):
    argv = list(args)
    if cluster is not None:
        argv += ["--config", str(cluster.config_path)]
    result = CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)
    return result


def test_status_table_and_json_with_exactly_one_leader(cluster):
    result = run("status", cluster=cluster)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["ID", "CLIENT", "ROLE", "LEADER"]
    assert "USED/MAXMEMORY" in lines[0] and "RSS" in lines[0]
    roles = [line.split()[2] for line in lines[1:4]]
    assert sorted(roles) == ["follower", "follower", "leader"]
    assert "healthy: leader" in result.output
    result = run("status", "--json", cluster=cluster)
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert len(rows) == 3 and [r["role"] for r in rows].count("leader") == 1
    for row in rows:
        for field in ("id", "client", "role", "leader", "term", "commit_index", "applied_index", "log_len",
                      "last_snapshot_index", "keys", "memory", "maxmemory", "rss", "clients", "uptime", "lag"):
            assert field in row
        assert row["lag"] >= 0 and row["term"] >= 1


def test_key_commands(cluster):
    assert run("set", "greeting", "hello", "--ttl", "60", cluster=cluster).output == "OK\n"
    result = run("get", "greeting", "--endpoints", ",".join(cluster.endpoints[1:]))
    assert result.exit_code == 0 and result.output == "hello\n"
    missing = run("get", "nope", cluster=cluster)
    assert missing.exit_code == 1
    assert 55 <= int(run("ttl", "greeting", cluster=cluster).output) <= 60
    assert run("incr", "counter", "--by", "5", cluster=cluster).output == "5\n"
    assert run("incr", "counter", cluster=cluster).output == "6\n"
    assert run("cas", "greeting", "hello", "bonjour", cluster=cluster).output == "1\n"
    assert run("cas", "greeting", "hello", "hola", cluster=cluster).output == "0\n"
    assert run("expire", "counter", "100", cluster=cluster).output == "1\n"
    assert run("keys", "gr*", cluster=cluster).output == "greeting\n"
    assert run("set", "greeting", "x", "--nx", cluster=cluster).exit_code == 1
    assert run("del", "greeting", "counter", "nope", cluster=cluster).output == "2\n"


def test_environment_variables_name_the_cluster(cluster, monkeypatch):
    monkeypatch.setenv("RAFTCACHE_ENDPOINTS", ",".join(cluster.endpoints))
    assert run("set", "env", "1").output == "OK\n"
    monkeypatch.delenv("RAFTCACHE_ENDPOINTS")
    monkeypatch.setenv("RAFTCACHE_CONFIG", str(cluster.config_path))
    assert run("get", "env").output == "1\n"
    monkeypatch.setenv("RAFTCACHE_CONFIG", "/nonexistent.toml")  # an explicit flag beats the environment
    assert run("get", "env", "--endpoints", cluster.endpoints[0]).output == "1\n"


def test_bench_prints_a_summary(cluster):
    result = run("bench", "--clients", "8", "--ops", "2000", "--pipeline", "4", cluster=cluster)
    assert result.exit_code == 0, result.output
    assert re.search(r"throughput: [\d,]+ ops/s", result.output)
    assert re.search(r"latency:\s+p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms", result.output)
    assert "errors:     0" in result.output


def test_metrics_endpoint_is_scraped_and_parsed(cluster):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(index: int) -> dict[str, Any]:
        body = urllib.request.urlopen(f"http://{cluster.metrics[index]}/metrics", timeout=5).read().decode()
        return {f.name: f for f in text_string_to_metric_families(body)}

    leader = cluster.leader()
    with leader.redis() as r:  # a plain SET, counted by the node that received it
        assert r.set("m", "1")
    families = scrape(cluster.nodes.index(leader))
    for name in ("raftcache_raft_term", "raftcache_raft_role", "raftcache_raft_commit_index", "raftcache_raft_applied_index",
                 "raftcache_raft_log_length", "raftcache_snapshots", "raftcache_snapshot_last_duration_seconds",
                 "raftcache_commands", "raftcache_command_duration_seconds", "raftcache_connected_clients",
                 "raftcache_keys", "raftcache_memory_rss_bytes", "raftcache_command_errors", "raftcache_memory_used_bytes",
                 "raftcache_memory_max_bytes", "raftcache_evicted_keys", "raftcache_expired_keys", "raftcache_keyspace_hits",
                 "raftcache_keyspace_misses", "raftcache_raft_apply_seconds", "raftcache_gc_pause_seconds"):
        assert name in families, name
    role = {s.labels["role"]: s.value for s in families["raftcache_raft_role"].samples}
    assert role == {"leader": 1.0, "follower": 0.0, "candidate": 0.0}
    assert any(s.labels.get("command") == "set" and s.value >= 1 for s in families["raftcache_commands"].samples)
    writes = [s for s in families["raftcache_command_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels["kind"] == "write"]
    assert writes and writes[0].value >= 1
    applied = [s for s in families["raftcache_raft_apply_seconds"].samples if s.name.endswith("_count")]
    assert applied and applied[0].value >= 1  # the SET's entry, at least
    # `serve` counts its collections; the young generation collects many times at start-up
    young = [s for s in families["raftcache_gc_pause_seconds"].samples
             if s.name.endswith("_count") and s.labels["generation"] == "0"]
    assert young and young[0].value >= 1


def test_compact_snapshots_every_node(cluster):
    result = run("compact", cluster=cluster)
    assert result.exit_code == 0, result.output
    assert result.output.count("snapshot at log index") == 3


def test_unreachable_endpoints_and_bad_config_are_one_clear_line(tmp_path):
    (port,) = free_ports(1)
    result = run("status", "--endpoints", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert "unreachable" in result.output and "no leader" in result.output
    assert f"no leader; unreachable: 127.0.0.1:{port} (connection refused)" in result.output  # and why
    result = run("get", "k", "--endpoints", f"127.0.0.1:{port}")
    assert result.exit_code != 0 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nsecret = 1\n")
    result = run("status", "--config", str(bad))
    assert result.exit_code != 0
    assert result.output.strip() == f"Error: {bad}: cluster.secret: must be a string (got 1)"
    result = run("status")
    assert result.exit_code != 0 and "--config FILE or --endpoints" in result.output


def test_membership_add_a_fourth_node_then_remove_it(cluster, tmp_path):
    # the new node's config lists every member, itself included
    ports = free_ports(2)
    new = {"id": "n4", "raft": f"127.0.0.1:{ports[0]}", "client": f"127.0.0.1:{ports[1]}"}
    text = cluster.config_path.read_text() + f'\n[[nodes]]\nid = "n4"\nraft = "{new["raft"]}"\nclient = "{new["client"]}"\ndata_dir = "data/n4"\n'
    config4 = cluster.config_path.parent / "cluster4.toml"
    config4.write_text(text)
    run("set", "before-n4", "yes", cluster=cluster)
    node4 = ServerNode(config4, "n4", new["client"], new["raft"], None).start()
    try:
        result = run("members", "add", "n4", "--raft", new["raft"], "--client", new["client"], cluster=cluster)
        assert result.exit_code == 0, result.output
        listed = run("members", "list", "--json", cluster=cluster)
        members = {m["id"]: m for m in json.loads(listed.output)}
        assert set(members) == {"n1", "n2", "n3", "n4"}
        assert members["n4"]["client"] == new["client"]
        with node4.redis() as r:  # it caught up and serves linearizable reads
            wait_until(lambda: r.get("before-n4") == b"yes", 30, what="n4 to catch up")
        status = run("status", "--config", str(config4))
        assert status.exit_code == 0, status.output
        assert status.output.count("follower") + status.output.count("leader") >= 4
        refused = run("members", "add", "n4", "--raft", new["raft"], "--client", new["client"], cluster=cluster)
        assert refused.exit_code != 0 and "already" in refused.output
        result = run("members", "remove", "n4", cluster=cluster)
        assert result.exit_code == 0, result.output
        members = {m["id"] for m in json.loads(run("members", "list", "--json", cluster=cluster).output)}
        assert members == {"n1", "n2", "n3"}
        assert run("set", "after-n4", "ok", cluster=cluster).exit_code == 0
    finally:
        node4.kill()


def test_removing_the_leader_hands_leadership_over_first(tmp_path):
    cl = ServerCluster(tmp_path).start()
    try:
        leader = cl.leader()
        result = run("members", "remove", leader.id, cluster=cl)
        assert result.exit_code == 0, result.output
        assert "was the leader; leadership moved to" in result.output
        survivors = [n for n in cl.nodes if n is not leader]
        remaining = {m["id"] for m in json.loads(run("members", "list", "--json", "--endpoints",
                                                     ",".join(n.client_address for n in survivors)).output)}
        assert remaining == {n.id for n in survivors}
        with survivors[0].redis() as r:
            assert r.set("still", "works") is True
    finally:
        cl.close()


def test_unsafe_membership_changes_are_refused(tmp_path):
    cl = ServerCluster(tmp_path).start()
    try:
        leader = cl.leader()
        dead, alive = [n for n in cl.nodes if n is not leader]
        dead.kill()
        wait_until(lambda: dead.id not in leader.info()["raft_connected_peers"].split(","), 10, 0.05, "the leader to see the dead node go")
        endpoints = ",".join(n.client_address for n in (leader, alive))
        # removing the live follower would leave {leader, dead}: no reachable majority
        result = run("members", "remove", alive.id, "--endpoints", endpoints)
        assert result.exit_code != 0
        assert "refusing: after removing" in result.output and "not a majority" in result.output
        # adding a member while one is unreachable would need one more vote with one missing
        result = run("members", "add", "n9", "--raft", "127.0.0.1:1", "--client", "127.0.0.1:2", "--endpoints", endpoints)
        assert result.exit_code != 0 and f"while {dead.id} is unreachable" in result.output
        members = json.loads(run("members", "list", "--json", "--endpoints", endpoints).output)
        assert {m["id"] for m in members} == {n.id for n in cl.nodes}  # nothing changed
        # the safe change still works: remove the dead node
        assert run("members", "remove", dead.id, "--endpoints", endpoints).exit_code == 0
    finally:
        cl.close()


def test_transfer_leader(cluster):
    before = cluster.leader()
    target = next(n for n in cluster.nodes if n is not before)
    result = run("members", "transfer-leader", target.id, cluster=cluster)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"leader is now {target.id}"
    assert cluster.leader() is target


def test_backup_and_restore_into_a_fresh_cluster(cluster, tmp_path):
    with cluster.nodes[0].redis() as r:
        pipe = r.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"bk:{i}", f"value-{i}")
        pipe.set("bk:ttl", "t", ex=3600)
        pipe.hset("bk:hash", mapping={f"f{i}": i for i in range(200)})  # every type travels in backups
        pipe.rpush("bk:list", *range(300))
        pipe.sadd("bk:set", *range(600))
        pipe.zadd("bk:zset", {f"m{i}": i / 3 for i in range(150)})
        pipe.expire("bk:zset", 3600)
        pipe.execute()
    backup_file = tmp_path / "cluster.backup"
    result = run("backup", str(backup_file), cluster=cluster)
    assert result.exit_code == 0, result.output
    assert re.search(r"backup of \d+ keys at log index \d+ written to", result.output)
    def dump(r) -> dict[bytes, object]:
        keys = sorted(r.scan_iter(count=1000))
        values = dict(zip(keys, r.mget(keys))) if keys else {}
        values.update({b"bk:hash": r.hgetall("bk:hash"), b"bk:list": r.lrange("bk:list", 0, -1),
                       b"bk:set": r.smembers("bk:set"), b"bk:zset": r.zrange("bk:zset", 0, -1, withscores=True),
                       b"encodings": [r.object("encoding", k) for k in ("bk:hash", "bk:list", "bk:set", "bk:zset")]})
        return values

    with cluster.nodes[1].redis() as r:
        source = dump(r)
    assert len(source) > 3000

    fresh_root = tmp_path / "fresh"
    fresh_root.mkdir()
    fresh = ServerCluster(fresh_root)
    result = run("restore", str(backup_file), "--config", str(fresh.config_path))
    assert result.exit_code == 0, result.output
    assert result.output.count("keys restored into") == 3
    again = run("restore", str(backup_file), "--config", str(fresh.config_path))
    assert again.exit_code != 0 and "already holds data" in again.output
    fresh.start()
    try:
        with fresh.nodes[2].redis() as r:
            assert dump(r) == source
            assert 3500 < r.ttl("bk:ttl") <= 3600
            assert 3500 < r.ttl("bk:zset") <= 3600
            assert r.set("new-write", "ok") is True  # the new cluster works
        fresh.converged()
    finally:
        fresh.close()


def test_restore_refuses_a_damaged_backup(tmp_path, cluster):
    backup_file = tmp_path / "b.rcs"
    assert run("backup", str(backup_file), cluster=cluster).exit_code == 0
    data = bytearray(backup_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup_file.write_bytes(bytes(data))
    cfg = write_cluster_config(tmp_path, 1)
    result = run("restore", str(backup_file), "--config", str(cfg))
    assert result.exit_code != 0
    assert "checksum mismatch" in result.output and "Traceback" not in result.output


def test_killed_node_shows_as_unreachable_and_status_fails(cluster):
    # Last: it kills a node of the shared cluster.
    victim = next(n for n in cluster.nodes if n is not cluster.leader())
    victim.kill()
    result = run("status", cluster=cluster)
    assert result.exit_code == 1
    line = next(l for l in result.output.splitlines() if l.startswith(victim.id + " "))
    assert "unreachable" in line
    assert f"unreachable: {victim.id}" in result.output
    rows = json.loads(run("status", "--json", cluster=cluster).output)
    assert [r["role"] for r in rows].count("unreachable") == 1
