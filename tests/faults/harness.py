"""Jepsen-style harness: clients that record every operation, workloads, and the verdict.

Clients are threads in the test process, each talking raw RESP (no client-side retries, so
nothing is hidden) to a random node, and recording for every operation its invoke and
complete times and an outcome:

* ``ok``      - a reply arrived;
* ``fail``    - definitely not applied: the connection could not be made (nothing was sent),
                or the node answered ``-CLUSTERDOWN`` / ``-TRYAGAIN`` / a command error;
* ``unknown`` - sent, but no reply (timeout, connection lost) or ``-UNKNOWN`` / ``-MISCONF``.

Workloads, mixed in every run:

* registers: per-key read / unique-value write / CAS, keys retired after ~100 operations,
  checked for linearizability (``checker.check_history``);
* unique appends: every acknowledged element must be in the final value exactly once, an
  unknown one at most once, nothing else;
* counters: the final value must lie in [acknowledged, acknowledged + unknown] increments.

With ``bank_workers`` (``run_scenario``) or a ``bank`` passed to ``judge``, the atomicity
workload of ``tests/faults/bank.py`` runs alongside (transfers by MULTI/EXEC with WATCH and by
Lua script, atomic snapshots) and its problems fail the verdict too; likewise the queue
workload of ``tests/faults/queue.py`` (``queue_consumers``, or a ``queue`` passed to ``judge``:
LPUSH producers, BLMOVE consumers into their own lists, LREM when done).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.faults.checker import Op, check_history
from tests.faults.workload import ClientWorkload, RespConn, classify
from tests.helpers import ServerCluster, wait_until

if TYPE_CHECKING:  # bank.py and queue.py import this module
    from tests.faults.bank import BankWorkload
    from tests.faults.queue import QueueWorkload

@dataclass
class Record:
    """Everything the workers observed."""

    registers: list[Op] = field(default_factory=list)
    appends: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> element -> outcome
    # element -> (endpoint, invoke, complete) in monotonic seconds since the workload started:
    # where and when each APPEND ran, so a lost or doubled element can be placed in the node logs
    append_trace: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    counters: dict[str, Counter[str]] = field(default_factory=dict)  # key -> outcome -> count
    write_completions: list[float] = field(default_factory=list)  # times of acknowledged writes
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Workload(ClientWorkload):
    """Runs client threads against a set of endpoints until stopped (bounded in ops and time)."""

    def __init__(self, endpoints: Callable[[], list[str]], *, workers: int = 6, timeout: float = 4.0,
                 max_ops: int = 200_000, max_seconds: float = 600, seed: int = 1, prefix: str = "",
                 read_share: float = 0.4, sticky: bool = False, readers: int = 0) -> None:
        super().__init__(endpoints, timeout=timeout, max_seconds=max_seconds, max_ops=max_ops)
        self.readers = readers  # extra clients that only GET registers (after the `workers` ones)
        self.read_share = read_share  # of register operations: GETs
        self.sticky = sticky  # a client stays on its node through failures (keeps reading from a cut-off one)
        self.workers = workers
        self.record = Record()
        self._keys = itertools.count()
        self._prefix = prefix  # keys of different workloads on one cluster must not meet
        self._active = [f"{prefix}r{next(self._keys)}" for _ in range(4)]
        self._key_ops: Counter[str] = Counter()
        self._seed = seed
        self.started = time.monotonic()  # reset by start(); append traces are relative to it
        self.started_wall = time.time()
        self.append_keys = [f"{prefix}a0", f"{prefix}a1"]
        self.counter_keys = [f"{prefix}c0", f"{prefix}c1"]
        for key in self.append_keys:
            self.record.appends[key] = {}
        for key in self.counter_keys:
            self.record.counters[key] = Counter()

    # ------------------------------------------------------------------ lifecycle
    def _launch(self) -> None:
        self.started = time.monotonic()
        self.started_wall = time.time()
        for w in range(self.workers + self.readers):
            self._spawn(self._run, w, name=f"client-{w}")

    def _run(self, worker: int) -> None:
        rng = random.Random(self._seed * 1000 + worker)
        home = self._home(worker, rng)  # each client sticks to one node, like a real connection, and moves on failure
        seen: dict[str, Any] = {}  # this worker's last observed value per register
        counter = itertools.count()
        deadline = self._deadline()
        try:
            while self._running(deadline) and self._take_op():
                conn = home.conn()
                choice = 0.0 if worker >= self.workers else rng.random()  # readers: registers only
                if choice < 0.7:
                    outcome = self._register_op(worker, rng, conn, seen, counter)
                elif choice < 0.85:
                    outcome = self._append_op(worker, rng, conn, counter)
                else:
                    outcome = self._counter_op(rng, conn)
                if outcome != "ok" and not self.sticky:
                    home.move()
        finally:
            home.close()

    # ----------------------------------------------------------------- operations
    def _register_op(self, worker: int, rng: random.Random, conn: RespConn, seen: dict[str, Any], counter: Any) -> str:
        with self._lock:
            key = rng.choice(self._active)
            self._key_ops[key] += 1
            if self._key_ops[key] >= 100:  # retire the key: histories stay small enough to check
                self._active[self._active.index(key)] = f"{self._prefix}r{next(self._keys)}"
        roll = rng.random()
        if roll < self.read_share or worker >= self.workers:
            kind, value, args = "read", None, ("GET", key)
        elif roll < self.read_share + (1 - self.read_share) * 7 / 12 or key not in seen:
            value = f"w{worker}-{next(counter)}"
            kind, args = "write", ("SET", key, value)
        else:
            expected, new = seen[key], f"w{worker}-{next(counter)}"
            kind, value, args = "cas", (expected, new), ("CAS", key, expected, new)
        invoke = time.monotonic()
        outcome, reply = classify(lambda: conn.call(*args))
        complete = time.monotonic()
        result = None
        if outcome == "ok":
            if kind == "read":
                result = None if reply is None else reply.decode()
                if result is not None:
                    seen[key] = result
            elif kind == "write":
                seen[key] = value
                self.record.write_completions.append(complete)
            else:
                result = bool(reply)
                if result:
                    seen[key] = value[1]
                    self.record.write_completions.append(complete)
        if kind == "read" and outcome == "unknown":
            outcome = "fail"  # an unanswered read changed nothing
        self._note(outcome, reply)
        with self._lock:
            self.record.registers.append(
                Op(process=worker, key=key, kind=kind, value=value, result=result, outcome=outcome,
                   invoke=invoke, complete=None if outcome == "unknown" else complete)
            )
        return outcome

    def _append_op(self, worker: int, rng: random.Random, conn: RespConn, counter: Any) -> str:
        key = rng.choice(self.append_keys)
        element = f"{worker}.{next(counter)}"
        invoke = time.monotonic()
        outcome, reply = classify(lambda: conn.call("APPEND", key, element + ","))
        complete = time.monotonic()
        self._note(outcome, reply)
        with self._lock:
            self.record.appends[key][element] = outcome
            self.record.append_trace[element] = (conn.endpoint, invoke - self.started, complete - self.started)
            if outcome == "ok":
                self.record.write_completions.append(time.monotonic())
        return outcome

    def _counter_op(self, rng: random.Random, conn: RespConn) -> str:
        key = rng.choice(self.counter_keys)
        outcome, reply = classify(lambda: conn.call("INCR", key))
        self._note(outcome, reply)
        with self._lock:
            self.record.counters[key][outcome] += 1
            if outcome == "ok":
                self.record.write_completions.append(time.monotonic())
        return outcome


@dataclass
class Report:
    scenario: str
    seconds: float
    ok: int
    failed: int
    unknown: int
    availability: float
    longest_write_gap_s: float
    register_ops: int
    linearizability_violations: list[str]
    undecided_keys: list[str]
    lost_writes: list[str]
    duplicated_writes: list[str]
    counter_problems: list[str]
    converged: bool
    errors: dict[str, int]
    atomicity_problems: list[str] = field(default_factory=list)  # the bank workload's, when it ran
    bank: str = ""  # the bank workload's counts, when it ran
    queue_problems: list[str] = field(default_factory=list)  # the queue workload's, when it ran
    queue: str = ""  # the queue workload's counts, when it ran

    @property
    def passed(self) -> bool:
        return (
            not self.linearizability_violations
            and not self.undecided_keys
            and not self.lost_writes
            and not self.duplicated_writes
            and not self.counter_problems
            and not self.atomicity_problems
            and not self.queue_problems
            and self.converged
        )

    @property
    def problems(self) -> list[str]:
        """Every violation, lost or duplicated write and counter problem, described."""
        return (self.linearizability_violations + self.lost_writes + self.duplicated_writes + self.counter_problems
                + self.atomicity_problems + self.queue_problems)

    def summary(self) -> str:
        return (
            f"{self.scenario}: {self.seconds:.0f}s, ops ok/failed/unknown {self.ok}/{self.failed}/{self.unknown}, "
            f"availability {self.availability:.1%}, longest write gap {self.longest_write_gap_s:.2f}s, "
            f"violations {len(self.linearizability_violations)}, undecided {len(self.undecided_keys)}, "
            f"lost {len(self.lost_writes)}, duplicated {len(self.duplicated_writes)}, "
            f"counter problems {len(self.counter_problems)}, converged {self.converged}"
            + (f"; bank: {self.bank}, atomicity problems {len(self.atomicity_problems)}" if self.bank else "")
            + (f"; queue: {self.queue}, queue problems {len(self.queue_problems)}" if self.queue else "")
        )

    def save(self) -> None:
        """Append to $RAFTCACHE_FAULT_REPORTS (a JSON-lines file) when set: docs/reliability.md."""
        path = os.environ.get("RAFTCACHE_FAULT_REPORTS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({**asdict(self), "passed": self.passed}) + "\n")


def verdict(scenario: str, workload: Workload, *, seconds: float, final_get: Callable[[str], bytes | None],
            converged: bool, min_ok: int, bank: BankWorkload | None = None, queue: QueueWorkload | None = None,
            final_list: Callable[[str], list[bytes]] | None = None) -> Report:
    """Check everything the workload recorded against the final state; never raises."""
    rec = workload.record
    result = check_history(rec.registers, time_limit=20.0)
    violations = [f"{v.key}: {v.explanation}" for v in result.violations]
    lost, duplicated = [], []

    def where(element: str) -> str:
        trace = rec.append_trace.get(element)
        if trace is None:
            return ""
        endpoint, invoke, complete = trace
        wall = time.strftime("%H:%M:%S", time.localtime(workload.started_wall + invoke))
        return f" (via {endpoint}, invoked +{invoke:.2f}s = {wall}, answered after {complete - invoke:.2f}s)"

    for key, elements in rec.appends.items():
        final = final_get(key) or b""
        present = Counter(e for e in final.decode().split(",") if e)
        for element, count in present.items():
            if count > 1:
                duplicated.append(f"{key}: {element} x{count}{where(element)}")
            if element not in elements:
                duplicated.append(f"{key}: {element} was never appended")
            elif elements[element] == "fail":
                lost.append(f"{key}: {element} present although its APPEND failed{where(element)}")
        for element, outcome in elements.items():
            if outcome == "ok" and present[element] == 0:
                lost.append(f"{key}: acknowledged {element} missing{where(element)}")
    counter_problems = []
    for key, outcomes in rec.counters.items():
        value = int(final_get(key) or 0)
        low, high = outcomes["ok"], outcomes["ok"] + outcomes["unknown"]
        if not low <= value <= high:
            counter_problems.append(f"{key} = {value}, expected within [{low}, {high}]")
    completions = sorted(rec.write_completions)
    gap = max((b - a for a, b in itertools.pairwise(completions)), default=seconds)
    attempted = sum(rec.outcomes.values())
    report = Report(
        scenario=scenario,
        seconds=seconds,
        ok=rec.outcomes["ok"],
        failed=rec.outcomes["fail"],
        unknown=rec.outcomes["unknown"],
        availability=rec.outcomes["ok"] / attempted if attempted else 0.0,
        longest_write_gap_s=gap,
        register_ops=len(rec.registers),
        linearizability_violations=violations,
        undecided_keys=[str(k) for k in result.undecided],
        lost_writes=lost,
        duplicated_writes=duplicated,
        counter_problems=counter_problems,
        converged=converged,
        errors=dict(rec.errors),
    )
    if report.ok < min_ok:
        report.counter_problems.append(f"too little work: {report.ok} ok operations < {min_ok}")
    if bank is not None:
        report.atomicity_problems = bank.check(final_get)
        report.bank = bank.summary()
        if bank.ok_transfers == 0:
            report.atomicity_problems.append("too little work: no transfer was acknowledged")
    if queue is not None:
        assert final_list is not None, "the queue's check reads the final lists"
        report.queue_problems = queue.check(final_list)
        report.queue = queue.summary()
    report.save()
    return report


# ------------------------------------------------------------------ scenarios, shared by the fault tests and the soak
FAULT_SECTIONS = {
    # partitioned clusters run on non-loopback (namespace) addresses: a strong secret is required,
    # and the test's clients come from the segment, not loopback (hence protected_mode off)
    "cluster": {"secret": "fault-suite-V7q2Lx9pZr4Kd8Wm3Ns6Bt1Hy5Jc0Fg", "request_timeout_ms": 2000},
    "raft": {"entry_timeout_ms": 1000},
    "server": {"debug_commands": True, "protected_mode": False},
}


def hold(seconds: float) -> None:
    """Keep a fault in place for a while: part of the schedule, not synchronisation."""
    time.sleep(seconds)


def final_reader(cluster) -> Callable[[str], bytes | None]:
    def get(key: str) -> bytes | None:
        with cluster.leader().redis() as r:
            return r.get(key)

    return get


def list_reader(cluster) -> Callable[[str], list[bytes]]:
    def lrange(key: str) -> list[bytes]:
        with cluster.leader().redis() as r:
            return r.lrange(key, 0, -1)

    return lrange


def run_scenario(name: str, cluster, fault: Callable[[], None] | Sequence[Callable[[], None]], *, min_ok: int = 400,
                 workers: int = 6, endpoints: Callable[[], list[str]] | None = None, after: Callable[[], None] | None = None,
                 bank_workers: int = 0, min_transfers: int = 40, queue_consumers: int = 0,
                 min_consumed: int = 40, read_share: float = 0.4, sticky: bool = False,
                 readers: int = 0) -> Report:
    """The workload (with ``bank_workers`` the bank's transfers, with ``queue_consumers`` the
    queue's producers and consumers) before, through and after ``fault``: until enough work
    was acknowledged on each side of it; then ``judge``. ``fault`` may be a sequence of
    faults: one cluster and one history through all of them (a cluster start, the warm-up and
    the checks are paid once), with the load flowing again before each next one."""
    faults = [fault] if callable(fault) else list(fault)
    from tests.faults.bank import BankWorkload  # (bank.py and queue.py import this module)
    from tests.faults.queue import QueueWorkload

    endpoints = endpoints or (lambda: cluster.endpoints)
    seed = hash(name) % 1000
    bank = BankWorkload(endpoints, workers=bank_workers, seed=seed).start() if bank_workers else None
    queue = QueueWorkload(endpoints, consumers=queue_consumers, seed=seed).start() if queue_consumers else None
    workload = Workload(endpoints, workers=workers, seed=seed, read_share=read_share, sticky=sticky,
                        readers=readers).start()
    started = time.monotonic()
    transfers = (lambda: bank.ok_transfers) if bank else (lambda: math.inf)  # no bank: nothing to wait for
    consumed = (lambda: queue.consumed) if queue else (lambda: math.inf)

    def flowing(ops: int, moved: int, done: float) -> Callable[[], bool]:
        return lambda: workload.ok_ops >= ops and transfers() >= moved and consumed() >= done

    try:
        wait_until(flowing(150, min_transfers // 4, min_consumed // 4), 30, 0.05, "load before the fault")
        for i, one in enumerate(faults):
            if i:
                wait_until(flowing(workload.ok_ops + 150, transfers() + min_transfers // 4, consumed() + min_consumed // 4),
                           60, 0.05, f"load to flow again before fault {i + 1}")
            one()
        wait_until(flowing(workload.ok_ops + 300, transfers() + min_transfers, consumed() + min_consumed), 60, 0.05,
                   "load to flow after the fault")
    finally:
        try:
            workload.stop()
        finally:
            try:
                if bank is not None:
                    bank.stop()
            finally:
                if queue is not None:
                    queue.stop()
    return judge(name, cluster, workload, started, min_ok=min_ok, after=after, bank=bank, queue=queue)


def judge(name: str, cluster, workload: Workload, started: float, *, min_ok: int, converge_timeout: float = 60.0,
          after: Callable[[], None] | None = None, bank: BankWorkload | None = None,
          queue: QueueWorkload | None = None) -> Report:
    """After a stopped workload: heal what a fault left behind, wait for the replicas to
    converge, check the history, print the report and fail on any problem."""
    for node in cluster.nodes:
        if node.alive:
            node.resume()
        else:
            node.start()
    if after is not None:
        after()
    try:
        # RAFTCACHE_CONVERGE_TIMEOUT lowers the bar when hunting slow convergence
        cluster.converged(timeout=float(os.environ.get("RAFTCACHE_CONVERGE_TIMEOUT", converge_timeout)))
        converged = True
    except AssertionError as exc:
        converged = False
        print(f"{exc}\n{divergence_report(cluster)}")
    report = verdict(name, workload, seconds=time.monotonic() - started, final_get=final_reader(cluster),
                     converged=converged, min_ok=min_ok, bank=bank, queue=queue, final_list=list_reader(cluster))
    print("\n" + report.summary(), flush=True)
    assert report.passed, report.summary() + "\n" + "\n".join(report.problems[:20])
    return report


def divergence_report(cluster) -> str:
    """What each replica says after a failed convergence wait, and the tail of its log."""
    lines = []
    for node in cluster.nodes:
        try:
            info = node.info()
            state = {k: info.get(k) for k in ("raft_state", "raft_leader_id", "raft_term", "raft_commit_index",
                                              "raft_applied_index", "raft_log_len")}
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            state = {"error": repr(exc)}
        lines.append(f"--- {node.id}: {state}\n{node.log_text()[-2500:]}")
    return "\n".join(lines)


@contextlib.contextmanager
def partitioned_cluster(tmp_path, sections: dict[str, dict[str, Any]], *, required: bool = True) -> Iterator[ServerCluster]:
    """A started 3-node cluster whose nodes live in their own network namespaces (real
    partitions through `cluster.network`). Where namespaces are unavailable the test is
    skipped, or, with `required=False`, runs on a plain loopback cluster (`network` None)."""
    from tests.faults import netns

    ok, why = netns.available()
    if not ok and required:
        pytest.skip(f"network namespaces unavailable: {why}")
    network = None
    if ok:
        netns.cleanup_stale()
        network = netns.Network(3)
        cl = ServerCluster(tmp_path, sections=sections, hosts=[network.node_ip(i) for i in range(3)],
                           exec_prefixes=[network.exec_prefix(i) for i in range(3)])
    else:
        cl = ServerCluster(tmp_path, sections=sections)
    cl.network = network
    try:
        cl.start()
        yield cl
    finally:
        if network is not None:
            network.heal()
        for node in cl.nodes:
            if node.alive:
                node.resume()
        cl.close()
        if network is not None:
            network.close()


