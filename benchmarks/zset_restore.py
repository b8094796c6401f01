"""Restore time of a 1M-member sorted set snapshot, state machine only (issue 12's "restart
within 10 s"): build the set, take the snapshot sections through msgpack as a snapshot file
would, then time decoding + CacheStateMachine.restore. Not a default test:

    .venv/bin/python benchmarks/zset_restore.py [members]
"""

from __future__ import annotations

import io
import sys
import time

from raftcache import commands as c
from raftcache.statemachine import CacheStateMachine


def main(members: int = 1_000_000) -> None:
    fsm = CacheStateMachine()
    step = 100_000
    for start in range(0, members, step):
        args = [x for i in range(start, min(members, start + step)) for x in (b"%d" % ((i * 7919) % 100_000), b"member:%d" % i)]
        fsm.apply(c.Batch(1, [(None, c.DataWrite((b"zadd", b"big", *args)))]))
    t0, c0 = time.perf_counter(), time.process_time()
    packer, buffer = c.packer(), io.BytesIO()
    for section in fsm.snapshot_sections():
        buffer.write(packer.pack(list(section)))
    t1, c1 = time.perf_counter(), time.process_time()
    buffer.seek(0)
    restored = CacheStateMachine()
    restored.restore(tuple(s) for s in c.unpacker(buffer))
    t2, c2 = time.perf_counter(), time.process_time()
    assert restored.digest() == fsm.digest()
    print(f"{members} members: snapshot {t1 - t0:.2f} s wall / {c1 - c0:.2f} s CPU ({buffer.tell() / 1e6:.0f} MB), "
          f"decode + restore {t2 - t1:.2f} s wall / {c2 - c1:.2f} s CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
