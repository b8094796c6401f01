"""Side-by-side benchmark: raftcache vs redis, etcd and raw pysyncobj on this machine.

Needs (a target whose binary is missing is skipped, with the reason in the results):

* Python >= 3.11 with raftcache installed (it brings pysyncobj 0.3.17 and uvloop): run
  this script with that interpreter (e.g. the venv's `python`); for the `limits` rows also
  `limits[redis]` (`pip install -e '.[bench]'`; without it those rows say skipped);
* `redis-benchmark` (apt `redis-tools`): the RESP load for raftcache and redis;
* `redis-server` (apt `redis-server`): the single-node Redis baseline;
* `etcd` (apt `etcd-server`, v3.4): the etcd cluster.

Targets, each started here on 127.0.0.1 with OS-assigned ports in a temp dir and stopped
afterwards, also on Ctrl-C, SIGTERM or an error (children get SIGKILL if this script dies):

1. raftcache: 3 `raftcache serve` nodes from a generated TOML, each with a data_dir
   (`fsync = "always"` unless `--fsync no`); the load goes to the leader (`INFO raft`);
2. redis: one `redis-server --save "" --appendonly no`: the upper bound for a RESP cache;
3. etcd: 3 members, v3 JSON gateway over HTTP/1.1 (etcd 3.4 always fsyncs its WAL;
   ranges are linearizable);
4. pysyncobj: 3 processes of raw pysyncobj replicating a dict (`pysyncobj_node.py`:
   `password` set, `appendEntriesUseBatch=False`, memory only, one Raft entry per command,
   GET is a local read), behind a small RESP front end.

Sections:

* load generator ceiling: `loadgen.py` against stub servers that answer at once, RESP (the
  protocol of raftcache, redis and the pysyncobj front end) and HTTP (etcd's gateway). A
  loadgen row above 70% of its ceiling is marked client-bound.
* throughput: `redis-benchmark -c 50 -r 100000 -t set|get -d 16|1024 [-P 16] --csv`
  against redis and the raftcache leader (`-n` sized for ~6 s per run from a probe run),
  and `loadgen.py run` (50 connections, one request in flight each, 6 s) against redis,
  etcd and pysyncobj, SET/GET 16 B / 1 KiB;
* single-client write latency: one connection, one SET 16 B at a time (loadgen);
* raftcache linearizable GET vs READONLY GET (loadgen sends READONLY once per
  connection; redis-benchmark cannot), through the leader and through a follower;
* memory per key: 1M distinct keys (`--quick`: 100K) of 16 B stored with pipelined SETs
  (`loadgen.py fill`; exact key count, unlike redis-benchmark -r) into a fresh redis and a
  fresh raftcache cluster: RSS growth (/proc/PID/statm) per key of each raftcache node;
  redis's `used_memory` and RSS growth per key;
* snapshot: on that raftcache cluster one client writes one SET at a time while
  `RAFTCACHE COMPACT` goes to the leader; the snapshot lasts from the command until `INFO
  raft` `raft_snapshots_taken` changes (polled every 50 ms); reported with the slowest
  write and the longest gap between acknowledgements in that window, against the writes
  before it;
* restart: kill -9 a follower holding those keys, restart it with `raftcache serve`; time
  until it accepts connections, and until it is ready (`raft_applied_index` >= the
  leader's commit index at the kill); then `RAFTCACHE DIGEST` on both must match;
* transactions, scripts, rate limits (issue 11): one redis-server and one raftcache
  cluster, both up, alternating run by run (redis then raftcache, then the reverse order in
  the next round, so drift hits both alike), 50 in flight each: `loadgen.py run --op set`
  (the reference), `--op multi4` (MULTI + 4 SET + EXEC written at once, as redis-py's
  transaction pipeline), `--op lock` (redis-py Lock's acquire `SET NX PX` then release
  `EVALSHA` compare-and-delete: one op is the pair), and `limits_load.py` (the `limits`
  library's fixed window and sliding window counter through its redis storage, 2 processes
  x 25 threads). Each run also records, over its own window only (from the client's
  `{"started"}` line to its result): CPU of every server process and of its busiest thread
  (/proc), the client's own CPU, the whole machine's busy share, and on raftcache the Raft
  entries committed (ops per entry = the group-commit batch). The report gives ops/s, the
  ratio to redis against the goal (>= 25%), and what bounded each run;
* near-cache (issue 14, `--only nearcache`, `nearcache_bench.py`): one thread's GET rate
  from a `raftcache.Client(near_cache=...)` (hits from process memory) vs plain
  linearizable GETs through a follower (goal >= 50x), and the lag from a SET acknowledged
  by the leader until a follower's near-cache returns it (p50/p99/max);
* raft events: while a raftcache cluster runs, `INFO raft` of every node is polled every
  0.2 s; every change of role/term/leader, or a node not answering within 1 s, is listed
  with the phase it happened in (the evidence for elections and stalls).

The machine is small and may be shared: servers and load generators compete for the same
cores, so absolute numbers are low and noisy (the load average at start and end is
recorded). Compare ratios, and re-run before trusting a single number.

How to run
----------

    python benchmarks/bench_all.py [--quick] [--out benchmarks/results] [--fsync always|no]

Full mode takes ~10-15 minutes on 2 cores; `--quick` (a smoke run: short runs, 100K keys)
~1.5-3 minutes. Writes `<out>/latest.md` (also printed), `<out>/latest.json` (every number,
the machine, versions, the raft event timeline) and the node logs under `<out>/logs/`.
`--only redis,raftcache,...` runs some sections (loadgen, redis, raftcache, issue11,
raftcache-1m, etcd, pysyncobj); `--only issue11` is the transactions/scripts/limits section
alone.

What the throughput columns mean
--------------------------------

* target: the system and its durability policy (fsync, persistence);
* client: `redis-benchmark` or our `loadgen` (compare rows of the same client);
* workload: command, value size, `c` client connections, `P` pipeline depth;
* ops/s: operations completed per second over the run;
* p50 / p99: per-operation latency in ms as the client saw it (redis-benchmark: from its
  `--csv` output, which has p50 and p99 columns since Redis 7);
* vs redis: ops/s divided by single-node redis's ops/s for the same workload measured by
  the same client (raftcache READONLY/linearizable GET rows: redis GET 16 B via loadgen);
* notes: errors, elections (term or leader changed during the run), snapshots taken on the
  leader during the run, FAILED runs, client-bound runs.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import eviction_bench
import feed_bench
import nearcache_bench
import types_memory
from cpu_probe import CpuProbe
from loadgen import LOOP_NAME, parse_info, percentile, resp_call
from targets import (
    PROCESSES,
    EtcdCluster,
    PysyncobjCluster,
    RaftcacheCluster,
    RaftcacheNode,
    RaftWatcher,
    RedisServer,
    SkipTarget,
    StubServer,
    command_version,
    rss_bytes,
    wait_until,
)

KIB = 1024

# Issue 11's workloads: (key, workload, client). One op of `lock` is an acquire + release pair.
ISSUE11_WORKLOADS = (
    ("set", "SET 16 B c50 (reference)", "loadgen"),
    ("multi4", "MULTI + 4 x SET 16 B + EXEC c50", "loadgen"),
    ("lock", "Lock: SET NX PX + EVALSHA release c50", "loadgen"),
    ("fixed", "limits fixed window hit c50", "limits"),
    ("sliding", "limits sliding window counter hit c50", "limits"),
)
ISSUE11_GOAL = 0.25  # of redis's rate, each workload (issue 11)
LIMITS_PROCESSES, LIMITS_THREADS = 2, 25  # 50 hits in flight, as -c 50


@dataclass(frozen=True)
class Settings:
    quick: bool
    run_seconds: float  # target length of one throughput run
    probe_ops: dict[int, int]  # pipeline depth -> redis-benchmark -n of the probe (quick: of the run)
    latency_ops: int
    latency_seconds: float
    keys_for_memory: int

    @staticmethod
    def for_mode(quick: bool) -> Settings:
        if quick:
            return Settings(True, 1.5, {1: 3000, 16: 30000}, 300, 1.5, 100_000)
        return Settings(False, 6.0, {1: 10000, 16: 100000}, 3000, 4.0, 1_000_000)


# ------------------------------------------------------------------------------ tools
def run_tool(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    """Run a client to completion under a deadline; killed (never left running) otherwise."""
    proc = PROCESSES.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        PROCESSES.kill(proc)
        out, err = proc.communicate()
        return -1, out, (err or "") + f"\n[killed after {timeout:.0f}s]"
    except BaseException:
        PROCESSES.kill(proc)
        raise
    PROCESSES.kill(proc)  # already exited: just forget it
    return proc.returncode, out, err


def loadgen(mode: str, port: int, timeout: float, **options: Any) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "loadgen.py"), mode, "--port", str(port)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is not False and value is not None:
            cmd += [flag, str(value)]
    code, out, err = run_tool(cmd, timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"loadgen {mode} failed (exit {code}): {err.strip()[-600:]}")
    return json.loads(lines[-1])


def redis_benchmark(port: int, op: str, size: int, pipeline: int, n: int, clients: int = 50, timeout: float = 120.0) -> dict[str, Any]:
    # redis-benchmark spins forever on a refused connection: check the port first.
    resp_call(port, "PING", timeout=5)
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-n", str(n), "-c", str(clients),
           "-d", str(size), "-r", "100000", "-P", str(pipeline), "--csv"]
    start = time.monotonic()
    code, out, err = run_tool(cmd, timeout=timeout)
    elapsed = time.monotonic() - start
    rows = list(csv.DictReader(io.StringIO("\n".join(line for line in out.splitlines() if line.startswith('"')))))
    extra = [line for line in (out + "\n" + err).splitlines() if line.strip() and not line.startswith('"')]
    if code != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed (exit {code}): {' | '.join(extra)[-600:]} (command: {' '.join(cmd)})")
    row = rows[0]
    return {"ops": n, "ops_per_s": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]), "max_ms": float(row["max_latency_ms"]),
            "elapsed_s": round(elapsed, 2), "errors": len([e for e in extra if "error" in e.lower()]),
            "first_error": next((e for e in extra if "error" in e.lower()), ""), "command": " ".join(cmd)}


def run_probed(cmd: list[str], timeout: float, pids: dict[str, int],
               on_start: Callable[[], Any] | None = None) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """A client that prints `{"started": ...}` then its result: CPU is measured over the window
    between the two lines only (not its start-up). Returns (result, cpu usage, on_start())."""
    with tempfile.TemporaryFile("w+") as err:
        proc = PROCESSES.spawn(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        watchdog = threading.Timer(timeout, proc.kill)  # readline below returns EOF once it fires
        watchdog.start()
        probe: CpuProbe | None = None
        usage: dict[str, Any] = {}
        started: Any = None
        result: dict[str, Any] | None = None
        try:
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, ""):
                if line.startswith('{"started"'):
                    probe = CpuProbe(pids)
                    started = on_start() if on_start else None
                elif line.startswith("{"):
                    usage = probe.stop() if probe else {}
                    result = json.loads(line)
            proc.wait(30)
        finally:
            watchdog.cancel()
            PROCESSES.kill(proc)
        if proc.returncode != 0 or result is None:
            err.seek(0)
            raise RuntimeError(f"{Path(cmd[1]).name} failed (exit {proc.returncode}): {err.read().strip()[-600:]}")
    return result, usage, started


def size_label(size: int) -> str:
    return "1 KiB" if size == KIB else f"{size} B"


def workload_name(op: str, size: int, clients: int, pipeline: int) -> str:
    return f"{op.upper()} {size_label(size)} c{clients} P{pipeline}"


# ------------------------------------------------------------------------------ harness
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.s = Settings.for_mode(args.quick)
        self.out = Path(args.out)
        self.root = Path(tempfile.mkdtemp(prefix="raftcache-bench-all-"))
        self.started = time.monotonic()
        self.results: dict[str, Any] = {
            "mode": "quick" if args.quick else "full",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "fsync": args.fsync,
            "machine": machine(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "ceilings": [], "throughput": [], "latency": [],
            "memory": [], "snapshot": {}, "restart": {}, "raft_events": {}, "skipped": [], "notes": [],
            "issue11": {}, "types": {}, "eviction": {}, "feed": {}, "nearcache": {},
        }

    # -------------------------------------------------------------- helpers
    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.results["notes"].append(text)

    def skip(self, target: str, reason: str) -> None:
        print(f"  skipped {target}: {reason}", flush=True)
        self.results["skipped"].append({"target": target, "reason": reason})

    def section(self, name: str, fn: Callable[[], None]) -> None:
        print(f"== {name} ({time.monotonic() - self.started:.0f}s elapsed)", flush=True)
        try:
            fn()
        except SkipTarget as exc:
            self.skip(name, str(exc))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
            self.note(f"section '{name}' failed: {type(exc).__name__}: {exc}")
        finally:
            PROCESSES.stop_all()

    def add_throughput(self, target: str, client: str, workload: str, r: dict[str, Any], note: str = "") -> None:
        notes = [note] if note else []
        if r.get("errors"):
            notes.append(f"{r['errors']} errors, first: {r.get('first_error', '')[:120]}")
        row = {"target": target, "client": client, "workload": workload, **r, "notes": "; ".join(notes)}
        self.results["throughput"].append(row)
        print(f"  {target:32} {client:15} {workload:22} {fmt(r['ops_per_s']):>10} ops/s  p50 {fmt(r['p50_ms'], '.2f')}  "
              f"p99 {fmt(r['p99_ms'], '.2f')} ms  {row['notes']}", flush=True)

    def measure(self, target: str, client: str, workload: str, run: Callable[[], dict[str, Any]],
                note: str | Callable[[], str] = "") -> dict[str, Any] | None:
        """One throughput run; a failure (timeout, crash, errors) becomes a row, not an abort."""
        try:
            r = run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the table, the next run goes on
            failed = {"ops_per_s": None, "p50_ms": None, "p99_ms": None, "errors": 0}
            self.add_throughput(target, client, workload, failed, f"FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            return None
        self.add_throughput(target, client, workload, r, note if isinstance(note, str) else note())
        return r

    def keep_logs(self, name: str, directory: Path) -> None:
        dest = self.out / "logs" / name
        dest.mkdir(parents=True, exist_ok=True)
        for log in directory.glob("*.log"):
            shutil.copy(log, dest / log.name)

    def rb_sized(self, port: int, op: str, size: int, pipeline: int) -> dict[str, Any]:
        """redis-benchmark sized for ~run_seconds: a probe run first (quick mode: the probe only)."""
        n = self.s.probe_ops[pipeline]
        r = redis_benchmark(port, op, size, pipeline, n)
        if self.s.quick or r["ops"] / max(r["ops_per_s"], 1) >= 0.8 * self.s.run_seconds:
            return r
        n = int(min(max(r["ops_per_s"] * self.s.run_seconds, n), 20_000_000))
        return redis_benchmark(port, op, size, pipeline, n, timeout=4 * self.s.run_seconds + 60)

    def lg_run(self, port: int, protocol: str, op: str, size: int, concurrency: int = 50, **kw: Any) -> dict[str, Any]:
        duration = kw.pop("duration", self.s.run_seconds)
        return loadgen("run", port, timeout=duration + 60, protocol=protocol, op=op, value_size=size,
                       concurrency=concurrency, duration=duration, **kw)

    # -------------------------------------------------------------- sections
    def ceilings(self) -> None:
        for protocol, lg_protocol in (("resp", "resp"), ("http", "etcd")):
            stub = StubServer(protocol).start()
            try:
                for op in ("set", "get"):
                    r = self.lg_run(stub.port, lg_protocol, op, 16)
                    r.update(protocol=lg_protocol, op=op, loop=r.get("loop", LOOP_NAME))
                    self.results["ceilings"].append(r)
                    print(f"  loadgen ceiling {lg_protocol} {op}: {r['ops_per_s']:,.0f} ops/s (p50 {r['p50_ms']:.2f} ms)", flush=True)
            finally:
                stub.stop()

    def redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise SkipTarget("`redis-server` not found (apt-get install -y redis-server)")
        server = RedisServer(self.root / "redis").start()
        target = f"redis {RedisServer.version()} (1 node, no persistence)"
        if shutil.which("redis-benchmark") is None:
            self.skip("redis via redis-benchmark", "`redis-benchmark` not found (apt-get install -y redis-tools)")
        else:
            for size in (16, KIB):
                for pipeline in (1, 16):
                    for op in ("set", "get"):
                        self.measure(target, "redis-benchmark", workload_name(op, size, 50, pipeline),
                                     partial(self.rb_sized, server.port, op, size, pipeline))
        for size in (16, KIB):
            for op in ("set", "get"):
                self.measure(target, "loadgen", workload_name(op, size, 50, 1), partial(self.lg_run, server.port, "resp", op, size))
        self.latency(target, server.port, "resp")
        server.stop()
        self.keep_logs("redis", server.root)
        self.memory_redis()

    def latency(self, target: str, port: int, protocol: str) -> None:
        r = self.lg_run(port, protocol, "set", 16, concurrency=1, duration=self.s.latency_seconds,
                        ops=self.s.latency_ops, keyspace=100_000)
        self.results["latency"].append({"target": target, **r})
        print(f"  single-client SET {target}: p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms ({r['ops']} ops)", flush=True)

    def memory_redis(self) -> None:
        server = RedisServer(self.root / "redis-memory").start()
        keys = self.s.keys_for_memory
        mem0 = parse_info(resp_call(server.port, "INFO", "memory"))
        rss0 = rss_bytes(server.pid)
        fill = loadgen("fill", server.port, timeout=900, keys=keys, value_size=16, concurrency=4, duration=840)
        mem1 = parse_info(resp_call(server.port, "INFO", "memory"))
        rss1 = rss_bytes(server.pid)
        dbsize = resp_call(server.port, "DBSIZE")
        used = (int(mem1["used_memory"]) - int(mem0["used_memory"])) / dbsize
        self.results["memory"].append({
            "target": f"redis {RedisServer.version()}", "process": "redis-server", "keys": dbsize, "fill_ops_per_s": fill["ops_per_s"],
            "rss_before": rss0, "rss_after": rss1, "rss_per_key": (rss1 - rss0) / dbsize, "used_memory_per_key": used,
        })
        print(f"  redis {dbsize} keys: used_memory {used:.0f} B/key, RSS {(rss1 - rss0) / dbsize:.0f} B/key", flush=True)
        server.stop()

    def raftcache_target(self) -> str:
        return f"raftcache 3 nodes (fsync={self.args.fsync})"

    def raftcache_throughput(self) -> None:
        cluster = RaftcacheCluster(self.root / "raftcache", self.args.fsync).start()
        target = self.raftcache_target()
        self.watcher = RaftWatcher(cluster)
        self.watcher.start()
        try:
            if shutil.which("redis-benchmark") is None:
                self.skip("raftcache via redis-benchmark", "`redis-benchmark` not found (apt-get install -y redis-tools)")
            else:
                for size in (16, KIB):
                    for pipeline in (1, 16):
                        for op in ("set", "get"):
                            leader = cluster.leader()
                            before = leader.info()
                            self.watcher.phase = f"redis-benchmark {workload_name(op, size, 50, pipeline)}"
                            self.measure(target, "redis-benchmark", workload_name(op, size, 50, pipeline),
                                         partial(self.rb_sized, leader.client_port, op, size, pipeline),
                                         partial(raft_changes, before, cluster))
            self.reads(cluster, target)
            self.watcher.phase = "single-client latency"
            self.latency(target, cluster.leader().client_port, "resp")
        finally:
            self.results["raft_events"]["raftcache-throughput"] = self.watcher.stop()
            cluster.stop()
            self.keep_logs("raftcache-throughput", cluster.root)
            self.log_findings("raftcache-throughput", cluster)

    def reads(self, cluster: RaftcacheCluster, target: str) -> None:
        leader = cluster.leader()
        follower = cluster.followers()[0]
        for role, node in (("leader", leader), ("follower", follower)):
            for readonly in (False, True):
                before = leader.info()
                kind = "READONLY (stale)" if readonly else "linearizable"
                self.watcher.phase = f"GET {kind} via {role}"
                self.measure(target, "loadgen", f"GET {kind} via {role} 16 B c50 P1",
                                 partial(self.lg_run, node.client_port, "resp", "get", 16, readonly=readonly),
                                 partial(raft_changes, before, cluster))
                self.results["throughput"][-1].update(node=f"{node.id} ({role})", kind=kind)

    def issue11(self) -> None:
        """MULTI/EXEC, a lock's EVALSHA and `limits`: redis and raftcache up together, alternating."""
        if shutil.which("redis-server") is None:
            raise SkipTarget("`redis-server` not found (apt-get install -y redis-server)")
        workloads = list(ISSUE11_WORKLOADS)
        limits_version = package_version("limits")
        if limits_version is None or package_version("redis") is None:
            workloads = [w for w in workloads if w[2] != "limits"]
            self.skip("issue 11: limits rows", "`limits[redis]` not importable by this Python (pip install -e '.[bench]')")
        out = self.results["issue11"] = {
            "goal": ISSUE11_GOAL, "limits": limits_version, "redis-py": package_version("redis"),
            "limits_clients": f"{LIMITS_PROCESSES} processes x {LIMITS_THREADS} threads", "runs": [], "summary": [],
        }
        redis = RedisServer(self.root / "redis-issue11").start()
        cluster = RaftcacheCluster(self.root / "raftcache-issue11", self.args.fsync).start()
        targets = {"redis": f"redis {RedisServer.version()} (1 node, no persistence)", "raftcache": self.raftcache_target()}
        self.watcher = RaftWatcher(cluster)
        self.watcher.start()
        try:
            for rnd in range(1 if self.s.quick else 2):
                for key, workload, client in workloads:
                    # ABBA: the second round runs raftcache first, so slow drift hits both alike.
                    for name in ("redis", "raftcache") if rnd % 2 == 0 else ("raftcache", "redis"):
                        self.watcher.phase = f"issue 11 {workload} on {name}"
                        run = self.issue11_run(name, targets[name], key, workload, client, redis, cluster)
                        out["runs"].append({"round": rnd + 1, **run})
            out["summary"] = summarise_issue11(out["runs"], [w[1] for w in workloads])
        finally:
            self.results["raft_events"]["raftcache-issue11"] = self.watcher.stop()
            cluster.stop()
            redis.stop()
            self.keep_logs("raftcache-issue11", cluster.root)
            self.keep_logs("redis-issue11", redis.root)
            self.log_findings("raftcache-issue11", cluster)

    def issue11_run(self, name: str, target: str, key: str, workload: str, client: str,
                    redis: RedisServer, cluster: RaftcacheCluster) -> dict[str, Any]:
        """One run; a failure becomes a row with the reason, the next run goes on."""
        duration = self.s.run_seconds
        row: dict[str, Any] = {"target": name, "target_label": target, "workload": workload, "client": client}
        if name == "redis":
            port, pids, leader = redis.port, {"redis-server": redis.pid}, None
        else:
            leader = cluster.leader()
            port = leader.client_port
            pids = {f"{n.id}" + (" (leader)" if n is leader else ""): n.proc.pid for n in cluster.nodes}  # type: ignore[union-attr]
        if client == "loadgen":
            cmd = [sys.executable, str(HERE / "loadgen.py"), "run", "--port", str(port), "--op", key, "--value-size", "16",
                   "--concurrency", "50", "--duration", str(duration)]
        else:
            cmd = [sys.executable, str(HERE / "limits_load.py"), "--port", str(port), "--strategy", key,
                   "--processes", str(LIMITS_PROCESSES), "--threads", str(LIMITS_THREADS), "--duration", str(duration)]
        before = leader.info() if leader else None
        try:
            result, usage, info0 = run_probed(cmd, duration + 120, pids, on_start=leader.info if leader else None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the table
            row.update(ops_per_s=None, p50_ms=None, p99_ms=None, errors=0, notes=f"FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"  {name:10} {workload:40} FAILED: {row['notes']}", flush=True)
            return row
        row.update(result)
        row["usage"] = usage
        notes = []
        if leader is not None and before is not None:
            info1 = leader.info()
            entries = int(info1["raft_commit_index"]) - int((info0 or before)["raft_commit_index"])
            row["raft_entries"] = entries
            row["ops_per_entry"] = result["ops"] / entries if entries > 0 else None
            notes.append(raft_changes(before, cluster))
        if result.get("errors"):
            notes.append(f"{result['errors']} errors, first: {result.get('first_error', '')[:120]}")
        row["notes"] = "; ".join(filter(None, notes))
        row["bound_by"] = bound_by(row, client_processes=LIMITS_PROCESSES if client == "limits" else 1)
        print(f"  {name:10} {workload:40} {fmt(row['ops_per_s']):>8} ops/s  p50 {fmt(row['p50_ms'], '.2f')} ms  "
              f"{row['bound_by']}  {row['notes']}", flush=True)
        return row

    def types(self) -> None:
        """Issue 12: memory per element of each data type, redis and raftcache; then the
        snapshot write stall and the restart time with one 1M-member sorted set."""
        if shutil.which("redis-server") is None:
            raise SkipTarget("`redis-server` not found (apt-get install -y redis-server)")
        n = self.s.keys_for_memory
        out = self.results["types"] = {"elements": n, "rows": [], "ratios": []}

        def zset_snapshot_and_restart(cluster: RaftcacheCluster, count: int) -> None:
            saved = self.results["snapshot"], self.results["restart"]
            self.watcher = RaftWatcher(cluster)
            self.watcher.start()
            try:
                self.snapshot(cluster, 1)
                out["zset_snapshot"] = {k: v for k, v in self.results["snapshot"].items() if k != "keys"}
                self.restart(cluster, 1)  # a follower that never compacted: it replays its whole log
                out["zset_restart_replaying_log"] = {k: v for k, v in self.results["restart"].items() if k != "keys"}
                for node in cluster.followers():  # now with a snapshot of its own to load
                    taken = int(node.info()["raft_snapshots_taken"])
                    node.call("RAFTCACHE", "COMPACT")
                    wait_until(lambda n=node, t=taken: int(n.info(timeout=30)["raft_snapshots_taken"]) > t, 240, 0.1,
                               f"{node.id}'s snapshot")
                self.restart(cluster, 1)
                out["zset_restart"] = {k: v for k, v in self.results["restart"].items() if k != "keys"}
            finally:
                self.results["raft_events"]["raftcache-zset"] = self.watcher.stop()
                self.results["snapshot"], self.results["restart"] = saved

        out["rows"] = types_memory.measure(self.root, n, self.args.fsync, resp_call, parse_info,
                                           keep_zset=zset_snapshot_and_restart)
        out["ratios"] = types_memory.ratios(out["rows"])

    def eviction(self) -> None:
        """Issue 13: hit ratio of one Zipf trace on redis and raftcache with the same policy and
        the same number of keys fitting; SET throughput with eviction running vs without."""
        if shutil.which("redis-server") is None:
            raise SkipTarget("`redis-server` not found (apt-get install -y redis-server)")
        keys, requests = (9_000, 60_000) if self.s.quick else (30_000, 300_000)
        fits, value_size = keys // 3, 100
        trace = eviction_bench.zipf_trace(keys, requests)
        out = self.results["eviction"] = {"keys": keys, "requests": requests, "fits": fits, "value_size": value_size,
                                          "zipf_s": 1.0, "hit_ratio": [], "cost": []}
        redis = RedisServer(self.root / "redis-eviction").start()
        cluster = RaftcacheCluster(self.root / "raftcache-eviction", self.args.fsync).start()
        memory_info = lambda port: parse_info(resp_call(port, "INFO", "memory"))
        try:
            for target, port in (("redis", redis.port), ("raftcache", cluster.leader().client_port)):
                eviction_bench.command(port, "CONFIG", "SET", "maxmemory", "0")
                eviction_bench.command(port, "FLUSHALL")
            limits = {"redis": eviction_bench.used_at(redis.port, memory_info, fits, value_size),
                      "raftcache": eviction_bench.used_at(cluster.leader().client_port, memory_info, fits, value_size)}
            out["maxmemory"] = limits
            for rnd, policy in enumerate(("allkeys-lru", "allkeys-lfu")):
                for name in ("redis", "raftcache") if rnd % 2 == 0 else ("raftcache", "redis"):
                    port = redis.port if name == "redis" else cluster.leader().client_port
                    eviction_bench.command(port, "FLUSHALL")
                    eviction_bench.command(port, "CONFIG", "SET", "maxmemory-policy", policy)
                    eviction_bench.command(port, "CONFIG", "SET", "maxmemory", str(limits[name]))
                    evicted0 = int(parse_info(resp_call(port, "INFO", "stats"))["evicted_keys"])
                    run = eviction_bench.replay(port, trace, value_size)
                    run.update(target=name, policy=policy, keys_held=int(resp_call(port, "DBSIZE")),
                               evicted=int(parse_info(resp_call(port, "INFO", "stats"))["evicted_keys"]) - evicted0)
                    out["hit_ratio"].append(run)
                    print(f"  {name:10} {policy:12} hit ratio {run['hit_ratio']:.3f} (warm {run['warm_hit_ratio']:.3f}), "
                          f"{run['keys_held']} keys held, {run['seconds']:.1f} s", flush=True)
            port = cluster.leader().client_port
            eviction_bench.command(port, "FLUSHALL")
            eviction_bench.command(port, "CONFIG", "SET", "maxmemory", "0")
            storm = out["expiry_storm"] = self.expiry_storm(cluster, 100_000 if self.s.quick else 1_000_000)
            print(f"  expiry of {storm['keys']} keys at one instant: max write {fmt(storm.get('max_write_ms'), '.1f')} ms "
                  f"(baseline p99 {fmt(storm.get('baseline_p99_ms'), '.1f')} ms), all gone after "
                  f"{fmt(storm.get('expired_in_s'), '.1f')} s {storm.get('notes', '')}", flush=True)
            eviction_bench.command(port, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
            for rnd in range(1 if self.s.quick else 2):
                for limited in ((False, True) if rnd % 2 == 0 else (True, False)):
                    eviction_bench.command(port, "FLUSHALL")
                    eviction_bench.command(port, "CONFIG", "SET", "maxmemory", "0")
                    # start full: 40K keys, then a limit just under what they take, so the run
                    # is steady state: about one eviction per SET of a new key (random keys out
                    # of 200K are mostly new), not the flood of lowering a limit far below the data
                    loadgen("fill", port, timeout=600, keys=40_000, value_size=16, concurrency=4, duration=540)
                    used = int(memory_info(port)["used_memory"])
                    limit = used * 98 // 100 if limited else 0
                    eviction_bench.command(port, "CONFIG", "SET", "maxmemory", str(limit))
                    eviction_bench.command(port, "SET", "warm-up", "1")  # makes the first room
                    evicted0 = int(parse_info(resp_call(port, "INFO", "stats"))["evicted_keys"])
                    r = self.lg_run(port, "resp", "set", 16, keyspace=200_000, duration=max(6.0, self.s.run_seconds))
                    evicted = int(parse_info(resp_call(port, "INFO", "stats"))["evicted_keys"]) - evicted0
                    memory = memory_info(port)
                    out["cost"].append({"round": rnd + 1, "maxmemory": limit, "ops_per_s": r["ops_per_s"],
                                        "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "evicted": evicted,
                                        "used_memory": int(memory["used_memory"])})
                    print(f"  SET c50 maxmemory {limit}: {r['ops_per_s']:,.0f} ops/s, {evicted} evicted", flush=True)
        finally:
            cluster.stop()
            redis.stop()

    def feed(self) -> None:
        """Issue 14: PUBLISH rate and fan-out latency (PUBLISH to receipt, p50/p99) to 100
        subscribers, redis (one port) and raftcache (spread over the three nodes), alternating."""
        if shutil.which("redis-server") is None:
            raise SkipTarget("`redis-server` not found (apt-get install -y redis-server)")
        subscribers, seconds = (100, 2.0) if self.s.quick else (100, 8.0)
        latency_messages = 100 if self.s.quick else 500
        out = self.results["feed"] = {"subscribers": subscribers, "rows": []}
        redis = RedisServer(self.root / "redis-feed").start()
        cluster = RaftcacheCluster(self.root / "raftcache-feed", self.args.fsync).start()
        try:
            leader = cluster.leader()  # the publisher's node: ports[0]
            targets = {"redis": [redis.port],
                       "raftcache": [leader.client_port] + [n.client_port for n in cluster.nodes if n is not leader]}
            for rnd in range(1 if self.s.quick else 2):
                for name in ("redis", "raftcache") if rnd % 2 == 0 else ("raftcache", "redis"):
                    row = feed_bench.measure(targets[name], subscribers, seconds, latency_messages)
                    row.update(target=name, round=rnd + 1)
                    out["rows"].append(row)
                    print(f"  {name:10} PUBLISH {row['publish_per_s']:,}/s, fan-out p50 {fmt(row['fanout_p50_ms'], '.2f')} ms "
                          f"p99 {fmt(row['fanout_p99_ms'], '.2f')} ms (p50/p99 per node, publisher's first: "
                          f"{row['p50_p99_by_port_ms']}); by the kernel's receive stamps p50 {fmt(row['fanout_kernel_p50_ms'], '.2f')} "
                          f"p99 {fmt(row['fanout_kernel_p99_ms'], '.2f')} ms ({row['kernel_p50_p99_by_port_ms']}); "
                          f"all delivered: {row['all_delivered']}", flush=True)
        finally:
            cluster.stop()
            redis.stop()

    def nearcache(self) -> None:
        """Issue 14: near-cache GET rate vs a linearizable GET, and the write -> near-cache lag."""
        cluster = RaftcacheCluster(self.root / "raftcache-nearcache", self.args.fsync).start()
        try:
            leader = cluster.leader()
            follower = next(n for n in cluster.nodes if n is not leader)
            out = self.results["nearcache"] = nearcache_bench.measure(
                f"127.0.0.1:{leader.client_port}", f"127.0.0.1:{follower.client_port}",
                seconds=1.0 if self.s.quick else 4.0, samples=50 if self.s.quick else 300)
            print(f"  linearizable GET {out['linearizable_get_per_s']:,}/s, near-cache {out['near_cache_get_per_s']:,}/s "
                  f"({out['ratio']}x, goal >= 50x); lag p50 {out['lag_p50_ms']} ms p99 {out['lag_p99_ms']} ms", flush=True)
        finally:
            cluster.stop()

    def expiry_storm(self, cluster: RaftcacheCluster, keys: int) -> dict[str, Any]:
        """`keys` keys that all expire at one instant, and one writer's latency through it
        (issue 13: the sweeps must not stall writes more than ~100 ms)."""
        leader = cluster.leader()
        at_ms = int(time.time() * 1000) + (40_000 if self.s.quick else 240_000)  # the fill (~1-2 min) must finish first
        fill = loadgen("fill", leader.client_port, timeout=900, keys=keys, value_size=16, concurrency=4, duration=840,
                       expire_at_ms=at_ms)
        held = int(leader.call("DBSIZE"))
        if held < keys or time.time() * 1000 > at_ms - 3000:
            return {"keys": keys, "notes": f"the fill ({fill['elapsed_s']} s) did not finish before the expiry: not measured"}
        tracer = PROCESSES.spawn([sys.executable, str(HERE / "loadgen.py"), "trace", "--port", str(leader.client_port),
                                  "--duration", "400"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert tracer.stdin is not None and tracer.stdout is not None
        tracer.stdout.readline()
        due = time.monotonic() + (at_ms - time.time() * 1000) / 1000
        expired0 = int(parse_info(leader.call("INFO", "stats"))["expired_keys"])
        wait_until(lambda: int(parse_info(leader.call("INFO", "stats"))["expired_keys"]) - expired0 >= keys or None, 600, 0.2,
                   "the keys to expire")
        gone = time.monotonic()
        time.sleep(2.0)
        out, err = tracer.communicate(input="", timeout=60)
        PROCESSES.kill(tracer)
        lines = [line for line in out.splitlines() if line.startswith('{"records"')]
        if not lines:
            raise RuntimeError(f"the expiry-window writer failed: {err.strip()[-600:]}")
        records = json.loads(lines[-1])["records"]
        baseline = [e - s for s, e in records if e < due - 1]
        window = [e - s for s, e in records if e >= due and s <= gone]
        return {"keys": keys, "expired_in_s": gone - due, "writes_in_window": len(window),
                "max_write_ms": max(window) * 1000 if window else None,
                "window_p99_ms": percentile(window, 99) * 1000 if window else None,
                "baseline_p99_ms": percentile(baseline, 99) * 1000 if baseline else None,
                "baseline_max_ms": max(baseline) * 1000 if baseline else None}

    def raftcache_big(self) -> None:
        """Memory per key, snapshot time and write stall, restart time: one fresh cluster."""
        cluster = RaftcacheCluster(self.root / "raftcache-1m", self.args.fsync).start()
        self.watcher = RaftWatcher(cluster)
        self.watcher.start()
        try:
            self.watcher.phase = "fill"
            keys = self.memory_raftcache(cluster)
            self.watcher.phase = "snapshot"
            self.snapshot(cluster, keys)
            self.watcher.phase = "restart"
            self.restart(cluster, keys)
        finally:
            self.results["raft_events"]["raftcache-1m"] = self.watcher.stop()
            cluster.stop()
            self.keep_logs("raftcache-1m", cluster.root)
            self.log_findings("raftcache-1m", cluster)

    def memory_raftcache(self, cluster: RaftcacheCluster) -> int:
        time.sleep(1.0)
        leader = cluster.leader()
        rss0 = {n.id: rss_bytes(n.proc.pid) for n in cluster.nodes}  # type: ignore[union-attr]
        before = leader.info()
        fill = loadgen("fill", leader.client_port, timeout=900, keys=self.s.keys_for_memory, value_size=16,
                       concurrency=4, duration=840)
        if fill["errors"]:
            self.note(f"raftcache fill: {fill['errors']} errors, first: {fill['first_error']}")
        commit = int(leader.info()["raft_commit_index"])
        wait_until(lambda: all(int(n.info()["raft_applied_index"]) >= commit for n in cluster.nodes), 120, 0.2,
                   "every raftcache node to apply the fill")
        time.sleep(2.0)
        dbsize = int(leader.call("DBSIZE"))
        info = leader.info()
        note = raft_changes(before, cluster)
        for n in cluster.nodes:
            rss1 = rss_bytes(n.proc.pid)  # type: ignore[union-attr]
            self.results["memory"].append({
                "target": self.raftcache_target(), "process": f"{n.id}" + (" (leader)" if n is leader else ""),
                "keys": dbsize, "fill_ops_per_s": fill["ops_per_s"], "rss_before": rss0[n.id], "rss_after": rss1,
                "rss_per_key": (rss1 - rss0[n.id]) / dbsize, "used_memory_per_key": None,
                "log_len": int(n.info()["raft_log_len"]), "snapshots_taken": int(n.info()["raft_snapshots_taken"]),
                "notes": note,
            })
        print(f"  raftcache {dbsize} keys filled at {fill['ops_per_s']:,.0f} SET/s; leader log_len {info['raft_log_len']}, "
              f"snapshots {info['raft_snapshots_taken']}; RSS/key: "
              + ", ".join(f"{m['process']} {m['rss_per_key']:.0f} B" for m in self.results["memory"][-3:]), flush=True)
        if dbsize != self.s.keys_for_memory:
            self.note(f"raftcache DBSIZE {dbsize} after filling {self.s.keys_for_memory} distinct keys")
        return dbsize

    def snapshot(self, cluster: RaftcacheCluster, keys: int) -> None:
        leader = cluster.leader()
        # An automatic snapshot may still be running after the fill: wait for a quiet counter.
        def quiet() -> bool:
            first = leader.info()["raft_snapshots_taken"]
            time.sleep(2.0)
            return leader.info()["raft_snapshots_taken"] == first
        wait_until(quiet, 60, 0, "no snapshot in progress")
        before = leader.info()
        log_offset = leader.log_path.stat().st_size
        tracer = PROCESSES.spawn([sys.executable, str(HERE / "loadgen.py"), "trace", "--port", str(leader.client_port),
                                  "--duration", "300"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert tracer.stdin is not None and tracer.stdout is not None
        tracer.stdout.readline()  # {"started": ...}
        time.sleep(2.0)  # writes before the snapshot: the baseline
        taken0 = int(before["raft_snapshots_taken"])
        t_compact = time.monotonic()
        leader.call("RAFTCACHE", "COMPACT")
        t_done = wait_until(lambda: time.monotonic() if int(leader.info(timeout=30)["raft_snapshots_taken"]) > taken0 else None,
                            240, 0.05, "raft_snapshots_taken to change")
        time.sleep(2.0)  # writes after it
        out, err = tracer.communicate(input="", timeout=60)  # closing its stdin ends the writer
        PROCESSES.kill(tracer)  # already exited: just forget it
        lines = [line for line in out.splitlines() if line.startswith('{"records"')]
        if not lines:
            raise RuntimeError(f"the snapshot-window writer failed: {err.strip()[-600:]}")
        trace = json.loads(lines[-1])
        records = [(s, e) for s, e in trace["records"]]
        baseline = [e - s for s, e in records if e < t_compact]
        window = [(s, e) for s, e in records if e >= t_compact and s <= t_done]
        window_lat = [e - s for s, e in window]
        # Longest time without any write acknowledged, from the COMPACT to the first ack after the snapshot.
        ends = sorted(e for _, e in records if e >= t_compact)
        after_done = [e for e in ends if e > t_done]
        ends = [e for e in ends if e <= t_done] + after_done[:1]
        gaps = [b - a for a, b in zip([t_compact, *ends], ends)]
        logged = re.findall(r"snapshot at index (\d+) written in ([\d.]+)s", leader.log_path.read_text(errors="replace")[log_offset:])
        after = leader.info()
        result = {
            "keys": keys, "node": leader.id, "duration_s": t_done - t_compact,
            "logged_duration_s": float(logged[-1][1]) if logged else None,
            "snapshot_index": int(logged[-1][0]) if logged else int(after["raft_last_snapshot_index"]),
            "writes_in_window": len(window), "window_p50_ms": percentile(window_lat, 50) * 1000,
            "window_p99_ms": percentile(window_lat, 99) * 1000,
            "max_write_ms": max(window_lat) * 1000 if window_lat else None,
            "longest_gap_between_acks_ms": max(gaps) * 1000 if gaps else None,
            "baseline_p50_ms": percentile(baseline, 50) * 1000, "baseline_p99_ms": percentile(baseline, 99) * 1000,
            "baseline_max_ms": max(baseline) * 1000 if baseline else None,
            "trace_errors": trace["errors"], "first_error": trace["first_error"],
            "notes": raft_changes(before, cluster),
            "snapshot_file_bytes": snapshot_size(cluster.root / "data" / leader.id),
        }
        self.results["snapshot"] = result
        print(f"  snapshot of {keys} keys: {result['duration_s']:.2f} s (log: {result['logged_duration_s']} s); "
              f"max write during it {result['max_write_ms']:.1f} ms vs baseline p99 {result['baseline_p99_ms']:.2f} ms", flush=True)

    def restart(self, cluster: RaftcacheCluster, keys: int) -> None:
        leader = cluster.leader()
        follower = cluster.followers()[0]
        finfo = follower.info()
        linfo = leader.info()
        commit_at_kill = int(linfo["raft_commit_index"])
        rss_before = rss_bytes(follower.proc.pid)  # type: ignore[union-attr]
        cluster.kill(follower)
        t_kill = time.monotonic()
        cluster.start_node(follower)
        wait_until(lambda: cluster.node_accepting(follower), 300, 0.02, f"{follower.id} to accept connections")
        t_accept = time.monotonic()
        wait_until(lambda: int(follower.info(timeout=30)["raft_applied_index"]) >= commit_at_kill, 300, 0.05,
                   f"{follower.id} to catch up")
        t_ready = time.monotonic()
        result = self.results["restart"] = {
            "keys": keys, "node": follower.id, "commit_index_at_kill": commit_at_kill,
            "snapshot_index_at_kill": int(finfo["raft_last_snapshot_index"]), "log_len_at_kill": int(finfo["raft_log_len"]),
            "accepting_s": t_accept - t_kill, "ready_s": t_ready - t_kill,
            "digest": {"verdict": "not compared", "call_s": []},
            "rss_before": rss_before, "rss_after": rss_bytes(follower.proc.pid),  # type: ignore[union-attr]
            "notes": raft_changes(linfo, cluster),
        }
        print(f"  restart of {follower.id} ({keys} keys): accepting after {t_accept - t_kill:.2f} s, "
              f"ready after {t_ready - t_kill:.2f} s", flush=True)
        # Last: DIGEST hashes every key while holding the node's state lock.
        before_digest = cluster.leader().info()
        self.watcher.phase = "DIGEST compare"
        result["digest"] = compare_digest(leader, follower)
        during_digest = raft_changes(before_digest, cluster)
        longest_call = max(result["digest"]["call_s"] or [0])
        print(f"  digest: {result['digest']['verdict']} (DIGEST calls took {result['digest']['call_s']} s)", flush=True)
        if during_digest:
            result["notes"] = "; ".join(filter(None, [result["notes"], f"during the DIGEST compare: {during_digest}"]))
            self.note(f"during RAFTCACHE DIGEST of {keys} keys (a call took {longest_call:.2f} s): {during_digest}")

    def etcd(self) -> None:
        cluster = EtcdCluster(self.root / "etcd").start()
        target = f"etcd {EtcdCluster.version()} 3 members (fsync always)"
        try:
            port = cluster.leader_port()
            for size in (16, KIB):
                for op in ("set", "get"):
                    self.measure(target, "loadgen", workload_name(op, size, 50, 1), partial(self.lg_run, port, "etcd", op, size),
                                 "PUT" if op == "set" else "linearizable range")
            self.latency(target, port, "etcd")
        finally:
            cluster.stop()
            self.keep_logs("etcd", cluster.root)

    def pysyncobj(self) -> None:
        cluster = PysyncobjCluster(self.root / "pysyncobj").start()
        target = f"raw pysyncobj {PysyncobjCluster.version()} 3 procs (memory only)"
        try:
            port = cluster.leader_port()
            for size in (16, KIB):
                for op in ("set", "get"):
                    self.measure(target, "loadgen", workload_name(op, size, 50, 1), partial(self.lg_run, port, "resp", op, size),
                                 "local read, not linearizable" if op == "get" else "")
            self.latency(target, port, "resp")
        finally:
            cluster.stop()
            self.keep_logs("pysyncobj", cluster.root)

    def log_findings(self, name: str, cluster: RaftcacheCluster) -> None:
        """Warnings and errors in the node logs, for the report (evidence for anything odd)."""
        for node in cluster.nodes:
            if not node.log_path.exists():
                continue
            lines = [line for line in node.log_path.read_text(errors="replace").splitlines()
                     if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback|not committed", line)
                     and "MEMORY-ONLY" not in line]
            if lines:
                self.note(f"{name} {node.id}.log: {len(lines)} warning/error/retry lines, e.g. {lines[0][:200]!r}"
                          f" (logs/{name}/{node.id}.log)")

    # -------------------------------------------------------------- run
    def run(self) -> None:
        sections = [("loadgen", "loadgen ceilings", self.ceilings), ("redis", "redis", self.redis),
                    ("raftcache", "raftcache throughput", self.raftcache_throughput),
                    ("issue11", "transactions, scripts, rate limits (issue 11): redis and raftcache alternating", self.issue11),
                    ("raftcache-1m", "raftcache 1M keys", self.raftcache_big),
                    ("types", "data types: memory per element, 1M-member sorted set snapshot and restart (issue 12)", self.types),
                    ("eviction", "maxmemory: hit ratio vs redis, cost of eviction (issue 13)", self.eviction),
                    ("feed", "pub/sub: PUBLISH rate and fan-out latency to 100 subscribers vs redis (issue 14)", self.feed),
                    ("nearcache", "near-cache: GET from memory vs linearizable GET, write -> near-cache lag (issue 14)",
                     self.nearcache),
                    ("etcd", "etcd", self.etcd), ("pysyncobj", "raw pysyncobj", self.pysyncobj)]
        only = set(self.args.only.split(",")) if self.args.only else None
        for key, name, fn in sections:
            if only is None or key in only:
                self.section(name, fn)
        compute_ratios(self.results["throughput"])

    def finish(self, interrupted: bool = False) -> str:
        self.results["machine"]["loadavg_end"] = loadavg()
        self.results["elapsed_s"] = round(time.monotonic() - self.started, 1)
        if interrupted:
            self.results["notes"].append("INTERRUPTED: partial results")
        self.out.mkdir(parents=True, exist_ok=True)
        markdown = render_markdown(self.results)
        (self.out / "latest.md").write_text(markdown)
        (self.out / "latest.json").write_text(json.dumps(self.results, indent=2, default=str))
        shutil.rmtree(self.root, ignore_errors=True)
        return markdown


def raft_changes(before: dict[str, str], cluster: RaftcacheCluster) -> str:
    """Elections (term changes) and snapshots during a run, from the leader's INFO raft."""
    after = cluster.leader().info()
    notes = []
    if after["raft_term"] != before["raft_term"] or after["raft_node_id"] != before["raft_node_id"]:
        notes.append(f"ELECTION: term {before['raft_term']}->{after['raft_term']}, leader "
                     f"{before['raft_node_id']}->{after['raft_node_id']}")
    elif int(after["raft_snapshots_taken"]) > int(before["raft_snapshots_taken"]):
        notes.append(f"{int(after['raft_snapshots_taken']) - int(before['raft_snapshots_taken'])} snapshot(s) on the leader")
    return "; ".join(notes)


def compare_digest(leader: RaftcacheNode, follower: RaftcacheNode, attempts: int = 8, budget_s: float = 30.0) -> dict[str, Any]:
    """RAFTCACHE DIGEST on both nodes at once, until both answer for the same applied index.

    The idle leader proposes its clock every 100 ms and DIGEST hashes every key (O(keys)),
    so the two calls are sent concurrently and retried; each call's duration is recorded.
    """
    result: dict[str, Any] = {"verdict": "not compared (the applied indexes differed on every attempt)", "call_s": []}
    deadline = time.monotonic() + budget_s
    with ThreadPoolExecutor(2) as pool:
        for _ in range(attempts):
            if time.monotonic() > deadline:
                break
            def timed(node: RaftcacheNode) -> tuple[float, Any]:
                t0 = time.monotonic()
                reply = node.call("RAFTCACHE", "DIGEST", timeout=60)
                return time.monotonic() - t0, reply

            (ft, (fi, fd)), (lt, (li, ld)) = pool.map(timed, [follower, leader])
            result["call_s"].append(round(max(ft, lt), 3))
            if int(fi) == int(li):
                result["verdict"] = (f"equal to the leader's at index {int(li)}" if fd == ld
                                     else f"DIFFERENT from the leader's at index {int(li)}")
                break
    return result


def snapshot_size(data_dir: Path) -> int | None:
    files = list(data_dir.glob("snapshot*"))
    return max(f.stat().st_size for f in files) if files else None


def compute_ratios(rows: list[dict[str, Any]]) -> None:
    baseline = {(r["client"], r["workload"]): r["ops_per_s"] for r in rows if r["target"].startswith("redis") and r["ops_per_s"]}
    for r in rows:
        # loadgen rows whose workload is not a plain redis workload (READONLY GET ...) use GET 16 B.
        key = (r["client"], r["workload"])
        if key not in baseline and r["workload"].startswith("GET ") and r["client"] == "loadgen":
            key = ("loadgen", workload_name("get", 16, 50, 1))
        base = baseline.get(key)
        r["vs_redis"] = r["ops_per_s"] / base if base and r["ops_per_s"] is not None else None


# ------------------------------------------------------------------------------ issue 11
def package_version(name: str) -> str | None:
    """The installed version of a distribution, None if it is not importable here."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    if importlib.util.find_spec(name) is None:
        return None
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def cost_per_op(row: dict[str, Any]) -> dict[str, Any]:
    """CPU per operation, client and server side, over the run's own window."""
    ops_per_s = row.get("ops_per_s") or 0
    procs = (row.get("usage") or {}).get("procs", {})
    server_pct = sum(p["cpu_pct"] or 0 for p in procs.values())
    return {
        "client_ms": 1000 * row["client_cpu_s"] / row["ops"] if row.get("ops") and "client_cpu_s" in row else None,
        "server_ms": 10 * server_pct / ops_per_s if ops_per_s and procs else None,
    }


def ours_pct(row: dict[str, Any]) -> float | None:
    """The share of all cores that this run's server and client processes used."""
    procs = (row.get("usage") or {}).get("procs", {})
    if not procs or not row.get("elapsed_s") or "client_cpu_s" not in row:
        return None
    client = 100 * row["client_cpu_s"] / row["elapsed_s"]
    return (sum(p["cpu_pct"] or 0 for p in procs.values()) + client) / (os.cpu_count() or 1)


def bound_by(row: dict[str, Any], client_processes: int) -> str:
    """A heuristic reading of one run's CPU figures: what most likely set its rate.

    A client process or a server thread near a full core is a ceiling of its own (Python
    threads of one process share one GIL); the whole machine near 100% busy means the two
    cores are shared out (unless most of that is other processes': then the run was disturbed
    and says so); neither means the operations waited (fsync, network round trips,
    Raft's serial path) rather than computed."""
    usage = row.get("usage") or {}
    procs = usage.get("procs", {})
    elapsed = row.get("elapsed_s") or 0
    client_pct = 100 * row["client_cpu_s"] / elapsed / client_processes if elapsed and "client_cpu_s" in row else None
    busiest = max(procs.items(), key=lambda kv: kv[1].get("busiest_thread_pct") or 0, default=None)
    if client_pct is not None and client_pct >= 85:
        return f"client CPU ({client_pct:.0f}% of a core per process)"
    if busiest is not None and (busiest[1].get("busiest_thread_pct") or 0) >= 85:
        return f"one thread of {busiest[0]} ({busiest[1]['busiest_thread_pct']:.0f}% of a core)"
    if (usage.get("machine_busy_pct") or 0) >= 90:
        ours = ours_pct(row)
        if ours is not None and ours < 0.6 * usage["machine_busy_pct"]:
            return f"OTHER work on the machine ({usage['machine_busy_pct']:.0f}% busy, this run's processes {ours:.0f}%)"
        return f"machine CPU ({usage['machine_busy_pct']:.0f}% of all cores busy)"
    return "waiting: fsync, round trips" if row["target"] == "raftcache" else "waiting: round trips"


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarise_issue11(runs: list[dict[str, Any]], workloads: list[str]) -> list[dict[str, Any]]:
    """One row per workload: each target's mean over its runs, the ratio, the goal."""
    summary = []
    for workload in workloads:
        row: dict[str, Any] = {"workload": workload}
        for name in ("redis", "raftcache"):
            mine = [r for r in runs if r["workload"] == workload and r["target"] == name]
            ok = [r for r in mine if r.get("ops_per_s")]
            costs = [cost_per_op(r) for r in ok]
            row[name] = {
                "runs": [r.get("ops_per_s") for r in mine], "ops_per_s": _mean([r["ops_per_s"] for r in ok]),
                "p50_ms": _mean([r["p50_ms"] for r in ok]), "p99_ms": _mean([r["p99_ms"] for r in ok]),
                "client_ms_per_op": _mean([c["client_ms"] for c in costs]),
                "server_ms_per_op": _mean([c["server_ms"] for c in costs]),
                "ops_per_entry": _mean([r.get("ops_per_entry") for r in ok]),
                "bound_by": "; ".join(dict.fromkeys(r.get("bound_by", "") for r in ok)),
                "failed": len(mine) - len(ok),
            }
        base, mine_ops = row["redis"]["ops_per_s"], row["raftcache"]["ops_per_s"]
        row["vs_redis"] = mine_ops / base if base and mine_ops else None
        row["goal_met"] = None if row["vs_redis"] is None else row["vs_redis"] >= ISSUE11_GOAL
        summary.append(row)
    return summary


def render_issue11(section: dict[str, Any]) -> list[str]:
    out = ["", "## Transactions, scripts, rate limits (issue 11): redis and raftcache alternating, 50 in flight", ""]
    if not section:
        return [*out, "not measured (see notes)"]
    out += [(f"One redis-server and one raftcache cluster up together, runs alternating (ABBA across rounds); "
             f"`loadgen` keeps one operation in flight per connection (50 connections); `limits` {section.get('limits') or '-'} "
             f"(redis-py {section.get('redis-py') or '-'}) runs as {section['limits_clients']}. One `Lock` op is an acquire "
             f"(`SET NX PX`) and a release (`EVALSHA`), two round trips. Goal: raftcache >= {section['goal']:.0%} of redis."), "",
            ("| workload | redis ops/s | raftcache ops/s | raftcache / redis | goal met? | redis p50 / p99 ms | raftcache p50 / p99 ms "
             "| CPU ms per op: redis / raftcache (3 nodes) | raftcache ops per Raft entry | raftcache bound by |"),
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for row in section["summary"]:
        r, c = row["redis"], row["raftcache"]
        def runs(t: dict[str, Any]) -> str:  # each run's ops/s when there were several
            return "" if len(t["runs"]) < 2 else " (" + " / ".join(fmt(v) for v in t["runs"]) + ")"

        met = {True: "yes", False: "no", None: "-"}[row["goal_met"]]
        out.append(f"| {row['workload']} | {fmt(r['ops_per_s'])}{runs(r)} | {fmt(c['ops_per_s'])}{runs(c)} | "
                   f"{fmt(row['vs_redis'], '.1%')} | {met} | {fmt(r['p50_ms'], '.2f')} / {fmt(r['p99_ms'], '.2f')} | "
                   f"{fmt(c['p50_ms'], '.2f')} / {fmt(c['p99_ms'], '.2f')} | {fmt(r['server_ms_per_op'], '.3f')} / "
                   f"{fmt(c['server_ms_per_op'], '.3f')} | {fmt(c['ops_per_entry'], '.1f')} | {c['bound_by'] or '-'} |")
    out += ["", "Where the time went, run by run (CPU over each run's own window, from /proc; % of one core):", "",
            ("| workload | target | round | ops/s | client CPU ms/op | server CPU ms/op | server processes: CPU % (busiest thread %) "
             "| machine busy (this run's processes) | Raft entries (ops per entry) | bound by | notes |"),
            "|---|---|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for r in section["runs"]:
        usage = r.get("usage") or {}
        cost = cost_per_op(r) if r.get("ops_per_s") else {"client_ms": None, "server_ms": None}
        procs = ", ".join(f"{name} {fmt(p['cpu_pct'])} ({fmt(p['busiest_thread_pct'])})" for name, p in usage.get("procs", {}).items())
        entries = f"{r['raft_entries']:,} ({fmt(r.get('ops_per_entry'), '.1f')})" if "raft_entries" in r else "-"
        out.append(f"| {r['workload']} | {r['target']} | {r['round']} | {fmt(r.get('ops_per_s'))} | {fmt(cost['client_ms'], '.3f')} | "
                   f"{fmt(cost['server_ms'], '.3f')} | {procs or '-'} | {fmt(usage.get('machine_busy_pct'), '.0f')}% "
                   f"({fmt(ours_pct(r), '.0f')}%) | {entries} | "
                   f"{r.get('bound_by', '-')} | {r.get('notes', '')} |")
    out += ["", ("Reading it: *bound by* is a heuristic over the figures on its row: a client process or one server thread "
                 "near a full core (Python threads of a process share one GIL) is a ceiling of its own; the machine near 100% busy "
                 "means the cores are shared out, and then CPU ms per op (raftcache's, all 3 nodes, against redis's) says how much "
                 "more work an operation is; neither means operations waited (fsync, round trips, Raft's serial path), and ops per "
                 "Raft entry shows how far group commit spread that wait (a Raft entry costs one fsync per node).")]
    return out


# ------------------------------------------------------------------------------ machine
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
        ram = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        ram = "unknown"
    try:
        fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True, timeout=5, check=False).stdout.splitlines()[-1].split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        fs = "unknown"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram": ram, "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "tmp_filesystem": fs, "event_loop": LOOP_NAME,
        "raftcache": RaftcacheCluster.version(), "pysyncobj": PysyncobjCluster.version(),
        "redis-server": RedisServer.version(),
        "redis-benchmark": command_version(["redis-benchmark", "--version"], r"redis-benchmark (\S+)"),
        "etcd": EtcdCluster.version(), "loadavg_start": loadavg(),
    }


# ------------------------------------------------------------------------------ report
def fmt(value: Any, spec: str = ",.0f", missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def render_eviction(ev: dict[str, Any]) -> list[str]:
    out = ["", (f"## maxmemory (issue 13): one Zipf trace (s={ev['zipf_s']}, {ev['requests']:,} GETs over {ev['keys']:,} keys, "
                f"SET on miss, {ev['value_size']} B values), {ev['fits']:,} keys fit"), "",
           (f"Each target's maxmemory = its own used_memory with exactly {ev['fits']:,} keys of the trace's shape stored "
            f"(redis {fmt(ev.get('maxmemory', {}).get('redis'))} B, raftcache {fmt(ev.get('maxmemory', {}).get('raftcache'))} B): "
            "the two count memory differently, so the same number of keys fits in both."), "",
           "| target | policy | hit ratio | warm hit ratio (2nd half) | keys held at the end | evicted | seconds |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in ev["hit_ratio"]:
        out.append(f"| {r['target']} | {r['policy']} | {r['hit_ratio']:.3f} | {r['warm_hit_ratio']:.3f} | {r['keys_held']:,} | "
                   f"{r['evicted']:,} | {r['seconds']:.1f} |")
    storm = ev.get("expiry_storm")
    if storm:
        out += ["", (f"Expiry storm: {storm['keys']:,} keys expiring at one instant (PXAT), one writer running: "
                     f"max write latency {fmt(storm.get('max_write_ms'), '.1f')} ms, p99 {fmt(storm.get('window_p99_ms'), '.1f')} ms "
                     f"(baseline p99 {fmt(storm.get('baseline_p99_ms'), '.1f')} ms, max {fmt(storm.get('baseline_max_ms'), '.1f')} ms); "
                     f"all gone {fmt(storm.get('expired_in_s'), '.1f')} s after the instant. {storm.get('notes', '')}").strip()]
    if ev["cost"]:
        out += ["", ("SET 16 B c50 (loadgen, 200K-key keyspace, 6 s) on raftcache after filling 40K keys, with maxmemory "
                     "just under them (every new key evicts one) and without, alternating:"), "",
                "| round | maxmemory | ops/s | p50 ms | p99 ms | evicted |", "|---:|---:|---:|---:|---:|---:|"]
        for r in ev["cost"]:
            out.append(f"| {r['round']} | {r['maxmemory'] or 'none'} | {fmt(r['ops_per_s'])} | {fmt(r['p50_ms'], '.2f')} | "
                       f"{fmt(r['p99_ms'], '.2f')} | {r['evicted']:,} |")
        limited = [r["ops_per_s"] for r in ev["cost"] if r["maxmemory"]]
        free = [r["ops_per_s"] for r in ev["cost"] if not r["maxmemory"]]
        if limited and free:
            share = sum(limited) / len(limited) / (sum(free) / len(free))
            out += ["", f"With eviction: {share:.0%} of the throughput without (goal >= 80%)."]
    return out


def render_feed(feed: dict[str, Any]) -> list[str]:
    out = ["", f"## pub/sub (issue 14): {feed['subscribers']} subscribers (raftcache: spread over the 3 nodes; redis: one server)", "",
           ("Fan-out latency: PUBLISH (through the first node's port) to receipt, one message every 10 ms, stamped when "
            "the harness's one thread read it and, \"kernel\", when the bytes reached the subscriber's socket (SO_TIMESTAMPNS); "
            "PUBLISH rate: one connection, 64 pipelined."), "",
           "| round | target | PUBLISH/s | fan-out p50 ms | p99 ms | max ms | kernel p50 ms | kernel p99 ms | all delivered |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in feed["rows"]:
        out.append(f"| {r['round']} | {r['target']} | {fmt(r['publish_per_s'])} | {fmt(r['fanout_p50_ms'], '.2f')} | "
                   f"{fmt(r['fanout_p99_ms'], '.2f')} | {fmt(r['fanout_max_ms'], '.2f')} | {fmt(r.get('fanout_kernel_p50_ms'), '.2f')} | "
                   f"{fmt(r.get('fanout_kernel_p99_ms'), '.2f')} | {r['all_delivered']} |")
    return out


def render_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"# raftcache side-by-side benchmark ({res['mode']} run, {res['date']})", "",
           (f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['kernel']}, Python {m['python']}, "
           f"temp dir on {m['tmp_filesystem']}; load average {m['loadavg_start']} at start, {m.get('loadavg_end', '?')} at end "
           "(shared machine: servers and load generators share the cores)."), "",
           (f"Versions: raftcache {m['raftcache']}, pysyncobj {m['pysyncobj']}, redis-server {m['redis-server']}, "
           f"redis-benchmark {m['redis-benchmark']}, etcd {m['etcd']}; loadgen event loop: {m['event_loop']}."), "",
           f"Command: `{res['command']}` (took {res.get('elapsed_s', '?')} s).", ""]

    out += ["## Load generator ceiling (loadgen.py against a stub server that answers at once)", "",
            "| protocol | op | ops/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|"]
    for c in res["ceilings"]:
        out.append(f"| {'RESP' if c['protocol'] == 'resp' else 'HTTP/1.1 (etcd gateway shape)'} | {c['op'].upper()} 16 B c50 | "
                   f"{fmt(c['ops_per_s'])} | {fmt(c['p50_ms'], '.2f')} | {fmt(c['p99_ms'], '.2f')} |")
    if not res["ceilings"]:
        out.append("| - | not measured | - | - | - |")
    ceiling = {c["protocol"]: c["ops_per_s"] for c in res["ceilings"]}

    out += ["", "## Throughput", "",
            "| target | client | workload | ops/s | p50 ms | p99 ms | vs redis | notes |",
            "|---|---|---|---:|---:|---:|---:|---|"]
    for r in res["throughput"]:
        notes = r.get("notes", "")
        proto = "etcd" if r["target"].startswith("etcd") else "resp"
        if r["client"] == "loadgen" and proto in ceiling and (r["ops_per_s"] or 0) > 0.7 * ceiling[proto]:
            notes = "; ".join(filter(None, [notes, "near loadgen ceiling (client-bound)"]))
        out.append(f"| {r['target']} | {r['client']} | {r['workload']} | {fmt(r['ops_per_s'])} | {fmt(r['p50_ms'], '.2f')} | "
                   f"{fmt(r['p99_ms'], '.2f')} | {fmt(r.get('vs_redis'), '.3f')} | {notes} |")
    for s in res["skipped"]:
        out.append(f"| {s['target']} | - | - | - | - | - | - | skipped: {s['reason']} |")

    if res.get("issue11") or any(sk["target"].startswith("transactions, scripts") for sk in res["skipped"]):
        out += render_issue11(res.get("issue11") or {})

    out += ["", "## Single-client write latency (one connection, one SET 16 B at a time, loadgen)", "",
            "| target | ops | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for r in res["latency"]:
        out.append(f"| {r['target']} | {r['ops']} | {fmt(r['p50_ms'], '.3f')} | {fmt(r['p99_ms'], '.3f')} | {fmt(r['max_ms'], '.1f')} |")

    out += ["", "## raftcache: linearizable GET vs READONLY GET (loadgen, 50 connections, 16 B)", "",
            "| node | reads | ops/s | p50 ms | p99 ms | vs redis GET (loadgen) | notes |", "|---|---|---:|---:|---:|---:|---|"]
    for r in res["throughput"]:
        if "via" in r["workload"]:
            out.append(f"| {r['node']} | {r['kind']} | {fmt(r['ops_per_s'])} | {fmt(r['p50_ms'], '.2f')} | {fmt(r['p99_ms'], '.2f')} | "
                       f"{fmt(r.get('vs_redis'), '.3f')} | {r.get('notes', '')} |")

    out += ["", "## Memory per key (16 B values, distinct keys, pipelined SETs)", "",
            "| target | process | keys | RSS growth / key | redis used_memory / key | fill SET/s | notes |",
            "|---|---|---:|---:|---:|---:|---|"]
    for r in res["memory"]:
        extra = r.get("notes", "")
        if "log_len" in r:
            extra = "; ".join(filter(None, [f"log_len {r['log_len']}, snapshots {r['snapshots_taken']}", extra]))
        out.append(f"| {r['target']} | {r['process']} | {r['keys']:,} | {fmt(r['rss_per_key'])} B | "
                   f"{fmt(r['used_memory_per_key'], ',.0f')}{' B' if r['used_memory_per_key'] is not None else ''} | "
                   f"{fmt(r['fill_ops_per_s'])} | {extra} |")

    if res.get("types"):
        out += types_memory.render(res["types"])
    if res.get("eviction"):
        out += render_eviction(res["eviction"])
    if res.get("feed"):
        out += render_feed(res["feed"])
    if res.get("nearcache"):
        out += nearcache_bench.render(res["nearcache"])

    s = res["snapshot"]
    out += ["", "## raftcache snapshot (RAFTCACHE COMPACT on the leader, one writer running)", ""]
    if s:
        out += [("| keys | snapshot time (INFO poll) | logged by the node | file | writes during it | max write during it | "
                "longest gap between acks | p99 during it | baseline p50 / p99 / max |"),
                "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
                (f"| {s['keys']:,} | {s['duration_s']:.2f} s | {fmt(s['logged_duration_s'], '.3f')} s | "
                f"{fmt((s['snapshot_file_bytes'] or 0) / 2**20, '.1f')} MiB | {s['writes_in_window']} | {fmt(s['max_write_ms'], '.1f')} ms | "
                f"{fmt(s['longest_gap_between_acks_ms'], '.1f')} ms | {fmt(s['window_p99_ms'], '.2f')} ms | "
                f"{fmt(s['baseline_p50_ms'], '.2f')} / {fmt(s['baseline_p99_ms'], '.2f')} / {fmt(s['baseline_max_ms'], '.1f')} ms |")]
        if s.get("trace_errors") or s.get("notes"):
            out += ["", f"Writer errors: {s['trace_errors']} ({s['first_error']}); {s['notes']}"]
    else:
        out.append("not measured (see notes)")

    r = res["restart"]
    out += ["", "## raftcache restart (kill -9 of a follower, then `raftcache serve`)", ""]
    if r:
        out += ["| keys | follower snapshot index / log_len at kill | accepting connections | ready (applied >= leader commit at kill) | digest | RSS before / after |",
                "|---:|---|---:|---:|---|---|",
                (f"| {r['keys']:,} | {r['snapshot_index_at_kill']} / {r['log_len_at_kill']} | {r['accepting_s']:.2f} s | "
                f"{r['ready_s']:.2f} s | {r['digest']['verdict']} (one DIGEST call: {max(r['digest']['call_s'] or [0]):.2f} s) | {r['rss_before'] / 2**20:.0f} / {r['rss_after'] / 2**20:.0f} MiB |")]
        if r.get("notes"):
            out += ["", f"During the restart: {r['notes']}"]
    else:
        out.append("not measured (see notes)")

    out += ["", "## raftcache Raft events (INFO raft polled every 0.2 s on every node; changes after the first state)", ""]
    any_events = False
    for name, events in res.get("raft_events", {}).items():
        seen: set[str] = set()
        for e in events:
            if e["node"] not in seen:
                seen.add(e["node"])
                continue
            if not any_events:
                out += ["| cluster | time | phase | node | role/term/leader |", "|---|---|---|---|---|"]
                any_events = True
            out.append(f"| {name} | {e['time']} (+{e['t_s']} s) | {e['phase']} | {e['node']} | {e['state']} |")
    if not any_events:
        out.append("none: no election, no unresponsive node")

    out += ["", "## Notes", ""]
    out += [f"* {n}" for n in res["notes"]] or ["* none"]
    out += [f"* skipped {s['target']}: {s['reason']}" for s in res["skipped"]]
    out += ["", ("Columns: **ops/s** completed operations per second; **p50/p99** per-operation latency as the client saw it; "
            "**vs redis** ops/s over single-node redis's for the same workload and the same client "
            "(READONLY/linearizable GET rows: over redis GET 16 B via loadgen). redis-benchmark runs use `-r 100000`; "
            "loadgen keeps one request in flight per connection. etcd and pysyncobj rows are loadgen-driven; "
            "pysyncobj GET reads the leader's local dict (no consensus)."), ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts (~2-3 minutes)")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for latest.md / latest.json / logs")
    parser.add_argument("--fsync", choices=["always", "no"], default="always", help="raftcache journal fsync policy")
    parser.add_argument("--only", help="comma-separated sections: loadgen,redis,raftcache,issue11,raftcache-1m,types,eviction,feed,nearcache,etcd,pysyncobj")
    args = parser.parse_args()

    def on_term(_signum: int, _frame: Any) -> None:
        print(f"received {signal.Signals(_signum).name}", flush=True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: stopping every target", flush=True)
    finally:
        PROCESSES.stop_all()
    markdown = bench.finish(interrupted)
    print(markdown)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
