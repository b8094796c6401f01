"""Blocking pops without sockets: the waiter registry's FIFO and wake rules, the coordinator
driven by hand (a fake submit and post), the state machine's attempts (replies, errors,
timeouts parsed as Redis 7.0 does) and the exactly-once rules (an unserved attempt is not
remembered; a served one is, so a retry returns the same element)."""

from __future__ import annotations

from typing import Any

import pytest

from raftcache import commands as c
from raftcache.blocking import BlockingPops, Waiter, WaiterRegistry
from raftcache.datatypes.blocking import parse_blocking, parse_timeout_ms
from raftcache.errors import CommandError, WrongTypeError
from tests.unit.test_statemachine import Machine


def dw(*args: Any) -> c.DataWrite:
    return c.DataWrite(tuple(a if isinstance(a, bytes) else str(a).encode() for a in args))


# ------------------------------------------------------------------ the registry
def test_only_the_first_waiter_of_a_key_is_woken_and_in_arrival_order():
    reg = WaiterRegistry()
    w1, w2, w3 = Waiter([b"k"]), Waiter([b"k"]), Waiter([b"k"])
    assert reg.add(w1) is True
    assert reg.attempt_done(w1, finished=False) == (False, [])  # its first attempt: empty, parked
    assert reg.add(w2) is False and reg.add(w3) is False  # behind a waiter: parked at once
    assert not w2.running and not w3.running
    assert reg.changed([b"k"]) == [w1]
    assert reg.changed([b"k"]) == []  # w1 is attempting: marked dirty, nobody else woken
    assert w1.dirty
    # w1 is served; the change it absorbed passes to the next in line
    assert reg.attempt_done(w1, finished=True) == (False, [w2])
    assert reg.attempt_done(w2, finished=True) == (False, [])
    assert reg.changed([b"k"]) == [w3]
    assert len(reg) == 1


def test_a_change_during_an_unserved_attempt_means_attempt_again_not_park():
    reg = WaiterRegistry()
    w = Waiter([b"a", b"b"])
    reg.add(w)  # the first attempt is in flight
    assert reg.changed([b"b"]) == []
    assert reg.attempt_done(w, finished=False) == (True, [])
    assert w.running and not w.dirty
    assert reg.attempt_done(w, finished=False) == (False, [])
    assert not w.running


def test_a_waiter_on_several_keys_is_woken_once_per_batch():
    reg = WaiterRegistry()
    w = Waiter([b"a", b"b", b"a"])
    assert w.keys == (b"a", b"b")
    reg.add(w)
    reg.attempt_done(w, finished=False)
    assert reg.changed([b"a", b"b"]) == [w]
    assert not w.dirty


def test_a_newcomer_attempts_when_one_of_its_keys_has_no_waiters_or_when_told_to():
    reg = WaiterRegistry()
    reg.add(Waiter([b"a"]))
    assert reg.add(Waiter([b"a", b"b"])) is True  # b may hold elements nobody waits for
    assert reg.add(Waiter([b"a"]), may_park=False) is True  # e.g. a tagged retry


def test_removing_a_parked_waiter_frees_its_keys_and_hands_on_an_absorbed_wakeup():
    reg = WaiterRegistry()
    w1, w2 = Waiter([b"k"]), Waiter([b"k"])
    reg.add(w1)
    reg.add(w2)
    assert reg.changed([b"k"]) == []  # w1 still attempting: dirty
    assert reg.remove(w1) == [w2]  # it leaves (disconnect) with a wake-up it owed
    assert reg.remove(w2) == []
    assert not reg.watching(b"k") and len(reg) == 0
    assert reg.remove(w2) == []  # twice is harmless


# ------------------------------------------------------------- the coordinator
class Harness:
    """BlockingPops with a hand-run submit (attempts queue until answered) and post."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, Any, Any]] = []  # (command, tag, on_done)
        self.posted: list[Any] = []
        self.pops = BlockingPops(lambda cmd, tag, done: self.attempts.append((cmd, tag, done)), self.posted.append)
        self.results: dict[str, list[Any]] = {}

    def block(self, name: str, keys: list[bytes], tag: Any = None) -> Waiter:
        self.results[name] = []
        return self.pops.block(name, keys, self.results[name].append, tag=tag)

    def answer(self, result: Any) -> str:
        command, _, done = self.attempts.pop(0)
        done(result)
        return command

    def run_posted(self) -> None:
        posted, self.posted = self.posted, []
        for fn in posted:
            fn()


def test_coordinator_parks_wakes_in_fifo_order_and_answers_once():
    h = Harness()
    h.block("a", [b"k"])
    assert h.answer(None) == "a"  # empty: parked
    h.block("b", [b"k"])
    assert h.attempts == []  # behind a: parked without an attempt
    assert len(h.pops) == 2
    h.pops.key_listener(b"k")
    h.pops.key_listener(b"k")  # the same batch: one hand-over
    h.pops.key_listener(b"other")  # nobody waits on it: ignored
    assert len(h.posted) == 1
    h.run_posted()
    assert [a[0] for a in h.attempts] == ["a"]
    assert h.answer([b"k", b"x"]) == "a"
    assert h.results == {"a": [[b"k", b"x"]], "b": []}
    assert len(h.pops) == 1


def test_coordinator_expiry_answers_nil_but_waits_for_an_attempt_in_flight():
    h = Harness()
    parked = h.block("parked", [b"k"])
    h.answer(None)
    h.pops.expire(parked)
    assert h.results["parked"] == [None]
    flying = h.block("flying", [b"k"])
    h.pops.expire(flying)  # its attempt may pop: the attempt's result is the answer
    assert h.results["flying"] == []
    h.answer([b"k", b"v"])
    assert h.results["flying"] == [[b"k", b"v"]]
    late = h.block("late", [b"k"])
    h.pops.expire(late)
    h.answer(None)
    assert h.results["late"] == [None]
    assert len(h.pops) == 0


def test_coordinator_cancel_drops_the_waiter_and_the_next_one_gets_the_element():
    h = Harness()
    gone = h.block("gone", [b"k"])
    h.answer(None)
    h.block("next", [b"k"], tag=c.SessionTag(7, 3, 1))
    assert h.answer(None) == "next"  # tagged: attempts although gone waits
    h.pops.cancel(gone)
    h.pops.key_listener(b"k")
    h.run_posted()
    assert [a[0] for a in h.attempts] == ["next"]
    h.answer([b"k", b"v"])
    assert h.results == {"gone": [], "next": [[b"k", b"v"]]}


def test_coordinator_retries_with_the_same_tag_and_ends_on_errors():
    h = Harness()
    tag = c.SessionTag(7, 3, 1)
    h.block("t", [b"k"], tag=tag)
    h.answer(None)
    h.pops.key_listener(b"k")
    h.run_posted()
    assert h.attempts[0][1] == tag
    h.answer(WrongTypeError())
    assert isinstance(h.results["t"][0], WrongTypeError)
    h.pops.restored()  # nobody waits: nothing to post
    assert h.posted == []


def test_restore_wakes_every_waiter():
    h = Harness()
    h.block("a", [b"x"])
    h.block("b", [b"y"])
    h.answer(None)
    h.answer(None)
    h.pops.restored()
    h.run_posted()
    assert sorted(a[0] for a in h.attempts) == ["a", "b"]


# ------------------------------------------------------------ timeouts, arguments
@pytest.mark.parametrize(
    "text, ms",
    [(b"0", 0), (b"1", 1000), (b"0.1", 100), (b"0.0001", 1), (b"-0.0009", 0), (b"-0", 0), (b".1", 100),
     (b"1.", 1000), (b"+0.1", 100), (b"1e3", 1_000_000), (b"0x10", 16_000), (b"0x1p-3", 125), (b"1e-400", 1),
     (b"5e15", 5 * 10**18)],
)
def test_timeouts_round_up_to_milliseconds_as_redis(text, ms):
    assert parse_timeout_ms(text) == ms


@pytest.mark.parametrize(
    "text, message",
    [(b"abc", "not a float"), (b"", "not a float"), (b" 1", "not a float"), (b"1 ", "not a float"), (b"nan", "not a float"),
     (b"1_0", "not a float"), (b"0x", "not a float"), (b"1e5000", "not a float"), (b"1e-5000", "not a float"),
     (b"-1", "negative"), (b"inf", "negative"), (b"-inf", "negative"), (b"1e17", "negative"), (b"1e400", "negative"),
     (b"9223372036854775807", "negative")],
)
def test_bad_timeouts_get_redis_errors(text, message):
    with pytest.raises(CommandError, match=message):
        parse_timeout_ms(text)


@pytest.mark.parametrize(
    "args, message",
    [((b"blmpop", b"1", b"0", b"a", b"LEFT"), "numkeys should be greater than 0"),
     ((b"blmpop", b"-1", b"1", b"a", b"MIDDLE"), "syntax error"),
     ((b"blmpop", b"-1", b"1", b"a", b"LEFT"), "timeout is negative"),
     ((b"blmpop", b"1", b"2", b"a", b"LEFT"), "syntax error"),
     ((b"blmpop", b"1", b"1", b"a", b"LEFT", b"COUNT", b"0"), "count should be greater than 0"),
     ((b"blmpop", b"1", b"1", b"a", b"LEFT", b"COUNT", b"2", b"COUNT", b"3"), "syntax error"),
     ((b"bzmpop", b"1", b"1", b"a", b"LEFT"), "syntax error"),
     ((b"blmove", b"a", b"b", b"UP", b"LEFT", b"x"), "syntax error"),
     ((b"blmove", b"a", b"b", b"LEFT", b"LEFT", b"x"), "not a float")],
)
def test_argument_errors_in_redis_order(args, message):
    with pytest.raises(CommandError, match=message):
        parse_blocking(args)


def test_parsed_keys():
    assert parse_blocking((b"blpop", b"a", b"b", b"0")).keys == (b"a", b"b")
    assert parse_blocking((b"blmpop", b"0", b"2", b"a", b"b", b"RIGHT", b"COUNT", b"3")).count == 3
    assert parse_blocking((b"brpoplpush", b"s", b"d", b"0")).keys == (b"s",)


# ------------------------------------------------- attempts in the state machine
@pytest.fixture
def m() -> Machine:
    return Machine()


def test_attempts_pop_from_the_first_non_empty_key_in_order(m):
    m.w(dw("rpush", "l2", "a", "b", "c"))
    assert m.w(dw("blpop", "l1", "l2", "0")) == [b"l2", b"a"]
    assert m.w(dw("brpop", "l1", "l2", "0")) == [b"l2", b"c"]
    assert m.w(dw("blmpop", "0", "2", "l1", "l2", "LEFT", "COUNT", "5")) == [b"l2", [b"b"]]
    assert m.w(dw("blpop", "l1", "l2", "0")) is None
    m.w(dw("rpush", "src", "x"))
    assert m.w(dw("blmove", "src", "dst", "RIGHT", "LEFT", "0")) == b"x"
    assert m.w(dw("brpoplpush", "src", "dst", "0")) is None
    assert m.r(c.DataRead((b"lrange", b"dst", b"0", b"-1"))) == [b"x"]


def test_attempt_errors(m):
    m.w(c.Set(b"s", b"v"))
    m.w(dw("rpush", "l", "a"))
    assert isinstance(m.w(dw("blpop", "missing", "s", "l", "0")), WrongTypeError)  # met before l
    assert m.w(dw("blpop", "l", "s", "0")) == [b"l", b"a"]
    assert m.w(dw("blpop", "l", "abc")) == CommandError("timeout is not a float or out of range")


def test_an_unserved_tagged_attempt_is_not_remembered_so_its_retry_can_pop(m):
    tag = c.SessionTag(42, 1, 1)
    assert m.w(dw("blpop", "q", "0"), tag) is None
    m.w(dw("rpush", "q", "a", "b"))
    assert m.w(dw("blpop", "q", "0"), tag) == [b"q", b"a"]


def test_a_served_tagged_attempt_is_remembered_so_its_retry_returns_the_same_element(m):
    m.w(dw("rpush", "q", "a", "b"))
    tag = c.SessionTag(42, 1, 1)
    assert m.w(dw("blpop", "q", "0"), tag) == [b"q", b"a"]
    assert m.w(dw("blpop", "q", "0"), tag) == [b"q", b"a"]  # the lost-reply retry: b stays queued
    assert m.r(c.DataRead((b"lrange", b"q", b"0", b"-1"))) == [b"b"]
    other = c.SessionTag(42, 2, 2)
    assert m.w(dw("blmove", "q", "mine", "LEFT", "RIGHT", "0"), other) == b"b"
    assert m.w(dw("blmove", "q", "mine", "LEFT", "RIGHT", "0"), other) == b"b"
    assert m.r(c.DataRead((b"lrange", b"mine", b"0", b"-1"))) == [b"b"]


def test_other_nil_results_are_still_remembered(m):
    tag = c.SessionTag(42, 1, 1)
    assert m.w(dw("lpop", "q"), tag) is None
    m.w(dw("rpush", "q", "a"))
    assert m.w(dw("lpop", "q"), tag) is None  # an answered LPOP stays answered


def test_inside_exec_an_attempt_is_its_non_blocking_self(m):
    assert m.w(c.Exec((dw("blpop", "q", "0"), dw("rpush", "q", "a"), dw("blpop", "q", "0")), ())) == [None, 1, [b"q", b"a"]]


def test_key_listener_hears_pushes_and_moves(m):
    heard: list[bytes] = []
    m.fsm.key_listener = heard.append
    m.w(dw("rpush", "q", "a", "b"))
    m.w(dw("blmove", "q", "d", "LEFT", "LEFT", "0"))
    # the destination first (Redis notifies the push before the pop); the pop that left an
    # element also wakes the next waiter
    assert heard == [b"q", b"d", b"q"]


def test_sorted_set_attempts(m):
    m.w(dw("zadd", "z", "2", "b", "1.5", "a", "3", "c"))
    assert m.w(dw("bzpopmin", "none", "z", "0")) == [b"z", b"a", b"1.5"]
    assert m.w(dw("bzpopmax", "z", "0")) == [b"z", b"c", b"3"]
    assert m.w(dw("bzmpop", "0", "1", "z", "MIN", "COUNT", "5")) == [b"z", [[b"b", b"2"]]]
    assert m.w(dw("bzpopmin", "z", "0")) is None
    assert m.w(dw("bzmpop", "0", "1", "z", "MAX")) is None
    m.w(c.Set(b"s", b"v"))
    assert isinstance(m.w(dw("bzpopmin", "s", "0")), WrongTypeError)


def test_snapshot_with_a_remembered_pop_restores_to_the_same_digest(m):
    m.w(dw("rpush", "q", "a", "b"))
    m.w(dw("blpop", "q", "0"), c.SessionTag(5, 1, 1))
    m.w(c.Exec((dw("blpop", "none", "0"),), ()), c.SessionTag(5, 2, 1))  # a nil inside EXEC is remembered
    restored = Machine()
    restored.fsm.restore(list(m.fsm.snapshot_sections()))
    assert restored.fsm.digest() == m.fsm.digest()
    assert restored.w(dw("blpop", "q", "0"), c.SessionTag(5, 1, 1)) == [b"q", b"a"]
