"""RESP micro-benchmark: what the server pays per command in raftcache.resp.

    python benchmarks/resp_parse_bench.py [--commands 100000] [--repeat 5]

* parse: COMMANDS pipelined ``SET key:NNNNNNNN value:NNNNNNNN`` fed in 64 KiB chunks to a
  ``RequestParser``, drained after every chunk as the server does;
* encode: ``encode_reply`` of COMMANDS small bulk replies, one call each, and of one
  array of COMMANDS small bulk strings (an MGET/KEYS-style reply);
* the same parse with ``hiredis.Reader`` when hiredis is importable (comparison only: it is
  not a dependency).

Each figure is the best of ``--repeat`` runs (the least disturbed by other processes).
Finishes in well under 30 s on a slow 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftcache.resp import RequestParser, encode_command, encode_reply

CHUNK = 64 * 1024


def make_stream(commands: int) -> bytes:
    return b"".join(encode_command(b"SET", b"key:%08d" % i, b"value:%08d" % i) for i in range(commands))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def parse_raftcache(pieces: list[bytes]) -> int:
    parser = RequestParser()
    count = 0
    for piece in pieces:
        parser.feed(piece)
        while parser.next() is not None:
            count += 1
    return count


def parse_hiredis(pieces: list[bytes]) -> int:
    import hiredis

    reader = hiredis.Reader()
    count = 0
    for piece in pieces:
        reader.feed(piece)
        while reader.gets() is not False:
            count += 1
    return count


def encode_replies(values: list[bytes]) -> int:
    for value in values:
        encode_reply(value)
    return len(values)


def encode_array(values: list[bytes]) -> int:
    encode_reply(values)
    return len(values)


def best_us_per_op(run: Callable[[], int], expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        done = run()
        elapsed = time.perf_counter() - start
        if done != expected:
            raise SystemExit(f"benchmark broken: {done} results, expected {expected}")
        best = min(best, elapsed)
    return best / expected * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.commands

    pieces = chunks(make_stream(n))
    values = [b"value:%08d" % i for i in range(n)]
    print(f"python {sys.version.split()[0]}, {n} commands, best of {args.repeat}")
    parse = best_us_per_op(lambda: parse_raftcache(pieces), n, args.repeat)
    print(f"  RequestParser, pipelined SET in 64 KiB chunks: {parse:6.3f} us/command")
    encode = best_us_per_op(lambda: encode_replies(values), n, args.repeat)
    print(f"  encode_reply, small bulk:                      {encode:6.3f} us/reply")
    array = best_us_per_op(lambda: encode_array(values), n, args.repeat)
    print(f"  encode_reply, one array of small bulks:        {array:6.3f} us/element")
    try:
        import hiredis  # noqa: F401
    except ImportError:
        print("  hiredis not installed: no comparison")
        return
    native = best_us_per_op(lambda: parse_hiredis(pieces), n, args.repeat)
    print(f"  hiredis.Reader, same stream (C, comparison):   {native:6.3f} us/command"
          f"  (RequestParser = {parse / native:.1f}x)")


if __name__ == "__main__":
    main()
