"""The queue workload: a reliable work queue on lists and blocking pops.

Producers ``LPUSH`` unique items onto one queue. Consumers take them with ``BLMOVE queue
mine RIGHT LEFT <short timeout>`` into a list of their own, "process" them and ``LREM mine
1 item`` when done: the reliable-queue pattern the README recommends. A consumer whose call
went wrong (no reply, an error) looks into its own list (``LRANGE``) and finishes what it
finds there, as a restarted consumer would: that is how an item moved by a BLMOVE whose reply
was lost still gets processed. Raw RESP through ``workload.RespConn``, no retries.

Outcomes per call are the harness's (``ok``, ``fail``: certainly not applied, ``unknown``:
sent, no reply). What the checker (:func:`check_queue`, pure) demands of the final state
(the queue and every consumer's list, read after the replicas converged):

* an item whose LPUSH was acknowledged was consumed exactly once (one ``LREM`` answered 1)
  or is still queued (in the queue or a consumer's list), and not both;
* an item whose LPUSH failed appears nowhere, was never delivered, never removed;
* an item whose LPUSH is ambiguous (no reply) was applied or not: both are allowed, and the
  summary says which happened to each (applied: delivered, queued or consumed; not applied:
  nowhere; undetermined: only an ambiguous LREM could have removed it);
* no item is delivered twice, consumed twice, or queued twice; nothing appears that was
  never pushed; a delivered item went to the consumer that received it;
* an ambiguous BLMOVE either moved an item (it then turns up in that consumer's list without
  a reply having named it: counted as "moved without a reply") or did not: both allowed.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.faults.workload import ClientWorkload, RespConn, classify

OUTCOMES = ("ok", "fail", "unknown")


@dataclass
class Item:
    id: str
    push: str = "fail"  # the LPUSH's outcome
    endpoint: str = ""
    invoke: float = 0.0
    delivered_to: list[int] = field(default_factory=list)  # consumers whose BLMOVE reply named it
    recovered_by: list[int] = field(default_factory=list)  # found in a consumer's list with no reply naming it
    removed: int = 0  # LREM answered 1
    removed_maybe: int = 0  # LREM sent, no answer
    lrem_zero: int = 0  # LREM answered 0 (an earlier ambiguous LREM had removed it)


@dataclass
class QueueRecord:
    queue_key: str
    consumer_keys: list[str]
    items: dict[str, Item] = field(default_factory=dict)
    moves: Counter[str] = field(default_factory=Counter)  # ok / empty (timed out) / fail / unknown
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # replies no correct server gives
    strangers: list[tuple[int, str]] = field(default_factory=list)  # (consumer, item) never pushed
    started: float = 0.0


class QueueWorkload(ClientWorkload):
    """Producer and consumer threads (the interface of ``harness.Workload``: start, stop,
    ``ok_ops``, ``record``)."""

    def __init__(self, endpoints: Callable[[], list[str]], *, producers: int = 2, consumers: int = 3,
                 timeout: float = 4.0, block_s: float = 0.5, seed: int = 1, prefix: str = "",
                 max_seconds: float = 600) -> None:
        super().__init__(endpoints, timeout=timeout, max_seconds=max_seconds)
        self.producers = producers
        self.consumers = consumers
        self.block_s = block_s  # BLMOVE's timeout: short, so consumers notice stop() and faults
        self.record = QueueRecord(f"{prefix}q:jobs", [f"{prefix}q:mine:{c}" for c in range(consumers)])
        self._seed = seed
        self._final: dict[str, list[str]] | None = None  # the lists check() read

    # ------------------------------------------------------------------ lifecycle
    def _launch(self) -> None:
        self.record.started = time.monotonic()
        for p in range(self.producers):
            self._spawn(self._produce, p, name=f"producer-{p}")
        for c in range(self.consumers):
            self._spawn(self._consume, c, name=f"consumer-{c}")

    def _join_timeout(self) -> float:
        return super()._join_timeout() + self.block_s  # a consumer may be inside a BLMOVE

    @property
    def consumed(self) -> int:
        with self._lock:
            return sum(item.removed for item in self.record.items.values())

    def check(self, final_list: Callable[[str], list[bytes]]) -> list[str]:
        rec = self.record
        final = {key: [v.decode() for v in final_list(key)] for key in [rec.queue_key, *rec.consumer_keys]}
        self._final = final
        return check_queue(rec, final)

    def summary(self) -> str:
        """Counts, and what became of the ambiguous calls (against the final lists once checked)."""
        with self._lock:
            return queue_summary(self.record, self._final)

    # ------------------------------------------------------------------ producers
    def _produce(self, worker: int) -> None:
        rng = random.Random(self._seed * 104_729 + worker)
        home = self._home(worker, rng)
        serial = itertools.count()
        deadline = self._deadline()
        try:
            while self._running(deadline):
                conn = home.conn()
                item = Item(f"p{worker}.{next(serial)}", endpoint=conn.endpoint, invoke=time.monotonic())
                with self._lock:
                    self.record.items[item.id] = item
                outcome, reply = classify(lambda conn=conn, item=item: conn.call("LPUSH", self.record.queue_key, item.id))
                if outcome == "ok" and not isinstance(reply, int):
                    self._problem(f"LPUSH {item.id} answered {reply!r}")
                with self._lock:
                    item.push = outcome
                self._note(outcome, reply)
                if outcome != "ok":
                    home.move()
                # producers slower than the consumers: the queue drains and consumers block (pacing, not sync)
                time.sleep(rng.uniform(0.02, 0.12))
        finally:
            home.close()

    # ------------------------------------------------------------------ consumers
    def _consume(self, worker: int) -> None:
        rng = random.Random(self._seed * 15_485_863 + worker)
        home = self._home(worker, rng)
        mine = self.record.consumer_keys[worker]
        deadline = self._deadline()
        recover = True  # a consumer starts by finishing what its list holds
        try:
            while self._running(deadline):
                conn = home.conn()
                ok = self._recover(conn, worker, mine) if recover else self._take(conn, worker, mine)
                recover = not ok
                if not ok:
                    home.move()
        finally:
            home.close()

    def _take(self, conn: RespConn, worker: int, mine: str) -> bool:
        """One BLMOVE and, if it delivered, the LREM. False when something went wrong."""
        outcome, reply = classify(lambda: conn.call("BLMOVE", self.record.queue_key, mine, "RIGHT", "LEFT", self.block_s))
        self._note(outcome, reply)
        if outcome != "ok":
            with self._lock:
                self.record.moves[outcome] += 1
            return False
        if reply is None:
            with self._lock:
                self.record.moves["empty"] += 1
            return True
        if not isinstance(reply, bytes):
            self._problem(f"BLMOVE into {mine} answered {reply!r}")
            return False
        item_id = reply.decode()
        with self._lock:
            self.record.moves["ok"] += 1
            item = self.record.items.get(item_id)
            if item is None:
                self.record.strangers.append((worker, item_id))
            else:
                item.delivered_to.append(worker)
        return self._finish(conn, mine, item_id)

    def _recover(self, conn: RespConn, worker: int, mine: str) -> bool:
        """Finish every item left in this consumer's list (moved by a BLMOVE whose reply was
        lost, or whose LREM did not go through)."""
        outcome, reply = classify(lambda: conn.call("LRANGE", mine, 0, -1))
        self._note("fail" if outcome == "unknown" else outcome, reply)  # an unanswered read changed nothing
        if outcome != "ok":
            return False
        for raw in reply:
            item_id = raw.decode()
            with self._lock:
                item = self.record.items.get(item_id)
                if item is None:
                    self.record.strangers.append((worker, item_id))
                    continue
                if worker not in item.delivered_to and worker not in item.recovered_by:
                    item.recovered_by.append(worker)
            if not self._finish(conn, mine, item_id):
                return False
        return True

    def _finish(self, conn: RespConn, mine: str, item_id: str) -> bool:
        outcome, reply = classify(lambda: conn.call("LREM", mine, 1, item_id))
        self._note(outcome, reply)
        with self._lock:
            item = self.record.items.get(item_id)
            if item is not None:
                if outcome == "ok" and reply == 1:
                    item.removed += 1
                elif outcome == "ok" and reply == 0:
                    item.lrem_zero += 1
                elif outcome == "unknown":
                    item.removed_maybe += 1
        if outcome == "ok" and reply not in (0, 1):
            self._problem(f"LREM {mine} 1 {item_id} answered {reply!r}")
        return outcome == "ok"


# ---------------------------------------------------------------------- the checker
def check_queue(rec: QueueRecord, final: dict[str, list[str]], limit: int = 20) -> list[str]:
    """Every problem the history and the final lists show (empty: nothing lost, nothing
    duplicated, nothing invented). Pure: reads only the record and the final lists."""
    problems = list(rec.problems)
    where: dict[str, list[str]] = {}
    for key, values in final.items():
        for value in values:
            where.setdefault(value, []).append(key)
    for key, values in where.items():
        if key not in rec.items:
            problems.append(f"{key!r} is queued in {values} but was never pushed")
    for worker, item_id in rec.strangers:
        problems.append(f"consumer {worker} received {item_id!r}, which was never pushed")
    for item in rec.items.values():
        places = where.get(item.id, [])
        held = len(places) + item.removed  # copies that exist or certainly existed and were consumed
        seen = bool(places or item.removed or item.delivered_to or item.recovered_by)
        what = f"item {item.id} (LPUSH {item.push} via {item.endpoint} at +{item.invoke - rec.started:.2f}s)"
        if len(item.delivered_to) > 1:
            problems.append(f"{what} delivered twice, to consumers {item.delivered_to}")
        if held > 1:
            problems.append(f"{what} duplicated: queued in {places}, consumed {item.removed} time(s)")
        if item.push == "fail" and seen:
            problems.append(f"{what} was applied although its LPUSH failed: queued in {places}, "
                            f"delivered to {item.delivered_to}, consumed {item.removed} time(s)")
        if item.push == "ok" and held == 0 and not item.removed_maybe:
            problems.append(f"acknowledged {what} lost: not queued, never consumed"
                            + (f" (it was delivered to {item.delivered_to})" if item.delivered_to else ""))
        for worker in item.delivered_to:
            mine = rec.consumer_keys[worker]
            if places and places != [mine]:
                problems.append(f"{what} was delivered to consumer {worker} but is queued in {places}")
    if not any(item.push == "ok" for item in rec.items.values()):
        problems.append("too little work: no LPUSH was acknowledged")
    if not any(item.removed for item in rec.items.values()):
        problems.append("too little work: no item was consumed")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def ambiguous_pushes(rec: QueueRecord, final: dict[str, list[str]] | None = None) -> Counter[str]:
    """What became of each LPUSH with no reply: applied / not applied / undetermined."""
    queued = {value for values in (final or {}).values() for value in values}
    verdicts: Counter[str] = Counter()
    for item in rec.items.values():
        if item.push != "unknown":
            continue
        if item.id in queued or item.removed or item.delivered_to or item.recovered_by or item.lrem_zero:
            verdicts["applied"] += 1
        elif item.removed_maybe:
            verdicts["undetermined"] += 1
        elif final is not None:
            verdicts["not applied"] += 1
        else:
            verdicts["not seen yet"] += 1
    return verdicts


def queue_summary(rec: QueueRecord, final: dict[str, list[str]] | None = None) -> str:
    pushes = Counter(item.push for item in rec.items.values())
    ambiguous = ambiguous_pushes(rec, final)
    queued = sum(len(values) for values in (final or {}).values())
    recovered = sum(bool(item.recovered_by) for item in rec.items.values())
    consumed = sum(item.removed for item in rec.items.values())
    return (f"LPUSH ok/failed/unknown {'/'.join(str(pushes[o]) for o in OUTCOMES)} "
            f"(of the unknown ones: applied {ambiguous['applied']}, not applied {ambiguous['not applied']}, "
            f"undetermined {ambiguous['undetermined']}" + (f", not seen yet {ambiguous['not seen yet']}" if final is None else "")
            + f"); BLMOVE delivered/empty/failed/unknown {rec.moves['ok']}/{rec.moves['empty']}/{rec.moves['fail']}/"
            f"{rec.moves['unknown']}, unknown ones that moved an item {recovered}; consumed {consumed}"
            + (f", still queued {queued}" if final is not None else ""))
