"""Peer-wire micro-benchmark: CPU per raft message, pysyncobj's framing vs raftcache's wire.

    python benchmarks/wire_bench.py [--messages 20000] [--repeat 5]

For each message shape, the time of one send (encode + seal + frame) and one receive
(unframe + open + decode) of the same message, per message, single-threaded:

* ``pickle+fernet``: what pysyncobj did with ``password`` set and raftcache's compression at
  level 0 (``zlib.compress(pickle.dumps(m), 0)``, Fernet ``encrypt_at_time``; on receipt
  ``extract_timestamp`` + ``decrypt`` + ``zlib.decompress`` + ``pickle.loads``);
* ``msgpack+aes-gcm``: raftcache's wire (``WireSession.send`` / ``receive`` + ``next_message``).

Shapes: an append_entries carrying 16 entries of 200 B (a busy leader's batch), the same
with one 16 KiB entry, and a follower's next_node_idx ack (the commonest small message).
Each figure is the best of ``--repeat`` runs (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet

from raftcache.consensus.wire import WireSession

SECRET = b"benchmark-secret-of-a-reasonable-length"


def append_entries(count: int, size: int) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": 7,
        "commit_index": 123_456,
        "prevLogIdx": 123_456,
        "prevLogTerm": 7,
        "entries": [(b"\x10" + bytes(size - 1), 123_457 + i, 7) for i in range(count)],
    }


SHAPES = {
    "append_entries 16 x 200 B": append_entries(16, 200),
    "append_entries 1 x 16 KiB": append_entries(1, 16 << 10),
    "next_node_idx ack": {"type": "next_node_idx", "next_node_idx": 123_473, "reset": False, "success": True},
}


def old_wire() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    fernet = Fernet(Fernet.generate_key())  # pysyncobj derives it once per process: not per message

    def send(message: Any) -> bytes:
        data = fernet.encrypt_at_time(zlib.compress(pickle.dumps(message, 2), 0), int(time.monotonic()))
        return struct.pack("i", len(data)) + data

    def receive(frame: bytes) -> Any:
        data = frame[4:]
        fernet.extract_timestamp(data)
        return pickle.loads(zlib.decompress(fernet.decrypt(data)))

    return send, receive


def new_wire() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    a = WireSession(SECRET, initiator=True)
    b = WireSession(SECRET, initiator=False)
    b.receive(a.hello())
    a.receive(b.hello())
    a.next_message()
    b.next_message()
    b.receive(a.take_output())  # the confirm frames
    a.receive(b.take_output())
    b.next_message()
    a.next_message()

    def receive(frame: bytes) -> Any:
        b.receive(frame)
        return b.next_message()

    return a.send, receive


def best(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(make: Callable[[], tuple[Callable[[Any], bytes], Callable[[bytes], Any]]], message: Any, count: int, repeat: int) -> tuple[float, float, int]:
    """(µs per send, µs per receive, frame bytes)."""
    send, receive = make()
    frames: list[bytes] = []

    def sending() -> None:
        frames.clear()
        frames.extend(send(message) for _ in range(count))

    send_s = best(sending, repeat)
    # The new wire's receiver expects each frame once, in order: give each run its own frames.
    batches = []
    for _ in range(repeat):
        send, receive = make()
        batches.append(([send(message) for _ in range(count)], receive))
    runs = iter(batches)

    def receiving() -> None:
        batch, recv = next(runs)
        for frame in batch:
            recv(frame)

    receive_s = best(receiving, repeat)
    return send_s / count * 1e6, receive_s / count * 1e6, len(frames[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'message':28} {'wire':16} {'send µs':>8} {'recv µs':>8} {'total µs':>9} {'bytes':>7}")
    for name, message in SHAPES.items():
        count = args.messages if "16 KiB" not in name else args.messages // 8
        totals = {}
        for label, make in (("pickle+fernet", old_wire), ("msgpack+aes-gcm", new_wire)):
            send_us, recv_us, size = measure(make, message, count, args.repeat)
            totals[label] = send_us + recv_us
            print(f"{name:28} {label:16} {send_us:8.1f} {recv_us:8.1f} {send_us + recv_us:9.1f} {size:7}")
        print(f"{'':28} {'speed-up':16} {'':8} {'':8} {totals['pickle+fernet'] / totals['msgpack+aes-gcm']:8.1f}x")


if __name__ == "__main__":
    main()
