"""Pub/sub figures for bench_all's `feed` section: PUBLISH rate, and fan-out latency from
PUBLISH to receipt with N subscribers spread over a target's ports (one port for redis,
every node of a raftcache cluster).

Everything runs in one asyncio process with raw RESP (no client library in the measured
path): subscribers read their sockets, the publisher stamps each message with
``time.perf_counter_ns()`` so a receipt's latency is its own clock minus the stamp.

    python benchmarks/feed_bench.py --ports 7001,7002,7003 [--subscribers 100] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

CHANNEL = b"feed-bench"


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def _read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"*", b">"):
        return [await _read_reply(reader) for _ in range(int(rest))]
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else (await reader.readexactly(n + 2))[:-2]
    if kind == b":":
        return int(rest)
    if kind == b"-":
        raise RuntimeError(rest.decode())
    return rest


async def _subscriber(port: int, ready: asyncio.Event, latencies: list[float], counts: list[int], idx: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_command(b"SUBSCRIBE", CHANNEL))
    await _read_reply(reader)
    counts[idx] = 0
    ready.set()
    try:
        while True:
            reply = await _read_reply(reader)
            now = time.perf_counter_ns()
            payload = reply[2]
            if payload == b"stop":
                return
            if payload.startswith(b"t"):
                latencies.append((now - int(payload[1:])) / 1e6)
            counts[idx] += 1
    finally:
        writer.close()


async def _run(ports: list[int], subscribers: int, seconds: float, latency_messages: int, interval_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    counts = [-1] * subscribers
    events = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(_subscriber(ports[i % len(ports)], events[i], latencies, counts, i)) for i in range(subscribers)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    # fan-out latency: one message at a time, spaced, each stamped
    for _ in range(latency_messages):
        writer.write(_command(b"PUBLISH", CHANNEL, b"t%d" % time.perf_counter_ns()))
        await _read_reply(reader)
        await asyncio.sleep(interval_s)
    # PUBLISH rate: pipelined, 64 in flight, for `seconds`
    published, depth = 0, 64
    started = time.monotonic()
    body = _command(b"PUBLISH", CHANNEL, b"r" * 16)
    while time.monotonic() - started < seconds:
        writer.write(body * depth)
        for _ in range(depth):
            await _read_reply(reader)
        published += depth
    rate = published / (time.monotonic() - started)
    writer.write(_command(b"PUBLISH", CHANNEL, b"stop"))
    await _read_reply(reader)
    writer.close()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    expected = latency_messages + published
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else None

    return {"subscribers": subscribers, "ports": len(ports), "publish_per_s": round(rate), "latency_messages": latency_messages,
            "fanout_p50_ms": pct(0.50), "fanout_p99_ms": pct(0.99), "fanout_max_ms": round(latencies[-1], 3) if latencies else None,
            "receipts": len(latencies), "all_delivered": all(c == expected for c in counts)}


def measure(ports: list[int], subscribers: int = 100, seconds: float = 5.0, latency_messages: int = 200,
            interval_s: float = 0.01) -> dict[str, Any]:
    return asyncio.run(_run(ports, subscribers, seconds, latency_messages, interval_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated client ports (subscribers spread over them)")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency-messages", type=int, default=200)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    print(json.dumps(measure(ports, args.subscribers, args.seconds, args.latency_messages), indent=2))


if __name__ == "__main__":
    main()
