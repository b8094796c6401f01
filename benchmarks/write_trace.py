"""Where one write's time goes: a 3-node cluster whose node processes stamp each stage of a
PUBLISH (`trace_site/sitecustomize.py`), N subscribers spread over the nodes, one PUBLISH
through the leader every `--interval-ms`, then the median and p90 of each stage's time
after the leader received the PUBLISH bytes.

    python benchmarks/write_trace.py [--messages 100] [--subscribers 100] [--interval-ms 10]

With ``--load N``, the same traced cluster takes `redis-benchmark -t set -c N` through the
leader instead, and the report is the leader's cycle of one Raft entry under that load (each
stage's time after the previous one: with one entry in flight, the cycle is the commit
latency), and, from ``/proc/<pid>/task/<tid>/schedstat``, how much of the load each node's
event-loop thread and Raft thread spent running and how much runnable but waiting for a CPU.

    python benchmarks/write_trace.py --load 50 [--requests 30000]

The stamps cost a few microseconds each (one os.write), so the totals run a little above an
untraced run's. A stage of the followers is reported for the first follower to reach it
and for the last.
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import feed_bench
from targets import PROCESSES, RaftcacheCluster

HERE = Path(__file__).resolve().parent

# (label, whose, tag, detail): whose "L" is the leader, "F" the followers (reported for the
# first and the last to reach the stage); detail, if given, must match the stamp's. Every
# stage is the first such stamp after the previous stage of the same process (so a
# follower's second RECEIVE is the commit index).
STAGES = [
    ("leader: command handed to the replica", "L", "SUBMIT", None),
    ("leader: batch proposed to pysyncobj", "L", "PROPOSE", None),
    ("leader: entry appended (Raft thread)", "L", "APPEND", None),
    ("leader: fsync starts", "L", "FSYNC", None),
    ("leader: fsync ends", "L", "FSYNC_END", None),
    ("leader: append-entries written to the socket", "L", "WIRE_OUT", None),
    ("followers: bytes read from the socket", "F", "WIRE_IN", None),
    ("followers: append-entries received", "F", "RECEIVE", "append_entries"),
    ("followers: fsync ends", "F", "FSYNC_END", None),
    ("followers: ack written to the socket", "F", "WIRE_OUT", None),
    ("leader: ack bytes read", "L", "WIRE_IN", None),
    ("leader: first ack read", "L", "RECEIVE", "next_node_idx"),
    ("leader: apply starts", "L", "APPLY", None),
    ("leader: apply ends", "L", "APPLY_END", None),
    ("leader: delivery to its subscribers starts", "L", "DELIVER", None),
    ("leader: delivery ends", "L", "DELIVER_END", None),
    ("followers: commit index received", "F", "RECEIVE", "append_entries"),
    ("followers: apply ends", "F", "APPLY_END", None),
    ("followers: delivery starts", "F", "DELIVER", None),
    ("followers: delivery ends", "F", "DELIVER_END", None),
]


def read_stamps(directory: Path) -> dict[int, list[tuple[int, str, str]]]:
    stamps: dict[int, list[tuple[int, str, str]]] = {}
    for path in directory.glob("*.trace"):
        rows = []
        for line in path.read_text().splitlines():
            ns, tag, *rest = line.split(" ", 2)
            if tag == "PATCH-FAILED":
                raise SystemExit(f"the tracer could not wrap raftcache in pid {path.stem}: {rest}")
            rows.append((int(ns), tag, rest[0] if rest else ""))
        stamps[int(path.stem)] = sorted(rows)
    return stamps


def stage_times(stamps: dict[int, list[tuple[int, str, str]]], leader: int, start: int, end: int) -> dict[str, list[float]]:
    """Per stage, each message's time (ms) after the leader received its bytes."""
    receipts = [ns for ns, tag, detail in stamps[leader] if tag == "RECV" and start <= ns <= end]
    times = {pid: [row[0] for row in rows] for pid, rows in stamps.items()}  # for bisect
    out: dict[str, list[float]] = defaultdict(list)
    for k, t0 in enumerate(receipts):
        t1 = receipts[k + 1] if k + 1 < len(receipts) else end
        cursor = {pid: bisect.bisect_left(times[pid], t0) for pid in stamps}  # row indexes: this message's
        stop = {pid: bisect.bisect_left(times[pid], t1) for pid in stamps}  # rows, up to the next message
        for label, whose, tag, detail in STAGES:
            pids = [leader] if whose == "L" else [pid for pid in stamps if pid != leader]
            found = []
            for pid in pids:
                rows = stamps[pid]
                at = next((i for i in range(cursor[pid], stop[pid])
                           if rows[i][1] == tag and (detail is None or rows[i][2] == detail)), None)
                if at is not None:
                    cursor[pid] = at + 1
                    found.append(rows[at][0])
            if whose == "L" and found:
                out[label].append((found[0] - t0) / 1e6)
            elif len(found) == len(pids):
                out[f"{label} (first)"].append((min(found) - t0) / 1e6)
                out[f"{label} (last)"].append((max(found) - t0) / 1e6)
    return out


# The leader's cycle of one Raft entry under load: (label, tag, detail), each the first such
# stamp after the previous one; after the last comes the next entry's "appended".
CYCLE = [
    ("entry appended -> fsync starts", "APPEND", None),
    ("fsync", "FSYNC", None),
    ("fsync ends -> append-entries handed to the socket", "FSYNC_END", None),
    ("socket write (send() returns)", "WIRE_OUT", None),
    ("-> first ack read (committed)", "WIRE_OUT_END", None),
    ("-> apply starts", "RECEIVE", "next_node_idx"),
    ("apply", "APPLY", None),
    ("apply ends -> next batch proposed", "APPLY_END", None),
    ("proposed -> appended (pysyncobj: commit index sent first)", "PROPOSE", None),
]


def entry_cycles(rows: list[tuple[int, str, str]]) -> dict[str, list[float]]:
    """Per stage of CYCLE, its time (ms) in each complete cycle found in the leader's rows."""
    out: dict[str, list[float]] = defaultdict(list)
    steps = [*CYCLE, ("", "APPEND", None)]
    at = 0
    while True:
        found = []
        for _label, tag, detail in steps:
            at = next((i for i in range(at, len(rows)) if rows[i][1] == tag and (detail is None or rows[i][2] == detail)), None)
            if at is None:
                return out
            found.append(rows[at][0])
            at += 1
        for (label, _, _), t0, t1 in zip(CYCLE, found, found[1:]):
            out[label].append((t1 - t0) / 1e6)
        at -= 1  # the next cycle starts at this one's closing APPEND


def schedstat(pid: int, tid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of one thread, so far."""
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        run, wait, _slices = f.read().split()
    return int(run), int(wait)


def load_run(args: argparse.Namespace, cluster: RaftcacheCluster, traces: Path) -> None:
    """Trace SETs under load on a started cluster and print the cycle and thread tables."""
    leader = cluster.leader()
    bench = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(leader.client_port), "-t", "set", "-q"]
    subprocess.run([*bench, "-c", "10", "-n", "2000"], check=True, capture_output=True, timeout=120)  # warm-up
    raft_tids = {int(p.stem): int(line.split()[2]) for p in traces.glob("*.trace")
                 for line in p.read_text().splitlines() if line.split()[1] == "RAFT_TID"}
    threads = {(n.id, kind): (n.proc.pid, tid) for n in cluster.nodes
               for kind, tid in (("event loop", n.proc.pid), ("Raft", raft_tids[n.proc.pid]))}
    before = {key: schedstat(*ids) for key, ids in threads.items()}
    start = time.perf_counter_ns()
    t0 = time.monotonic()
    out = subprocess.run([*bench, "-c", str(args.load), "-n", str(args.requests)], check=True, capture_output=True,
                         text=True, timeout=600).stdout
    seconds = time.monotonic() - t0
    end = time.perf_counter_ns()
    after = {key: schedstat(*ids) for key, ids in threads.items()}
    rows = [r for r in read_stamps(traces)[leader.proc.pid] if start <= r[0] <= end]  # unbuffered: all there
    print(f"redis-benchmark -t set -c {args.load} -n {args.requests} through the leader: "
          f"{out.replace(chr(13), chr(10)).strip().splitlines()[-1].strip()}\n")
    cycles = entry_cycles(rows)
    count = len(next(iter(cycles.values()), []))
    print(f"The leader's cycle of one Raft entry ({count} cycles; ms):\n")
    print("| stage | p50 | p90 | mean |\n|---|---:|---:|---:|")
    for label, values in cycles.items():
        values.sort()
        print(f"| {label} | {statistics.median(values):.2f} | {values[int(0.9 * (len(values) - 1))]:.2f} | {statistics.mean(values):.2f} |")
    total = sum(statistics.mean(v) for v in cycles.values())
    print(f"| **whole cycle** | | | **{total:.2f}** |\n")
    print(f"Threads over the load's {seconds:.1f} s (share of one CPU; the machine has {os.cpu_count()}):\n")
    print("| node | thread | running | runnable, waiting for a CPU |\n|---|---|---:|---:|")
    for (node, kind), (run0, wait0) in before.items():
        run1, wait1 = after[(node, kind)]
        role = " (leader)" if node == leader.id else ""
        print(f"| {node}{role} | {kind} | {100 * (run1 - run0) / 1e9 / seconds:.1f}% | {100 * (wait1 - wait0) / 1e9 / seconds:.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--load", type=int, metavar="N", help="trace SET under redis-benchmark -c N instead of PUBLISHes")
    parser.add_argument("--requests", type=int, default=30000, help="with --load: redis-benchmark -n")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="write-trace-") as tmp:
        traces = Path(tmp) / "stamps"
        traces.mkdir()
        os.environ["RAFTCACHE_WRITE_TRACE"] = str(traces)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "trace_site"), os.environ.get("PYTHONPATH")]))
        cluster = RaftcacheCluster(Path(tmp) / "cluster", "always").start()
        try:
            if args.load:
                load_run(args, cluster, traces)
                return
            leader = cluster.leader()
            ports = [leader.client_port] + [n.client_port for n in cluster.nodes if n is not leader]
            subs = feed_bench.Subscribers(ports, args.subscribers)
            publisher = feed_bench.Conn(ports[0])
            try:
                start = time.perf_counter_ns()
                latencies = feed_bench.latency_phase(subs, publisher, args.messages, args.interval_ms / 1000, [[] for _ in ports])
                end = time.perf_counter_ns()
            finally:
                subs.close()
                publisher.sock.close()
            leader_pid = leader.proc.pid
        finally:
            cluster.stop()
            PROCESSES.stop_all()
        times = stage_times(read_stamps(traces), leader_pid, start, end)
    print(f"{args.messages} PUBLISHes, {args.subscribers} subscribers over 3 nodes, one every {args.interval_ms:g} ms; "
          f"receipt p50 {statistics.median(latencies):.2f} ms\n")
    print("| stage | p50 ms | p90 ms | messages |\n|---|---:|---:|---:|")
    for label, values in times.items():
        values.sort()
        print(f"| {label} | {statistics.median(values):.2f} | {values[int(0.9 * (len(values) - 1))]:.2f} | {len(values)} |")


if __name__ == "__main__":
    main()
