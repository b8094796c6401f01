"""Tests for the linearizability checker: hand-made good and bad histories, a brute-force
cross-check, model-generated properties, budgets, the window fallback and speed."""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.faults.checker import (
    CAS,
    FAIL,
    OK,
    READ,
    UNKNOWN,
    WRITE,
    HistoryError,
    Op,
    Verdict,
    check_history,
)

KEY = "k"
NEVER_WRITTEN = "never-written"
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def w(process, value, invoke, complete, key=KEY, outcome=OK):
    return Op(process, key, WRITE, value, None, outcome, invoke, complete)


def r(process, result, invoke, complete, key=KEY):
    return Op(process, key, READ, None, result, OK, invoke, complete)


def cas(process, expected, new, result, invoke, complete, key=KEY):
    return Op(process, key, CAS, (expected, new), result, OK, invoke, complete)


def unknown_write(process, value, invoke, key=KEY):
    return Op(process, key, WRITE, value, None, UNKNOWN, invoke, None)


def unknown_cas(process, expected, new, invoke, key=KEY):
    return Op(process, key, CAS, (expected, new), None, UNKNOWN, invoke, invoke + 1.0)


# ---------------------------------------------------------------------------------------------
# Hand-made histories

GOOD = {
    "sequential": [
        w(1, "a", 0, 1), r(2, "a", 2, 3), w(1, "b", 4, 5), r(2, "b", 6, 7),
        cas(3, "b", "c", True, 8, 9), r(1, "c", 10, 11),
    ],
    "fresh key reads None": [r(1, None, 0, 1), r(2, None, 2, 3)],
    "overlapping writes, reads see either order": [
        w(1, "a", 0, 10), w(2, "b", 1, 9), r(3, "b", 2, 3), r(4, "a", 4, 5), r(5, "a", 11, 12),
    ],
    "read during a write sees old then new": [
        w(1, "a", 0, 1), w(2, "b", 2, 10), r(3, "a", 3, 4), r(4, "b", 5, 6), r(5, "b", 11, 12),
    ],
    "equal timestamps count as concurrent": [w(1, "a", 0, 1), r(2, None, 1, 2)],
    "a value written twice comes back": [
        w(1, "a", 0, 1), r(2, "a", 2, 3), w(1, "b", 4, 5), w(3, "a", 6, 7), r(2, "a", 8, 9),
    ],
    "cas chain": [
        w(1, "a", 0, 1), cas(2, "a", "b", True, 2, 3), cas(3, "b", "c", True, 4, 5),
        cas(1, "a", "x", False, 6, 7), r(2, "c", 8, 9),
    ],
    "concurrent cas, one wins": [
        w(1, "a", 0, 1), cas(2, "a", "b", True, 2, 5), cas(3, "a", "c", False, 2, 5), r(1, "b", 6, 7),
    ],
    "cas on a missing key fails": [cas(1, None, "x", False, 0, 1), cas(2, "a", "x", False, 2, 3), r(3, None, 4, 5)],
    "unknown write takes effect much later": [
        w(1, "a", 0, 1), unknown_write(2, "b", 2), r(3, "a", 3, 4), r(3, "a", 50, 51), r(1, "b", 100, 101),
    ],
    "unknown write never takes effect": [
        w(1, "a", 0, 1), unknown_write(2, "b", 2), r(3, "a", 3, 4), r(1, "a", 100, 101),
    ],
    "unknown write explains a failed cas": [
        w(1, "a", 0, 1), unknown_write(2, "b", 2), cas(3, "a", "c", False, 3, 4),
        w(1, "d", 5, 6), r(3, "d", 7, 8),
    ],
    "unknown cas took effect": [w(1, "a", 0, 1), unknown_cas(2, "a", "b", 2), r(3, "b", 3, 4)],
    "unknown cas never took effect": [w(1, "a", 0, 1), unknown_cas(2, "a", "b", 2), r(3, "a", 100, 101)],
    "chain of unknown cas took effect": [
        w(1, "a", 0, 1), unknown_cas(2, "b", "c", 2), unknown_cas(3, "a", "b", 3), r(4, "c", 10, 11),
    ],
    "failed ops and unknown reads are ignored": [
        w(1, "a", 0, 1), w(2, "b", 2, 3, outcome=FAIL),
        Op(3, KEY, READ, None, "garbage", UNKNOWN, 2, None), r(1, "a", 4, 5),
    ],
}

BAD = {
    "stale read": [w(1, "a", 0, 1), w(2, "b", 2, 3), r(3, "a", 4, 5)],
    "lost write": [
        w(1, "a", 0, 1), w(2, "b", 2, 3), w(3, "c", 2.5, 20), r(1, "a", 10, 11), r(2, "a", 30, 31),
    ],
    "double cas success": [w(1, "a", 0, 1), cas(2, "a", "b", True, 2, 5), cas(3, "a", "c", True, 2, 5)],
    "read of a value never written": [w(1, "a", 0, 1), r(2, "zzz", 2, 3)],
    "read of a failed write": [w(1, "a", 0, 1), w(2, "b", 2, 3, outcome=FAIL), r(3, "b", 4, 5)],
    "read of None after a write": [w(1, "a", 0, 1), r(2, None, 2, 3)],
    "cas returned False although it matched": [w(1, "a", 0, 1), cas(2, "a", "b", False, 2, 3)],
    "reads go back in time": [w(1, "a", 0, 1), w(2, "b", 2, 10), r(3, "b", 3, 4), r(4, "a", 5, 6)],
    "unknown write seen before it was invoked": [w(1, "a", 0, 1), r(2, "b", 2, 3), unknown_write(3, "b", 4)],
    "unknown write seen, then undone": [
        w(1, "a", 0, 1), unknown_write(2, "b", 2), r(3, "b", 3, 4), r(3, "a", 5, 6),
    ],
    "chain of unknown cas, then undone": [
        w(1, "a", 0, 1), unknown_cas(2, "b", "c", 2), unknown_cas(3, "a", "b", 3),
        r(4, "c", 10, 11), r(4, "b", 12, 13),
    ],
    "failed cas needs a write invoked only later": [
        w(1, "a", 0, 1), cas(2, "a", "c", False, 2, 3), unknown_write(3, "b", 4),
    ],
}


@pytest.mark.parametrize("reduce_unknown", [True, False], ids=["reduced", "plain"])
@pytest.mark.parametrize("name", list(GOOD))
def test_known_good_history_is_linearizable(name, reduce_unknown):
    result = check_history(GOOD[name], reduce_unknown=reduce_unknown)
    assert result.ok, result.summary()
    assert result.violations == [] and result.undecided == []
    assert result.keys_checked == 1


@pytest.mark.parametrize("reduce_unknown", [True, False], ids=["reduced", "plain"])
@pytest.mark.parametrize("name", list(BAD))
def test_known_bad_history_is_a_violation_on_its_key(name, reduce_unknown):
    result = check_history(BAD[name], reduce_unknown=reduce_unknown)
    assert not result.ok
    assert [v.key for v in result.violations] == [KEY]
    assert repr(KEY) in result.violations[0].explanation
    assert result.reports[KEY].verdict is Verdict.VIOLATION


def test_initial_value_per_key():
    history = [r(1, "x", 0, 1), cas(2, "x", "y", True, 2, 3), r(3, "y", 4, 5)]
    assert check_history(history, initial={KEY: "x"}).ok
    assert not check_history(history).ok
    assert not check_history([r(1, None, 0, 1)], initial={KEY: "x"}).ok


def test_stale_read_witness_names_the_read_and_the_lost_value():
    stale = r(3, "a", 4, 5)
    result = check_history([w(1, "a", 0, 1), w(2, "b", 2, 3), stale])
    violation = result.violations[0]
    assert violation.blocked == stale
    assert violation.prefix == (w(1, "a", 0, 1),)
    assert violation.state == "a"
    assert "write('b')" in violation.explanation and "read -> 'a'" in violation.explanation
    assert "NOT OK" in result.summary() and "'k'" in result.summary()


def test_dead_end_witness_names_the_op_that_cannot_take_effect():
    stuck = cas(2, "a", "b", False, 2, 3)
    violation = check_history([w(1, "a", 0, 1), stuck]).violations[0]
    assert violation.blocked == stuck
    assert violation.prefix == (w(1, "a", 0, 1),) and violation.state == "a"
    assert "had to take effect and could not" in violation.explanation


def test_never_written_value_is_reported_without_search():
    bad_read = r(2, "zzz", 2, 3)
    result = check_history([w(1, "a", 0, 1), bad_read])
    assert result.violations[0].blocked == bad_read
    assert "'zzz'" in result.violations[0].explanation
    assert result.states_explored == 0


def test_keys_are_checked_independently():
    history = [
        w(1, "a", 0, 1, key="x"), r(2, "a", 2, 3, key="x"),
        w(1, "a", 0, 1, key="y"), w(2, "b", 2, 3, key="y"), r(3, "a", 4, 5, key="y"),
    ]
    result = check_history(history)
    assert not result.ok
    assert [v.key for v in result.violations] == ["y"]
    assert result.reports["x"].verdict is Verdict.LINEARIZABLE
    assert (result.keys_checked, result.ops_checked) == (2, 5)


def test_only_unnoticeable_unknown_ops_are_pruned():
    histories = {
        "unobserved": [w(1, "a", 0, 1), unknown_write(2, "b", 2), r(3, "a", 3, 4)],
        "observed": [w(1, "a", 0, 1), unknown_write(2, "b", 2), r(3, "b", 3, 4)],
        "explains a failed cas": GOOD["unknown write explains a failed cas"],
        "expected by a cas": [
            w(1, "a", 0, 1), unknown_write(2, "b", 2), unknown_cas(3, "b", "c", 3), r(4, "c", 10, 11),
        ],
    }
    pruned = {name: check_history(h).reports[KEY].unknown_pruned for name, h in histories.items()}
    assert pruned == {"unobserved": 1, "observed": 0, "explains a failed cas": 0, "expected by a cas": 0}


@pytest.mark.parametrize(
    "bad",
    [
        Op(1, KEY, "delete", None, None, OK, 0, 1),
        Op(1, KEY, READ, None, None, "timeout", 0, 1),
        Op(1, KEY, READ, None, None, OK, 0, None),
        Op(1, KEY, READ, None, None, OK, 2, 1),
        Op(1, KEY, CAS, "a", True, OK, 0, 1),
        Op(1, KEY, CAS, ("a", "b"), "yes", OK, 0, 1),
        Op(1, KEY, WRITE, ["unhashable"], None, OK, 0, 1),
        Op(1, KEY, WRITE, None, None, OK, 0, 1),
    ],
    ids=["kind", "outcome", "no-complete", "complete-before-invoke", "cas-shape", "cas-result", "unhashable", "write-none"],
)
def test_malformed_ops_are_rejected(bad):
    with pytest.raises(HistoryError):
        check_history([bad])


# ---------------------------------------------------------------------------------------------
# Budgets


def going_back_in_time_after_a_write_storm(writers: int = 12) -> list[Op]:
    """Many fully concurrent writes, then reads seeing w0, w1, w0: not linearizable, but the
    search has to try the write orders before it can say so."""
    storm = [w(p, f"w{p}", 0, 10) for p in range(writers)]
    return storm + [r(90, "w0", 11, 12), r(91, "w1", 13, 14), r(92, "w0", 15, 16)]


def test_state_budget_makes_a_key_undecided_not_ok():
    history = going_back_in_time_after_a_write_storm()
    assert check_history(history).reports[KEY].verdict is Verdict.VIOLATION

    result = check_history(history, max_states=200)
    assert not result.ok
    assert result.undecided == [KEY] and result.violations == []
    assert result.reports[KEY].verdict is Verdict.UNDECIDED
    assert "state budget" in result.reports[KEY].reason
    assert check_history(history, max_states=200, allow_undecided=True).ok


def test_undecided_key_does_not_hide_a_violation_elsewhere():
    history = going_back_in_time_after_a_write_storm() + [
        w(1, "a", 0, 1, key="other"), w(2, "b", 2, 3, key="other"), r(3, "a", 4, 5, key="other"),
    ]
    result = check_history(history, max_states=200, allow_undecided=True)
    assert not result.ok
    assert [v.key for v in result.violations] == ["other"] and result.undecided == [KEY]


def test_time_budget_makes_a_key_undecided():
    fake_clock = itertools.count(0.0, 1.0).__next__  # one second passes per reading
    result = check_history(going_back_in_time_after_a_write_storm(), time_limit=3.0, clock=fake_clock)
    assert result.undecided == [KEY] and not result.ok
    assert "time limit" in result.reports[KEY].reason


# ---------------------------------------------------------------------------------------------
# Brute force cross-check on small random histories (linearizable or not)


def replay(order, initial) -> bool:
    """Execute ops one at a time against a register; an unknown CAS may match or not."""
    state = initial
    for op in order:
        if op.kind == READ:
            if state != op.result:
                return False
        elif op.kind == WRITE:
            state = op.value
        else:
            matched = state is not None and state == op.value[0]
            if op.outcome == OK and op.result != matched:
                return False
            if matched:
                state = op.value[1]
    return True


def respects_real_time(order) -> bool:
    return not any(
        later.outcome == OK and later.complete < earlier.invoke
        for i, earlier in enumerate(order)
        for later in order[i + 1:]
    )


def brute_force_linearizable(ops, initial) -> bool:
    must = [op for op in ops if op.outcome == OK]
    maybe = [op for op in ops if op.outcome == UNKNOWN and op.kind != READ]
    for size in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, size):
            for order in itertools.permutations(must + list(chosen)):
                if respects_real_time(order) and replay(order, initial):
                    return True
    return False


SMALL_VALUES = st.sampled_from([1, 2, 3])


@st.composite
def small_random_op(draw, process: int) -> Op:
    kind = draw(st.sampled_from([READ, WRITE, CAS]))
    value = {
        READ: None,
        WRITE: draw(SMALL_VALUES),
        CAS: (draw(st.sampled_from([None, 1, 2, 3])), draw(SMALL_VALUES)),
    }[kind]
    result = {READ: draw(st.sampled_from([None, 1, 2, 3])), WRITE: None, CAS: draw(st.booleans())}[kind]
    outcome = draw(st.sampled_from([OK, OK, OK, UNKNOWN, FAIL]))
    invoke = draw(st.integers(0, 8))
    return Op(process, KEY, kind, value, result, outcome, invoke, invoke + draw(st.integers(0, 4)))


@st.composite
def small_random_history(draw) -> tuple[list[Op], int | None]:
    size = draw(st.integers(1, 6))
    return [draw(small_random_op(p)) for p in range(size)], draw(st.sampled_from([None, 1]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_random_history())
def test_checker_agrees_with_brute_force(case):
    ops, initial = case
    expected = brute_force_linearizable(ops, initial)
    for reduce_unknown in (True, False):
        result = check_history(ops, {KEY: initial}, reduce_unknown=reduce_unknown, max_states=None, time_limit=None)
        assert result.ok == expected, (reduce_unknown, result.summary())


# ---------------------------------------------------------------------------------------------
# Histories generated by executing ops against a register model


def model_step(state, kind, value):
    """Returns (result, new state) for one op executed atomically."""
    if kind == READ:
        return state, state
    if kind == WRITE:
        return None, value
    matched = state is not None and state == value[0]
    return matched, (value[1] if matched else state)


@st.composite
def sequential_history(draw) -> list[Op]:
    steps = draw(st.lists(st.tuples(st.sampled_from([READ, WRITE, CAS]), st.integers(0, 9)), min_size=1, max_size=40))
    state, written, ops = None, [None], []
    for n, (kind, pick) in enumerate(steps):
        value = {READ: None, WRITE: f"v{n}", CAS: (written[pick % len(written)], f"c{n}")}[kind]
        result, state = model_step(state, kind, value)
        if kind != READ:
            written.append(value if kind == WRITE else value[1])
        ops.append(Op(n % 3, KEY, kind, value, result, OK, 2 * n, 2 * n + 1))
    return ops


def simulate(rnd: random.Random, clients: int, n_ops: int, keys=(KEY,), p_unknown=0.1, p_fail=0.05) -> list[Op]:
    """Clients issue ops with overlapping windows; each op that takes effect does so atomically at a
    random instant in its window (unknown ones: any time after invoke, or never). Linearizable by
    construction."""
    clock = [rnd.uniform(0, 1) for _ in range(clients)]
    written = {key: [None] for key in keys}
    planned = []  # (instant it takes effect or None, op without its result)
    for n in range(n_ops):
        client, key = rnd.randrange(clients), rnd.choice(keys)
        invoke = clock[client] + rnd.uniform(0.0, 0.5)
        complete = invoke + rnd.uniform(0.01, 2.0)
        clock[client] = complete  # a client waits for its op (or its timeout) before the next
        kind = rnd.choices([READ, WRITE, CAS], [4, 3, 3])[0]
        value = {READ: None, WRITE: f"v{n}", CAS: (rnd.choice(written[key][-4:]), f"c{n}")}[kind]
        if kind != READ:
            written[key].append(value if kind == WRITE else value[1])
        outcome = rnd.choices([OK, UNKNOWN, FAIL], [1 - p_unknown - p_fail, p_unknown, p_fail])[0]
        instant = {
            OK: rnd.uniform(invoke, complete),
            UNKNOWN: rnd.uniform(invoke, invoke + 10) if rnd.random() < 0.5 else None,
            FAIL: None,
        }[outcome]
        planned.append((instant, Op(client, key, kind, value, None, outcome, invoke, complete)))
    state = dict.fromkeys(keys)
    results = {}
    for instant, op in sorted((p for p in planned if p[0] is not None), key=lambda p: p[0]):
        results[id(op)], state[op.key] = model_step(state[op.key], op.kind, op.value)
    return [replace(op, result=results.get(id(op)) if op.outcome == OK else None) for _, op in planned]


@st.composite
def concurrent_history(draw, max_ops: int = 60) -> list[Op]:
    # A seed rather than st.randoms(): drawing every coin flip through hypothesis is ~50x slower.
    return simulate(
        random.Random(draw(st.integers(0, 2**32 - 1))),
        clients=draw(st.integers(1, 5)),
        n_ops=draw(st.integers(1, max_ops)),
        keys=draw(st.sampled_from([(KEY,), (KEY, "other")])),
        p_unknown=draw(st.sampled_from([0.0, 0.1, 0.3])),
    )


def ok_reads(ops: list[Op]) -> list[int]:
    return [i for i, op in enumerate(ops) if op.kind == READ and op.outcome == OK]


def mutate_one_read(ops: list[Op], index: int, new_result) -> tuple[list[Op], Op]:
    reads = ok_reads(ops)
    target = reads[index % len(reads)]
    mutated = replace(ops[target], result=new_result)
    return ops[:target] + [mutated] + ops[target + 1:], mutated


@PROPERTY_SETTINGS
@given(sequential_history(), st.integers(0, 100))
def test_sequential_model_history_is_ok_and_breaks_when_a_read_lies(ops, index):
    assert check_history(ops).ok
    reads = ok_reads(ops)
    assume(reads)
    never, _ = mutate_one_read(ops, index, NEVER_WRITTEN)
    assert not check_history(never).ok
    # A value that was stored at some point (so the search, not the pre-check, must catch it):
    # in a sequential history any answer but the current value is wrong.
    truth = ops[reads[index % len(reads)]].result
    stored = {None} | {op.value if op.kind == WRITE else op.value[1] for op in ops if op.kind != READ}
    others = sorted(stored - {truth}, key=repr)
    assume(others)
    wrong, mutated = mutate_one_read(ops, index, others[0])
    violation = check_history(wrong).violations[0]
    # Only one order exists, so the witness is the lie and a prefix of what came before it.
    assert violation.blocked == mutated
    assert list(violation.prefix) == wrong[:len(violation.prefix)]
    assert len(violation.prefix) <= wrong.index(mutated)


@PROPERTY_SETTINGS
@given(concurrent_history(), st.integers(0, 100))
def test_concurrent_model_history_is_ok_and_breaks_when_a_read_lies(ops, index):
    result = check_history(ops)
    assert result.ok, result.summary()
    assume(ok_reads(ops))
    mutated_ops, mutated = mutate_one_read(ops, index, NEVER_WRITTEN)
    broken = check_history(mutated_ops)
    assert not broken.ok
    assert [v.key for v in broken.violations] == [mutated.key]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(concurrent_history(max_ops=40))
def test_reductions_do_not_change_the_verdict_on_model_histories(ops):
    assert check_history(ops, reduce_unknown=False).ok


# ---------------------------------------------------------------------------------------------
# Windows: the fallback when the full search is over budget


def flip_a_late_failed_cas(ops: list[Op]) -> list[Op] | None:
    """Claim that the first failed CAS in the last third succeeded (often a violation)."""
    late = [i for i, op in enumerate(ops) if op.kind == CAS and op.outcome == OK and op.result is False
            and i > 2 * len(ops) // 3]
    if not late:
        return None
    return ops[:late[0]] + [replace(ops[late[0]], result=True)] + ops[late[0] + 1:]


def test_windows_find_a_deep_violation_beyond_the_state_budget():
    budget = 300
    for seed in range(30):
        bad = flip_a_late_failed_cas(simulate(random.Random(seed), clients=5, n_ops=400, p_unknown=0.05))
        if bad is None:
            continue
        truth = check_history(bad, max_states=None, time_limit=None).reports[KEY]
        if truth.verdict is Verdict.VIOLATION and truth.states_explored > budget:
            break
    else:
        pytest.fail("no generated history needed more than the budget to prove its violation")
    report = check_history(bad, max_states=budget).reports[KEY]
    assert report.verdict is Verdict.VIOLATION
    assert "from an unknown starting value" in report.violation.explanation


def test_windows_do_not_trust_what_a_straddling_read_saw():
    # The long read saw 'a' before 'b' was written; every later window cuts through it, and
    # holding it to 'a' there would contradict the reads of 'b'.
    history = [w(1, "a", 0, 1), r(2, "a", 2, 1000), w(1, "b", 3, 4)]
    history += [r(3, "b", 5 + 2 * k, 6 + 2 * k) for k in range(100)]
    assert check_history(history).ok
    result = check_history(history, max_states=50)  # too few for the full search: windows decide
    assert result.violations == [] and result.undecided == [KEY], result.summary()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([0.0, 0.1, 0.3]))
def test_windows_never_report_a_linearizable_history(seed, clients, p_unknown):
    ops = simulate(random.Random(seed), clients=clients, n_ops=250, p_unknown=p_unknown)
    # Too few states for the full search, enough for small windows: only windows can decide.
    result = check_history(ops, max_states=100)
    assert result.violations == [], result.summary()
    assert result.states_explored > 100  # the windows did run


# ---------------------------------------------------------------------------------------------
# Speed


def test_two_thousand_ops_on_one_key_with_five_clients_check_quickly():
    ops = simulate(random.Random(20240601), clients=5, n_ops=2000, p_unknown=0.05)
    started = time.monotonic()
    result = check_history(ops)
    elapsed = time.monotonic() - started
    assert result.ok, result.summary()
    assert result.ops_checked > 1800
    # Budgeted generously for a loaded 2-core machine; it typically takes a small fraction of this.
    assert elapsed < 5.0, f"{elapsed:.2f}s"


def test_ten_clients_with_many_unknown_ops_check_quickly():
    ops = simulate(random.Random(11), clients=10, n_ops=2000, p_unknown=0.3)
    started = time.monotonic()
    result = check_history(ops)
    assert result.ok, result.summary()
    assert time.monotonic() - started < 5.0
    broken, _ = mutate_one_read(ops, 1234, NEVER_WRITTEN)
    assert not check_history(broken).ok


def test_a_lost_append_is_reported_with_where_and_when_it_ran():
    """A lost or doubled element must be placeable in the node logs: the report names the
    endpoint, the wall-clock time of the call and how long the answer took."""
    from tests.faults.harness import Workload, verdict

    workload = Workload(lambda: [], workers=0, prefix="t:")
    workload.started, workload.started_wall = 100.0, 1_800_000_000.0
    workload.record.appends["t:a0"] = {"2.7": "ok", "2.8": "ok"}
    workload.record.append_trace["2.8"] = ("127.0.0.1:7003", 12.5, 15.75)
    report = verdict("trace", workload, seconds=1.0, final_get=lambda key: b"2.7," if key == "t:a0" else None,
                     converged=True, min_ok=0)
    assert not report.passed
    (lost,) = report.lost_writes
    assert lost.startswith("t:a0: acknowledged 2.8 missing (via 127.0.0.1:7003, invoked +12.50s = ")
    assert lost.endswith("answered after 3.25s)")
