"""Embedded-library benchmark: 3 replica processes on 127.0.0.1, load generated inside one.

    python benchmarks/embedded_bench.py [--ops 20000] [--concurrency 256] [--value-size 16]
                                        [--fsync always|no] [--json out.json]

Each phase runs in the process of the replica under test (the leader, then a follower), so
the numbers are the library's, not a client protocol's:

* write latency: one `await cache.set()` at a time (p50/p99);
* write throughput: `--concurrency` coroutines issuing SETs (group commit at work);
* linearizable GET and stale GET throughput the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from targets import free_ports  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


# ------------------------------------------------------------------------------ worker
async def worker_main(args: argparse.Namespace) -> None:
    from raftcache import AsyncCache

    cache = AsyncCache(args.address, args.peer, data_dir=args.data_dir, secret="bench-secret", fsync=args.fsync, request_timeout=30)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    value = b"x" * args.value_size
    while True:
        line = await reader.readline()
        if not line:
            break
        request = json.loads(line)
        op = request["op"]
        if op == "ready":
            await cache.wait_ready(30)
            reply({"role": cache.status().role})
        elif op == "latency":
            samples = []
            for i in range(request["ops"]):
                start = time.perf_counter()
                await cache.set(b"lat%d" % i, value)
                samples.append(time.perf_counter() - start)
            reply({"p50_ms": percentile(samples, 50) * 1000, "p99_ms": percentile(samples, 99) * 1000, "ops": len(samples)})
        elif op in ("set", "get", "get_stale"):
            ops, concurrency = request["ops"], request["concurrency"]
            per_task = max(1, ops // concurrency)
            samples: list[float] = []
            consistency = "stale" if op == "get_stale" else None

            async def task(t: int) -> None:
                for i in range(per_task):
                    key = b"k%d:%d" % (t, i)
                    start = time.perf_counter()
                    if op == "set":
                        await cache.set(key, value)
                    else:
                        await cache.get(key, consistency=consistency)
                    samples.append(time.perf_counter() - start)

            start = time.perf_counter()
            await asyncio.gather(*(task(t) for t in range(concurrency)))
            elapsed = time.perf_counter() - start
            reply(
                {
                    "ops": len(samples),
                    "ops_per_s": len(samples) / elapsed,
                    "p50_ms": percentile(samples, 50) * 1000,
                    "p99_ms": percentile(samples, 99) * 1000,
                }
            )
        elif op == "quit":
            break
    await cache.close()
    os._exit(0)


# ------------------------------------------------------------------------- coordinator
class Worker:
    def __init__(self, address: str, peers: list[str], data_dir: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--worker", "--address", address, "--data-dir", data_dir,
               "--fsync", args.fsync, "--value-size", str(args.value_size)]
        for peer in peers:
            cmd += ["--peer", peer]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(data_dir + ".log", "w"), text=True)

    def ask(self, **request: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("worker died; see its .log")
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.ask(op="quit")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def coordinator(args: argparse.Namespace) -> None:
    root = tempfile.mkdtemp(prefix="raftcache-bench-")
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    workers = [Worker(a, [p for p in addresses if p != a], os.path.join(root, f"n{i}"), args) for i, a in enumerate(addresses)]
    results: dict[str, Any] = {"machine": machine(), "fsync": args.fsync, "value_size": args.value_size,
                               "concurrency": args.concurrency, "ops": args.ops, "phases": {}}
    try:
        roles = [w.ask(op="ready")["role"] for w in workers]
        by_role = {"leader": workers[roles.index("leader")], "follower": workers[roles.index("follower")]}
        for role, worker in by_role.items():
            phases = results["phases"].setdefault(role, {})
            phases["write_latency"] = worker.ask(op="latency", ops=min(2000, args.ops))
            for op in ("set", "get", "get_stale"):
                phases[op] = worker.ask(op=op, ops=args.ops, concurrency=args.concurrency)
    finally:
        for w in workers:
            w.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {results['machine']}; fsync={args.fsync}; value {args.value_size} B; concurrency {args.concurrency}")
    print(f"{'from':9} {'phase':16} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    names = {"write_latency": "write (1 at a time)", "set": "SET", "get": "GET linearizable", "get_stale": "GET stale"}
    for role, phases in results["phases"].items():
        for phase, r in phases.items():
            rate = f"{r['ops_per_s']:.0f}" if "ops_per_s" in r else "-"
            print(f"{role:9} {names[phase]:16} {rate:>10} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--value-size", type=int, default=16)
    parser.add_argument("--fsync", choices=["always", "no"], default="always")
    parser.add_argument("--json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args))
    else:
        coordinator(args)


if __name__ == "__main__":
    main()
