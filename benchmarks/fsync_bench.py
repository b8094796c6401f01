"""What one journal fsync costs on this disk, by how the record is written: appended to a
growing file (what `wal.LogFile` does), written over a preallocated zero-filled file or an
fallocate'd one (no size change for fdatasync to commit), or written with O_DSYNC.

    python benchmarks/fsync_bench.py [--records 400] [--rounds 2] [--dir DIR]

Each record is 200 bytes, then fdatasync (O_DSYNC: the write itself waits), one every 2 ms;
the modes alternate round by round. Prints p50 / p90 / p99 in ms per mode and round.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

RECORD = b"x" * 200
PREALLOCATED = 4 << 20


def _open(path: str, mode: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | (os.O_DSYNC if mode == "o_dsync" else 0)
    fd = os.open(path, flags, 0o644)
    if mode in ("zero-filled", "o_dsync"):
        os.write(fd, bytes(PREALLOCATED))
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
    elif mode == "fallocated":
        os.posix_fallocate(fd, 0, PREALLOCATED)
        os.fsync(fd)
    return fd


def run(directory: str, mode: str, records: int) -> list[float]:
    """Per record, ms for its write plus its fdatasync (the write alone with O_DSYNC)."""
    path = os.path.join(directory, f"journal-{mode}")
    fd = _open(path, mode)
    try:
        times = []
        for _ in range(records):
            started = time.perf_counter()
            os.write(fd, RECORD)
            if mode != "o_dsync":
                os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.002)
        return sorted(times)
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", help="where to write (default: a temp dir; put it on the data_dir's disk)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        print("| round | mode | p50 ms | p90 ms | p99 ms |\n|---:|---|---:|---:|---:|")
        for round_ in range(1, args.rounds + 1):
            for mode in ("appended", "zero-filled", "fallocated", "o_dsync"):
                t = run(directory, mode, args.records)
                n = len(t)
                print(f"| {round_} | {mode} | {t[n // 2]:.3f} | {t[int(n * 0.9)]:.3f} | {t[int(n * 0.99)]:.3f} |")


if __name__ == "__main__":
    main()
