"""Issue 12's figures: bytes per element of each data type, redis and raftcache side by side.

For each type, one key is filled with N elements (1M; `--quick`: 100K) by commands of 1,000
elements each (HSET / RPUSH / SADD / ZADD), against a fresh redis-server and a fresh
3-node raftcache cluster (fresh, because a Python process does not hand freed memory back:
an earlier fill would pollute the next one's RSS growth). Reported: redis `used_memory` and
RSS growth per element; raftcache RSS growth per element on every node; the ratio of
raftcache's (leader) RSS growth to redis's RSS growth.

Element shapes: hash field `field:%07d` (13 B) -> 16 B value; list element 16 B; set member
`member:%07d` (14 B); zset member `member:%07d` (14 B) with score i.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from targets import RaftcacheCluster, RedisServer, rss_bytes, wait_until

CHUNK = 1_000


def _hash(n: int) -> Iterator[list[bytes]]:
    for start in range(0, n, CHUNK):
        args = [b"HSET", b"h"]
        for i in range(start, min(n, start + CHUNK)):
            args += (b"field:%07d" % i, b"v" * 16)
        yield args


def _list(n: int) -> Iterator[list[bytes]]:
    for start in range(0, n, CHUNK):
        yield [b"RPUSH", b"l", *(b"%016d" % i for i in range(start, min(n, start + CHUNK)))]


def _set(n: int) -> Iterator[list[bytes]]:
    for start in range(0, n, CHUNK):
        yield [b"SADD", b"s", *(b"member:%07d" % i for i in range(start, min(n, start + CHUNK)))]


def _zset(n: int) -> Iterator[list[bytes]]:
    for start in range(0, n, CHUNK):
        args = [b"ZADD", b"z"]
        for i in range(start, min(n, start + CHUNK)):
            args += (b"%d" % i, b"member:%07d" % i)
        yield args


FILLS: dict[str, tuple[Callable[[int], Iterator[list[bytes]]], bytes, bytes]] = {
    # type: (commands, key, the command that counts its elements)
    "hash": (_hash, b"h", b"HLEN"),
    "list": (_list, b"l", b"LLEN"),
    "set": (_set, b"s", b"SCARD"),
    "zset": (_zset, b"z", b"ZCARD"),
}


def _encode(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """Read `count` simple replies (integers, statuses or errors): lines only."""
    buf = b""
    lines: list[bytes] = []
    while len(lines) < count:
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        buf += data
        *complete, buf = buf.split(b"\r\n")
        lines += complete
    return lines


def fill(port: int, commands: Iterator[list[bytes]], window: int = 8, timeout: float = 900) -> float:
    """Send the commands with up to `window` in flight; raise on an error reply. Returns seconds."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        in_flight = 0
        for args in commands:
            sock.sendall(_encode(args))
            in_flight += 1
            if in_flight >= window:
                for line in _read_replies(sock, in_flight):
                    if line.startswith(b"-"):
                        raise RuntimeError(f"{args[0].decode()}: {line.decode(errors='replace')}")
                in_flight = 0
            if time.monotonic() - started > timeout:
                raise TimeoutError("fill took too long")
        for line in _read_replies(sock, in_flight):
            if line.startswith(b"-"):
                raise RuntimeError(line.decode(errors="replace"))
    return time.monotonic() - started


def measure(root: Any, n: int, fsync: str, resp_call: Callable[..., Any], parse_info: Callable[[Any], dict[str, str]],
            types: tuple[str, ...] = tuple(FILLS), keep_zset: Callable[[RaftcacheCluster, int], None] | None = None,
            ) -> list[dict[str, Any]]:
    """One row per (type, target, process). `keep_zset(cluster, n)` runs on the zset cluster
    before it stops (the snapshot and restart measurements)."""
    rows: list[dict[str, Any]] = []
    for kind in types:
        make, key, count_cmd = FILLS[kind]
        redis = RedisServer(root / f"redis-{kind}").start()
        try:
            mem0 = int(parse_info(resp_call(redis.port, "INFO", "memory"))["used_memory"])
            rss0 = rss_bytes(redis.pid)
            seconds = fill(redis.port, make(n))
            count = int(resp_call(redis.port, count_cmd.decode(), key.decode()))
            mem1 = int(parse_info(resp_call(redis.port, "INFO", "memory"))["used_memory"])
            encoding = resp_call(redis.port, "OBJECT", "ENCODING", key.decode())
            rows.append({"type": kind, "target": f"redis {RedisServer.version()}", "process": "redis-server",
                         "elements": count, "used_memory_per_element": (mem1 - mem0) / count,
                         "rss_per_element": (rss_bytes(redis.pid) - rss0) / count, "fill_s": seconds,
                         "encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding)})
        finally:
            redis.stop()
        cluster = RaftcacheCluster(root / f"raftcache-{kind}", fsync).start()
        try:
            leader = cluster.leader()
            rss_start = {node.id: rss_bytes(node.proc.pid) for node in cluster.nodes}  # type: ignore[union-attr]
            seconds = fill(leader.client_port, make(n))
            commit = int(leader.info()["raft_commit_index"])
            nodes = cluster.nodes
            wait_until(lambda c=commit, ns=nodes: all(int(node.info()["raft_applied_index"]) >= c for node in ns), 300, 0.2,
                       "every node to apply the fill")
            count = int(leader.call(count_cmd.decode(), key.decode()))
            encoding = leader.call("OBJECT", "ENCODING", key.decode())
            for node in cluster.nodes:
                growth = rss_bytes(node.proc.pid) - rss_start[node.id]  # type: ignore[union-attr]
                rows.append({"type": kind, "target": "raftcache 3 nodes",
                             "process": node.id + (" (leader)" if node is leader else ""), "elements": count,
                             "used_memory_per_element": None, "rss_per_element": growth / count, "fill_s": seconds,
                             "encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding)})
            if kind == "zset" and keep_zset is not None:
                keep_zset(cluster, count)
        finally:
            cluster.stop()
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per type: raftcache leader RSS growth / redis RSS growth (and / redis used_memory)."""
    out = []
    for kind in FILLS:
        redis = next((r for r in rows if r["type"] == kind and r["process"] == "redis-server"), None)
        ours = next((r for r in rows if r["type"] == kind and r["process"].endswith("(leader)")), None)
        if redis and ours and redis["rss_per_element"] > 0:
            out.append({"type": kind, "vs_redis_rss": ours["rss_per_element"] / redis["rss_per_element"],
                        "vs_redis_used_memory": ours["rss_per_element"] / redis["used_memory_per_element"]})
    return out


def render(section: dict[str, Any]) -> list[str]:
    out = ["", f"## Memory per element of each data type ({section.get('elements', '?'):,} elements in one key)", ""]
    if not section.get("rows"):
        return [*out, "not measured (see notes)"]
    out += ["| type | target | process | encoding | RSS growth / element | redis used_memory / element | fill s |",
            "|---|---|---|---|---:|---:|---:|"]
    for r in section["rows"]:
        used = "-" if r["used_memory_per_element"] is None else f"{r['used_memory_per_element']:.1f} B"
        out.append(f"| {r['type']} | {r['target']} | {r['process']} | {r['encoding']} | {r['rss_per_element']:.1f} B | "
                   f"{used} | {r['fill_s']:.1f} |")
    out += ["", "| type | raftcache leader RSS / redis RSS | raftcache leader RSS / redis used_memory | goal |",
            "|---|---:|---:|---|"]
    for r in section.get("ratios", []):
        out.append(f"| {r['type']} | {r['vs_redis_rss']:.2f}x | {r['vs_redis_used_memory']:.2f}x | <= 3x |")
    for name in ("zset_snapshot", "zset_restart_replaying_log", "zset_restart"):
        if section.get(name):
            out += ["", f"{name}: " + ", ".join(f"{k} {v}" for k, v in section[name].items() if k != "digest")]
    return out
