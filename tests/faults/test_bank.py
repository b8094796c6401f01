"""The bank checker (tests/faults/bank.py: check_bank) on synthetic histories, no sockets: a
correct concurrent history passes, and each kind of broken one is caught and named."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tests.faults.bank import BankRecord, Snapshot, Transfer, check_bank


def simulate(seed: int, steps: int = 400, accounts: int = 4, balance: int = 50) -> tuple[BankRecord, list[int], bytes]:
    """A history a correct server could produce: each operation takes effect at its step's
    instant, inside a window that overlaps its neighbours'."""
    rng = random.Random(seed)
    rec = BankRecord([f"b:{i}" for i in range(accounts)], "b:journal", balance, started=0.0)
    state, journal = [balance] * accounts, []
    for step in range(steps):
        at = float(step)
        invoke, complete = at - rng.uniform(0, 2.5), at + rng.uniform(0, 2.5)
        if rng.random() < 0.3:
            rec.snapshots.append(Snapshot(rng.choice(["multi", "script", "mget"]), "n1", invoke, complete,
                                          tuple(state), tuple(journal)))
            continue
        source, target = rng.sample(range(accounts), 2)
        t = Transfer(f"w.{step}", rng.choice(["watch", "script"]), source, target, rng.randint(1, 30), "n1", invoke, complete)
        rec.transfers[t.id] = t
        seen = (state[source], state[target])
        roll = rng.random()
        if roll < 0.15:
            t.outcome = "fail"  # e.g. the connection failed before EXEC: nothing applied
            continue
        if seen[0] < t.amount:
            t.outcome, t.seen = "refused", seen
            continue
        applied = roll > 0.2  # 0.15-0.2: unknown and never applied
        t.outcome = "ok" if roll > 0.3 else "unknown"
        if t.outcome == "unknown":
            t.complete = None
        if applied:
            t.seen = seen
            state[source] -= t.amount
            state[target] += t.amount
            journal.append(t.id)
    return rec, state, "".join(f"{tid}," for tid in journal).encode()


def acked(rec: BankRecord) -> list[Transfer]:
    return [t for t in rec.transfers.values() if t.outcome == "ok"]


@pytest.mark.parametrize("seed", range(5))
def test_a_correct_history_passes(seed):
    rec, final, journal = simulate(seed)
    assert len(acked(rec)) > 100 and len(rec.snapshots) > 50  # the history has substance
    assert check_bank(rec, final, journal) == []


def test_a_transfer_applied_twice_is_caught():
    rec, final, journal = simulate(1)
    t = acked(rec)[-1]
    final = list(final)
    final[t.source] -= t.amount
    final[t.target] += t.amount
    problems = check_bank(rec, final, journal + f"{t.id},".encode())
    assert any(f"transfer {t.id} applied twice" in p for p in problems), problems


def test_a_lost_acknowledged_transfer_is_caught():
    rec, final, journal = simulate(2)
    t = acked(rec)[-1]
    entries = journal.decode().split(",")
    assert entries[-2] == t.id or t.id in entries
    entries.remove(t.id)
    final = list(final)  # the money went back too: only the journal can tell
    final[t.source] += t.amount
    final[t.target] -= t.amount
    problems = check_bank(rec, final, ",".join(entries).encode())
    assert any(f"acknowledged transfer {t.id} missing" in p for p in problems), problems


def test_a_failed_transfer_that_applied_is_caught():
    rec, final, journal = simulate(3)
    t = next(t for t in reversed(list(rec.transfers.values())) if t.outcome == "fail")
    t.seen = (final[t.source], final[t.target])
    final = list(final)
    final[t.source] -= t.amount
    final[t.target] += t.amount
    problems = check_bank(rec, final, journal + f"{t.id},".encode())
    assert any(f"transfer {t.id} applied although it failed" in p for p in problems), problems


def test_a_changed_total_is_caught():
    rec, final, journal = simulate(4)
    final = list(final)
    final[0] += 1  # a credit without its debit
    problems = check_bank(rec, final, journal)
    assert any("the total changed" in p for p in problems), problems


def test_a_torn_snapshot_is_caught():
    rec, final, journal = simulate(5)
    s = rec.snapshots[len(rec.snapshots) // 2]
    torn = list(s.balances)
    torn[0] -= 5  # saw the debit of a transfer but not its credit
    rec.snapshots[len(rec.snapshots) // 2] = dataclasses.replace(s, balances=tuple(torn))
    problems = check_bank(rec, final, journal)
    assert any("is torn" in p for p in problems), problems


def test_a_snapshot_whose_balances_disagree_with_its_journal_is_caught():
    rec, final, journal = simulate(6)
    s = next(s for s in rec.snapshots if s.balances[0] != s.balances[1])
    swapped = (s.balances[1], s.balances[0], *s.balances[2:])  # the total is right; the state is not
    rec.snapshots[rec.snapshots.index(s)] = dataclasses.replace(s, balances=swapped)
    problems = check_bank(rec, final, journal)
    assert any("the journal says" in p for p in problems), problems


def test_a_stale_snapshot_is_caught_by_real_time_order():
    rec, final, journal = simulate(7)
    entries = [e for e in journal.decode().split(",") if e]
    # A snapshot taken long after everything completed that still sees an early state.
    early = next(s for s in rec.snapshots if 5 <= len(s.journal) < len(entries) - 20)
    late = 10_000.0
    rec.snapshots.append(dataclasses.replace(early, invoke=late, complete=late + 1))
    problems = check_bank(rec, final, journal)
    assert any(p.startswith("real-time order") for p in problems), problems


def test_a_snapshot_of_a_history_that_was_rewritten_is_caught():
    rec, final, journal = simulate(8)
    s = next(s for s in rec.snapshots if len(s.journal) > 5)
    rewritten = (*s.journal[:-2], s.journal[-1], s.journal[-2])
    rec.snapshots[rec.snapshots.index(s)] = dataclasses.replace(s, journal=rewritten)
    problems = check_bank(rec, final, journal)
    assert any("not a prefix of the final one" in p for p in problems), problems


def test_a_transfer_that_acted_on_stale_balances_is_caught():
    """What a WATCH that missed a change looks like: the EXEC wrote balances computed from
    values that had moved since they were read."""
    rec, _, journal = simulate(9)
    entries = [e for e in journal.decode().split(",") if e]
    victim = next(rec.transfers[e] for e in entries[len(entries) // 2:] if rec.transfers[e].via == "watch")
    victim.seen = (victim.seen[0] + 7, victim.seen[1])  # read before another transfer debited 7
    # Replaying what the server would then hold: the victim's SETs overwrite that debit.
    state = [rec.initial] * len(rec.accounts)
    for tid in entries:
        t = rec.transfers[tid]
        a, b = t.seen if t is victim else (state[t.source], state[t.target])
        state[t.source], state[t.target] = a - t.amount, b + t.amount
    problems = check_bank(rec, state, journal)
    assert any(f"transfer {victim.id} (watch) acted on balances" in p for p in problems), problems
    assert any("the total changed" in p for p in problems), problems


def test_a_refusal_no_state_explains_is_caught():
    rec, final, journal = simulate(10)
    t = next(t for t in rec.transfers.values() if t.outcome == "refused" and t.via == "script")
    t.seen = (t.seen[0], t.seen[1] + 1000)
    problems = check_bank(rec, final, journal)
    assert any(f"transfer {t.id} (script) read balances" in p for p in problems), problems


def test_a_journal_entry_nobody_wrote_is_caught():
    rec, final, journal = simulate(11)
    problems = check_bank(rec, final, journal + b"ghost,")
    assert any("'ghost'" in p and "never attempted" in p for p in problems), problems


def test_an_exec_aborted_with_no_conflicting_transfer_is_caught():
    """WATCH must be exact: a nil EXEC needs a concurrent change of a watched account."""
    rec, final, journal = simulate(12)
    t = next(t for t in rec.transfers.values() if t.outcome == "fail")
    t.aborted = True  # inside a window where others ran: explained
    # One that ran before any other transfer (unknown ones may take effect any time after their invoke).
    assert check_bank(rec, final, journal) == []
    lonely = Transfer("lonely", "watch", 0, 1, 5, "n1", -100.0, -99.0, outcome="fail", seen=(1, 1), aborted=True)
    rec.transfers[lonely.id] = lonely
    problems = check_bank(rec, final, journal)
    assert any("transfer lonely: EXEC aborted (nil), yet no applied transfer" in p for p in problems), problems
