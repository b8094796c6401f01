"""A 3-node cluster of `raftcache serve` processes, driven with redis-py and redis-cli through
every node: every command, Redis's replies and error strings, binary data, TTLs, pipelines."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time

import pytest
import redis

from raftcache.client.core import parse_info
from raftcache.resp import ReplyParser
from tests.helpers import wait_until

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def cluster(emptied_shared_cluster):
    return emptied_shared_cluster  # (conftest.py) this module only reads and writes


@pytest.fixture
def k():
    """A key maker unique to the test, so tests sharing the cluster never collide."""
    prefix = f"t{next(_prefixes)}:"
    return lambda name: prefix + name


@pytest.fixture(params=[(0, 2), (1, 3), (2, 2), (0, 3)], ids=["n1-resp2", "n2-resp3", "n3-resp2", "n1-resp3"])
def r(cluster, request):
    """redis-py connected to each node in turn (leader and followers alike), speaking RESP2
    and RESP3 (redis-py 8's default)."""
    node, protocol = request.param
    with cluster.nodes[node].redis(protocol=protocol) as client:
        yield client


def test_strings(r, k):
    assert r.set(k("a"), "1") is True
    assert r.get(k("a")) == b"1"
    assert r.set(k("a"), "2", nx=True) is None
    assert r.set(k("new"), "x", xx=True) is None
    assert r.set(k("a"), "3", xx=True) is True
    assert r.set(k("a"), "4", get=True) == b"3"
    assert r.getdel(k("a")) == b"4"
    assert r.get(k("a")) is None
    assert r.mset({k("m1"): "a", k("m2"): "b"}) is True
    assert r.mget(k("m1"), k("m2"), k("none")) == [b"a", b"b", None]
    assert r.append(k("m1"), "bc") == 3
    assert r.strlen(k("m1")) == 3
    assert r.incr(k("n")) == 1
    assert r.incrby(k("n"), 10) == 11
    assert r.decr(k("n")) == 10
    assert r.decrby(k("n"), 3) == 7
    assert r.exists(k("n"), k("n"), k("none")) == 2
    assert r.type(k("n")) == b"string"
    assert r.type(k("none")) == b"none"
    assert r.delete(k("n"), k("m1"), k("none")) == 2
    assert r.unlink(k("m2")) == 1
    assert r.execute_command("CAS", k("c"), "x", "y") == 0
    r.set(k("c"), "x")
    assert r.execute_command("CAS", k("c"), "x", "y") == 1
    assert r.execute_command("CAS", k("c"), "x", "z") == 0
    assert r.get(k("c")) == b"y"


def test_expiry_commands(r, k):
    r.set(k("e"), "v", ex=100)
    assert 99 <= r.ttl(k("e")) <= 100
    assert 99_000 < r.pttl(k("e")) <= 100_000
    assert r.set(k("e"), "v2", keepttl=True) is True
    assert r.ttl(k("e")) > 90
    assert r.expire(k("e"), 50) is True
    assert r.expire(k("e"), 500, lt=True) is False
    assert r.expire(k("e"), 10, xx=True, lt=True) is True
    assert r.pexpire(k("e"), 20_000) is True
    assert r.persist(k("e")) is True
    assert r.ttl(k("e")) == -1
    assert r.ttl(k("none")) == -2
    assert r.expireat(k("e"), int(time.time()) + 1000) is True
    assert 900 < r.ttl(k("e")) <= 1000
    r.set(k("px"), "v", px=100_000)
    r.set(k("exat"), "v", exat=int(time.time()) + 100)
    r.set(k("pxat"), "v", pxat=int(time.time() * 1000) + 100_000)
    assert all(90 < r.ttl(k(n)) <= 100 for n in ("px", "exat", "pxat"))


def test_ttl_expiry_is_seen_through_every_node(cluster, k):
    cluster.nodes[0].redis().set(k("short"), "v", px=700)
    for node in cluster.nodes:
        assert node.redis().get(k("short")) == b"v"
    start = time.monotonic()
    for node in cluster.nodes:
        with node.redis() as c:
            wait_until(lambda c=c: c.get(k("short")) is None, 5, what="expiry")
    assert time.monotonic() - start < 3


def test_binary_keys_and_values(r, k):
    key = k("").encode() + bytes(range(256))
    value = b"\r\n\x00$*" + bytes(range(255, -1, -1)) * 4
    assert r.set(key, value) is True
    assert r.get(key) == value
    assert key in r.keys(k("*"))


def test_keys_scan_dbsize(r, k):
    for i in range(30):
        r.set(k(f"s{i}"), i)
    assert sorted(r.keys(k("s1*"))) == sorted(k(f"s{i}").encode() for i in [1] + list(range(10, 20)))
    found = set(r.scan_iter(match=k("s*"), count=7))
    assert found == {k(f"s{i}").encode() for i in range(30)}
    assert len(set(r.scan_iter(match=k("s*"), _type="hash"))) == 0
    assert r.dbsize() >= 30


def test_pipeline_of_1000_commands_in_order(r, k):
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(k(f"p{i}"), i)
        pipe.incr(k("pcount"))
    results = pipe.execute()
    assert results[0::2] == [True] * 500
    assert results[1::2] == list(range(1, 501))
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.get(k(f"p{i % 500}"))
    assert pipe.execute() == [str(i % 500).encode() for i in range(1000)]


@pytest.mark.parametrize(
    "command, error",
    [
        (["NOSUCHCMD", "a", "b"], "unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' "),  # sic: Redis ends with a space
        (["GET"], "wrong number of arguments for 'get' command"),
        (["GET", "a", "b"], "wrong number of arguments for 'get' command"),
        (["SET", "a"], "wrong number of arguments for 'set' command"),
        (["SET", "a", "b", "NX", "XX"], "syntax error"),
        (["SET", "a", "b", "EX"], "syntax error"),
        (["SET", "a", "b", "EX", "10", "PX", "10"], "syntax error"),
        (["SET", "a", "b", "FOO"], "syntax error"),
        (["SET", "a", "b", "EX", "ten"], "value is not an integer or out of range"),
        (["SET", "a", "b", "EX", "0"], "invalid expire time in 'set' command"),
        (["SET", "a", "b", "EX", "-5"], "invalid expire time in 'set' command"),
        (["INCRBY", "a", "1.5"], "value is not an integer or out of range"),
        (["EXPIRE", "a", "10", "NX", "XX"], "NX and XX, GT or LT options at the same time are not compatible"),
        (["EXPIRE", "a", "10", "GT", "LT"], "GT and LT options at the same time are not compatible"),
        (["EXPIRE", "a", "10", "FOO"], "Unsupported option FOO"),
        (["MSET", "a", "1", "b"], "wrong number of arguments for 'mset' command"),
        (["SCAN", "abc"], "invalid cursor"),
        (["SCAN", "0", "COUNT", "0"], "syntax error"),
        (["SELECT", "1"], "DB index is out of range"),
        (["DECRBY", "a", str(-(2**63))], "decrement would overflow"),
        (["HELLO", "4"], "NOPROTO sorry, this protocol version is not supported."),
    ],
)
def test_errors_match_redis(cluster, command, error):
    with cluster.nodes[1].redis() as r, pytest.raises(redis.ResponseError) as info:
        r.execute_command(*command)
    assert str(info.value) == error


def test_not_an_integer_leaves_the_value(r, k):
    r.set(k("s"), "abc")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.incr(k("s"))
    r.set(k("big"), str(2**63 - 1))
    with pytest.raises(redis.ResponseError, match="^increment or decrement would overflow$"):
        r.incr(k("big"))
    assert r.get(k("s")) == b"abc"


def test_connection_commands(r):
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.execute_command("SELECT", 0) in (True, b"OK")  # redis-py maps +OK to True for some commands
    assert r.client_setname("worker-1") is True
    assert r.client_getname() in ("worker-1", b"worker-1")  # redis-py 8 decodes it
    assert isinstance(r.client_id(), int)
    assert r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "x") in (True, b"OK")
    assert r.command_count() > 40
    assert "get" in r.command()  # redis-py parses COMMAND's reply into a dict by name
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}


def test_hello_switches_protocol(cluster):
    import socket

    with socket.create_connection(("127.0.0.1", cluster.nodes[0].port), timeout=5) as s:
        s.sendall(b"GET nothing-here\r\nHELLO 3\r\nGET nothing-here\r\nHELLO 2\r\nGET nothing-here\r\n")
        data = b""
        while data.count(b"$-1\r\n") < 2 or not data.endswith(b"$-1\r\n"):
            data += s.recv(4096)
    first, rest = data.split(b"%7\r\n", 1)
    assert first == b"$-1\r\n"  # RESP2 null
    assert b"$5\r\nproto\r\n:3\r\n" in rest
    assert b"\r\n_\r\n*14\r\n" in rest  # RESP3 null, then HELLO 2's flat array
    assert rest.endswith(b"$-1\r\n")


def test_info_sections(cluster):
    leader = cluster.leader()
    for node in cluster.nodes:
        with node.redis() as r:
            info = r.info("all")
            raft = r.info("raft")
        for field in ("redis_version", "connected_clients", "used_memory", "raft_state"):
            assert field in info
        assert raft["raft_state"] == ("leader" if node is leader else "follower")
        assert raft["raft_leader_id"] == leader.id
        assert raft["raft_leader_client"] == leader.client_address
        assert raft["raft_term"] >= 1
        assert raft["raft_applied_index"] <= raft["raft_commit_index"]
        assert raft["raft_log_len"] >= 1


def test_readonly_switches_to_local_reads(cluster, k):
    follower = next(n for n in cluster.nodes if n is not cluster.leader())
    with follower.redis() as r:
        r.set(k("ro"), "v")
        assert r.execute_command("READONLY") in (True, b"OK")
        wait_until(lambda: r.get(k("ro")) == b"v", 5, what="local replica to apply")
        assert r.execute_command("READWRITE") in (True, b"OK")
        r.set(k("ro"), "w")
        assert r.get(k("ro")) == b"w"  # linearizable again: sees its own write at once


def test_quit_closes_after_the_reply(cluster):
    import socket

    with socket.create_connection(("127.0.0.1", cluster.nodes[0].port), timeout=5) as s:
        s.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        data = b""
        while chunk := s.recv(100):
            data += chunk
    assert data == b"+PONG\r\n+OK\r\n"


def test_inline_commands(cluster, k):
    import socket

    with socket.create_connection(("127.0.0.1", cluster.nodes[2].port), timeout=5) as s:
        s.sendall(f'SET {k("inl")} "hello world"\r\nGET {k("inl")}\r\n'.encode())
        wanted = b"+OK\r\n$11\r\nhello world\r\n"
        data = b""
        while len(data) < len(wanted):
            data += s.recv(100)
    assert data == wanted


@pytest.fixture
def redis_cli():
    path = shutil.which("redis-cli")
    if path is None:
        pytest.skip("redis-cli is not installed (apt package redis-tools)")
    return path


def test_redis_cli_through_every_node(cluster, redis_cli, k):
    def cli(node, *args):
        out = subprocess.run([redis_cli, "-p", str(node.port), *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    for i, node in enumerate(cluster.nodes):
        assert cli(node, "SET", k(f"cli{i}"), f"value {i}") == "OK"
        for other in cluster.nodes:
            assert cli(other, "GET", k(f"cli{i}")) == f"value {i}"
    assert cli(cluster.nodes[0], "INCRBY", k("clin"), "5") == "5"
    assert cli(cluster.nodes[1], "TTL", k("clin")) == "-1"
    assert cli(cluster.nodes[2], "EXISTS", k("cli0"), k("cli1")) == "2"
    assert "raft_state:" in cli(cluster.nodes[0], "INFO", "raft")
    assert cli(cluster.nodes[1], "GET", k("nosuch")) == ""
    assert "ERR unknown command" in cli(cluster.nodes[2], "NOPE")


def test_redis_benchmark_set_get_runs_clean(cluster):
    path = shutil.which("redis-benchmark")
    if path is None:
        pytest.skip("redis-benchmark is not installed (apt package redis-tools)")
    out = subprocess.run(
        # 2,000 requests of each over 50 connections: a clean protocol run, not a measurement
        # (benchmarks/ measures); 20,000 cost ~40 s of the default run for no extra coverage
        [path, "-p", str(cluster.leader().port), "-t", "set,get", "-n", "2000", "-c", "50", "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "SET:" in out.stdout and "GET:" in out.stdout, out.stdout
    assert "error" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr


def test_flushall_and_flushdb(cluster):
    # Last in this module: it wipes the shared cluster.
    with cluster.nodes[0].redis() as r:
        r.set("to-flush", "x")
        assert r.flushall() is True
        assert r.dbsize() == 0
        r.set("to-flush", "x")
        assert r.flushdb() is True
    with cluster.nodes[2].redis() as r:
        assert r.get("to-flush") is None
    cluster.converged()


def test_config_set_accepts_the_value_in_force_and_refuses_a_change_with_redis_errors(r):
    assert r.config_set("maxmemory-policy", "noeviction") is True  # what libraries set at connect time
    assert r.config_set("notify-keyspace-events", "") is True
    assert r.execute_command("CONFIG", "SET", "save", "", "appendonly", "no") in (True, b"OK")
    with pytest.raises(redis.ResponseError, match=r"^CONFIG SET failed \(possibly related to argument 'maxclients'\) - .*cluster file"):
        r.config_set("maxclients", "7")
    with pytest.raises(redis.ResponseError, match=r"^Unknown option or number of arguments for CONFIG SET - 'no-such-option'$"):
        r.config_set("no-such-option", "1")
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments for 'config\|set' command$"):
        r.execute_command("CONFIG", "SET", "maxmemory")
    with pytest.raises(redis.ResponseError, match=r"^unknown subcommand 'NOPE'. Try CONFIG HELP.$"):
        r.execute_command("CONFIG", "NOPE")
    assert r.config_get("maxclients")["maxclients"] != "7"  # nothing changed


def test_config_resetstat_restarts_the_counts(r):
    for _ in range(5):
        r.ping()
    before = r.info("stats")["total_commands_processed"]
    assert before >= 5
    assert r.config_resetstat() is True
    assert r.info("stats")["total_commands_processed"] < before


def _writes_processed(sock, parser: ReplyParser) -> int:
    sock.sendall(b"INFO stats\r\n")
    (reply,) = parser.read_replies(1, lambda: sock.recv(1 << 16))
    return int(parse_info(reply)["total_writes_processed"])


@pytest.mark.parametrize("node", [0, 1])
def test_pipelined_replies_completed_together_leave_in_one_write(cluster, k, node):
    """16 SETs sent in one packet commit in one or two entries; their replies complete in
    the same delivery bursts and each burst's replies leave in one write (a syscall each
    before: 16 writes). INFO's total_writes_processed counts the node's writes; nothing else
    uses this node meanwhile."""
    parser = ReplyParser()
    with socket.create_connection(("127.0.0.1", cluster.nodes[node].port), timeout=10) as sock:
        before = _writes_processed(sock, parser)
        sock.sendall(b"".join(b"SET %s %d\r\n" % (k(f"p{i}").encode(), i) for i in range(16)))
        assert parser.read_replies(16, lambda: sock.recv(1 << 16)) == ["OK"] * 16
        writes = _writes_processed(sock, parser) - before - 1  # the first INFO's own reply was written after it counted
        assert 1 <= writes <= 3, writes

