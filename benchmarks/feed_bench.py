"""Pub/sub figures for bench_all's `feed` section: PUBLISH rate, and fan-out latency from
PUBLISH to receipt with N subscribers spread over a target's ports (one port for redis,
every node of a raftcache cluster).

Raw RESP on plain sockets, no client library and no asyncio in the measured path: one
thread polls every subscriber socket with epoll and stamps each receipt with
``time.perf_counter_ns()`` right after its ``recv``, before any parsing; the publisher stamps
each message with the same clock, so a receipt's latency is its stamp minus the message's.
(An asyncio reader costs ~40 us of Python per woken socket: with 100 subscribers the last one
was stamped ~4 ms late, which was the harness, not the server: Redis measured p50 4.6 ms.)

Each receipt also carries the kernel's own stamp (``SO_TIMESTAMPNS``: when the bytes reached
the subscriber's socket, CLOCK_REALTIME), compared with the publisher's ``time.time_ns()``
taken just before its send. That figure ("kernel") leaves out the time this one Python thread
takes to get round to the 100th socket, which a subscriber with a thread of its own would not
wait; the read-stamped figure is kept beside it (older runs have only that one).

    python benchmarks/feed_bench.py --ports 7001,7002,7003 [--subscribers 100] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from raftcache.resp import ErrorReply, ReplyParser, encode_command

CHANNEL = b"feed-bench"
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # CPython 3.11's socket module does not name it; 35 is Linux's
_ANCILLARY = socket.CMSG_SPACE(16)  # one struct timespec


class Conn:
    """A blocking socket and the project's own reply parser (the publisher's side, set-up)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = ReplyParser()

    def reply(self) -> Any:
        (reply,) = self.parser.read_replies(1, lambda: self.sock.recv(1 << 16))
        if type(reply) is ErrorReply:
            raise RuntimeError(reply.text)
        return reply


RATE = b"rate"  # ends the latency phase
BODY = b"r" * 16  # the rate phase's payload
STOP = b"s" * 16  # ends the rate phase (same size as BODY)
_STAMP = re.compile(rb"\$\d+\r\nt(\d+)\.(\d+)\r\n")  # t<perf_counter_ns>.<time_ns> at publish
_FIXED = len(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(CHANNEL), CHANNEL, BODY))


class Subscribers:
    """Every subscriber socket, read by one epoll loop; raw bytes kept with their stamps."""

    def __init__(self, ports: list[int], count: int) -> None:
        self.conns = [Conn(ports[i % len(ports)]) for i in range(count)]
        for conn in self.conns:
            conn.sock.sendall(encode_command(b"SUBSCRIBE", CHANNEL))
        for conn in self.conns:
            conn.reply()  # the subscribe confirmation
            if conn.parser.buffered:  # nothing is published before every subscriber is in
                raise RuntimeError("a subscriber got more than its confirmation")
            conn.sock.setblocking(False)
            conn.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.poller = select.epoll()
        self.by_fd = {conn.sock.fileno(): i for i, conn in enumerate(self.conns)}
        for fd in self.by_fd:
            self.poller.register(fd, select.EPOLLIN)
        self.pending = [b""] * count  # raw bytes not yet matched to a message
        self.counts = [0] * count

    def drain(self, deadline: float, until: Callable[[], bool], on_chunk: Callable[[int, bytes, int, int], None]) -> None:
        """Read every ready socket until `until()`: ``on_chunk(subscriber, bytes, read stamp
        (perf_counter ns), kernel stamp (realtime ns, 0 if none))``."""
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("subscribers did not receive everything in time")
            got = []  # every ready socket read and stamped first, parsed after
            for fd, _ in self.poller.poll(0.5):
                try:
                    chunk, ancillary, _, _ = self.conns[self.by_fd[fd]].sock.recvmsg(1 << 16, _ANCILLARY)
                except BlockingIOError:
                    continue
                got.append((self.by_fd[fd], chunk, time.perf_counter_ns(), ancillary))
            for i, chunk, stamp, ancillary in got:
                if not chunk:
                    raise ConnectionError(f"subscriber {i} was disconnected")
                on_chunk(i, chunk, stamp, _kernel_stamp(ancillary))

    def close(self) -> None:
        self.poller.close()
        for conn in self.conns:
            conn.sock.close()


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds * 1_000_000_000 + nanoseconds
    return 0


def latency_phase(subs: Subscribers, publisher: Conn, messages: int, interval_s: float,
                  by_port: list[list[float]], kernel: list[float] | None = None,
                  kernel_by_port: list[list[float]] | None = None) -> list[float]:
    """Every receipt's latency (ms) when this thread read it; `by_port[p]` gets those of
    subscribers on port p. `kernel` (and `kernel_by_port`) get each receipt's latency by the
    kernel's stamp (the last message of a read gets the read's stamp, so a message that
    shared a read is counted late, never early)."""
    latencies: list[float] = []
    n = len(subs.conns)

    def on_chunk(i: int, chunk: bytes, stamp: int, kstamp: int) -> None:
        buffered = subs.pending[i] + chunk
        end = 0
        for match in _STAMP.finditer(buffered):
            latencies.append((stamp - int(match.group(1))) / 1e6)
            by_port[i % len(by_port)].append(latencies[-1])
            if kstamp and kernel is not None:
                kernel.append((kstamp - int(match.group(2))) / 1e6)
                if kernel_by_port is not None:
                    kernel_by_port[i % len(kernel_by_port)].append(kernel[-1])
            subs.counts[i] += 1
            end = match.end()
        subs.pending[i] = buffered[end:]

    for k in range(1, messages + 1):
        publisher.sock.sendall(encode_command(b"PUBLISH", CHANNEL, b"t%d.%d" % (time.perf_counter_ns(), time.time_ns())))
        subs.drain(time.monotonic() + 30, lambda k=k: min(subs.counts) >= k, on_chunk)
        publisher.reply()
        time.sleep(interval_s)  # spacing between messages, not synchronisation
    if len(latencies) != messages * n:
        raise RuntimeError(f"{len(latencies)} receipts for {messages} messages x {n} subscribers")
    return latencies


def _rate_phase(subs: Subscribers, publisher: Conn, seconds: float) -> tuple[float, bool]:
    """PUBLISH pipelined 64 deep for `seconds` from a thread, while this one counts the
    subscribers' fixed-size messages by their bytes (parsing them here would measure this
    Python process, not the server), up to the STOP message."""
    n = len(subs.conns)
    received = [0] * n
    tails = [b""] * n
    done = [False] * n
    result: dict[str, float] = {}

    def publish() -> None:
        published, depth = 0, 64
        body = encode_command(b"PUBLISH", CHANNEL, BODY) * depth
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            publisher.sock.sendall(body)
            for _ in range(depth):
                publisher.reply()
            published += depth
        result["rate"] = published / (time.monotonic() - started)
        result["published"] = published
        publisher.sock.sendall(encode_command(b"PUBLISH", CHANNEL, STOP))
        publisher.reply()

    def on_chunk(i: int, chunk: bytes, stamp: int, kstamp: int) -> None:
        received[i] += len(chunk)
        tails[i] = (tails[i] + chunk)[-64:]
        done[i] = received[i] % _FIXED == 0 and tails[i].endswith(STOP + b"\r\n")

    # The RATE marker and anything after it already read in the latency phase.
    for i in range(n):
        leftover = subs.pending[i]
        at = leftover.find(b"\r\n" + RATE + b"\r\n")
        if at >= 0:
            leftover = leftover[at + len(RATE) + 4:]
            received[i] = len(leftover)
            tails[i] = leftover[-64:]
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    subs.drain(time.monotonic() + seconds + 120, lambda: all(done), on_chunk)
    thread.join(30)
    delivered = all(r // _FIXED - 1 == result.get("published") for r in received)
    return result["rate"], delivered


def _run(ports: list[int], subscribers: int, seconds: float, latency_messages: int, interval_s: float) -> dict[str, Any]:
    subs = Subscribers(ports, subscribers)
    publisher = Conn(ports[0])
    try:
        by_port: list[list[float]] = [[] for _ in ports]
        kernel: list[float] = []
        kernel_by_port: list[list[float]] = [[] for _ in ports]
        latencies = latency_phase(subs, publisher, latency_messages, interval_s, by_port, kernel, kernel_by_port)
        publisher.sock.sendall(encode_command(b"PUBLISH", CHANNEL, RATE))
        publisher.reply()
        # Every subscriber's RATE marker: the rate phase starts from a clean cut.
        def on_marker(i: int, chunk: bytes, stamp: int, kstamp: int) -> None:
            subs.pending[i] += chunk
        subs.drain(time.monotonic() + 30, lambda: all(b"\r\n" + RATE + b"\r\n" in p for p in subs.pending), on_marker)
        rate, delivered = _rate_phase(subs, publisher, seconds)
    finally:
        publisher.sock.close()
        subs.close()
    def pct(p: float, values: list[float] | None = None) -> float | None:
        values = sorted(latencies if values is None else values)
        return round(values[min(len(values) - 1, int(p * len(values)))], 3) if values else None

    return {"subscribers": subscribers, "ports": len(ports), "publish_per_s": round(rate), "latency_messages": latency_messages,
            "fanout_p50_ms": pct(0.50), "fanout_p99_ms": pct(0.99), "fanout_max_ms": round(max(latencies), 3) if latencies else None,
            "receipts": len(latencies), "all_delivered": delivered,
            # the publisher is on ports[0] (for raftcache: the leader, see bench_all)
            "p50_p99_by_port_ms": [[pct(0.50, v), pct(0.99, v)] for v in by_port],
            # by the kernel's receive stamps (see the module's docstring); None where it gave none
            "fanout_kernel_p50_ms": pct(0.50, kernel), "fanout_kernel_p99_ms": pct(0.99, kernel),
            "kernel_receipts": len(kernel),
            "kernel_p50_p99_by_port_ms": [[pct(0.50, v), pct(0.99, v)] for v in kernel_by_port]}


def measure(ports: list[int], subscribers: int = 100, seconds: float = 5.0, latency_messages: int = 200,
            interval_s: float = 0.01) -> dict[str, Any]:
    return _run(ports, subscribers, seconds, latency_messages, interval_s)


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
