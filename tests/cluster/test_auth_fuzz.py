"""Fuzzing the client port of a node with authentication on (issue 16): a byte-level mutator
turns well-formed requests (writes, scripts, transactions, AUTH/HELLO attempts, RAFTCACHE
ONCE, inline commands) into malformed and half-formed ones and sends them, unauthenticated,
for about 20 s. Afterwards no command has run (the canary key is unchanged, nothing else
exists, no script was cached), the node is up and answers, and its RSS grew by no more than a
bounded amount. The passwords are random, so no mutation can guess one."""

from __future__ import annotations

import hashlib
import random
import secrets
import socket
import time

import pytest

from tests.helpers import ServerCluster

pytestmark = pytest.mark.timeout(180)

FUZZ_SECONDS = 20.0
MAX_CASES = 4000
RSS_GROWTH_LIMIT = 64 << 20  # bytes; a leak per connection or per case would exceed it


def resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


SCRIPT = b"redis.call('set', 'pwned', '1') return redis.call('flushall')"
SEEDS = [
    resp(b"SET", b"pwned", b"1"),
    resp(b"DEL", b"canary"),
    resp(b"FLUSHALL"),
    resp(b"EVAL", SCRIPT, b"0"),
    resp(b"SCRIPT", b"LOAD", SCRIPT),
    resp(b"MULTI") + resp(b"SET", b"pwned", b"1") + resp(b"EXEC"),
    resp(b"AUTH", b"default", b"wrong") + resp(b"SET", b"pwned", b"1"),
    resp(b"AUTH", b"fuzz", b"wrong") + resp(b"DEL", b"canary"),
    resp(b"AUTH", b"wrong") + resp(b"INCR", b"pwned"),
    resp(b"HELLO", b"3", b"AUTH", b"fuzz", b"nope") + resp(b"SET", b"pwned", b"1"),
    resp(b"HELLO", b"2", b"AUTH", b"default"),
    resp(b"RAFTCACHE", b"ONCE", b"1", b"1", b"1", b"SET", b"pwned", b"1"),
    resp(b"CONFIG", b"SET", b"requirepass", b""),
    resp(b"ACL", b"SETUSER", b"fuzz", b"nopass"),
    resp(b"MSET", *[b"pwned%d" % i for i in range(20)]),
    resp(b"RENAME", b"canary", b"pwned"),
    b"SET pwned 1\r\nDEL canary\r\n",
    b"AUTH fuzz wrong\r\nFLUSHALL\r\n",
    b"*3\r\n$3\r\nSET\r\n$5\r\npwned\r\n$1000000000\r\n",
    b"*2000000\r\n",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four byte-level edits: flips, inserts, deletions, duplications, splices, huge
    or negative lengths, truncation."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(i, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del out[i:i + rng.randint(1, 16)]
        elif op == 3:
            j = rng.randrange(len(out) + 1)
            out[i:i] = out[min(i, j):max(i, j)][:4096]
        elif op == 4:
            out[i:i] = rng.choice(SEEDS)
        elif op == 5:
            out[i:i] = rng.choice([b"$", b"*", b"\r\n", b"\r", b"\n", b":", b"+", b"-", b"\x00"])
        elif op == 6:
            out[i:i] = rng.choice([b"*-1\r\n", b"$-2\r\n", b"*99999999999999999999\r\n", b"$16385\r\n", b"*11\r\n"])
        else:
            del out[i:]
    return bytes(out)


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def send_case(host: str, port: int, payload: bytes) -> bytes:
    """Send, half-close, read what comes back until the node closes (or 1 s passes)."""
    got = b""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while len(got) < 1 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
    except (TimeoutError, ConnectionError, OSError):
        pass  # the node closed on bad input, or holds a connection after failed AUTHs
    return got


def test_fuzzing_the_port_before_auth_runs_nothing(tmp_path):
    password = secrets.token_urlsafe(32)
    fuzz_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    cluster = ServerCluster(tmp_path, size=1, persistent=False, sections={
        "server": {"requirepass": password},
        "users": [{"name": "fuzz", "rules": f"on #{fuzz_hash} ~* +@all"}],
    })
    node = cluster.nodes[0]
    node.start()
    try:
        with node.redis() as r:
            assert r.set("canary", "alive")
        rss_before = vm_rss(node.proc.pid)
        rng = random.Random(16)
        deadline = time.monotonic() + FUZZ_SECONDS
        cases = refusals = 0
        while cases < MAX_CASES and time.monotonic() < deadline:
            payload = b"".join(mutate(rng, rng.choice(SEEDS)) for _ in range(rng.randint(1, 3)))
            reply = send_case(node.host, node.port, payload)
            refusals += reply.count(b"-NOAUTH") + reply.count(b"-WRONGPASS")
            # Before AUTH every reply is an error line (QUIT's +OK aside): nothing was served.
            served = [line for line in reply.split(b"\r\n") if line and not line.startswith(b"-") and line != b"+OK"]
            assert not served, (payload, reply)
            cases += 1
        assert node.alive, node.log_text()[-3000:]
        assert cases >= 100 and refusals > 0, (cases, refusals)
        rss_after = vm_rss(node.proc.pid)
        assert rss_after - rss_before < RSS_GROWTH_LIMIT, (rss_before, rss_after)
        with node.redis() as r:
            assert r.get("canary") == b"alive"
            assert r.dbsize() == 1 and r.exists("pwned") == 0
            assert r.script_exists(hashlib.sha1(SCRIPT).hexdigest()) == [False]
            stats = r.info("stats")
            assert stats["acl_access_denied_auth"] > 0
            assert r.ping()
    finally:
        cluster.close()
