"""MULTI/EXEC in the state machine: Exec applies atomically, WATCH indexes move on every kind
of change (value, expiry, expiry passing, sweep, delete, delete + re-create, FLUSHALL,
RENAME), the tombstone table is bounded without missing a conflict, and the new state is in
snapshots and the digest; snapshots of the old layout still load."""

from __future__ import annotations

import pytest

from raftcache import commands as c
from raftcache import statemachine as sm
from raftcache.errors import CommandError, NotIntegerError
from raftcache.statemachine import CacheStateMachine
from tests.unit.test_statemachine import Machine


@pytest.fixture
def m() -> Machine:
    return Machine()


def watch(m: Machine, *keys: bytes) -> tuple[tuple[bytes, int], ...]:
    return tuple(zip(keys, m.r(c.WatchIndex(keys))))


def exec_(m: Machine, ops, watches=(), tag=None):
    return m.w(c.Exec(tuple(ops), tuple(watches)), tag)


def test_exec_applies_every_op_in_order_with_runtime_errors_in_place(m):
    m.w(c.Set(b"s", b"text"))
    result = exec_(m, [c.Set(b"a", b"1"), c.IncrBy(b"s", 1), c.IncrBy(b"a", 5), c.Get(b"a"), c.MGet((b"a", b"s"))])
    assert result == [True, NotIntegerError(), 6, b"6", [b"6", b"text"]]
    assert m.r(c.Get(b"a")) == b"6"


def test_unchanged_watch_lets_exec_run(m):
    m.w(c.Set(b"k", b"1"))
    w = watch(m, b"k", b"missing")
    m.w(c.Set(b"other", b"x"))
    assert exec_(m, [c.IncrBy(b"k", 1)], w) == [2]


CHANGES = {
    "set": lambda m: m.w(c.Set(b"k", b"2")),
    "same value": lambda m: m.w(c.Set(b"k", b"1")),  # Redis aborts too: any write touches
    "incr": lambda m: m.w(c.IncrBy(b"k", 1)),
    "append": lambda m: m.w(c.Append(b"k", b"x")),
    "del": lambda m: m.w(c.Delete((b"k",))),
    "expire": lambda m: m.w(c.Expire(b"k", 100_000)),
    "persist": lambda m: (m.w(c.Persist(b"k"))),
    "getex": lambda m: m.w(c.GetEx(b"k", b"100")),
    "rename away": lambda m: m.w(c.Rename(b"k", b"z")),
    "rename onto": lambda m: (m.w(c.Set(b"y", b"9")), m.w(c.Rename(b"y", b"k"))),
    "flushall": lambda m: m.w(c.FlushAll()),
    "expiry passes": lambda m: m.tick(20_000),
    "expiry passes and is swept": lambda m: (m.tick(20_000), m.w(c.Sweep(100))),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_every_kind_of_change_to_a_watched_key_aborts(m, change):
    m.w(c.Set(b"k", b"1", ttl_ms=10_000 if "expiry" in change or change == "persist" else None))
    w = watch(m, b"k")
    CHANGES[change](m)
    before = m.fsm.digest()
    assert exec_(m, [c.Set(b"out", b"x")], w) is None
    assert m.r(c.Get(b"out")) is None
    assert m.fsm.digest() == before  # an aborted EXEC changes nothing (the session aside: untagged)


@pytest.mark.parametrize("gone", ["del", "expire", "flushall"])
def test_missing_key_created_and_deleted_again_aborts(m, gone):
    w = watch(m, b"k")
    m.w(c.Set(b"k", b"v", ttl_ms=5_000 if gone == "expire" else None))
    if gone == "del":
        m.w(c.Delete((b"k",)))
    elif gone == "expire":
        m.tick(10_000)
        m.w(c.Sweep(10))
    else:
        m.w(c.FlushAll())
    assert m.r(c.Get(b"k")) is None
    assert exec_(m, [c.Set(b"out", b"x")], w) is None


def test_deleting_and_recreating_aborts(m):
    m.w(c.Set(b"k", b"1"))
    w = watch(m, b"k")
    m.w(c.Delete((b"k",)))
    m.w(c.Set(b"k", b"1"))
    assert exec_(m, [c.Get(b"k")], w) is None


def test_watch_on_a_key_already_expired_survives_its_sweep_or_aborts_falsely_never_misses(m):
    m.w(c.Set(b"k", b"1", ttl_ms=1_000))
    m.tick(5_000)
    w = watch(m, b"k")
    assert exec_(m, [c.Get(b"k")], w) == [None]  # nothing happened
    m.w(c.Set(b"k", b"2"))
    assert exec_(m, [c.Get(b"k")], w) is None


def test_a_live_index_never_equals_an_absent_one(m):
    m.w(c.Set(b"k", b"1"))  # the key's revision is the current one...
    w = watch(m, b"k")
    m.w(c.Delete((b"k",)))  # ...and the deletion happens at that same revision
    assert exec_(m, [], w) is None


def test_tombstones_are_bounded_and_their_floor_keeps_conflicts(m, monkeypatch):
    monkeypatch.setattr(sm, "MAX_TOMBSTONES", 4)
    w = watch(m, b"k")
    m.w(c.Set(b"k", b"v"))
    m.w(c.Delete((b"k",)))
    for i in range(10):  # push k's tombstone out of the table
        m.w(c.Set(b"t%d" % i, b"v"))
        m.w(c.Delete((b"t%d" % i,)))
    assert len(m.fsm._tombstones) == 4 and b"k" not in m.fsm._tombstones
    assert exec_(m, [], w) is None
    assert exec_(m, [], watch(m, b"k")) == []  # and a fresh watch passes


def test_exec_refuses_ops_a_client_cannot_queue(m):
    assert exec_(m, [c.Sweep(1), c.Set(b"a", b"1")]) == [CommandError("Command not allowed inside a transaction"), True]


def test_exec_through_the_codec_and_exactly_once(m):
    fsm = CacheStateMachine()
    exec_cmd = c.Exec((c.IncrBy(b"n", 1), c.Get(b"n"), c.Scan(0, None, 10), c.Ttl(b"n", True)), ((b"n", 1),))
    decoded = c.decode_batch(c.encode_batch(T := 1_000, [(c.SessionTag(7, 1, 1), exec_cmd)]))
    assert decoded.commands[0][1] == exec_cmd
    first = fsm.apply(decoded)
    again = fsm.apply(c.decode_batch(c.encode_batch(T, [(c.SessionTag(7, 1, 1), exec_cmd)])))
    assert first == again == [[1, b"1", (0, [b"n"]), -1]]
    assert fsm.read(c.Get(b"n")) == b"1"  # the retry did not apply twice


def test_old_encodings_are_unchanged():
    """Bytes produced by the code before transactions existed (commit 800732c)."""
    assert c.encode_batch(5, [(None, c.Set(b"k", b"v"))]).hex() == "930105919b01c00000c4016bc40176a0c2c0c0c2"
    rows = [(c.SessionTag(1, 2, 1), c.Expire(b"k", 10, True, "nx")), (None, c.Copy(b"a", b"b", True))]
    assert c.encode_batch(5, rows).hex() == "930105929807010201c4016b0ac3a26e789713c00000c40161c40162c3"


def test_replicas_applying_the_same_batches_agree(m):
    batches = [
        c.Batch(1, [(None, c.Set(b"a", b"1", ttl_ms=5))]),
        c.Batch(2, [(None, c.Exec((c.Set(b"b", b"2"), c.Delete((b"a",))), ()))]),
        c.Batch(20, [(None, c.Sweep(10)), (None, c.Delete((b"b",)))]),
        c.Batch(21, [(None, c.Exec((c.Get(b"b"),), ((b"b", 3),)))]),
    ]
    one, two = CacheStateMachine(), CacheStateMachine()
    results = [one.apply(b) for b in batches]
    assert results == [two.apply(b) for b in batches]
    assert one.digest() == two.digest()


def test_snapshot_round_trip_keeps_tombstones_and_floor(m, monkeypatch):
    monkeypatch.setattr(sm, "MAX_TOMBSTONES", 2)
    for key in (b"a", b"b", b"c"):
        m.w(c.Set(key, b"v"))
        m.w(c.Delete((key,)))
    w = watch(m, b"a", b"b", b"c", b"never")
    sections = list(m.fsm.snapshot_sections(chunk=2))
    other = CacheStateMachine()
    other.restore(sections)
    assert other.digest() == m.fsm.digest()
    assert other.read(c.WatchIndex((b"a", b"b", b"c", b"never"))) == [i for _, i in w]
    assert list(other._tombstones) == list(m.fsm._tombstones)


def test_snapshot_of_the_old_layout_loads():
    old_sections = [("state", {"now": 10, "revision": 3, "keys": 1}), ("data", [b"k", sm._header(3, 3) + b"v", None])]
    fsm = CacheStateMachine()
    fsm.restore(old_sections)
    assert fsm.read(c.Get(b"k")) == b"v"
    assert "watch" not in dict(fsm.snapshot_sections())  # nothing to add until something is deleted
    (index,) = fsm.read(c.WatchIndex((b"k",)))
    fsm.apply(c.Batch(11, [(None, c.Exec((c.Set(b"k", b"w"),), ((b"k", index),)))]))
    assert fsm.read(c.Get(b"k")) == b"w"
