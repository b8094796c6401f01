"""What one hop between two processes costs on this machine, by how long the line was idle.

Two processes on TCP loopback ping-pong one byte; the round trip is timed for back-to-back
rounds and for rounds spaced 1 and 10 ms apart (a write trace's pace: one message every
10 ms). With ``--spin`` the echoing side never sleeps (a non-blocking busy loop), which
separates the waking of a sleeping reader from the rest.

    python benchmarks/hop_bench.py [--rounds 300] [--spin]
"""

from __future__ import annotations

import argparse
import os
import socket
import time


def _echo(port: int, spin: bool) -> None:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.setblocking(not spin)
    while True:
        try:
            data = conn.recv(16)
        except BlockingIOError:
            continue
        if not data:
            os._exit(0)
        conn.sendall(data)


def measure(gap_s: float, rounds: int, spin: bool) -> tuple[float, float]:
    """(p50, p90) round trip in microseconds."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)  # the echoing process failed if it has not connected by then
    port = server.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        server.close()
        _echo(port, spin)
    peer, _ = server.accept()
    peer.settimeout(10)
    server.close()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    try:
        for _ in range(rounds):
            started = time.perf_counter_ns()
            peer.sendall(b"x")
            if not peer.recv(16):
                raise ConnectionError("the echoing process went away")
            rtts.append((time.perf_counter_ns() - started) / 1e3)
            if gap_s:
                time.sleep(gap_s)  # the idle time being measured, not synchronisation
    finally:
        peer.close()
        os.waitpid(pid, 0)
    rtts.sort()
    return rtts[len(rtts) // 2], rtts[len(rtts) * 9 // 10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--spin", action="store_true", help="the echoing side busy-polls instead of sleeping in recv")
    args = parser.parse_args()
    for gap_ms in (0, 1, 10):
        p50, p90 = measure(gap_ms / 1000, args.rounds, args.spin)
        print(f"rounds {gap_ms:>2} ms apart{' (echo spins)' if args.spin else ''}: round trip p50 {p50:.0f} us, p90 {p90:.0f} us")


if __name__ == "__main__":
    main()
