"""The eviction workload: a cache kept at its memory limit while faults happen.

The cluster runs `maxmemory-policy volatile-lru` with a small `maxmemory`; writers store
unique keys with a TTL (so only this workload's keys are candidates: the other workloads'
keys have none and must never be evicted) and a reader reads recent ones back. Checked:

* an acknowledged key reads back as exactly its value or as absent (evicted): never another
  value, never a value of a write that failed;
* the dataset stays under the limit on every node (sampled INFO: `used_memory` at most one
  command above `maxmemory`), and eviction really ran (`evicted_keys` grew);
* replicas converge (the harness's digest check covers the accounting, the settings and
  the LRU table too, since they are part of the replicated state).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.workload import ClientWorkload, RespConn, classify

MAXMEMORY_HEADROOM = 64 * 1024  # above what the cluster holds when it starts: ~100 writes fill it
# A write is judged before it lands (Redis's rule), so the dataset may pass the limit by one
# command: this workload's largest SET (its value, the key twice, the accounting's per-key and
# expiry overheads of 140 B each) or another workload's (smaller); 1 KB covers all but the value.
COMMAND_SLACK = 1024
TTL_MS = 3_600_000


@dataclass
class EvictionRecord:
    acked: dict[str, bytes] = field(default_factory=dict)
    failed: dict[str, bytes] = field(default_factory=dict)
    unknown: dict[str, bytes] = field(default_factory=dict)
    reads: int = 0
    reads_found: int = 0
    problems: list[str] = field(default_factory=list)
    samples: int = 0


class EvictionWorkload(ClientWorkload):
    def __init__(self, endpoints: Callable[[], list[str]], *, workers: int = 2, timeout: float = 4.0, seed: int = 1,
                 prefix: str = "ev:", max_seconds: float = 600, max_ops: int = 100_000,
                 headroom: int = MAXMEMORY_HEADROOM, value_bytes: tuple[int, int] = (200, 600)) -> None:
        # `headroom` must also hold what the other workloads on the cluster add meanwhile (their
        # keys have no TTL, so they cannot be evicted: past it, every write gets OOM)
        super().__init__(endpoints, timeout=timeout, max_seconds=max_seconds, max_ops=max_ops)
        self.workers = workers
        self.seed = seed
        self.prefix = prefix
        self.headroom = headroom
        self.value_bytes = value_bytes
        self.slack = value_bytes[1] + COMMAND_SLACK  # one command's worth above maxmemory
        self.record = EvictionRecord()
        self.maxmemory = 0

    # ------------------------------------------------------------------ lifecycle
    def _prepare(self) -> None:
        self.maxmemory = self._configure()

    def _launch(self) -> None:
        for w in range(self.workers):
            self._spawn(self._write, w, name=f"evict-writer-{w}")
        self._spawn(self._read, name="evict-reader")
        self._spawn(self._sample, name="evict-sampler")

    @property
    def ok_writes(self) -> int:
        return len(self.record.acked)

    def _configure(self) -> int:
        """Set the policy and a limit just above the current dataset (on any node that answers)."""
        deadline = time.monotonic() + 30
        last: BaseException | None = None
        while True:
            for endpoint in self.endpoints():
                conn = RespConn(endpoint, self.timeout)
                try:
                    used = _info_int(conn.call("INFO", "memory"), "used_memory")
                    limit = used + self.headroom
                    outcome1, _ = classify(lambda c=conn: c.call("CONFIG", "SET", "maxmemory-policy", "volatile-lru"))
                    outcome2, _ = classify(lambda c=conn, m=limit: c.call("CONFIG", "SET", "maxmemory", str(m)))
                    if outcome1 == outcome2 == "ok":
                        return limit
                except Exception as exc:  # noqa: BLE001 - try the next node
                    last = exc
                finally:
                    conn.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"could not configure maxmemory on any node (last error: {last!r})")
            time.sleep(0.2)

    # ----------------------------------------------------------------- operations
    def _write(self, worker: int) -> None:
        rng = random.Random(self.seed * 7919 + worker)
        home = self._home(worker, rng)
        n = 0
        deadline = self._deadline()
        try:
            while self._running(deadline) and self._take_op():
                conn = home.conn()
                n += 1
                key = f"{self.prefix}{worker}:{n}"
                value = (f"{key}|" + "v" * rng.randint(*self.value_bytes)).encode()
                outcome, _ = classify(lambda c=conn, k=key, v=value: c.call("SET", k, v, "PX", TTL_MS))
                with self._lock:
                    {"ok": self.record.acked, "fail": self.record.failed, "unknown": self.record.unknown}[outcome][key] = value
                if outcome != "ok":
                    home.move()
        finally:
            home.close()

    def _read(self) -> None:
        rng = random.Random(self.seed)
        conns = self._conns()  # reads go to any node
        deadline = self._deadline()
        try:
            while self._running(deadline):
                with self._lock:
                    recent = list(self.record.acked.items())[-50:]
                if not recent:
                    self._pause(0.01)
                    continue
                key, value = rng.choice(recent)
                endpoint = rng.choice(self.endpoints())
                conn = conns.to(endpoint)
                outcome, reply = classify(lambda c=conn, k=key: c.call("GET", k))
                if outcome != "ok":
                    continue
                with self._lock:
                    self.record.reads += 1
                    if reply is not None:
                        self.record.reads_found += 1
                        if reply != value:
                            self.record.problems.append(f"GET {key} via {endpoint}: {reply[:40]!r}, acknowledged {value[:40]!r}")
        finally:
            conns.close()

    def _sample(self) -> None:
        conns = self._conns(timeout=1.0)  # every node, each time
        try:
            while not self._pause(0.25):
                for endpoint in self.endpoints():
                    conn = conns.to(endpoint)
                    outcome, reply = classify(lambda c=conn: c.call("INFO", "memory"))
                    if outcome != "ok":
                        continue
                    used, limit = _info_int(reply, "used_memory"), _info_int(reply, "maxmemory")
                    with self._lock:
                        self.record.samples += 1
                        if limit and used > limit + self.slack:
                            self.record.problems.append(f"{endpoint}: used_memory {used} > maxmemory {limit} + {self.slack}")
        finally:
            conns.close()

    # ---------------------------------------------------------------------- check
    def check(self, cluster) -> list[str]:
        """Problems after the run (the cluster converged): every acknowledged key holds its
        value or is gone; nothing a failed write stored is there; eviction happened."""
        problems = list(self.record.problems)
        acked, failed = list(self.record.acked.items()), list(self.record.failed)
        with cluster.leader().redis(socket_timeout=30) as r:
            for start in range(0, len(acked), 500):
                chunk = acked[start:start + 500]
                for (key, value), found in zip(chunk, r.mget([k for k, _ in chunk])):
                    if found is not None and found != value:
                        problems.append(f"{key}: {found[:40]!r} instead of its acknowledged value")
            for start in range(0, len(failed), 500):
                chunk = failed[start:start + 500]
                for key, found in zip(chunk, r.mget(chunk)):
                    if found is not None:
                        problems.append(f"{key}: present although its SET failed")
        if self.ok_writes > 200 and evicted_total(cluster) == 0:
            problems.append("no key was evicted although the workload wrote past maxmemory")
        return problems

    def summary(self) -> str:
        r = self.record
        return (f"eviction: {len(r.acked)} acked / {len(r.failed)} failed / {len(r.unknown)} unknown writes, "
                f"{r.reads} reads ({r.reads_found} found), {r.samples} memory samples, limit {self.maxmemory} B")


def _info_int(reply: Any, field_name: str) -> int:
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split(":", 1)[1])
    raise KeyError(field_name)


def evicted_total(cluster) -> int:
    """The largest `evicted_keys` over the live nodes (each counts what it applied)."""
    best = 0
    for node in cluster.nodes:
        if node.alive:
            with node.redis(socket_timeout=5) as r:
                best = max(best, int(r.info("stats")["evicted_keys"]))
    return best
