"""ACL users on a real 3-node cluster, through redis-py, redis-cli and raw RESP, and side by
side with a real redis-server given the same users: NOPERM and WRONGPASS texts, a read-only
user, a ``~config:*`` user, a user without @dangerous, through a follower (a forwarded write
is checked once, where the client connected), inside MULTI/EXEC and inside EVAL (the denial
is the same on every replica: the state digests converge), ACL WHOAMI/LIST/CAT/LOG."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.cluster.differential import HAVE_REDIS_SERVER, REDIS_SERVER
from tests.faults import netns
from tests.helpers import ServerCluster, free_ports, no_retry, wait_until, write_cluster_config

pytestmark = pytest.mark.timeout(240)

ADMIN_PW = "admin-password-for-the-default-user"
PASSWORDS = {"reader": "reader-pw", "cfg": "cfg-pw", "safe": "safe-pw", "rw": "rw-pw"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# The same users in both servers' own syntax.
USERS = {
    "reader": f"on #{sha('reader-pw')} ~* +@read +@connection",
    "cfg": f"on #{sha('cfg-pw')} ~config:* +@all",
    "safe": f"on #{sha('safe-pw')} ~* &* +@all -@dangerous",
    "rw": f"on #{sha('rw-pw')} %R~r:* %W~w:* +@all",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    sections = {
        "server": {"requirepass": ADMIN_PW},
        "users": [{"name": name, "rules": rules} for name, rules in USERS.items()],
    }
    c = ServerCluster(tmp_path_factory.mktemp("acl"), size=3, persistent=False, sections=sections).start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def real_redis_with_users(tmp_path_factory):
    """A redis-server 7.0 with the same users (its config file's `user` lines)."""
    if not HAVE_REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    workdir = tmp_path_factory.mktemp("redis-acl")
    (port,) = free_ports(1)
    conf = workdir / "redis.conf"
    lines = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", f"dir {workdir}", f"requirepass {ADMIN_PW}"]
    lines += [f"user {name} {rules}" for name, rules in USERS.items()]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([REDIS_SERVER, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(ready, 10, 0.05, "redis-server to accept connections")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def follower(cluster: ServerCluster):
    leader = cluster.leader()
    return next(n for n in cluster.nodes if n is not leader)


def as_user(node, name: str, **kwargs) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port, username=name, password=PASSWORDS[name], socket_timeout=30, **kwargs)


def admin(node) -> redis.Redis:
    return node.redis()


def resp(*words: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        b = w.encode() if isinstance(w, str) else w
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def converse(port: int, commands: list[tuple[str, ...]], host: str = "127.0.0.1") -> list[bytes]:
    """Send commands one at a time on one connection; each reply's raw bytes."""
    replies = []
    with socket.create_connection((host, port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for words in commands:
            sock.sendall(resp(*words))
            replies.append(_read_reply(reader))
    return replies


def _read_reply(reader) -> bytes:
    line = reader.readline()
    kind = line[:1]
    if kind in (b"+", b"-", b":"):
        return line
    if kind == b"$":
        n = int(line[1:])
        return line if n < 0 else line + reader.read(n + 2)
    if kind == b"*":
        n = int(line[1:])
        return line + b"".join(_read_reply(reader) for _ in range(max(n, 0)))
    raise AssertionError(f"unexpected reply line {line!r}")


# Commands with movable keys whose one key outside ~config:* must be refused.
MOVABLE_DENIED = [
    ("ZUNIONSTORE", "config:d", "2", "config:a", "other"), ("ZINTERSTORE", "config:d", "1", "other"),
    ("ZDIFFSTORE", "config:d", "2", "config:a", "other"), ("ZUNION", "2", "config:a", "other"),
    ("SINTERCARD", "2", "config:s", "other"), ("SINTERSTORE", "config:d", "config:s", "other"),
    ("LMPOP", "2", "other", "config:l", "LEFT"), ("BLMPOP", "0", "2", "config:l", "other", "LEFT"),
    ("ZMPOP", "1", "other", "MIN"), ("BZMPOP", "0", "2", "config:a", "other", "MIN"),
    ("EVAL", "return 1", "2", "config:a", "other"), ("EVAL_RO", "return 1", "1", "other"),
]
MOVABLE_ALLOWED = [
    ("ZUNIONSTORE", "config:d", "1", "config:a"), ("SINTERCARD", "1", "config:s"), ("LMPOP", "1", "config:l", "LEFT"),
    ("EVAL", "return 1", "1", "config:a"),
]
KEY_NOPERM = b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"

# Conversations whose every reply must be the same bytes as Redis 7.0's.
CONVERSATIONS = {
    "read-only user": [("AUTH", "reader", "reader-pw"), ("GET", "ro:k"), ("SET", "ro:k", "v"), ("DEL", "ro:k"),
                       ("FLUSHALL",), ("ACL", "WHOAMI"), ("PING",)],
    "config user": [("AUTH", "cfg", "cfg-pw"), ("SET", "config:a", "1"), ("GET", "config:a"), ("SET", "other", "1"),
                    ("MSET", "config:b", "1", "other", "2"), ("MGET", "config:a", "config:zz"), ("DEL", "config:a", "x"),
                    ("ACL", "WHOAMI")],
    "no dangerous": [("AUTH", "safe", "safe-pw"), ("SET", "safe:k", "v"), ("FLUSHALL",), ("KEYS", "*"),
                     ("CONFIG", "GET", "maxclients"), ("INFO",), ("ACL", "LIST"), ("ACL", "WHOAMI")],
    "transactions": [("AUTH", "cfg", "cfg-pw"), ("MULTI",), ("SET", "config:t", "1"), ("SET", "other", "1"), ("EXEC",),
                     ("GET", "config:t"), ("MULTI",), ("INCR", "config:t"), ("EXEC",)],
    "scripts": [("AUTH", "cfg", "cfg-pw"),
                ("EVAL", "local r = redis.call('get', KEYS[1]) return r", "1", "other"),
                ("EVAL", "local r = redis.pcall('set', 'other', 'x') return r", "0"),
                ("EVAL", "redis.call('set', 'config:s', '1') return redis.pcall('get', 'nope')", "0"),
                ("GET", "config:s")],
    # the keys a numkeys counts, and a store command's sources: each one is checked
    "movable keys": [("AUTH", "cfg", "cfg-pw"), ("ZADD", "config:a", "1", "m"), ("SADD", "config:s", "m"),
                     ("RPUSH", "config:l", "x"), *MOVABLE_DENIED, *MOVABLE_ALLOWED],
    "read and write keys": [("AUTH", "rw", "rw-pw"), ("ZUNIONSTORE", "w:d", "1", "r:a"), ("ZUNIONSTORE", "r:d", "1", "r:a"),
                            ("ZUNIONSTORE", "w:d", "1", "w:a"), ("LMPOP", "1", "r:l", "LEFT"), ("SINTERCARD", "1", "w:s"),
                            ("SINTERCARD", "1", "r:s"), ("EXISTS", "w:x", "r:y"), ("SET", "w:k", "v"),
                            ("SET", "w:k", "v", "GET"), ("COPY", "r:k", "w:k2"), ("EVAL_RO", "return 1", "1", "r:a"),
                            ("EVAL", "return 1", "1", "r:a")],
    "wrong passwords": [("AUTH", "reader", "wrong"), ("AUTH", "nobody", "reader-pw"), ("AUTH", "wrong-single"),
                        ("GET", "x"), ("HELLO", "2", "AUTH", "cfg", "nope"), ("AUTH", "cfg", "cfg-pw", "extra")],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_replies_are_redis_bytes(cluster, real_redis_with_users, name):
    commands = CONVERSATIONS[name]
    theirs = converse(real_redis_with_users, commands)
    ours = converse(follower(cluster).port, commands)
    for words, mine, redis_reply in zip(commands, ours, theirs, strict=True):
        assert mine == redis_reply, words


def test_every_key_of_a_movable_keys_command_is_checked(cluster):
    """The counted keys of ZMPOP, SINTERCARD, LMPOP, EVAL ... and the sources of the STORE
    commands are keys too: a forbidden one is refused with Redis's NOPERM, and nothing is
    read or written."""
    with admin(cluster.leader()) as a:
        a.delete("other", "config:a", "config:s", "config:l", "config:d")
        a.zadd("other", {"secret": 1})
        a.zadd("config:a", {"m": 1})
        a.sadd("config:s", "m")
        a.rpush("config:l", "x")
    commands = [("AUTH", "cfg", "cfg-pw"), *MOVABLE_DENIED, *MOVABLE_ALLOWED]
    replies = converse(follower(cluster).port, commands)
    assert replies[0] == b"+OK\r\n"
    assert replies[1:1 + len(MOVABLE_DENIED)] == [KEY_NOPERM] * len(MOVABLE_DENIED)
    assert KEY_NOPERM not in replies[1 + len(MOVABLE_DENIED):]
    with admin(cluster.leader()) as a:
        assert a.zrange("other", 0, -1, withscores=True) == [(b"secret", 1.0)]  # ZMPOP popped nothing
        assert a.exists("config:d") == 1  # the allowed ZUNIONSTORE ran
        a.delete("other", "config:d")


def test_read_only_user_through_a_follower(cluster):
    node = follower(cluster)
    with admin(cluster.leader()) as a:
        a.set("ro:k", "v0")
    with as_user(node, "reader") as r:
        assert r.get("ro:k") == b"v0"
        with pytest.raises(redis.exceptions.NoPermissionError, match="^this user has no permissions to run the 'set' command$"):
            r.set("ro:k", "v1")
    with admin(cluster.leader()) as a:
        assert a.get("ro:k") == b"v0"


def test_a_forwarded_write_is_checked_once_where_the_client_connected(cluster):
    node = follower(cluster)
    others = [n for n in cluster.nodes if n is not node]
    before = {n.id: n.info("stats") for n in cluster.nodes}
    with as_user(node, "cfg") as r:
        assert r.set("config:fwd", "1")  # forwarded to the leader, not checked again there
        with pytest.raises(redis.exceptions.NoPermissionError, match="keys used as arguments"):
            r.set("elsewhere", "1")
    after = {n.id: n.info("stats") for n in cluster.nodes}
    assert after[node.id]["acl_access_denied_key"] == before[node.id]["acl_access_denied_key"] + 1
    for other in others:  # nothing was refused, or even looked at, on the other nodes
        assert after[other.id]["acl_access_denied_key"] == before[other.id]["acl_access_denied_key"]
        assert after[other.id]["acl_access_denied_cmd"] == before[other.id]["acl_access_denied_cmd"]
    with admin(cluster.leader()) as a:
        assert a.get("config:fwd") == b"1" and a.exists("elsewhere") == 0


def test_user_without_dangerous_commands(cluster):
    with as_user(follower(cluster), "safe") as r:
        assert r.set("safe:x", "1") and r.get("safe:x") == b"1"
        for call in (r.flushall, lambda: r.keys("*"), lambda: r.config_get("maxclients"), r.info):
            with pytest.raises(redis.exceptions.NoPermissionError, match="^this user has no permissions to run the"):
                call()
    with admin(cluster.leader()) as a:
        assert a.get("safe:x") == b"1"


def test_multi_exec_checks_at_queue_time(cluster):
    node = follower(cluster)
    with as_user(node, "cfg") as r:
        pipe = r.pipeline(transaction=True)
        pipe.set("config:m1", "1")
        pipe.set("outside", "1")
        # redis-py reports the refusal while queuing (EXEC itself answered EXECABORT)
        with pytest.raises(redis.exceptions.NoPermissionError, match=r"Command # 2 \(SET outside 1\) of pipeline caused error: "
                           "this user has no permissions to access one of the keys used as arguments"):
            pipe.execute()
        pipe = r.pipeline(transaction=True)
        pipe.set("config:m2", "2").incr("config:m2")
        assert pipe.execute() == [True, 3]
    with admin(cluster.leader()) as a:
        assert a.exists("config:m1", "outside") == 0 and a.get("config:m2") == b"3"


def test_scripts_deny_alike_on_every_replica(cluster):
    leader, node = cluster.leader(), follower(cluster)
    script = "redis.call('set', 'config:e1', 'x'); local ok = redis.pcall('set', 'forbidden', 'y'); redis.call('set', 'config:e2', ok['err'])"
    with as_user(node, "cfg") as r:
        assert r.eval(script, 0) is None
        with pytest.raises(redis.exceptions.ResponseError, match="can't access at least one of the keys"):
            r.eval("local v = redis.call('get', 'forbidden') return v", 0)
    with as_user(leader, "cfg") as r, pytest.raises(redis.exceptions.ResponseError, match="can't access at least one of the keys"):
        r.eval("local v = redis.call('del', 'forbidden') return v", 0)
    cluster.converged()  # every replica applied the same denials: the same state
    for n in cluster.nodes:
        with admin(n) as a:
            a.execute_command("READONLY")
            wait_until(lambda a=a: a.get("config:e2") is not None, 10)
            assert a.get("config:e1") == b"x" and a.exists("forbidden") == 0
            assert a.get("config:e2") == (b"ERR The user executing the script can't access at least one of the keys "
                                          b"mentioned in the command arguments")
    with admin(node) as a:  # the same script run by an unrestricted user writes the key
        assert a.eval("return redis.call('set', 'forbidden', 'z')", 0) == b"OK"
        assert a.get("forbidden") == b"z"
        a.delete("forbidden")


def test_acl_introspection(cluster):
    node = follower(cluster)
    with admin(node) as a:
        assert a.acl_whoami() == "default"
        assert sorted(a.acl_users()) == ["cfg", "default", "reader", "rw", "safe"]
        listed = a.acl_list()
        assert f"user cfg on #{sha('cfg-pw')} ~config:* resetchannels +@all" in listed
        assert f"user default on #{sha(ADMIN_PW)} ~* &* +@all" in listed
        cats = a.acl_cat()
        assert cats[:3] == ["keyspace", "read", "write"] and "dangerous" in cats
        assert "get" in a.acl_cat("read") and "set" not in a.acl_cat("read") and "flushall" in a.acl_cat("dangerous")
        assert a.acl_getuser("cfg")["keys"] == ["~config:*"]
        a.acl_log_reset()
    with as_user(node, "reader") as r, pytest.raises(redis.exceptions.NoPermissionError):
        r.set("k", "v")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=node.host, port=node.port, username="reader", password="bad", socket_timeout=10,
                    retry=no_retry()).ping()
    with admin(node) as a:
        log = a.acl_log()
        assert [(e["reason"], e["object"], e["username"], e["context"]) for e in log[:2]] == [
            ("auth", "AUTH", "reader", "toplevel"), ("command", "set", "reader", "toplevel")]
        assert log[1]["client-info"]["user"] == "reader" and log[1]["client-info"]["addr"].startswith("127.0.0.1:")
        assert a.info("stats")["acl_access_denied_auth"] >= 1
        with pytest.raises(redis.exceptions.ResponseError, match="ACL SETUSER is not supported: users come from the"):
            a.acl_setuser("x", enabled=True)


def test_wrong_user_or_password(cluster):
    node = follower(cluster)
    for username, password in (("nobody", "x"), ("reader", "bad"), (None, "bad")):
        with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username-password pair or user is disabled"):
            redis.Redis(host=node.host, port=node.port, username=username, password=password, socket_timeout=10,
                        retry=no_retry()).ping()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed")
def test_redis_cli_as_a_user(cluster):
    node = follower(cluster)

    def cli(*args: str) -> str:
        out = subprocess.run(["redis-cli", "-h", node.host, "-p", str(node.port), "--no-auth-warning", *args],
                             capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout + out.stderr).strip()

    assert cli("--user", "reader", "--pass", "reader-pw", "SET", "a", "1") == \
        "NOPERM this user has no permissions to run the 'set' command"
    assert cli("--user", "cfg", "--pass", "cfg-pw", "SET", "config:cli", "1") == "OK"
    assert cli("--user", "cfg", "--pass", "cfg-pw", "ACL", "WHOAMI") == "cfg"
    assert "WRONGPASS invalid username-password pair or user is disabled." in cli("--user", "cfg", "--pass", "nope", "PING")
    assert cli("--user", "cfg", "--pass", "cfg-pw", "GET", "x") == \
        "NOPERM this user has no permissions to access one of the keys used as arguments"


def test_bad_user_rules_stop_the_node_with_one_line(tmp_path: Path):
    config = write_cluster_config(tmp_path, size=1, persistent=True,
                                  sections={"users": [{"name": "alice", "rules": "on ~* +@all +nosuchcommand"}]})
    out = subprocess.run([sys.executable, "-m", "raftcache", "serve", "--config", str(config), "--node", "n1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    problem = [line for line in out.stderr.splitlines() if "nosuchcommand" in line]
    assert len(problem) == 1, out.stderr
    assert "users[0].rules: user 'alice': rule '+nosuchcommand': Unknown command or category name in ACL" in problem[0]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


# ------------------------------------------------------------------ protected mode
@pytest.fixture
def net():
    ok, why = netns.available()
    if not ok:
        pytest.skip(why)
    with netns.Network(1) as network:
        yield network


def _start_in(net, root: Path, users: list[dict[str, str]]) -> ServerCluster:
    """One node in a network namespace, reached from a non-loopback address."""
    root.mkdir()
    c = ServerCluster(root, size=1, persistent=True, hosts=[net.node_ip(0)], exec_prefixes=[net.exec_prefix(0)],
                      sections={"cluster": {"secret": "Zq8vN2xL5pR7tK1wY4mB9cH3jF6dG0sA-strong"}, "users": users})
    c.nodes[0].start()
    return c


def test_protected_mode_counts_a_default_user_with_a_password(tmp_path, net):
    # Users, but the default one still needs no password: outsiders are refused, as in Redis.
    c = _start_in(net, tmp_path / "open", [{"name": "cfg", "rules": USERS["cfg"]}])
    node = c.nodes[0]
    try:
        with socket.create_connection((node.host, node.port), timeout=10) as sock:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"-DENIED Redis is running in protected mode")
    finally:
        c.close()
    # A default user with a password (or off) is a password: users come in and must AUTH.
    c = _start_in(net, tmp_path / "closed", [{"name": "default", "rules": f"on #{sha(ADMIN_PW)} ~* &* +@all"},
                                              {"name": "cfg", "rules": USERS["cfg"]}])
    node = c.nodes[0]
    try:
        with redis.Redis(host=node.host, port=node.port, socket_timeout=10, retry=no_retry()) as r, \
                pytest.raises(redis.AuthenticationError):
            r.get("k")
        with as_user(node, "cfg") as r:
            assert r.set("config:p", "1") and r.acl_whoami() == "cfg"
        assert "protected mode refuses" not in node.log_text()
    finally:
        c.close()


def test_raftcache_client_logs_in_as_a_user(cluster):
    """raftcache.Client(username=, password=) sends AUTH user pass on every connection; its
    writes then get the user's permissions wherever they land."""
    from raftcache import Client
    from raftcache.errors import NoPermissionError, WrongPassError

    with Client(cluster.endpoints, username="cfg", password="cfg-pw") as client:
        assert client.set("config:flag", "on") is True
        assert client.get("config:flag") == b"on"
        with pytest.raises(NoPermissionError, match="^this user has no permissions to access one of the keys"):
            client.set("other", "x")
    with Client(cluster.endpoints, username="reader", password="reader-pw") as client:
        assert client.get("config:flag") == b"on"
        with pytest.raises(NoPermissionError, match="^this user has no permissions to run the 'set' command"):
            client.set("config:flag", "off")
    with pytest.raises(WrongPassError), Client(cluster.endpoints, username="cfg", password="wrong") as client:
        client.get("config:flag")


def test_cli_logs_in_as_a_user(cluster, monkeypatch):
    """The operator CLI's --user (RAFTCACHE_USER) with --password: AUTH user password on the
    client connections (key commands) and on the per-node calls (status)."""
    from click.testing import CliRunner

    from raftcache.cli.main import cli

    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--endpoints", ",".join(cluster.endpoints)])

    as_cfg = ("--user", "cfg", "--password", "cfg-pw")
    assert run("set", "config:cli", "v", *as_cfg).output == "OK\n"
    denied = run("set", "elsewhere", "v", *as_cfg)
    assert denied.exit_code == 1 and "no permissions to access one of the keys used as arguments" in denied.output
    status = run("status", "--json", *as_cfg)
    assert status.exit_code == 0 and len(json.loads(status.output)) == 3
    wrong = run("get", "config:cli", "--user", "cfg", "--password", "nope")
    assert wrong.exit_code == 1 and "invalid username-password pair or user is disabled" in wrong.output
    monkeypatch.setenv("RAFTCACHE_USER", "reader")
    monkeypatch.setenv("RAFTCACHE_PASSWORD", "reader-pw")
    assert run("get", "config:cli").output == "v\n"
    refused = run("set", "config:cli", "w")
    assert refused.exit_code == 1 and "no permissions to run the 'set' command" in refused.output
    with admin(cluster.leader()) as a:
        assert a.get("config:cli") == b"v" and a.exists("elsewhere") == 0
