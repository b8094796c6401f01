"""The watch workload: watchers that must see every committed change once, in log order,
while the nodes they watch die, stop and are cut off.

Writers ``SET`` unique values (``<writer>.<n>``) to a few keys of their own, through raw RESP
to a node of their choice (outcomes ``ok`` / ``fail`` / ``unknown`` as the harness records
them). Watchers are ``raftcache.Client.watch("<prefix>*", values=True)`` iterators, each
starting on another node; they resume through the other nodes by themselves (from the last
seq they saw) when their node fails. When the writers stop, a sentinel ``SET`` through the
leader tells each watcher it has caught up. The checker (:func:`check_watch`, pure) demands:

* per watcher, seqs strictly increase (no event twice, none out of order);
* every acknowledged write is seen by every watcher exactly once; a write whose outcome is
  unknown is seen at most once, and by every watcher or by none; a failed write never;
* per key, a writer's acknowledged values appear in the order the writer wrote them (its
  writes to a key are sequential, so that is their log order);
* all watchers saw the same (seq, key, value) sequence: a watcher that resumed elsewhere saw
  what the others saw;
* a watch that ended with WatchCompactedError (its resume point left every node's history,
  possible when every node restarted from a snapshot) is reported, and checked only up to
  where it ended.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from raftcache import Client, RetryPolicy
from raftcache.errors import WatchCompactedError
from tests.faults.workload import ClientWorkload, classify

SENTINEL = "end"


@dataclass
class WatchRecord:
    writes: dict[str, tuple[str, str]] = field(default_factory=dict)  # value -> (key, outcome)
    order: dict[str, list[str]] = field(default_factory=dict)  # key -> values in the order written
    seen: list[list[tuple[int, str, str]]] = field(default_factory=list)  # per watcher: (seq, key, value)
    compacted: list[str] = field(default_factory=list)  # watchers whose stream ended compacted
    resumes: list[int] = field(default_factory=list)  # reconnections per watcher
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # watchers that gave up (no node served them)


class WatchWorkload(ClientWorkload):
    """Writer and watcher threads (``start``, ``stop``, ``ok_writes``, ``check``, ``summary``)."""

    def __init__(self, endpoints: Callable[[], list[str]], *, writers: int = 2, watchers: int = 3, keys: int = 4,
                 timeout: float = 4.0, seed: int = 1, prefix: str = "wt:") -> None:
        super().__init__(endpoints, timeout=timeout)
        self.writers = writers
        self.watchers = watchers
        self.keys = keys
        self.seed = seed
        self.prefix = prefix
        self.record = WatchRecord(seen=[[] for _ in range(watchers)], resumes=[0] * watchers)
        self._watching = self._new_crew()  # they end at the sentinel; the workload's own crew is the writers
        self._clients: list[Client] = []
        self._done = [threading.Event() for _ in range(watchers)]

    def _launch(self) -> None:
        endpoints = self.endpoints()
        for w in range(self.watchers):
            order = endpoints[w % len(endpoints):] + endpoints[: w % len(endpoints)]  # each starts elsewhere
            client = Client(order, retry=RetryPolicy(deadline=60))
            self._clients.append(client)
            stream = client.watch(self.prefix + "*", values=True)  # from now: before any write
            self._watching.start(self._watch, w, stream, client)
        for w in range(self.writers):
            self._spawn(self._write, w)

    def stop(self, catch_up_s: float = 30.0) -> None:
        """Stop writing, mark the end through the cluster, let the watchers catch up to it."""
        try:
            self._crew.stop(self.timeout + 30)  # no write of theirs may land after the sentinel
            with Client(self.endpoints(), retry=RetryPolicy(deadline=30)) as client:
                client.set(self.prefix + SENTINEL, "done")
            deadline = time.monotonic() + catch_up_s
            for done in self._done:
                done.wait(max(0.0, deadline - time.monotonic()))
        finally:
            self._watching.join(catch_up_s + 30)
            for client in self._clients:
                client.close()

    @property
    def ok_writes(self) -> int:
        return self.record.outcomes["ok"]

    def _write(self, writer: int) -> None:
        rng = random.Random(self.seed * 7919 + writer)
        home = self._home(writer, rng)
        serial = itertools.count()
        try:
            while self._running():
                conn = home.conn()
                key = f"{self.prefix}{writer}:{rng.randrange(self.keys)}"
                value = f"{writer}.{next(serial)}"
                outcome, _ = classify(lambda conn=conn, key=key, value=value: conn.call("SET", key, value))
                with self._lock:
                    self.record.writes[value] = (key, outcome)
                    self.record.order.setdefault(key, []).append(value)
                    self.record.outcomes[outcome] += 1
                if outcome != "ok":
                    home.move()
                time.sleep(rng.uniform(0.002, 0.01))
        finally:
            home.close()

    def _watch(self, w: int, stream, client: Client) -> None:
        seen = self.record.seen[w]
        sentinel = (self.prefix + SENTINEL).encode()
        try:
            for event in stream:
                if event.key == sentinel:
                    break
                seen.append((event.seq, event.key.decode(), (event.value or b"").decode()))
        except WatchCompactedError as exc:
            with self._lock:
                self.record.compacted.append(f"watcher {w}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the checker reports it with the rest
            with self._lock:
                self.record.failures.append(f"watcher {w}: {type(exc).__name__}: {exc}")
        finally:
            self._done[w].set()

    def check(self) -> list[str]:
        with self._lock:
            return check_watch(self.record)

    def summary(self) -> str:
        rec = self.record
        lengths = [len(s) for s in rec.seen]
        return (f"watch: writes {dict(rec.outcomes)}, events seen per watcher {lengths}, "
                f"compacted {len(rec.compacted)}")


def check_watch(rec: WatchRecord, limit: int = 20) -> list[str]:
    problems: list[str] = list(rec.failures)
    complete = [w for w in range(len(rec.seen)) if not any(c.startswith(f"watcher {w}:") for c in rec.compacted)]
    for w, seen in enumerate(rec.seen):
        seqs = [s for s, _, _ in seen]
        for a, b in itertools.pairwise(seqs):
            if b <= a:
                problems.append(f"watcher {w}: seq {b} after {a} (repeated or out of order)")
                break
        counts = Counter(value for _, _, value in seen)
        for value, n in counts.items():
            if value not in rec.writes:
                problems.append(f"watcher {w}: value {value!r} was never written")
            elif rec.writes[value][1] == "fail":
                problems.append(f"watcher {w}: value {value!r} seen although its SET failed")
            if n > 1:
                problems.append(f"watcher {w}: value {value!r} seen {n} times")
        if w in complete:
            missing = [v for v, (_, outcome) in rec.writes.items() if outcome == "ok" and v not in counts]
            if missing:
                problems.append(f"watcher {w}: {len(missing)} acknowledged writes never seen, e.g. {missing[:5]}")
        # a writer's acknowledged values to one key come in the order it wrote them
        position = {value: i for i, (_, _, value) in enumerate(seen)}
        for key, values in rec.order.items():
            acked = [v for v in values if rec.writes[v][1] == "ok" and v in position]
            if [position[v] for v in acked] != sorted(position[v] for v in acked):
                problems.append(f"watcher {w}: the writes to {key} arrived out of their order")
    # an unknown write is seen by every complete watcher or by none
    for value, (key, outcome) in rec.writes.items():
        if outcome == "unknown" and len(complete) > 1:
            saw = {w for w in complete if any(v == value for _, _, v in rec.seen[w])}
            if saw and len(saw) != len(complete):
                problems.append(f"unknown write {value!r} to {key} seen by watchers {sorted(saw)} only")
    # every complete watcher saw the same sequence
    if len(complete) > 1:
        first = rec.seen[complete[0]]
        for w in complete[1:]:
            if rec.seen[w] != first:
                at = next((i for i, (x, y) in enumerate(zip(first, rec.seen[w])) if x != y), min(len(first), len(rec.seen[w])))
                problems.append(f"watchers {complete[0]} and {w} differ at event {at}")
    if not any(rec.seen):
        problems.append("no watcher saw any event")
    return problems[:limit]
