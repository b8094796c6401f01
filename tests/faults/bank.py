"""The atomicity workload: a bank whose transfers run as MULTI/EXEC with WATCH and as Lua scripts.

Accounts are string keys holding integer balances; their total never changes. Client threads
(raw RESP through ``workload.RespConn``, no retries, like the rest of the fault suite) run:

* a **WATCH transfer**: ``WATCH src dst``, ``MGET src dst``, and if the funds suffice
  ``MULTI``, ``SET src a-x``, ``SET dst b+x``, ``APPEND journal "<id>,"``, ``EXEC``;
* a **script transfer**: ``EVALSHA`` (or ``EVAL``) of :data:`TRANSFER_SCRIPT`, which reads
  both balances, refuses an overdraft (``{0, a, b}``) or moves the amount and appends the id
  (``{1, a, b}``);
* a **snapshot**: every balance and the journal in one atomic read, by ``MULTI``/``MGET``/
  ``EXEC``, by a read-only script (``EVAL_RO``), or by one plain ``MGET``.

Outcomes are the harness's: ``ok`` (a reply), ``fail`` (definitely not applied: nothing was
sent, ``-CLUSTERDOWN``, ``-EXECABORT``, an EXEC aborted by WATCH (nil), anything that went
wrong before EXEC was sent: the connection is then closed, which drops the transaction),
``unknown`` (EXEC or the script sent, no reply or ``-UNKNOWN``), plus ``refused`` (the reply
said: not enough funds, nothing moved).

Why the journal makes the whole history checkable: every transfer appends its unique id to
one journal key in the same atomic step that moves the money, so the final journal is the
serial order in which the cluster applied every state change. Replaying it from the initial
balances gives the state after each step; a history is linearizable exactly when each
operation's observations match the state at some position and the positions respect real
time. :func:`check_bank` checks that (it is pure: no I/O), plus what is cheaper to say
directly: the total, no transfer applied twice or lost, no failed one applied, no overdraft.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftcache.resp import ErrorReply
from tests.faults.workload import ClientWorkload, RespConn, classify

# KEYS: source, target, journal; ARGV: amount, transfer id. Reading both balances and the
# overdraft check happen inside the script, so nothing can change between them and the writes.
TRANSFER_SCRIPT = b"""\
local a = tonumber(redis.call('GET', KEYS[1]))
local b = tonumber(redis.call('GET', KEYS[2]))
local x = tonumber(ARGV[1])
if a < x then return {0, a, b} end
redis.call('SET', KEYS[1], a - x)
redis.call('SET', KEYS[2], b + x)
redis.call('APPEND', KEYS[3], ARGV[2] .. ',')
return {1, a, b}
"""
TRANSFER_SHA = hashlib.sha1(TRANSFER_SCRIPT).hexdigest()

# KEYS: every account, then the journal. Read-only: EVAL_RO takes the read path.
SNAPSHOT_SCRIPT = b"return redis.call('MGET', unpack(KEYS))"

OUTCOMES = ("ok", "fail", "unknown", "refused")


@dataclass
class Transfer:
    id: str
    via: str  # "watch" | "script"
    source: int  # account indexes
    target: int
    amount: int
    endpoint: str
    invoke: float
    complete: float | None = None  # None while unknown
    outcome: str = "fail"
    seen: tuple[int, int] | None = None  # (source, target) balances the transfer read and acted on
    aborted: bool = False  # EXEC answered nil: a watched key changed


@dataclass
class Snapshot:
    via: str  # "multi" | "script" | "mget"
    endpoint: str
    invoke: float
    complete: float
    balances: tuple[int | None, ...]
    journal: tuple[str, ...]


@dataclass
class BankRecord:
    accounts: list[str]
    journal_key: str
    initial: int  # every account's starting balance
    transfers: dict[str, Transfer] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # transfers and snapshots
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # replies no correct server gives
    started_wall: float = 0.0
    started: float = 0.0

    @property
    def total(self) -> int:
        return self.initial * len(self.accounts)


class _Abandoned(Exception):
    """A step before EXEC did not go as planned: the transaction was never submitted."""


class BankWorkload(ClientWorkload):
    """Bank client threads against a set of endpoints until stopped (the interface of
    ``harness.Workload``: start, stop, ``ok_ops``, ``record``)."""

    def __init__(self, endpoints: Callable[[], list[str]], *, workers: int = 3, accounts: int = 8,
                 balance: int = 100, timeout: float = 4.0, seed: int = 1, prefix: str = "",
                 max_seconds: float = 600, setup_timeout: float = 60.0) -> None:
        super().__init__(endpoints, timeout=timeout, max_seconds=max_seconds)
        self.workers = workers
        self.setup_timeout = setup_timeout
        self.record = BankRecord([f"{prefix}bank:{i}" for i in range(accounts)], f"{prefix}bank:journal", balance)
        self._seed = seed

    # ------------------------------------------------------------------ lifecycle
    def _prepare(self) -> None:
        self._open_accounts(self.setup_timeout)

    def _launch(self) -> None:
        self.record.started, self.record.started_wall = time.monotonic(), time.time()
        for w in range(self.workers):
            self._spawn(self._run, w, name=f"bank-{w}")

    @property
    def ok_transfers(self) -> int:
        with self._lock:
            return sum(t.outcome == "ok" for t in self.record.transfers.values())

    def check(self, final_get: Callable[[str], bytes | None]) -> list[str]:
        """The problems :func:`check_bank` finds against the cluster's final state."""
        rec = self.record
        balances = [None if (v := final_get(a)) is None else int(v) for a in rec.accounts]
        return check_bank(rec, balances, final_get(rec.journal_key))

    def summary(self) -> str:
        """Outcomes per path, e.g. for a scenario's one-line report."""
        with self._lock:
            outcomes = Counter((t.via, t.outcome) for t in self.record.transfers.values())
            snapshots = Counter(s.via for s in self.record.snapshots)
            aborted = self.record.errors["EXEC-nil"]
        counts = {via: "/".join(str(outcomes[via, o]) for o in OUTCOMES) for via in ("watch", "script")}
        return (f"transfers ok/failed/unknown/refused by WATCH {counts['watch']} ({aborted} EXEC aborted), "
                f"by script {counts['script']}; snapshots by MULTI/script/MGET "
                f"{snapshots['multi']}/{snapshots['script']}/{snapshots['mget']}")

    def _open_accounts(self, timeout: float) -> None:
        """Set every balance and load the transfer script, on a healthy cluster, before any
        client runs: both are idempotent, so a try with no answer is simply repeated."""
        rec = self.record
        steps = [("MSET", *itertools.chain.from_iterable((a, rec.initial) for a in rec.accounts)),
                 ("DEL", rec.journal_key), ("SCRIPT", "LOAD", TRANSFER_SCRIPT)]
        deadline = time.monotonic() + timeout
        for i, args in enumerate(steps):
            while True:
                endpoints = self.endpoints()
                conn = RespConn(endpoints[i % len(endpoints)], self.timeout)
                outcome, reply = classify(lambda conn=conn, args=args: conn.call(*args))
                conn.close()
                if outcome == "ok":
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"bank setup: {args[0]} never succeeded (last reply {reply!r})")
                time.sleep(0.2)
        if reply.decode() != TRANSFER_SHA:
            raise AssertionError(f"SCRIPT LOAD answered {reply!r}, expected {TRANSFER_SHA}")

    def _run(self, worker: int) -> None:
        rng = random.Random(self._seed * 7919 + worker)
        home = self._home(worker, rng)  # sticks to one node, moves on after a failure (as harness.Workload)
        serial = itertools.count()
        deadline = self._deadline()
        try:
            while self._running(deadline):
                conn = home.conn()
                roll = rng.random()
                if roll < 0.7:
                    source, target = rng.sample(range(len(self.record.accounts)), 2)
                    transfer = Transfer(f"{worker}.{next(serial)}", "watch" if roll < 0.35 else "script",
                                        source, target, rng.randint(1, 40), conn.endpoint, time.monotonic())
                    with self._lock:
                        self.record.transfers[transfer.id] = transfer
                    run = self._watch_transfer if transfer.via == "watch" else self._script_transfer
                    outcome, reply = run(conn, transfer, rng)
                    with self._lock:
                        transfer.outcome = outcome
                        transfer.complete = None if outcome == "unknown" else time.monotonic()
                else:
                    outcome, reply = self._snapshot(conn, rng)
                self._note(outcome, reply)
                if outcome not in ("ok", "refused"):
                    home.move()
        finally:
            home.close()

    # ----------------------------------------------------------------- operations
    @staticmethod
    def _before_exec(conn: RespConn, *args: Any, expect: str | None = None) -> Any:
        outcome, reply = classify(lambda: conn.call(*args))
        if outcome != "ok" or (expect is not None and reply != expect):  # +OK parses as SimpleString, a str
            conn.close()  # the server drops the connection's WATCH and MULTI state with it
            raise _Abandoned(reply)
        return reply

    def _watch_transfer(self, conn: RespConn, t: Transfer, rng: random.Random) -> tuple[str, Any]:
        rec = self.record
        src, dst = rec.accounts[t.source], rec.accounts[t.target]
        try:
            self._before_exec(conn, "WATCH", src, dst, expect="OK")
            values = self._before_exec(conn, "MGET", src, dst)
            if None in values:  # an account vanished: the final state will show it too
                self._problem(f"transfer {t.id}: MGET {src} {dst} via {t.endpoint} answered {values!r}")
                conn.close()
                return "fail", None
            a, b = (int(v) for v in values)
            t.seen = (a, b)
            if a < t.amount:
                self._before_exec(conn, "UNWATCH", expect="OK")
                return "refused", None
            self._before_exec(conn, "MULTI", expect="OK")
            for args in (("SET", src, a - t.amount), ("SET", dst, b + t.amount), ("APPEND", rec.journal_key, t.id + ",")):
                self._before_exec(conn, *args, expect="QUEUED")
        except _Abandoned as exc:
            return "fail", exc.args[0]
        outcome, reply = classify(lambda: conn.call("EXEC"))
        if outcome == "ok" and reply is None:
            with self._lock:
                rec.errors["EXEC-nil"] += 1
            t.aborted = True
            return "fail", None  # a watched key moved: aborted, nothing applied
        if outcome == "ok" and (not isinstance(reply, list) or len(reply) != 3 or any(isinstance(r, ErrorReply) for r in reply)):
            self._problem(f"transfer {t.id}: EXEC answered {reply!r}")
        return outcome, reply

    def _script_transfer(self, conn: RespConn, t: Transfer, rng: random.Random) -> tuple[str, Any]:
        rec = self.record
        by_sha = rng.random() < 0.5
        head = ("EVALSHA", TRANSFER_SHA) if by_sha else ("EVAL", TRANSFER_SCRIPT)
        args = (*head, 3, rec.accounts[t.source], rec.accounts[t.target], rec.journal_key, t.amount, t.id)
        outcome, reply = classify(lambda: conn.call(*args))
        if isinstance(reply, ErrorReply) and reply.prefix == "NOSCRIPT":
            self._problem(f"transfer {t.id} via {t.endpoint}: NOSCRIPT, although the script was loaded "
                          f"(SCRIPT LOAD acknowledged) before the workload started")
        if outcome != "ok":
            return outcome, reply
        if not (isinstance(reply, list) and len(reply) == 3 and reply[0] in (0, 1)):
            self._problem(f"transfer {t.id}: the script answered {reply!r}")
            return "unknown", reply
        t.seen = (reply[1], reply[2])
        return ("ok" if reply[0] == 1 else "refused"), reply

    def _snapshot(self, conn: RespConn, rng: random.Random) -> tuple[str, Any]:
        rec = self.record
        keys = (*rec.accounts, rec.journal_key)
        roll = rng.random()
        invoke = time.monotonic()
        if roll < 0.4:
            via = "multi"
            try:
                self._before_exec(conn, "MULTI", expect="OK")
                self._before_exec(conn, "MGET", *keys, expect="QUEUED")
            except _Abandoned as exc:
                return "fail", exc.args[0]
            outcome, reply = classify(lambda: conn.call("EXEC"))
            if outcome == "ok" and isinstance(reply, list) and len(reply) == 1:
                reply = reply[0]
        elif roll < 0.7:
            via = "script"
            outcome, reply = classify(lambda: conn.call("EVAL_RO", SNAPSHOT_SCRIPT, len(keys), *keys))
        else:
            via = "mget"
            outcome, reply = classify(lambda: conn.call("MGET", *keys))
        complete = time.monotonic()
        if outcome == "unknown":
            outcome = "fail"  # an unanswered read changed nothing
        if outcome != "ok":
            return outcome, reply
        if not (isinstance(reply, list) and len(reply) == len(keys)):
            self._problem(f"snapshot via {via}: answered {reply!r}")
            return "fail", reply
        balances = tuple(None if v is None else int(v) for v in reply[:-1])
        journal = tuple(e for e in (reply[-1] or b"").decode().split(",") if e)
        with self._lock:
            rec.snapshots.append(Snapshot(via, conn.endpoint, invoke, complete, balances, journal))
        return "ok", None


# ---------------------------------------------------------------------- the checker
def check_bank(rec: BankRecord, final_balances: list[int | None], final_journal: bytes | None,
               limit: int = 20) -> list[str]:
    """Every problem the history and the final state show (empty: atomic and linearizable).
    Pure: reads only the record and the final values."""
    problems = list(rec.problems)
    journal = [e for e in (final_journal or b"").decode().split(",") if e]
    where = _where(rec)

    # Each transfer at most once; every acknowledged one present; no failed or refused one.
    positions: dict[str, int] = {}
    for i, tid in enumerate(journal):
        if tid in positions:
            problems.append(f"transfer {tid} applied twice (journal positions {positions[tid]} and {i}){where(tid)}")
        elif tid not in rec.transfers:
            problems.append(f"journal entry {tid!r} at position {i} was never attempted")
        else:
            positions[tid] = i
            if rec.transfers[tid].outcome in ("fail", "refused"):
                problems.append(f"transfer {tid} applied although it {rec.transfers[tid].outcome}ed{where(tid)}")
    for tid, t in rec.transfers.items():
        if t.outcome == "ok" and tid not in positions:
            problems.append(f"acknowledged transfer {tid} missing from the journal{where(tid)}")

    # Replay the journal: the state after each applied transfer. Each transfer must have acted
    # on the balances it read (WATCH is exact; a script is atomic), and never overdrawn.
    states = [tuple([rec.initial] * len(rec.accounts))]
    for i, tid in enumerate(journal):
        t = rec.transfers.get(tid)
        state = list(states[-1])
        if t is not None and positions.get(tid) == i:
            before = (state[t.source], state[t.target])
            if t.seen is not None and t.seen != before:
                problems.append(f"transfer {tid} ({t.via}) acted on balances {t.seen} but was applied at journal "
                                f"position {i}, where they were {before}{where(tid)}")
            if before[0] < t.amount:
                problems.append(f"transfer {tid} overdrew account {t.source}: {before[0]} < {t.amount}{where(tid)}")
            # The balances the transfer wrote (for a WATCH transfer: computed from what it read).
            base = t.seen if (t.via == "watch" and t.seen is not None) else before
            state[t.source], state[t.target] = base[0] - t.amount, base[1] + t.amount
        states.append(tuple(state))
    final = tuple(final_balances)
    if None in final or sum(final) != rec.total:
        problems.append(f"the total changed: final balances {final} (sum {sum(v or 0 for v in final)}), "
                        f"expected a total of {rec.total}")
    elif final != states[-1]:
        problems.append(f"final balances {final} differ from the replayed journal's {states[-1]}")
    if any(v is not None and v < 0 for v in final):
        problems.append(f"negative balance at the end: {final}")

    # Snapshots: a prefix of the final journal, with exactly the balances that prefix yields.
    for s in rec.snapshots:
        k = len(s.journal)
        what = f"snapshot via {s.via} on {s.endpoint} at +{s.invoke - rec.started:.2f}s"
        if None in s.balances or sum(s.balances) != rec.total:
            problems.append(f"{what} is torn: balances {s.balances} sum to "
                            f"{sum(v or 0 for v in s.balances)}, not {rec.total}")
        elif list(s.journal) != journal[:k]:
            problems.append(f"{what} saw a journal that is not a prefix of the final one: {s.journal[-5:]} "
                            f"(final at that length: {tuple(journal[max(0, k - 5):k])})")
        elif s.balances != states[k]:
            problems.append(f"{what} saw balances {s.balances} with {k} transfers applied; the journal says {states[k]}")

    # A path that never succeeded tested nothing.
    for via in ("watch", "script"):
        if not any(t.via == via and t.outcome == "ok" for t in rec.transfers.values()):
            problems.append(f"too little work: no transfer via {via} was acknowledged")
    for via in ("multi", "script", "mget"):
        if not any(s.via == via for s in rec.snapshots):
            problems.append(f"too little work: no snapshot via {via} succeeded")
    problems += _real_time_order(rec, positions)
    problems += _refusals(rec, positions, states)
    problems += _needless_aborts(rec, positions)
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def _real_time_order(rec: BankRecord, positions: dict[str, int]) -> list[str]:
    """An operation that completed before another was invoked must come first in the serial
    order. Transfer at journal index i sits at 2i+1, a snapshot of a k-long prefix at 2k
    (snapshots of the same prefix commute). Unknown transfers never complete."""
    events: list[tuple[int, float, float, str]] = []  # (position, invoke, complete, description)
    for tid, i in positions.items():
        t = rec.transfers[tid]
        complete = float("inf") if t.complete is None else t.complete
        events.append((2 * i + 1, t.invoke, complete, f"transfer {tid}"))
    for s in rec.snapshots:
        events.append((2 * len(s.journal), s.invoke, s.complete, f"snapshot via {s.via} on {s.endpoint}"))
    events.sort(key=lambda e: -e[0])
    problems = []
    earliest: tuple[float, str] = (float("inf"), "")  # the earliest completion among later positions
    group: list[tuple[int, float, float, str]] = []
    for event in events + [(-1, 0.0, 0.0, "")]:
        if group and event[0] != group[0][0]:
            for position, invoke, _, name in group:
                if earliest[0] < invoke:
                    problems.append(f"real-time order: {earliest[1]} completed at +{earliest[0] - rec.started:.3f}s, "
                                    f"before {name} was invoked (+{invoke - rec.started:.3f}s), yet it is ordered after it")
            earliest = min([earliest] + [(c, n) for _, _, c, n in group])
            group = []
        group.append(event)
    return problems[:5]


def _refusals(rec: BankRecord, positions: dict[str, int], states: list[tuple[int, ...]]) -> list[str]:
    """A refused transfer read both balances at one instant inside its window: some state
    the journal passes through while it ran must show them, and too little to move."""
    problems = []
    ordered = [(i, rec.transfers[tid]) for tid, i in positions.items()]
    for tid, t in rec.transfers.items():
        if t.outcome != "refused" or t.via != "script" or t.seen is None or t.complete is None:
            continue  # (a WATCH transfer's MGET is a plain read; the MGET path is checked elsewhere)
        low = max((i + 1 for i, o in ordered if o.complete is not None and o.complete < t.invoke), default=0)
        high = min((i for i, o in ordered if o.invoke > t.complete), default=len(states) - 1)
        if t.seen[0] >= t.amount:
            problems.append(f"transfer {tid} refused although {t.seen[0]} >= {t.amount}{_where(rec)(tid)}")
        elif not any((states[k][t.source], states[k][t.target]) == t.seen for k in range(low, high + 1)):
            problems.append(f"transfer {tid} (script) read balances {t.seen}, which no state between journal "
                            f"positions {low} and {high} holds{_where(rec)(tid)}")
    return problems[:5]


def _needless_aborts(rec: BankRecord, positions: dict[str, int]) -> list[str]:
    """WATCH is exact: an EXEC aborts only if a watched key changed, and only transfers
    write accounts once the bank is open. So some applied transfer touching one of its two
    accounts must have run at the same time."""
    problems = []
    applied = [rec.transfers[tid] for tid in positions]
    for t in rec.transfers.values():
        if not t.aborted or t.complete is None:
            continue
        accounts = {t.source, t.target}
        if not any(o is not t and accounts & {o.source, o.target} and o.invoke < t.complete
                   and (o.complete is None or o.complete > t.invoke) for o in applied):
            problems.append(f"transfer {t.id}: EXEC aborted (nil), yet no applied transfer touching accounts "
                            f"{sorted(accounts)} ran meanwhile{_where(rec)(t.id)}")
    return problems[:5]


def _where(rec: BankRecord) -> Callable[[str], str]:
    def where(tid: str) -> str:
        t = rec.transfers.get(tid)
        if t is None:
            return ""
        wall = time.strftime("%H:%M:%S", time.localtime(rec.started_wall + t.invoke - rec.started))
        took = "no answer" if t.complete is None else f"answered after {t.complete - t.invoke:.2f}s"
        return (f" ({t.via} {t.source}->{t.target} x{t.amount}, {t.outcome}, via {t.endpoint}, "
                f"invoked +{t.invoke - rec.started:.2f}s = {wall}, {took})")

    return where
