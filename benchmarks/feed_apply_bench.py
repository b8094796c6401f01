"""The change feed's cost on the apply path: state-machine apply time per command with
nobody listening, with a listener, with a listener that asks for values, and with a
node's watch history attached (what every server node runs: watch.attach_hub).

    python benchmarks/feed_apply_bench.py            # this tree
    PYTHONPATH=/path/to/older/tree python benchmarks/feed_apply_bench.py --no-feed

CPU time (process_time), best of 9 runs of 400 batches x (100 SET + 50 HSET): the best run
is the one least disturbed by other work on a shared machine.
"""

from __future__ import annotations

import argparse
import time

from raftcache import commands as c
from raftcache.statemachine import CacheStateMachine


def _batches() -> list[c.Batch]:
    out = []
    for b in range(400):
        sets = [(None, c.Set(b"k%d" % (i % 5000), b"v" * 20)) for i in range(b * 100, b * 100 + 100)]
        hsets = [(None, c.DataWrite((b"hset", b"h%d" % (i % 500), b"f", b"v"))) for i in range(50)]
        out.append(c.Batch(1000 + b, sets + hsets))
    return out


def run(mode: str) -> float:
    """Microseconds of CPU per applied command."""
    fsm = CacheStateMachine()
    feed = None
    if mode != "no-feed":
        from raftcache.feed import Feed

        feed = Feed(fsm)
        if mode in ("listener", "values"):
            feed.add_listener(lambda items: None, values=mode == "values")
        elif mode == "history":
            from types import SimpleNamespace

            from raftcache.watch import History, WatchHub, attach_hub

            attach_hub(SimpleNamespace(feed=feed, fsm=fsm), WatchHub(History(100_000, 64 << 20)), values=True)
    batches = _batches()
    start = time.process_time()
    for batch in batches:
        fsm.apply(batch)
        if feed is not None:
            items = fsm.take_items()
            if items:
                feed.deliver(items)
    return (time.process_time() - start) / (len(batches) * 150) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-feed", action="store_true", help="a tree without raftcache.feed (the baseline)")
    args = parser.parse_args()
    modes = ["no-feed"] if args.no_feed else ["silent", "listener", "values", "history"]
    for mode in modes:
        print(f"{mode:9s} {min(run(mode) for _ in range(9)):.2f} us/command")


if __name__ == "__main__":
    main()
