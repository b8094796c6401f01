"""`limits` (the PyPI rate-limiting library) hits per second against a RESP server, through
the library's own redis storage (redis-py underneath), as a web service would run it.

    python benchmarks/limits_load.py --port P [--strategy fixed|sliding] [--processes 2]
                                     [--threads 25] [--duration S] [--identities 10000]

`--processes` worker processes, each with one `limits` storage (one redis-py client and its
connection pool, as one Flask-Limiter process has) and `--threads` threads calling
`limiter.hit(item, "bench", identity)` back to back: processes x threads hits in flight, as
`-c` connections in redis-benchmark. Every process sets up (imports, storage, one warm-up
hit per thread, which also loads the script: redis-py's Script sends EVALSHA, then EVAL on
NOSCRIPT), then all start together and run for `--duration` seconds.

Strategies (the limit is 10^9 per minute, so every hit takes the whole path and is allowed):

* `fixed`: `FixedWindowRateLimiter`: one EVALSHA per hit (INCRBY, EXPIRE on the first);
* `sliding`: `SlidingWindowCounterRateLimiter`: one EVALSHA per hit (PTTL, GET x2, PTTL x2,
  EXISTS, INCRBY or SET PX; RENAME when the window moves).
  (`MovingWindowRateLimiter` needs lists: not measured while raftcache has none.)

Prints `{"started": ...}` when the hits start, then one JSON object of `loadgen.py run`'s
shape: ops/s, p50/p99 in ms, errors (an exception from the library, or a denied hit), and
client_cpu_s (CPU time the worker processes spent during the run, every thread included).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import random
import signal
import threading
import time
from typing import Any

STRATEGIES = {"fixed": "FixedWindowRateLimiter", "sliding": "SlidingWindowCounterRateLimiter"}
LIMIT = "1000000000/minute"


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def announce_start() -> None:
    """Run by one worker when all have set up: the harness measures CPU from this line."""
    print(json.dumps({"started": time.monotonic()}), flush=True)


def die_with_parent() -> None:
    """SIGKILL this worker when the parent dies, even by kill -9 (the harness's watchdog)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the barrier and socket timeouts still bound it
        pass


def worker(args: argparse.Namespace, index: int, barrier: Any, results: Any) -> None:
    """One process; reports its samples, or why it could not run, through `results`."""
    die_with_parent()
    try:
        results.put(hits(args, index, barrier))
    except Exception as exc:  # noqa: BLE001 - the parent reports it and fails
        barrier.abort()  # the other workers stop waiting for this one
        results.put({"error": f"worker {index}: {type(exc).__name__}: {exc}"})


def hits(args: argparse.Namespace, index: int, barrier: Any) -> dict[str, Any]:
    """A storage, `threads` threads hitting through it; every thread warms up before the start."""
    import limits.strategies
    from limits import parse
    from limits.storage import storage_from_string

    # socket_timeout: a server that stops answering fails a hit (counted) instead of hanging.
    storage = storage_from_string(f"redis://{args.host}:{args.port}", socket_timeout=30)
    limiter = getattr(limits.strategies, STRATEGIES[args.strategy])(storage)
    item = parse(LIMIT)
    ready = threading.Barrier(args.threads + 1)
    go = threading.Event()
    stop_at = [0.0]
    per_thread: list[dict[str, Any]] = []

    def run(t: int) -> None:
        rng = random.Random(index * 1000 + t)
        out: dict[str, Any] = {"samples": [], "errors": 0, "first_error": ""}
        per_thread.append(out)
        identity = str(rng.randrange(args.identities))
        try:
            limiter.hit(item, "bench", identity)  # warm-up: connection, script load
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            out["errors"] += 1
            out["first_error"] = f"warm-up: {type(exc).__name__}: {exc}"
        ready.wait()
        go.wait()
        perf, samples = time.perf_counter, out["samples"]
        while True:
            t0 = perf()
            if t0 >= stop_at[0]:
                break
            try:
                if not limiter.hit(item, "bench", str(rng.randrange(args.identities))):
                    raise RuntimeError("hit denied under a limit of 10^9/minute")
            except Exception as exc:  # noqa: BLE001 - counted, as loadgen counts error replies
                out["errors"] += 1
                out["first_error"] = out["first_error"] or f"{type(exc).__name__}: {exc}"
            samples.append(perf() - t0)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(args.threads)]
    for th in threads:
        th.start()
    ready.wait(timeout=120)  # every thread has made its warm-up hit (or failed it)
    barrier.wait(timeout=120)  # ... in every process
    start_mono, cpu0 = time.monotonic(), time.process_time()
    stop_at[0] = time.perf_counter() + args.duration
    go.set()
    for th in threads:
        th.join(args.duration + 60)
    return {
        "start_mono": start_mono, "end_mono": time.monotonic(),
        "cpu_s": time.process_time() - cpu0,
        "samples": [s for out in per_thread for s in out["samples"]],
        "errors": sum(out["errors"] for out in per_thread),
        "first_error": next((out["first_error"] for out in per_thread if out["first_error"]), ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="fixed")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=25, help="per process")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--identities", type=int, default=10_000, help="distinct rate-limited identities (keys)")
    args = parser.parse_args()
    if args.host.split(".")[0] != "127" and args.host != "localhost":
        parser.error("this benchmark only talks to 127.0.0.0/8")
    import limits  # fail here, with the import error, rather than in every worker

    ctx = mp.get_context("spawn")  # no fork of a process that may hold locks
    barrier = ctx.Barrier(args.processes, action=announce_start)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args, i, barrier, results), daemon=True) for i in range(args.processes)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=args.duration + 300) for _ in procs]
    for p in procs:
        p.join(30)
    failed = [r["error"] for r in reports if "error" in r]
    if failed:
        raise SystemExit("; ".join(failed))
    samples = [s for r in reports for s in r["samples"]]
    elapsed = max(r["end_mono"] for r in reports) - min(r["start_mono"] for r in reports)
    print(json.dumps({
        "ops": len(samples),
        "errors": sum(r["errors"] for r in reports),
        "first_error": next((r["first_error"] for r in reports if r["first_error"]), ""),
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": len(samples) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "max_ms": max(samples) * 1000 if samples else float("nan"),
        "client_cpu_s": sum(r["cpu_s"] for r in reports),
        "limits": getattr(limits, "__version__", "unknown"),
    }), flush=True)


if __name__ == "__main__":
    main()
