"""The near-cache (issue 14): GET rate from process memory vs a plain linearizable GET, and
how long a write through another node takes to reach the near-cache.

Both GET rates are one Python thread with `raftcache.Client` against a follower (a
linearizable GET is one round trip and a Raft read barrier; a near-cache hit is a dict
lookup under a lock), over `keys` keys that all fit in the near-cache. The lag is measured
from the acknowledgement of a SET sent to the leader until a near-cache client on a
follower returns the new value (polling GET every 0.2 ms): p50 / p99 / max."""

from __future__ import annotations

import statistics
import time
from typing import Any


def _rate(get: Any, keys: list[str], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for key in keys:
            get(key)
        done += len(keys)
    return done / (time.perf_counter() - start)


def measure(leader: str, follower: str, *, seconds: float = 3.0, keys: int = 100, samples: int = 200) -> dict[str, Any]:
    from raftcache import Client

    names = [f"nearbench:{i}" for i in range(keys)]
    with Client([leader]) as writer, Client([follower]) as plain, Client([follower], near_cache=keys * 2) as near:
        for name in names:
            writer.set(name, "v" * 16)
        for name in names:  # warm: every key in memory
            near.get(name)
        linearizable = _rate(plain.get, names, seconds)
        stats = near.near_cache
        hits0, misses0 = stats.hits, stats.misses
        cached = _rate(near.get, names, seconds)
        hits, misses = stats.hits - hits0, stats.misses - misses0
        hit_share = hits / max(1, hits + misses)
        lags = []
        for i in range(samples):
            near.get("nearbench:lag")
            writer.set("nearbench:lag", i)
            acked = time.perf_counter()
            want = str(i).encode()
            deadline = acked + 10
            while near.get("nearbench:lag") != want:
                if time.perf_counter() > deadline:
                    raise RuntimeError("a write did not reach the near-cache within 10 s")
                time.sleep(0.0002)
            lags.append((time.perf_counter() - acked) * 1000)
    lags.sort()
    return {
        "keys": keys, "seconds": seconds, "samples": samples,
        "linearizable_get_per_s": round(linearizable), "near_cache_get_per_s": round(cached),
        "ratio": round(cached / linearizable, 1) if linearizable else None, "goal": 50,
        "hit_share": round(hit_share, 4),
        "lag_p50_ms": round(statistics.median(lags), 2), "lag_p99_ms": round(lags[max(0, int(len(lags) * 0.99) - 1)], 2),
        "lag_max_ms": round(lags[-1], 2),
    }


def render(section: dict[str, Any]) -> list[str]:
    if not section:
        return []
    s = section
    return [
        "", "## Near-cache (issue 14)", "",
        "| GET path | ops/s (1 thread) |", "|---|---|",
        f"| linearizable GET via a follower | {s['linearizable_get_per_s']:,} |",
        f"| near-cache hit | {s['near_cache_get_per_s']:,} |",
        "", f"Near-cache / linearizable: {s['ratio']}x (goal >= {s['goal']}x); hits {s['hit_share']:.1%} of near-cache GETs.",
        (f"Write (acknowledged by the leader) -> visible in a follower's near-cache: p50 {s['lag_p50_ms']} ms, "
         f"p99 {s['lag_p99_ms']} ms, max {s['lag_max_ms']} ms over {s['samples']} writes."),
    ]


if __name__ == "__main__":  # python benchmarks/nearcache_bench.py LEADER FOLLOWER
    import json
    import sys

    print(json.dumps(measure(sys.argv[1], sys.argv[2], seconds=1.0, samples=50), indent=2))
