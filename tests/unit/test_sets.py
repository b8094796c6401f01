"""Sets in the state machine alone: commands, encodings, replicated randomness, snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftcache import commands as c
from raftcache.errors import CommandError, NotIntegerError, SyntaxError_, WrongTypeError
from raftcache.snapshot import SnapshotReader, write_snapshot
from raftcache.statemachine import CacheStateMachine

T0 = 1_700_000_000_000


def _args(parts) -> tuple[bytes, ...]:
    return tuple(p if isinstance(p, bytes) else str(p).encode() for p in parts)


class Machine:
    def __init__(self) -> None:
        self.fsm = CacheStateMachine()
        self.now = T0

    def w(self, *parts):
        """One write applied as a log entry; raises the CommandError it returns."""
        result = self.fsm.apply(c.Batch(self.now, [(None, c.DataWrite(_args(parts)))]))[0]
        if isinstance(result, CommandError):
            raise result
        return result

    def batch(self, commands: list[tuple]) -> list:
        return self.fsm.apply(c.Batch(self.now, [(None, c.DataWrite(_args(p))) for p in commands]))

    def r(self, *parts):
        return self.fsm.read(c.DataRead(_args(parts)))

    def encoding(self, key: bytes) -> str | None:
        return self.fsm.read(c.ObjectEncoding(key))

    def exists(self, key: bytes) -> bool:
        return bool(self.fsm.read(c.Exists((key,))))

    def set_string(self, key: bytes, value: bytes = b"v", ttl_ms: int | None = None) -> None:
        self.fsm.apply(c.Batch(self.now, [(None, c.Set(key, value, ttl_ms=ttl_ms))]))


@pytest.fixture
def m() -> Machine:
    return Machine()


# ------------------------------------------------------------------- basic commands
def test_sadd_srem_scard_membership(m):
    assert m.w("sadd", "s", "a", "b", "a") == 2
    assert m.w("sadd", "s", "b", "c") == 1
    assert m.r("scard", "s") == 3
    assert m.r("sismember", "s", "a") == 1 and m.r("sismember", "s", "z") == 0
    assert m.r("smismember", "s", "a", "z", "c") == [1, 0, 1]
    assert m.r("smismember", "missing", "a", "b") == [0, 0]
    assert sorted(m.r("smembers", "s")) == [b"a", b"b", b"c"]
    assert m.w("srem", "s", "a", "z") == 1
    assert m.w("srem", "missing", "a") == 0
    assert m.r("scard", "missing") == 0 and m.r("smembers", "missing") == []


def test_an_emptied_set_is_deleted(m):
    m.w("sadd", "s", "a", "b")
    m.w("srem", "s", "a", "b")
    assert not m.exists(b"s")
    m.w("sadd", "t", "1", "2", "3")
    assert sorted(m.w("spop", "t", "3")) == [b"1", b"2", b"3"]
    assert not m.exists(b"t")
    m.w("sadd", "u", "x")
    assert m.w("spop", "u") == b"x"
    assert not m.exists(b"u")


def test_wrongtype_everywhere(m):
    m.set_string(b"str")
    m.w("sadd", "s", "a")
    for parts in [("sadd", "str", "a"), ("srem", "str", "a"), ("spop", "str"), ("spop", "str", "2"),
                  ("smove", "str", "s", "a"), ("smove", "s", "str", "a"), ("sinterstore", "d", "s", "str"),
                  ("sunionstore", "d", "str"), ("sdiffstore", "d", "s", "str")]:
        with pytest.raises(WrongTypeError):
            m.w(*parts)
    for parts in [("smembers", "str"), ("sismember", "str", "a"), ("smismember", "str", "a"), ("scard", "str"),
                  ("srandmember", "str"), ("srandmember", "str", "-2"), ("sinter", "missing", "str"),
                  ("sunion", "s", "str"), ("sdiff", "missing", "str"), ("sintercard", "2", "s", "str"),
                  ("sscan", "str", "0")]:
        with pytest.raises(WrongTypeError):
            m.r(*parts)
    assert m.r("sismember", "s", "a") == 1  # nothing above changed the set


def test_argument_errors(m):
    m.w("sadd", "s", "a", "b")
    with pytest.raises(CommandError, match="^value is out of range, must be positive$"):
        m.w("spop", "s", "-1")
    for count in ("x", "-0", "1.5"):  # Redis gives one message for every bad count
        with pytest.raises(CommandError, match="^value is out of range, must be positive$"):
            m.w("spop", "s", count)
    with pytest.raises(SyntaxError_):
        m.w("spop", "s", "1", "2")
    with pytest.raises(CommandError, match="must between -9223372036854775807 and 9223372036854775807"):
        m.r("srandmember", "s", "-9223372036854775808")
    with pytest.raises(CommandError, match="out of range"):
        m.r("srandmember", "s", "-9223372036854775807")  # would be a reply of 2**63 members
    with pytest.raises(SyntaxError_):
        m.r("srandmember", "s", "1", "2")
    with pytest.raises(NotIntegerError):
        m.r("srandmember", "missing", "-0")
    assert m.r("scard", "s") == 2


def test_sintercard_arguments(m):
    m.w("sadd", "a", "1", "2", "3")
    m.w("sadd", "b", "2", "3", "4")
    assert m.r("sintercard", "2", "a", "b") == 2
    assert m.r("sintercard", "2", "a", "b", "LIMIT", "1") == 1
    assert m.r("sintercard", "2", "a", "b", "limit", "0") == 2
    assert m.r("sintercard", "2", "a", "missing") == 0
    for parts, message in [(("0", "a"), "numkeys should be greater than 0"), (("x", "a"), "numkeys should be greater than 0"),
                           (("3", "a"), "Number of keys can't be greater than number of args"),
                           (("1", "a", "LIMIT", "-1"), "LIMIT can't be negative"),
                           (("1", "a", "LIMIT", "x"), "LIMIT can't be negative"),
                           (("1", "a", "LIMIT"), "syntax error"), (("1", "a", "b"), "syntax error")]:
        with pytest.raises(CommandError, match=f"^{message}$"):
            m.r("sintercard", *parts)


# ------------------------------------------------------------------------ encodings
def test_intset_encoding_and_numeric_order(m):
    m.w("sadd", "s", "10", "-3", "2", "9223372036854775807", "-9223372036854775808")
    assert m.encoding(b"s") == "intset"
    assert m.r("smembers", "s") == [b"-9223372036854775808", b"-3", b"2", b"10", b"9223372036854775807"]
    assert m.r("sscan", "s", "12345") == [b"0", m.r("smembers", "s")]  # whole, whatever the cursor
    m.w("sadd", "s", "007")  # not string2ll's form of an integer
    assert m.encoding(b"s") == "hashtable"
    m.w("srem", "s", "007")
    assert m.encoding(b"s") == "hashtable"  # for good


@pytest.mark.parametrize("member", ["+1", " 1", "1.0", "-0", "9223372036854775808", "0x1", ""])
def test_non_integers_make_a_hashtable(m, member):
    m.w("sadd", "s", "1", member)
    assert m.encoding(b"s") == "hashtable"


def test_intset_converts_past_512_members(m):
    m.w("sadd", "s", *range(512))
    assert m.encoding(b"s") == "intset"
    m.w("sadd", "s", "512")
    assert m.encoding(b"s") == "hashtable"
    m.w("srem", "s", *range(100, 513))
    assert m.encoding(b"s") == "hashtable"


def test_spop_of_most_of_a_set_rebuilds_its_encoding_as_redis_does(m):
    m.w("sadd", "h", *range(600))
    m.w("spop", "h", "550")  # 50 survivors, 50 * 5 <= 550: Redis copies them to a new set
    assert m.r("scard", "h") == 50 and m.encoding(b"h") == "intset"
    m.w("sadd", "g", *range(600))
    m.w("spop", "g", "400")  # 200 * 5 > 400: popped one by one, the set stays as it was
    assert m.encoding(b"g") == "hashtable"


def test_store_results_take_the_encoding_of_their_members(m):
    m.w("sadd", "ints", "3", "1", "2")
    m.w("sadd", "mixed", "1", "x")
    assert m.w("sunionstore", "d", "ints", "ints") == 3 and m.encoding(b"d") == "intset"
    assert m.w("sinterstore", "d", "ints", "mixed") == 1 and m.encoding(b"d") == "intset"
    assert m.w("sunionstore", "d", "ints", "mixed") == 4 and m.encoding(b"d") == "hashtable"
    # SDIFF's second algorithm starts from a copy of the first set: its "x" converts it.
    m.w("sadd", "big", "1", "x", *range(100, 110))
    m.w("sadd", "one", "x")
    assert m.w("sdiffstore", "d", "big", "one") == 11 and m.encoding(b"d") == "intset"  # algorithm 1
    assert m.w("sdiffstore", "d", "mixed", "one", "missing", "ints") == 0 and not m.exists(b"d")


def test_encoding_survives_snapshot(m):
    m.w("sadd", "s", "1", "2", "x")
    m.w("srem", "s", "x")  # a hashtable holding only integers
    restored = CacheStateMachine()
    restored.restore(m.fsm.snapshot_sections())
    assert restored.read(c.ObjectEncoding(b"s")) == "hashtable"
    assert restored.digest() == m.fsm.digest()


# --------------------------------------------------------------------- set algebra
def test_sinter_sunion_sdiff(m):
    m.w("sadd", "a", "x", "y", "z")
    m.w("sadd", "b", "y", "z", "w")
    assert sorted(m.r("sinter", "a", "b")) == [b"y", b"z"]
    assert sorted(m.r("sunion", "a", "b", "missing")) == [b"w", b"x", b"y", b"z"]
    assert m.r("sdiff", "a", "b") == [b"x"]
    assert m.r("sinter", "a", "missing") == []
    assert m.r("sdiff", "a", "a") == [] and m.r("sdiff", "missing", "a") == []
    assert m.r("sunion", "missing") == []


def test_store_forms_replace_any_type_and_drop_the_expiry(m):
    m.w("sadd", "a", "x", "y")
    m.set_string(b"d", ttl_ms=100_000)
    assert m.w("sunionstore", "d", "a") == 2
    assert m.fsm.read(c.Type(b"d")) == "set" and m.fsm.read(c.Ttl(b"d", ms=True)) == -1
    assert m.w("sinterstore", "d", "a", "missing") == 0
    assert not m.exists(b"d")
    m.set_string(b"d")
    assert m.w("sdiffstore", "d", "a", "a") == 0 and not m.exists(b"d")
    assert m.w("sunionstore", "a", "a", "a") == 2  # a destination among the sources


def test_smove(m):
    m.w("sadd", "src", "a", "b")
    m.set_string(b"str")
    assert m.w("smove", "missing", "str", "a") == 0  # a missing source wins over a wrong destination
    assert m.w("smove", "src", "src", "a") == 1 and m.w("smove", "src", "src", "z") == 0
    assert m.w("smove", "src", "dst", "z") == 0 and not m.exists(b"dst")
    assert m.w("smove", "src", "dst", "a") == 1
    m.w("sadd", "dst", "b")
    assert m.w("smove", "src", "dst", "b") == 1  # already there: still 1, and the source loses it
    assert not m.exists(b"src") and sorted(m.r("smembers", "dst")) == [b"a", b"b"]


# -------------------------------------------------------------------------- randomness
def test_spop_and_srandmember_draw_members(m):
    m.w("sadd", "s", *(f"m{i}" for i in range(20)))
    members = set(m.r("smembers", "s"))
    picked = m.r("srandmember", "s", "5")
    assert len(picked) == 5 == len(set(picked)) and set(picked) <= members
    assert len(m.r("srandmember", "s", "15")) == 15 == len(set(m.r("srandmember", "s", "15")))
    assert sorted(m.r("srandmember", "s", "50")) == sorted(members)
    repeated = m.r("srandmember", "s", "-100")
    assert len(repeated) == 100 and set(repeated) <= members and len(set(repeated)) < 100
    assert m.r("srandmember", "s", "0") == [] and m.r("srandmember", "missing", "3") == []
    assert m.r("srandmember", "missing") is None and m.r("srandmember", "s") in members
    popped = m.w("spop", "s", "7")
    assert len(popped) == len(set(popped)) == 7 and set(popped) <= members
    assert m.r("scard", "s") == 13 and not set(popped) & set(m.r("smembers", "s"))
    assert m.w("spop", "s", "0") == [] and m.w("spop", "missing") is None and m.w("spop", "missing", "2") == []


def _spop_batches() -> list[list[tuple]]:
    return [
        [("sadd", "s", *(f"m{i}" for i in range(1000))), ("sadd", "i", *range(300))],
        [("spop", "s"), ("spop", "s", "10"), ("spop", "i", "3"), ("srem", "s", "m1", "m2")],
        [("spop", "s", "500"), ("spop", "i"), ("spop", "s", "400"), ("smove", "s", "t", "m999")],
    ]


def test_replicas_fed_the_same_batches_pop_the_same_members():
    a, b = Machine(), Machine()
    b.fsm.read(c.DataRead(_args(("srandmember", "s", "-50"))))  # reads draw node-locally: no effect
    for batch in _spop_batches():
        assert a.batch(batch) == b.batch(batch)
    assert a.fsm.digest() == b.fsm.digest()
    assert a.r("smembers", "s") == b.r("smembers", "s")


def test_snapshot_and_restore_keep_the_draw_sequence():
    a = Machine()
    batches = _spop_batches()
    a.batch(batches[0])
    b = Machine()
    b.fsm.restore(a.fsm.snapshot_sections())
    assert b.fsm.digest() == a.fsm.digest()
    for batch in batches[1:]:
        assert a.batch(batch) == b.batch(batch)
    assert a.fsm.digest() == b.fsm.digest()


def test_srandmember_in_a_transaction_is_replicated():
    a, b = Machine(), Machine()
    for mach in (a, b):
        mach.w("sadd", "s", *range(100))
    tx = c.Exec((c.DataRead(_args(("srandmember", "s", "5"))), c.DataRead(_args(("randomkey",)))), ())
    results = [mach.fsm.apply(c.Batch(T0, [(None, tx)]))[0] for mach in (a, b)]
    assert results[0] == results[1]


# -------------------------------------------------------------------------------- SSCAN
def test_sscan_visits_every_member_once(m):
    members = {f"member:{i}".encode() for i in range(1000)}
    m.w("sadd", "s", *sorted(members))
    seen: list[bytes] = []
    cursor = b"0"
    while True:
        cursor, page = m.r("sscan", "s", cursor, "COUNT", "37")
        seen += page
        if cursor == b"0":
            break
    assert len(seen) == len(members) and set(seen) == members
    cursor, page = m.r("sscan", "s", "0", "MATCH", "member:99?", "COUNT", "5000")
    assert cursor == b"0" and sorted(page) == [b"member:99%d" % i for i in range(10)]


def test_sscan_arguments(m):
    m.w("sadd", "s", "a")
    with pytest.raises(CommandError, match="^invalid cursor$"):
        m.r("sscan", "missing", "x")
    assert m.r("sscan", "missing", "0", "COUNT", "0") == [b"0", []]  # options are checked on a set only
    with pytest.raises(SyntaxError_):
        m.r("sscan", "s", "0", "COUNT", "0")
    with pytest.raises(SyntaxError_):
        m.r("sscan", "s", "0", "BOGUS", "1")


# ----------------------------------------------------------------------------- RANDOMKEY
def test_randomkey(m):
    assert m.r("randomkey") is None
    for key in (b"a", b"b", b"c"):
        m.set_string(key)
    m.w("sadd", "s", "x")
    m.set_string(b"gone", ttl_ms=10)
    m.now += 100
    m.batch([])  # time moves with the log
    seen = {m.r("randomkey") for _ in range(300)}
    assert seen == {b"a", b"b", b"c", b"s"}  # never the expired key


def test_randomkey_finds_the_one_live_key_among_many_deleted(m):
    m.w("sadd", "keep", "x")
    for i in range(3000):
        m.set_string(b"k%d" % i)
    m.fsm.apply(c.Batch(m.now, [(None, c.Delete(tuple(b"k%d" % i for i in range(3000))))]))
    assert {m.r("randomkey") for _ in range(20)} == {b"keep"}


_REPLICA_SCRIPT = """
from tests.unit.test_sets import Machine, _spop_batches
m = Machine()
out = [m.batch(b) for b in _spop_batches()]
out.append(m.batch([("sunionstore", "u", "s", "i"), ("sdiffstore", "d", "u", "i"), ("sinterstore", "n", "u", "s"),
                    ("spop", "u", "7"), ("spop", "d")]))
out.append(m.r("smembers", "u"))
print(repr(out), m.fsm.digest())
"""


def test_replicas_in_processes_with_different_hash_seeds_agree():
    """bytes hashes are salted per process: nothing replicated may depend on them."""
    root = Path(__file__).resolve().parents[2]
    outputs = [
        subprocess.run([sys.executable, "-c", _REPLICA_SCRIPT], cwd=root, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_snapshot_file_round_trip(tmp_path, m):
    """Through the msgpack snapshot file: members, their order (the draw order) and encodings."""
    m.w("sadd", "h", "1", "2", "x", "y")
    m.w("srem", "h", "x", "y")
    m.w("sadd", "i", "3", "-1")
    m.w("sadd", "s", *(f"m{i}" for i in range(100)))
    m.w("spop", "s", "10")
    path = str(tmp_path / "snap")
    write_snapshot(path, {"test": 1}, m.fsm.snapshot_sections(), fsync=False)
    restored = Machine()
    restored.fsm.restore(SnapshotReader(path).sections())
    assert restored.fsm.digest() == m.fsm.digest()
    assert [restored.encoding(k) for k in (b"h", b"i", b"s")] == ["hashtable", "intset", "hashtable"]
    assert restored.r("smembers", "s") == m.r("smembers", "s")
    assert restored.w("spop", "s", "5") == m.w("spop", "s", "5")


def test_randomkey_inside_a_log_entry_is_the_same_on_a_restored_replica():
    """RANDOMKEY inside EXEC (or a script) runs on every replica: its draw must depend only on
    the live keys, not on a replica's leftover index entries (a restored one has none)."""
    from raftcache import commands as c
    from raftcache.statemachine import CacheStateMachine

    a = CacheStateMachine()
    a.apply(c.Batch(1000, [(None, c.Set(b"k%04d" % i, b"v")) for i in range(400)]))
    a.apply(c.Batch(1001, [(None, c.Delete(tuple(b"k%04d" % i for i in range(0, 400, 3))))]))  # leftovers
    b = CacheStateMachine()
    b.restore(a.snapshot_sections())
    tx = c.Exec(tuple(c.DataRead((b"randomkey",)) for _ in range(20)), ())
    for t in range(1002, 1010):
        assert a.apply(c.Batch(t, [(None, tx)])) == b.apply(c.Batch(t, [(None, tx)]))
    assert a.digest() == b.digest()
