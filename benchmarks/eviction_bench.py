"""Issue 13's figures: hit ratio of one recorded trace replayed against redis and raftcache
with the same policy, and the cost of eviction on SET throughput.

Hit ratio: a Zipf-distributed trace of GETs (seeded, so both targets see the same one), a
miss followed by a SET of that key (the cache-aside pattern), the keyspace 3x what fits.
"What fits" is the same number of keys on both: each target's `maxmemory` is its own
`used_memory` with exactly that many keys of the trace's shape stored (measured by filling
them, then flushing), because the two count memory differently. The trace runs in pipelined rounds of 100 GETs, then the round's SETs.

Cost: loadgen SET (50 connections, random keys from a keyspace larger than what fits)
against raftcache without a limit and with `allkeys-lru` evicting all along, alternating.
"""

from __future__ import annotations

import bisect
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from raftcache.resp import ErrorReply, ReplyParser, encode_command

ROUND = 100


def zipf_trace(keys: int, requests: int, s: float = 1.0, seed: int = 13) -> list[int]:
    """Key ranks drawn with P(rank r) ~ 1 / r**s, shuffled onto key ids (hot keys spread)."""
    weights = [1.0 / (r ** s) for r in range(1, keys + 1)]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    rng = random.Random(seed)
    ids = list(range(keys))
    rng.shuffle(ids)
    return [ids[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(requests)]


class _Replies:
    """Replies read with the project's own parser; an error reply raises."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ReplyParser()

    def read(self) -> Any:
        (reply,) = self.parser.read_replies(1, lambda: self.sock.recv(1 << 16))
        if type(reply) is ErrorReply:
            raise RuntimeError(reply.text)
        return reply


def replay(port: int, trace: list[int], value_size: int) -> dict[str, Any]:
    """Run the trace; hit ratios over the whole trace and over its second half (warm)."""
    value = b"v" * value_size
    hits = warm_hits = 0
    half = len(trace) // 2
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        replies = _Replies(sock)
        for start in range(0, len(trace), ROUND):
            batch = trace[start:start + ROUND]
            sock.sendall(b"".join(encode_command(b"GET", b"key:%d" % k) for k in batch))
            misses = []
            for i, k in enumerate(batch):
                if replies.read() is not None:
                    hits += 1
                    warm_hits += start + i >= half
                else:
                    misses.append(k)
            if misses:
                sock.sendall(b"".join(encode_command(b"SET", b"key:%d" % k, value) for k in misses))
                for _ in misses:
                    replies.read()
    return {"requests": len(trace), "hit_ratio": hits / len(trace), "warm_hit_ratio": warm_hits / (len(trace) - half),
            "seconds": time.monotonic() - started}


def command(port: int, *args: str) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(encode_command(*args))
        return _Replies(sock).read()


def used_at(port: int, info: Callable[[int], dict[str, str]], keys: int, value_size: int) -> int:
    """`used_memory` with exactly `keys` keys of the trace's shape stored (then flushed): the
    maxmemory under which that many keys fit, as this target counts memory."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        replies = _Replies(sock)
        for start in range(0, keys, 500):
            batch = range(start, min(keys, start + 500))
            sock.sendall(b"".join(encode_command(b"SET", b"key:%d" % (keys + i), b"v" * value_size) for i in batch))
            for _ in batch:
                replies.read()
        used = int(info(port)["used_memory"])
        sock.sendall(encode_command(b"FLUSHALL"))
        replies.read()
    return used
