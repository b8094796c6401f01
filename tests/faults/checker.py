"""Linearizability checker for the per-key register + CAS histories the fault harness records.

Role
----
The harness records what each client saw (invoke/complete times on one monotonic clock, and an
outcome); this module decides whether one single-copy execution, taking each operation at one
instant inside its window, explains all of it. It is pure Python with no I/O and no dependency
on raftcache, so it checks histories from any source. Entry point: :func:`check_history`.

Model
-----
Every key is an independent register (so keys are checked separately: P-compositionality).
A key starts absent (``None``) unless ``initial`` gives it a value::

    read                 -> the current value, or None if absent
    write(v)             sets v (v may not be None: None means absent, and there is no delete)
    cas((expected, new)) -> True and sets new if the key is present and equals expected,
                            else False; on an absent key a CAS never matches

Outcomes
--------
``ok``       took effect at one instant in [invoke, complete] and returned ``result``.
``fail``     definitely not applied: dropped before checking.
``unknown``  may take effect at any instant after invoke, or never; its result is unknown.
             Unknown reads carry no information and are dropped. An unknown write/CAS becomes a
             *floating* op: its window never closes (return at +infinity) and the search may
             leave it out, succeeding once every ``ok`` op is linearized. Leaving it out is the
             same as linearizing it after everything else, where nothing observes the register.
             A floating CAS is only linearized as a successful one: a CAS that does not match
             changes nothing, exactly like one that never happened.

With ``reduce_unknown`` (the default) floating ops nothing could notice are pruned up front:
the value v they would store is never read, never a CAS's expected value, and no ``ok`` CAS
that returned False completes after their invoke. Dropping one leaves a stretch where the
register keeps an older value, which only a failing CAS could tell apart.

Algorithm
---------
Wing & Gong's search with Lowe's memoization, as in Knossos and porcupine, written as a loop
with an explicit stack (histories have thousands of ops per key). Call and return events of
the ops with a closed window are sorted by time, calls before returns at equal times (equal
timestamps count as concurrent), and kept in a doubly linked list. Walking the list, the search
linearizes the first call whose op is legal in the current state and whose (linearized-set
bitset, state) pair is new, unlinks it and its return, and restarts from the head. Reaching a
return means that op can no longer be placed, so it backtracks. The cache makes each
configuration explored at most once.

Four exact cuts keep it fast; :class:`_Search` gives the argument for each:

* forced moves: an available read that returns the current value, or a CAS that must fail and
  does, changes nothing, so it is taken with no alternatives;
* lost values: a move that overwrites a value some pending ``ok`` op must still observe, when
  nothing left can store it again, is never taken (this catches stale reads at any distance);
* lazy floating ops: they are tried only at a dead end, and only those that some available op
  needs (an op illegal now but legal after the floating op);
* no write directly after a floating op (it would erase it). That makes the moves depend on
  whether the last op was floating, so that flag is one more bit in the cache key.

The test suite cross-checks the result against a brute-force search of all orders.

Proving a violation means exhausting every order of everything before it, which a long
concurrent history can make too costly. So when the full search needs more than 50,000 states,
overlapping windows of 32 and then 128 invocations are checked as histories of their own, from
an unknown starting value, before the search goes on. A window drops what completed before it and
distrusts ops straddling its edges (their reads are dropped, their writes/CAS become unknown), so
a violation inside a window is a violation of the whole history; a clean window proves nothing.

Witness
-------
A :class:`Violation` names the key and gives the furthest point the search reached: the
longest linearizable prefix, the register value after it, and ``blocked``: either the op whose
return came up before it could take effect, or the op that still had to observe a value the
next move would lose. ``pending`` lists the other ops in flight there. Reads (or successful
CASes) of a value nothing ever stored are reported before searching, naming the op. A
violation found in a window says so and uses the window's ops.

Budgets
-------
``max_states`` caps the full search's new configurations (each window gets at most 20,000 on
top), and ``time_limit`` (seconds, on ``clock``) caps all the work on a key. A key over budget
with no violation found is ``undecided``, and then ``CheckResult.ok`` is False unless the caller
passes ``allow_undecided=True``. Memory grows with ``max_states`` times the key's op count / 8
bytes (the bitsets), so a 500,000-state cap on a 2,000-op key is about 200 MB at worst.
"""

from __future__ import annotations

import enum
import math
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "CAS",
    "FAIL",
    "OK",
    "READ",
    "UNKNOWN",
    "WRITE",
    "CheckResult",
    "HistoryError",
    "KeyReport",
    "Op",
    "Verdict",
    "Violation",
    "check_history",
]

READ, WRITE, CAS = "read", "write", "cas"
OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
OUTCOMES = frozenset({OK, FAIL, UNKNOWN})

DEFAULT_MAX_STATES = 500_000
DEFAULT_TIME_LIMIT = 10.0
# Reading the clock every iteration would cost more than the search step itself.
_CLOCK_EVERY = 1024


class HistoryError(ValueError):
    """The history is malformed (unknown kind or outcome, bad window, bad value shape)."""


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation as the harness recorded it.

    ``value``: the written value for writes, the pair ``(expected, new)`` for CAS, ignored for
    reads. ``result``: the value read, the CAS's bool, ignored for writes. ``complete`` is
    ignored for unknown ops (their window is open-ended) and required for ``ok`` ones.
    """

    process: int | str
    key: Hashable
    kind: str
    value: Any
    result: Any
    outcome: str
    invoke: float
    complete: float | None

    def describe(self) -> str:
        """A one-line human description, used in violation explanations."""
        end = "inf)" if self.outcome == UNKNOWN else f"{self.complete:.3f}]"
        body = _DESCRIBE[self.kind](self)
        return f"process {self.process!r} {body} [{self.invoke:.3f}, {end}"


def _result_text(op: Op) -> str:
    return "?" if op.outcome == UNKNOWN else repr(op.result)


_DESCRIBE: dict[str, Callable[[Op], str]] = {
    READ: lambda op: f"read -> {_result_text(op)}",
    WRITE: lambda op: f"write({op.value!r})",
    CAS: lambda op: f"cas({op.value[0]!r} -> {op.value[1]!r}) -> {_result_text(op)}",
}


class Verdict(enum.Enum):
    LINEARIZABLE = "linearizable"
    VIOLATION = "violation"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class Violation:
    """Why one key's history is not linearizable, with the furthest point the search reached."""

    key: Hashable
    explanation: str
    blocked: Op | None
    prefix: tuple[Op, ...] = ()
    pending: tuple[Op, ...] = ()
    state: Any = None


@dataclass(frozen=True, slots=True)
class KeyReport:
    """The verdict for one key and what it cost."""

    key: Hashable
    verdict: Verdict
    ops_checked: int
    states_explored: int
    elapsed: float
    unknown_pruned: int = 0
    violation: Violation | None = None
    reason: str = ""


@dataclass
class CheckResult:
    """The verdict for a whole history; ``reports`` holds the per-key detail."""

    ok: bool
    violations: list[Violation]
    undecided: list[Hashable]
    keys_checked: int
    ops_checked: int
    states_explored: int
    reports: dict[Hashable, KeyReport] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines a person can read in a failing test's output."""
        verdict = "OK" if self.ok else "NOT OK"
        lines = [
            f"{verdict}: {self.keys_checked} key(s), {self.ops_checked} op(s), {self.states_explored} state(s) explored"
        ]
        lines += [f"violation: {v.explanation}" for v in self.violations]
        lines += [f"undecided: key {k!r}: {self.reports[k].reason}" for k in self.undecided]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Validation


def _require(condition: bool, op: Op, problem: str) -> None:
    if not condition:
        raise HistoryError(f"{problem}: {op!r}")


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _validate_read(op: Op) -> None:
    _require(op.outcome != OK or _hashable(op.result), op, "read result must be hashable")


def _validate_write(op: Op) -> None:
    _require(op.value is not None, op, "write(None) is not a register operation (None means absent)")
    _require(_hashable(op.value), op, "written value must be hashable")


def _validate_cas(op: Op) -> None:
    shape_ok = isinstance(op.value, (tuple, list)) and len(op.value) == 2
    _require(shape_ok, op, "cas value must be the pair (expected, new)")
    _require(op.value[1] is not None, op, "cas cannot store None (None means absent)")
    _require(all(_hashable(v) for v in op.value), op, "cas values must be hashable")
    _require(op.outcome != OK or isinstance(op.result, bool), op, "an ok cas result must be a bool")


_VALIDATE: dict[str, Callable[[Op], None]] = {READ: _validate_read, WRITE: _validate_write, CAS: _validate_cas}


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _validate(op: Op) -> None:
    _require(op.kind in _VALIDATE, op, f"kind must be one of {sorted(_VALIDATE)}")
    _require(op.outcome in OUTCOMES, op, f"outcome must be one of {sorted(OUTCOMES)}")
    _require(_hashable(op.key), op, "key must be hashable")
    _require(_is_time(op.invoke) and math.isfinite(op.invoke), op, "invoke must be a finite number")
    if op.outcome == OK:
        _require(_is_time(op.complete), op, "an ok op needs a numeric complete time")
        _require(op.complete >= op.invoke, op, "complete is before invoke")
    _VALIDATE[op.kind](op)


# ---------------------------------------------------------------------------------------------
# The register model: step(state, arg, result) -> (legal, new state)


class _UnknownValue:
    """The starting value of a window (see _windowed_violation): not known until an op sees it."""

    def __repr__(self) -> str:
        return "<unknown>"


_UNSET = _UnknownValue()


def _step_read(state: Any, arg: Any, result: Any) -> tuple[bool, Any]:
    if state is _UNSET:
        return True, result
    return state == result, state


def _step_write(state: Any, arg: Any, result: Any) -> tuple[bool, Any]:
    return True, arg


def _step_cas(state: Any, arg: tuple[Any, Any], result: bool) -> tuple[bool, Any]:
    if state is _UNSET:
        # A failing CAS only says "not expected"; keeping the value unknown is looser, never wrong.
        return True, (arg[1] if result else state)
    matched = state is not None and state == arg[0]
    if result != matched:
        return False, state
    return True, (arg[1] if matched else state)


_STEP: dict[str, Callable[[Any, Any, Any], tuple[bool, Any]]] = {
    READ: _step_read,
    WRITE: _step_write,
    CAS: _step_cas,
}


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An op as the search sees it (after dropping and pruning)."""

    op: Op
    arg: Any
    result: Any
    ret: float | None  # end of the window; None: it never closes (a floating op)

    @property
    def floating(self) -> bool:
        return self.ret is None


def _candidate(op: Op) -> _Candidate:
    if op.outcome == OK:
        return _Candidate(op, op.value, op.result, float(op.complete))
    # An unknown CAS that does not match is a no-op, the same as never happening.
    result = True if op.kind == CAS else None
    return _Candidate(op, op.value, result, None)


# What a write/CAS would store (reads store nothing).
_STORED: dict[str, Callable[[Op], Any]] = {
    READ: lambda op: None,
    WRITE: lambda op: op.value,
    CAS: lambda op: op.value[1],
}

# For an ok op: (does it prove the register held a value?, that value).
_OBSERVED: dict[str, Callable[[Op], tuple[bool, Any]]] = {
    READ: lambda op: (True, op.result),
    WRITE: lambda op: (False, None),
    CAS: lambda op: (op.result is True, op.value[0]),
}


def _checked_ops(ops: list[Op]) -> list[Op]:
    """Drop what never happened (fail) and what says nothing (unknown reads)."""
    return [op for op in ops if op.outcome == OK or (op.outcome == UNKNOWN and op.kind != READ)]


# ---------------------------------------------------------------------------------------------
# Pre-check and unknown-op reductions


@dataclass(slots=True)
class _Facts:
    """Per-key facts about values, gathered once for the pre-check and the reductions."""

    producers: Counter  # value -> how many ops (and the initial value) could have stored it;
    # a CAS that returned False stored nothing
    observed: dict[Any, Op]  # value -> earliest-completing ok op that saw it
    cas_expected: set[Any]
    last_failed_cas: float  # latest complete of an ok CAS that returned False


def _facts(ops: list[Op], initial: Any) -> _Facts:
    producers: Counter = Counter([initial])
    observed: dict[Any, Op] = {}
    cas_expected: set[Any] = set()
    last_failed_cas = -math.inf
    for op in ops:
        if op.kind != READ and not (op.outcome == OK and op.result is False):
            producers[_STORED[op.kind](op)] += 1
        if op.kind == CAS:
            cas_expected.add(op.value[0])
            if op.outcome == OK and op.result is False:
                last_failed_cas = max(last_failed_cas, op.complete)
        observes, value = _OBSERVED[op.kind](op) if op.outcome == OK else (False, None)
        if observes and (value not in observed or op.complete < observed[value].complete):
            observed[value] = op
    return _Facts(producers, observed, cas_expected, last_failed_cas)


def _unproduced_observation(key: Hashable, facts: _Facts, initial: Any) -> Violation | None:
    """A read (or successful CAS) of a value that nothing ever stored: no search needed."""
    for value, op in facts.observed.items():
        if facts.producers[value] == 0:
            return Violation(
                key=key,
                explanation=(
                    f"key {key!r}: {op.describe()} observed {value!r}, which no operation on this "
                    f"key ever stored (initial value {initial!r})"
                ),
                blocked=op,
            )
    return None


def _prune_unknown(candidates: list[_Candidate], facts: _Facts) -> tuple[list[_Candidate], int]:
    """Drop floating ops nothing could ever notice (see the module docstring). Returns (kept, pruned)."""
    kept = [c for c in candidates if not (c.floating and _unnoticeable(c.op, facts))]
    return kept, len(candidates) - len(kept)


def _unnoticeable(op: Op, facts: _Facts) -> bool:
    value = _STORED[op.kind](op)
    return (
        value not in facts.observed
        and value not in facts.cas_expected
        and facts.last_failed_cas < op.invoke
    )


# ---------------------------------------------------------------------------------------------
# The search


class _OverBudget(Exception):
    """Internal: the search ran out of states or time."""

    def __init__(self, reason: str, explored: int, out_of_states: bool) -> None:
        super().__init__(reason)
        self.explored = explored
        self.out_of_states = out_of_states


@dataclass(slots=True)
class _Furthest:
    """The deepest dead end found: prefix (op indices, in order) and the state after it.

    ``blocked`` is the op whose return came up, or None for a lost value: op ``overwriter``
    would replace ``state`` while a pending op must still observe it.
    """

    prefix: list[int]
    state: Any
    blocked: int | None
    overwriter: int = -1


@dataclass(slots=True)
class _SearchResult:
    linearizable: bool
    explored: int
    furthest: _Furthest | None


@dataclass(slots=True)
class _EventList:
    """Call/return events of the ops with a closed window, sorted by time, as a doubly linked
    list over array slots. Slot 0 is the head sentinel and the last slot the tail sentinel."""

    nxt: list[int]
    prv: list[int]
    op_of: list[int]  # slot -> op index
    ret_of: list[int]  # call slot -> its return slot; -1 on return slots
    time_of: list[float]
    is_call: list[bool]


def _event_list(candidates: list[_Candidate]) -> _EventList:
    events: list[tuple[float, int, int]] = []  # (time, 0 call / 1 return, op index)
    for i, cand in enumerate(candidates):
        if cand.ret is not None:
            events += [(cand.op.invoke, 0, i), (cand.ret, 1, i)]
    # Calls before returns at equal times: equal timestamps are treated as concurrent.
    events.sort()
    size = len(events) + 2
    op_of, ret_of, is_call = [-1] * size, [-1] * size, [False] * size
    time_of = [math.inf] * size
    call_slot: dict[int, int] = {}
    ret_slot: dict[int, int] = {}
    for slot, (at, kind, i) in enumerate(events, start=1):
        op_of[slot], time_of[slot], is_call[slot] = i, at, kind == 0
        (call_slot if kind == 0 else ret_slot)[i] = slot
    for i, slot in call_slot.items():
        ret_of[slot] = ret_slot[i]
    nxt = list(range(1, size)) + [size - 1]
    prv = [0] + list(range(size - 1))
    return _EventList(nxt, prv, op_of, ret_of, time_of, is_call)


def _unlink(nxt: list[int], prv: list[int], slot: int) -> None:
    nxt[prv[slot]] = nxt[slot]
    prv[nxt[slot]] = prv[slot]


def _relink(nxt: list[int], prv: list[int], slot: int) -> None:
    # Dancing links: the slot still remembers its neighbours, and undo happens in LIFO order.
    nxt[prv[slot]] = slot
    prv[nxt[slot]] = slot


# Control codes the walk passes around instead of a list slot.
_ENTER, _BACKTRACK, _EXHAUSTED = -1, -2, -3
_FORCED = "forced"  # frame marker: no alternatives were tried at the configuration below it


class _Search:
    """Wing & Gong / Lowe over one key: an iterative DFS with a (bitset, state) cache.

    A configuration is (linearized set, register value, whether the last op was floating); the
    cache holds every configuration already explored, which is all of them that failed, since
    the search stops at the first success. Four exact cuts on top of the plain algorithm, each
    a function of the configuration alone, so they agree with the cache:

    * Forced moves. An available read that returns the current value, or an available CAS
      that must fail and does, changes nothing; any completion can move it to the front (it is
      available, so nothing pending had to precede it). So it is taken with no alternatives.
    * Lost values. Overwriting value v while an unplaced ok op must still observe v, with no
      unplaced op able to store v again, leads nowhere: v can never come back for it.
    * Lazy floating ops. Floating ops are not in the event list; at a dead end (the walk reached
      a return) the search tries only those some available op needs: an op illegal now that
      would be legal after the floating op. In any valid order a floating op can be moved later
      until it sits right before such an op (anything else commutes with it or, for a write,
      erases it), or be dropped.
    * No write right after a floating op (it would erase it; "the write with the floating op
      still pending" is explored from the configuration below).
    """

    def __init__(self, candidates: list[_Candidate], initial: Any, max_states: int | None,
                 deadline: float, clock: Callable[[], float]) -> None:
        n = len(candidates)
        self.events = _event_list(candidates)
        self.step = [_STEP[c.op.kind] for c in candidates]
        self.arg = [c.arg for c in candidates]
        self.res = [c.result for c in candidates]
        self.kind = [c.op.kind for c in candidates]
        self.invoke = [c.op.invoke for c in candidates]
        self.bit = [1 << i for i in range(n)]
        self.after_floating_bit = 1 << n  # the "last op was floating" flag in cache keys
        self.max_states = max_states
        self.state_limit = math.inf if max_states is None else max_states
        self.deadline = deadline
        self.clock = clock
        self.floating_ops = [i for i, c in enumerate(candidates) if c.floating]
        self.floating_by_value: dict[Any, list[int]] = {}
        for i in self.floating_ops:
            self.floating_by_value.setdefault(_STORED[self.kind[i]](candidates[i].op), []).append(i)
        self.placed = [False] * n  # floating ops currently linearized
        # Dead values: which value each op must observe / may store, and how many unlinearized
        # ops still do. Only ok ops need a value; a CAS that returned False stores nothing.
        self.needs = [(False, None) if c.floating else _OBSERVED[c.op.kind](c.op) for c in candidates]
        self.stores = [(c.op.kind != READ and c.result is not False, _STORED[c.op.kind](c.op)) for c in candidates]
        self.need_count = Counter(value for has, value in self.needs if has)
        self.producers_left = Counter(value for has, value in self.stores if has)
        self.remaining = n - len(self.floating_ops)  # closed-window ops still to linearize
        self.lin = 0
        self.state = initial
        # The DFS stack as parallel lists. A frame is a list slot (closed-window op) or -1 with
        # (options, position, dead-end slot) for a floating op; extra is None, _FORCED or that tuple.
        self.frame_slot: list[int] = []
        self.frame_op: list[int] = []
        self.frame_state: list[Any] = []  # the state before the op
        self.frame_extra: list[Any] = []
        self.cache: set[tuple[int, Any]] = set()
        self.explored = 0
        self.furthest: _Furthest | None = None
        self.lost: _Furthest | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    def _remember(self, memo: tuple[int, Any]) -> bool:
        """Record a configuration; False if it was explored already."""
        if memo in self.cache:
            return False
        self.cache.add(memo)
        self.explored += 1
        if self.explored > self.state_limit:
            raise _OverBudget(f"state budget of {self.max_states} exhausted", self.explored, True)
        return True

    def _push(self, slot: int, i: int, new_lin: int, new_state: Any, extra: Any) -> None:
        self.frame_slot.append(slot)
        self.frame_op.append(i)
        self.frame_state.append(self.state)
        self.frame_extra.append(extra)
        self.lin, self.state = new_lin, new_state
        self._count(i, -1)
        if slot >= 0:
            ev = self.events
            _unlink(ev.nxt, ev.prv, slot)
            _unlink(ev.nxt, ev.prv, ev.ret_of[slot])
            self.remaining -= 1
        else:
            self.placed[i] = True

    def _count(self, i: int, delta: int) -> None:
        needs, needed = self.needs[i]
        if needs:
            self.need_count[needed] += delta
        stores, stored = self.stores[i]
        if stores:
            self.producers_left[stored] += delta

    def _loses_value(self, i: int, before: Any, after: Any) -> bool:
        """Would op i overwrite a value that a pending op must still observe and nothing can
        store again? Then no completion exists, whatever order follows."""
        if after == before or self.producers_left[before] > 0:
            return False
        needs, needed = self.needs[i]
        if self.need_count[before] - (needs and needed == before) <= 0:
            return False
        if self.lost is None or len(self.frame_op) >= len(self.lost.prefix):
            self.lost = _Furthest(self.frame_op[:], before, None, i)
        return True

    def _top_floating(self) -> bool:
        return bool(self.frame_slot) and self.frame_slot[-1] < 0

    def _witness(self) -> _Furthest | None:
        """The deeper of the furthest dead end and the furthest lost value (which names the op
        that needed it, so it wins ties)."""
        if self.lost is not None and (self.furthest is None or len(self.lost.prefix) >= len(self.furthest.prefix)):
            return self.lost
        return self.furthest

    def _record_dead_end(self, slot: int) -> None:
        if self.furthest is None or len(self.frame_op) > len(self.furthest.prefix):
            self.furthest = _Furthest(self.frame_op[:], self.state, self.events.op_of[slot])

    # -- forced moves ------------------------------------------------------------------------

    def _forced_slot(self) -> int:
        """An available op that is legal and changes nothing (a read or a failing CAS), or -1."""
        ev, state = self.events, self.state
        slot = ev.nxt[0]
        while ev.is_call[slot]:
            i = ev.op_of[slot]
            kind = self.kind[i]
            if kind == READ:
                if self.res[i] == state:
                    return slot
            elif kind == CAS and not self.res[i] and not (state is not None and state == self.arg[i][0]):
                return slot
            slot = ev.nxt[slot]
        return -1

    def _enter(self) -> int:
        """At a new configuration: take forced moves while there are any; then walk from the head."""
        while self.remaining:
            slot = self._forced_slot()
            if slot < 0:
                break
            i = self.events.op_of[slot]
            new_lin = self.lin | self.bit[i]
            if not self._remember((new_lin, self.state)):
                return _BACKTRACK  # the only move from here already failed
            self._push(slot, i, new_lin, self.state, _FORCED)
        return self.events.nxt[0]

    # -- floating ops ------------------------------------------------------------------------

    def _window_needs(self, dead_end: int) -> tuple[list[Any], bool]:
        """Values that would make an available, currently illegal op legal; and whether a CAS
        that must fail is blocked by a matching value (then any change of value helps)."""
        ev, state, by_value = self.events, self.state, self.floating_by_value
        wanted: list[Any] = []
        any_change = False
        slot = ev.nxt[0]
        while slot != dead_end:
            if ev.is_call[slot]:
                i = ev.op_of[slot]
                kind, arg, res = self.kind[i], self.arg[i], self.res[i]
                value = res if kind == READ else arg[0] if kind == CAS else None
                must_fail = kind == CAS and not res
                if (must_fail or value in by_value) and not self.step[i](state, arg, res)[0]:
                    any_change = any_change or must_fail
                    wanted.append(value)
            slot = ev.nxt[slot]
        return wanted, any_change

    def _needed_floating(self, dead_end: int) -> list[int]:
        """Floating ops worth trying here: available, and needed by some available op."""
        wanted, any_change = self._window_needs(dead_end)
        horizon = self.events.time_of[dead_end]
        if any_change:
            return [i for i in self.floating_ops if not self.placed[i] and self.invoke[i] <= horizon]
        # Follow chains: a floating CAS that stores a wanted value but does not match now wants
        # its expected value first.
        chosen: set[int] = set()
        seen: set[Any] = set()
        while wanted:
            value = wanted.pop()
            if value in seen:
                continue
            seen.add(value)
            for i in self.floating_by_value.get(value, ()):
                if self.placed[i] or self.invoke[i] > horizon:
                    continue
                chosen.add(i)
                if self.kind[i] == CAS and not self.step[i](self.state, self.arg[i], True)[0]:
                    wanted.append(self.arg[i][0])
        return sorted(chosen)

    def _try_floating(self, options: list[int], start: int, dead_end: int) -> bool:
        """Linearize the first floating op from options[start:] that leads somewhere new."""
        state = self.state
        for position in range(start, len(options)):
            i = options[position]
            if self.placed[i]:
                continue
            legal, new_state = self.step[i](state, self.arg[i], self.res[i])
            # One that leaves the state unchanged is the same as one that never happened.
            if not legal or new_state == state or self._loses_value(i, state, new_state):
                continue
            new_lin = self.lin | self.bit[i]
            if self._remember((new_lin | self.after_floating_bit, new_state)):
                self._push(-1, i, new_lin, new_state, (options, position, dead_end))
                return True
        return False

    # -- backtracking ------------------------------------------------------------------------

    def _backtrack(self) -> int:
        """Undo frames until one offers another choice: the slot to resume the walk at,
        _ENTER if another floating op was linearized, or _EXHAUSTED."""
        ev = self.events
        while self.frame_op:
            slot, i = self.frame_slot.pop(), self.frame_op.pop()
            extra = self.frame_extra.pop()
            self.state = self.frame_state.pop()
            self.lin ^= self.bit[i]
            self._count(i, +1)
            if slot < 0:
                self.placed[i] = False
                options, position, dead_end = extra
                if self._try_floating(options, position + 1, dead_end):
                    return _ENTER
                continue
            _relink(ev.nxt, ev.prv, ev.ret_of[slot])
            _relink(ev.nxt, ev.prv, slot)
            self.remaining += 1
            if extra is not _FORCED:
                return ev.nxt[slot]
        return _EXHAUSTED

    # -- the walk ----------------------------------------------------------------------------

    def run(self) -> _SearchResult:
        ev = self.events
        nxt, op_of, is_call = ev.nxt, ev.op_of, ev.is_call
        step, arg, res, bit, kind, cache = self.step, self.arg, self.res, self.bit, self.kind, self.cache
        ticks = 0
        slot = _ENTER
        # While a closed-window op is unlinearized its return slot is still listed, so the walk
        # reaches that return before the tail.
        while self.remaining:
            ticks += 1
            if ticks % _CLOCK_EVERY == 0 and self.clock() > self.deadline:
                raise _OverBudget("time limit reached", self.explored, False)
            if slot < 0:
                if slot == _EXHAUSTED:
                    return _SearchResult(False, self.explored, self._witness())
                slot = self._enter() if slot == _ENTER else self._backtrack()
                continue
            if is_call[slot]:
                i = op_of[slot]
                legal, new_state = step[i](self.state, arg[i], res[i])
                if (
                    legal
                    and not (kind[i] == WRITE and self._top_floating())
                    and not (new_state != self.state and self._loses_value(i, self.state, new_state))
                ):
                    new_lin = self.lin | bit[i]
                    if (new_lin, new_state) not in cache and self._remember((new_lin, new_state)):
                        self._push(slot, i, new_lin, new_state, None)
                        slot = _ENTER
                        continue
                slot = nxt[slot]
                continue
            # A return: that op can no longer be placed after the current prefix, unless a
            # floating op changes the state first.
            self._record_dead_end(slot)
            tried = self.floating_ops and self._try_floating(self._needed_floating(slot), 0, slot)
            slot = _ENTER if tried else _BACKTRACK
        return _SearchResult(True, self.explored, None)


def _search_violation(key: Hashable, candidates: list[_Candidate], witness: _Furthest, scope: str = "") -> Violation:
    prefix = tuple(candidates[i].op for i in witness.prefix)
    placed = set(witness.prefix)
    lost_value = witness.blocked is None
    if lost_value:
        blocked = _first_needer(candidates, placed | {witness.overwriter}, witness.state)
    else:
        blocked = candidates[witness.blocked]
    # Pending there: invoked before the blocked op's window closed, not yet placed.
    pending = tuple(
        c.op for i, c in enumerate(candidates)
        if i not in placed and c is not blocked and c.op.invoke <= blocked.ret
    )
    if lost_value:
        trouble = (
            f"{candidates[witness.overwriter].op.describe()} would overwrite {witness.state!r}, which "
            f"{blocked.op.describe()} must still observe and nothing left can store again"
        )
    else:
        trouble = (
            f"{blocked.op.describe()} had to take effect and could not, in any order with the "
            f"{len(pending)} other pending op(s)"
        )
    last = f" (last: {prefix[-1].describe()})" if prefix else ""
    explanation = (
        f"key {key!r}: not linearizable{scope}. The longest linearizable prefix has {len(prefix)} op(s){last} "
        f"and leaves the register at {witness.state!r}; then {trouble}"
    )
    return Violation(key, explanation, blocked.op, prefix, pending, witness.state)


def _first_needer(candidates: list[_Candidate], placed: set[int], value: Any) -> _Candidate:
    """The unplaced ok op that observes ``value`` and must complete first."""
    needers = [
        c for i, c in enumerate(candidates)
        if i not in placed and c.op.outcome == OK and _OBSERVED[c.op.kind](c.op) == (True, value)
    ]
    return min(needers, key=lambda c: c.ret)


# ---------------------------------------------------------------------------------------------
# Per key and whole history


@dataclass(frozen=True, slots=True)
class _Limits:
    max_states: int | None
    time_limit: float | None
    reduce_unknown: bool
    clock: Callable[[], float]

    def capped(self, cap: int) -> int:
        return cap if self.max_states is None else min(self.max_states, cap)


def _prepare(ops: list[Op], facts: _Facts, reduce_unknown: bool) -> tuple[list[_Candidate], int]:
    candidates = [_candidate(op) for op in ops]
    return _prune_unknown(candidates, facts) if reduce_unknown else (candidates, 0)


def _attempt(candidates: list[_Candidate], initial: Any, max_states: int | None, deadline: float,
             clock: Callable[[], float]) -> _SearchResult | _OverBudget:
    try:
        return _Search(candidates, initial, max_states, deadline, clock).run()
    except _OverBudget as over:
        return over


# A full search that needs more states than this is likely slogging through a long prefix
# before a violation: look in windows (cheap) before spending the rest of the budget.
_PROBE_STATES = 50_000


def _check_key(key: Hashable, ops: list[Op], initial: Any, limits: _Limits) -> KeyReport:
    started = limits.clock()
    checked = _checked_ops(ops)
    facts = _facts(checked, initial)
    early = _unproduced_observation(key, facts, initial)
    if early is not None:
        return KeyReport(key, Verdict.VIOLATION, len(checked), 0, limits.clock() - started, violation=early)
    candidates, pruned = _prepare(checked, facts, limits.reduce_unknown)
    deadline = math.inf if limits.time_limit is None else started + limits.time_limit
    probe = limits.capped(_PROBE_STATES)
    found = _attempt(candidates, initial, probe, deadline, limits.clock)
    explored = 0
    if isinstance(found, _OverBudget):
        explored += found.explored
        violation, window_states = _windowed_violation(key, checked, limits, deadline)
        explored += window_states
        if violation is not None:
            return KeyReport(key, Verdict.VIOLATION, len(checked), explored, limits.clock() - started,
                             pruned, violation)
        if found.out_of_states and probe != limits.max_states:
            found = _attempt(candidates, initial, limits.max_states, deadline, limits.clock)
    elapsed = limits.clock() - started
    if isinstance(found, _OverBudget):
        reason = (f"{found} after {found.explored} states, and no window showed a violation "
                  f"(max_states={limits.max_states}, time_limit={limits.time_limit})")
        return KeyReport(key, Verdict.UNDECIDED, len(checked), explored + found.explored, elapsed,
                         pruned, reason=reason)
    explored += found.explored
    if found.linearizable:
        return KeyReport(key, Verdict.LINEARIZABLE, len(checked), explored, elapsed, pruned)
    violation = _search_violation(key, candidates, found.furthest)
    return KeyReport(key, Verdict.VIOLATION, len(checked), explored, elapsed, pruned, violation)


# ---------------------------------------------------------------------------------------------
# Windows: a sound shortcut to violations the full search is too slow to prove

# To prove a violation, the full search must exhaust every order of everything before it,
# which long concurrent histories make too costly. A window is checked as a history of its own,
# loosened so that a violation inside it is a violation of the whole. Small windows are cheap
# but lose more at their edges, so two sizes are tried.
_WINDOW_SIZES = (32, 128)
_WINDOW_STATES = 20_000


def _window_ops(ops: list[Op], first: float, last: float) -> list[Op]:
    """The ops that may take effect while the window's ops are invoked, loosened to be sound.

    Ops that completed before ``first`` are gone: their effect is folded into the unknown
    starting value. Ops invoked after ``last`` are gone, so what ops straddling either edge
    observed cannot be trusted: their reads are dropped and their writes/CAS become unknown.
    """
    window: list[Op] = []
    for op in ops:
        if op.invoke > last or (op.outcome == OK and op.complete < first):
            continue
        if op.outcome == OK and (op.invoke < first or op.complete > last):
            if op.kind == READ:
                continue
            op = replace(op, outcome=UNKNOWN)
        window.append(op)
    return window


def _windows(invokes: list[float]) -> Iterable[tuple[float, float]]:
    """(first, last) invoke times of overlapping windows, each size stepping by half itself."""
    for size in _WINDOW_SIZES:
        if len(invokes) <= size:
            return  # one window would be the whole history, already searched
        for start in range(0, len(invokes) - size // 2, size // 2):
            yield invokes[start], invokes[min(start + size, len(invokes)) - 1]


def _windowed_violation(key: Hashable, ops: list[Op], limits: _Limits, deadline: float) -> tuple[Violation | None, int]:
    """The first violation found inside a window (or None), and the states explored."""
    cap = limits.capped(_WINDOW_STATES)
    explored = 0
    for first, last in _windows(sorted(op.invoke for op in ops)):
        if limits.clock() > deadline:
            break
        window = _window_ops(ops, first, last)
        candidates, _ = _prepare(window, _facts(window, _UNSET), limits.reduce_unknown)
        found = _attempt(candidates, _UNSET, cap, deadline, limits.clock)
        explored += found.explored
        if isinstance(found, _SearchResult) and not found.linearizable:
            scope = f" (shown on the ops invoked in [{first:.3f}, {last:.3f}], from an unknown starting value)"
            return _search_violation(key, candidates, found.furthest, scope), explored
    return None, explored


def _by_key(ops: Iterable[Op]) -> dict[Hashable, list[Op]]:
    grouped: dict[Hashable, list[Op]] = {}
    for op in ops:
        _validate(op)
        grouped.setdefault(op.key, []).append(op)
    return grouped


def check_history(
    ops: Iterable[Op],
    initial: Mapping[Hashable, Any] | None = None,
    *,
    max_states: int | None = DEFAULT_MAX_STATES,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    allow_undecided: bool = False,
    reduce_unknown: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> CheckResult:
    """Check a whole history, one key at a time.

    ``initial`` maps keys to their starting value (absent keys start as None). ``max_states``
    and ``time_limit`` are per-key budgets (None: unlimited); a key over budget is undecided,
    which makes the result not ok unless ``allow_undecided``. ``reduce_unknown=False`` disables
    the exact pruning of unnoticeable unknown ops (for cross-checking). Raises
    :class:`HistoryError` on a malformed op.
    """
    initial = initial or {}
    limits = _Limits(max_states, time_limit, reduce_unknown, clock)
    reports = {key: _check_key(key, key_ops, initial.get(key), limits) for key, key_ops in _by_key(ops).items()}
    violations = [r.violation for r in reports.values() if r.violation is not None]
    undecided = [key for key, r in reports.items() if r.verdict is Verdict.UNDECIDED]
    return CheckResult(
        ok=not violations and (allow_undecided or not undecided),
        violations=violations,
        undecided=undecided,
        keys_checked=len(reports),
        ops_checked=sum(r.ops_checked for r in reports.values()),
        states_explored=sum(r.states_explored for r in reports.values()),
        reports=reports,
    )
