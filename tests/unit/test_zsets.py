"""Sorted sets in the state machine alone (no sockets), and the API's result types through an
in-process single-node Cache. Redis's byte-for-byte behaviour is the differential test's job
(tests/cluster/test_differential_zsets.py); here: what it cannot reach (Redis 7.2's
WITHSCORE, replicated randomness, snapshots, sizes, the blocking pops' entry point)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from raftcache import Cache, datatypes
from raftcache import commands as c
from raftcache.datatypes import zsets
from raftcache.datatypes.base import Collection
from raftcache.datatypes.zsets import ZSet, format_score, parse_score
from raftcache.errors import CommandError, WrongTypeError
from raftcache.resp import NullArray
from raftcache.statemachine import CacheStateMachine
from tests.helpers import LONE_RAFT, free_ports

T0 = 1_700_000_000_000


def _b(x: Any) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


class Machine:
    def __init__(self) -> None:
        self.fsm = CacheStateMachine()

    def w(self, *args: Any) -> Any:
        result = self.fsm.apply(c.Batch(T0, [(None, c.DataWrite(tuple(_b(a) for a in args)))]))[0]
        if isinstance(result, Exception):
            raise result
        return result

    def r(self, *args: Any) -> Any:
        return self.fsm.read(c.DataRead(tuple(_b(a) for a in args)))


@pytest.fixture
def m() -> Machine:
    return Machine()


# ---------------------------------------------------------------------- scores
@pytest.mark.parametrize(("text", "value"), [
    (b"1", 1.0), (b"-2.5", -2.5), (b"inf", math.inf), (b"+inf", math.inf), (b"-inf", -math.inf), (b"Infinity", math.inf),
    (b"0x10", 16.0), (b"0x1p-2", 0.25), (b".5", 0.5), (b"5.", 5.0), (b"1e3", 1000.0), (b"1e-310", 1e-310), (b"+3", 3.0),
])
def test_scores_parse_like_strtod(text, value):
    assert parse_score(text) == value


@pytest.mark.parametrize("text", [b"", b"nan", b"NaN", b"-nan", b" 1", b"1 ", b"1x", b"1e", b"0x", b"1e400", b"1e-400",
                                  b"--1", b"abc", b"1\x00"])
def test_bad_scores_are_refused_with_redis_message(text):
    with pytest.raises(CommandError, match="^value is not a valid float$"):
        parse_score(text)


@pytest.mark.parametrize(("value", "text"), [(1.0, b"1"), (0.1, b"0.10000000000000001"), (-math.inf, b"-inf"),
                                             (math.inf, b"inf"), (1e-310, b"9.9999999999999694e-311"), (-0.0, b"-0"),
                                             (1.7976931348623157e308, b"1.7976931348623157e+308")])
def test_scores_format_as_redis_7_0(value, text):
    assert format_score(value) == text


# -------------------------------------------------------------------- commands
def test_zadd_flags_and_replies(m):
    assert m.w("zadd", "k", 1, "a", 2, "b") == 2
    assert m.w("zadd", "k", "CH", 5, "a", 3, "c", 2, "b") == 2
    assert m.w("zadd", "k", "XX", 9, "new") == 0 and m.r("zscore", "k", "new") is None
    assert m.w("zadd", "k", "NX", 0, "a") == 0 and m.r("zscore", "k", "a") == b"5"
    assert m.w("zadd", "k", "GT", "CH", 4, "a", 6, "b") == 1
    assert m.w("zadd", "k", "LT", "CH", 10, "c") == 0
    assert m.w("zadd", "k", "INCR", 1.5, "a") == b"6.5"
    assert m.w("zadd", "k", "INCR", "GT", -1, "a") is None
    assert m.w("zincrby", "k", "-inf", "a") == b"-inf"
    with pytest.raises(CommandError, match="NaN"):
        m.w("zincrby", "k", "inf", "a")
    assert m.r("zscore", "k", "a") == b"-inf"  # the refused increment left no trace
    for flags, message in [(["NX", "XX"], "XX and NX"), (["GT", "LT"], "GT, LT"), (["NX", "LT"], "GT, LT")]:
        with pytest.raises(CommandError, match=message):
            m.w("zadd", "k", *flags, 1, "a")
    with pytest.raises(CommandError, match="INCR option supports a single"):
        m.w("zadd", "k", "INCR", 1, "a", 2, "b")
    with pytest.raises(CommandError, match="^value is not a valid float$"):
        m.w("zadd", "k", 1, "a", "nan", "b")
    assert m.r("zscore", "k", "b") == b"6"


def test_ranges_by_rank_score_and_lex(m):
    m.w("zadd", "k", 1, "a", 2, "b", 3, "c", 4, "d")
    assert m.r("zrange", "k", 0, -1) == [b"a", b"b", b"c", b"d"]
    assert m.r("zrange", "k", 0, 9223372036854775807) == [b"a", b"b", b"c", b"d"]  # no allocation of the range
    assert m.r("zrange", "k", -2, -1, "REV", "WITHSCORES") == [b"b", b"2", b"a", b"1"]
    assert m.r("zrangebyscore", "k", "(1", "+inf", "LIMIT", 1, 5) == [b"c", b"d"]
    assert m.r("zrevrangebyscore", "k", "3", "-inf", "LIMIT", 1, 1) == [b"b"]
    assert m.r("zrange", "k", "(4", "(1", "BYSCORE", "REV") == [b"c", b"b"]
    assert m.r("zcount", "k", "(1", "(4") == 2 and m.r("zcount", "k", "(inf", "+inf") == 0
    with pytest.raises(CommandError, match="^min or max is not a float$"):
        m.r("zcount", "k", "nan", "1")
    m.w("zadd", "l", 0, "a", 0, "b", 0, "c")
    assert m.r("zrangebylex", "l", "(a", "+") == [b"b", b"c"]
    assert m.r("zrevrangebylex", "l", "[b", "-") == [b"b", b"a"]
    assert m.r("zlexcount", "l", "-", "(c") == 2
    with pytest.raises(CommandError, match="^min or max not valid string range item$"):
        m.r("zlexcount", "l", "a", "+")


def test_lex_ranges_on_mixed_scores_walk_like_redis_listpack(m):
    m.w("zadd", "k", 1, "d", 2, "a", 3, "c", 4, "b")
    assert m.r("zrangebylex", "k", "[b", "[c") == []  # the first member >= "b" is "d" > "c"
    assert m.r("zrangebylex", "k", "-", "[c") == []  # the first member "d" is past the max: nothing
    assert m.r("zrangebylex", "k", "[a", "+") == [b"d", b"a", b"c", b"b"]
    assert m.r("zrevrangebylex", "k", "[d", "[b") == [b"b", b"c"]  # from the end, back while >= "b"
    assert m.r("zlexcount", "k", "[a", "+") == 4


def test_rank_withscore_is_redis_7_2(m):
    m.w("zadd", "k", 1, "a", 2.5, "b")
    assert m.r("zrank", "k", "b") == 1 and m.r("zrevrank", "k", "b") == 0
    assert m.r("zrank", "k", "b", "WITHSCORE") == [1, b"2.5"]
    assert m.r("zrevrank", "k", "a", "withscore") == [1, b"1"]
    assert m.r("zrank", "k", "zz", "WITHSCORE") is NullArray and m.r("zrank", "missing", "a", "WITHSCORE") is NullArray
    assert m.r("zrank", "k", "zz") is None
    with pytest.raises(CommandError, match="syntax error"):
        m.r("zrank", "k", "a", "WITHSCORES")


def test_emptied_zsets_are_deleted(m):
    m.w("zadd", "k", 1, "a", 2, "b")
    assert m.w("zrem", "k", "a", "b", "c") == 2
    assert m.fsm.read(c.Exists((b"k",))) == 0
    m.w("zadd", "k", 1, "a")
    assert m.w("zremrangebyscore", "k", "-inf", "+inf") == 1
    assert m.fsm.read(c.Exists((b"k",))) == 0


def test_wrongtype_everywhere(m):
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"s", b"v"))]))
    for args in [("zadd", "s", 1, "a"), ("zincrby", "s", 1, "a"), ("zrem", "s", "a"), ("zpopmin", "s"),
                 ("zremrangebyrank", "s", 0, 1), ("zunionstore", "d", 1, "s"), ("zmpop", 1, "s", "MIN")]:
        with pytest.raises(WrongTypeError):
            m.w(*args)
    for args in [("zscore", "s", "a"), ("zcard", "s"), ("zrange", "s", 0, 1), ("zrank", "s", "a"), ("zscan", "s", 0),
                 ("zrandmember", "s")]:
        with pytest.raises(WrongTypeError):
            m.r(*args)
    with pytest.raises(CommandError, match="not a valid float"):  # arguments are checked first, as Redis does
        m.w("zadd", "s", "x", "a")


def test_encoding_listpack_then_skiplist_for_good(m):
    m.w("zadd", "k", *[x for i in range(128) for x in (i, f"m{i}")])
    assert m.fsm.read(c.ObjectEncoding(b"k")) == "listpack"
    m.w("zadd", "k", 128, "m128")
    assert m.fsm.read(c.ObjectEncoding(b"k")) == "skiplist"
    m.w("zremrangebyrank", "k", 0, -2)
    assert m.fsm.read(c.ObjectEncoding(b"k")) == "skiplist"
    m.w("zunionstore", "small", 1, "k")
    assert m.fsm.read(c.ObjectEncoding(b"small")) == "listpack"
    m.w("zadd", "long", 1, "x" * 65)
    assert m.fsm.read(c.ObjectEncoding(b"long")) == "skiplist"


def test_listpack_reads_negative_zero_back_as_zero(m):
    m.w("zadd", "lp", "-0", "a")
    assert m.r("zscore", "lp", "a") == b"0"
    m.w("zadd", "sk", 1, "x" * 65, "-0", "a")
    assert m.r("zscore", "sk", "a") == b"-0"


def test_pop_entry_point_for_blocking_pops(m):
    m.w("zadd", "k", 1, "a", 2, "b", 3, "c")
    assert zsets.pop(m.fsm, b"k", highest=True, count=None) == [b"c", b"3"]
    assert zsets.pop(m.fsm, b"k", highest=False, count=5) == [b"a", b"1", b"b", b"2"]
    assert zsets.pop(m.fsm, b"k", highest=False, count=None) == []
    assert m.fsm.read(c.Exists((b"k",))) == 0
    m.w("zadd", "k", 1, "a", 2, "b")
    assert zsets.parse_mpop([b"zmpop", b"2", b"x", b"k", b"MAX", b"COUNT", b"3"], 1) == ([b"x", b"k"], True, 3)
    assert zsets.mpop(m.fsm, [b"x", b"k"], True, 3) == [b"k", [[b"b", b"2"], [b"a", b"1"]]]
    assert zsets.mpop(m.fsm, [b"x", b"k"], True, 3) is NullArray


def test_zscan_skiplist_pages_cover_every_member_once(m):
    members = [f"m{i}" for i in range(300)]
    m.w("zadd", "k", *[x for i, name in enumerate(members) for x in (i, name)])
    cursor, seen = b"0", []
    while True:
        cursor, page = m.r("zscan", "k", cursor, "COUNT", 7)
        assert len(page) <= 2 * 20
        seen.extend(zip(page[0::2], page[1::2]))
        if cursor == b"0":
            break
    assert sorted(seen) == sorted((name.encode(), b"%d" % i) for i, name in enumerate(members))
    assert m.r("zscan", "k", 0, "MATCH", "m29?", "COUNT", 1000)[1][0::2] != []


class FakeSet(Collection):
    """A stand-in for the sets module's value (members() and `in`), so the STORE forms'
    handling of plain sets is tested whatever that module's state."""

    TYPE = "set"
    __slots__ = ("items",)

    def __init__(self, items: list[bytes]) -> None:
        super().__init__()
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, member: bytes) -> bool:
        return member in self.items

    def members(self) -> list[bytes]:
        return self.items

    def dump(self) -> list[Any]:
        return list(self.items)


def test_store_forms_weights_aggregates_and_sets_as_inputs(m, monkeypatch):
    from raftcache.datatypes import sets

    monkeypatch.setattr(sets, "COLLECTIONS", [FakeSet])
    m.fsm.replace(b"plain", FakeSet([b"a", b"z"]))
    m.w("zadd", "k", 1, "a", 2, "b")
    assert m.w("zunionstore", "u", 2, "k", "plain", "WEIGHTS", 10, 3) == 3
    assert m.r("zrange", "u", 0, -1, "WITHSCORES") == [b"z", b"3", b"a", b"13", b"b", b"20"]
    assert m.w("zinterstore", "i", 2, "k", "plain", "AGGREGATE", "MAX") == 1
    assert m.r("zrange", "i", 0, -1, "WITHSCORES") == [b"a", b"1"]
    assert m.w("zdiffstore", "d", 2, "plain", "k") == 1
    assert m.r("zrange", "d", 0, -1, "WITHSCORES") == [b"z", b"1"]
    assert m.w("zinterstore", "d", 2, "k", "missing") == 0
    assert m.fsm.read(c.Exists((b"d",))) == 0
    assert m.w("zunionstore", "inf", 2, "k", "k", "WEIGHTS", "inf", "-inf") == 2
    assert m.r("zrange", "inf", 0, -1, "WITHSCORES") == [b"a", b"0", b"b", b"0"]  # inf + -inf is 0 in Redis


# ------------------------------------------------------------ replicated randomness
def _random_session(machine: Machine) -> list[Any]:
    machine.w("zadd", "k", *[x for i in range(50) for x in (i % 5, f"m{i}")])
    out = []
    for count in (None, 3, -10, 60, 20):
        args = ("zrandmember", "k") if count is None else ("zrandmember", "k", count, "WITHSCORES")
        # Inside EXEC a read is part of the log: replicated draws, as for writes
        out.append(machine.fsm.apply(c.Batch(T0, [(None, c.Exec((c.DataRead(tuple(_b(a) for a in args)),)))]))[0])
    return out


def test_zrandmember_draws_are_replicated_and_well_formed():
    one, two = Machine(), Machine()
    assert _random_session(one) == _random_session(two)
    assert one.fsm.digest() == two.fsm.digest()
    single, three, repeats, everything, twenty = (r[0] for r in _random_session(Machine()))
    assert single.startswith(b"m")
    assert len(set(three[0::2])) == 3
    assert len(repeats) == 20
    assert len(everything) == 100 and len(set(everything[0::2])) == 50
    assert len(set(twenty[0::2])) == 20


def test_zrandmember_bounds(m):
    m.w("zadd", "k", 1, "a")
    with pytest.raises(CommandError, match="out of range"):
        m.r("zrandmember", "k", -(zsets.RANDMEMBER_MAX_REPEATS + 1))
    assert m.r("zrandmember", "k", 0) == []
    assert m.r("zrandmember", "missing") is None


# --------------------------------------------------------------- snapshots, digest
def _snapshot_round_trip(fsm: CacheStateMachine) -> CacheStateMachine:
    packer, unpacker = c.packer(), c.unpacker()
    for section in fsm.snapshot_sections():
        unpacker.feed(packer.pack(list(section)))
    restored = CacheStateMachine()
    restored.restore(tuple(s) for s in unpacker)
    return restored


def test_snapshot_of_100k_members_restores_the_same_digest(m):
    for start in range(0, 100_000, 10_000):
        m.w("zadd", "big", *[x for i in range(start, start + 10_000) for x in ((i * 7919) % 1000 / 8, f"member:{i}")])
    m.w("zadd", "small", "-0", "a", "inf", "b", "-inf", "c")
    restored = _snapshot_round_trip(m.fsm)
    assert restored.digest() == m.fsm.digest()
    assert restored.read(c.ObjectEncoding(b"big")) == "skiplist" and restored.read(c.ObjectEncoding(b"small")) == "listpack"
    read = lambda *a: restored.read(c.DataRead(tuple(_b(x) for x in a)))
    assert read("zrange", "big", 0, 4, "WITHSCORES") == m.r("zrange", "big", 0, 4, "WITHSCORES")
    assert read("zscore", "big", "member:12345") == m.r("zscore", "big", "member:12345")
    assert read("zrange", "small", 0, -1, "WITHSCORES") == [b"c", b"-inf", b"a", b"0", b"b", b"inf"]


def test_same_writes_same_digest_whatever_the_history(m):
    """Two machines given the same batches agree; so does one restored mid-way."""
    other = Machine()
    script = [("zadd", "k", 3, "c", 1, "a", 2, "b"), ("zincrby", "k", 5, "a"), ("zpopmin", "k"), ("zadd", "k", 0, "z"),
              ("zunionstore", "u", 1, "k", "WEIGHTS", 2), ("zremrangebylex", "u", "-", "[b"), ("zadd", "u", "GT", 1, "z")]
    for step in script:
        assert m.w(*step) == other.w(*step)
    assert m.fsm.digest() == other.fsm.digest()
    restored = _snapshot_round_trip(m.fsm)
    assert restored.digest() == m.fsm.digest()


def test_element_memory_is_compact():
    """What one member costs (the report's figure): well under 3x Redis's ~100 bytes."""
    import tracemalloc

    members = [b"member:%d" % i for i in range(100_000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    zset = ZSet()
    for i, member in enumerate(members):
        zset.add(member, float(i % 1000))
    per_element = (tracemalloc.get_traced_memory()[0] - before) / len(members)
    tracemalloc.stop()
    assert per_element < 200, per_element


# ------------------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path_factory.mktemp("zsets") / "n1"), secret="s") as client:
        client.wait_ready(10)
        yield client


def test_api_result_types(cache):
    assert cache.zadd("lb", {"alice": 10, "bob": 7.5, "carol": float("inf")}) == 3
    assert cache.zadd("lb", {"bob": 1}, incr=True) == 8.5
    assert cache.zadd("lb", {"bob": 1}, incr=True, nx=True) is None
    assert cache.zincrby("lb", 0.5, "alice") == 10.5
    assert cache.zscore("lb", "carol") == math.inf and cache.zscore("lb", "nobody") is None
    assert cache.zmscore("lb", ["alice", "nobody"]) == [10.5, None]
    assert cache.zcard("lb") == 3 and cache.zcount("lb", "(8.5", "+inf") == 2
    assert cache.zrange("lb", 0, -1) == [b"bob", b"alice", b"carol"]
    assert cache.zrange("lb", 0, 0, withscores=True) == [(b"bob", 8.5)]
    assert cache.zrange("lb", 0, -1, desc=True, withscores=True, score_cast_func=str) == [
        (b"carol", "b'inf'"), (b"alice", "b'10.5'"), (b"bob", "b'8.5'")]
    assert cache.zrange("lb", "+inf", 9, desc=True, byscore=True, offset=1, num=1) == [b"alice"]
    assert cache.zrangebyscore("lb", 9, "+inf", withscores=True) == [(b"alice", 10.5), (b"carol", math.inf)]
    assert cache.zrevrangebyscore("lb", "+inf", 0, start=0, num=1) == [b"carol"]
    assert cache.zrevrange("lb", 0, 0) == [b"carol"]
    assert cache.zrank("lb", "alice") == 1 and cache.zrevrank("lb", "alice") == 1
    assert cache.zrank("lb", "alice", withscore=True) == [1, 10.5] and cache.zrank("lb", "x", withscore=True) is None
    cursor, pairs = cache.zscan("lb")
    assert cursor == 0 and sorted(pairs) == [(b"alice", 10.5), (b"bob", 8.5), (b"carol", math.inf)]
    assert cache.zrandmember("lb") in (b"alice", b"bob", b"carol")
    assert len(cache.zrandmember("lb", -5)) == 5
    assert cache.zpopmin("lb") == [(b"bob", 8.5)]
    assert cache.zpopmax("lb", 5) == [(b"carol", math.inf), (b"alice", 10.5)]
    assert cache.zpopmin("lb") == []


def test_api_lex_stores_and_mpop(cache):
    cache.zadd("w", {"a": 0, "b": 0, "c": 0})
    cache.zadd("v", {"b": 1, "d": 4})
    assert cache.zrangebylex("w", "-", "(c") == [b"a", b"b"]
    assert cache.zrevrangebylex("w", "+", "-", start=0, num=1) == [b"c"]
    assert cache.zlexcount("w", "[b", "+") == 2
    assert cache.zunionstore("u", {"w": 1, "v": 10}, aggregate="max") == 4
    assert cache.zrange("u", 0, -1, withscores=True) == [(b"a", 0.0), (b"c", 0.0), (b"b", 10.0), (b"d", 40.0)]
    assert cache.zinterstore("i", ["w", "v"]) == 1
    assert cache.zdiffstore("d", ["w", "v"]) == 2
    assert cache.zremrangebylex("d", "-", "[a") == 1
    assert cache.zremrangebyscore("u", "(0", "10") == 1
    assert cache.zremrangebyrank("u", 0, 0) == 1
    assert cache.zrem("u", "c", "zz") == 1
    assert cache.zmpop(2, ["nothing", "v"], max=True, count=5) == [b"v", [[b"d", b"4"], [b"b", b"1"]]]
    assert cache.zmpop(1, ["v"], min=True) is None
    with pytest.raises(CommandError):
        cache.zadd("w", {"a": "not-a-number"})


@pytest.mark.skipif(b"sadd" not in datatypes.COMMANDS, reason="the sets module is not on this branch")
def test_real_sets_count_as_score_one_in_store_forms(m):
    m.w("sadd", "plain", "a", "z")
    m.w("zadd", "k", 1, "a", 2, "b")
    assert m.w("zinterstore", "i", 2, "plain", "k", "WEIGHTS", 5, 1) == 1
    assert m.r("zrange", "i", 0, -1, "WITHSCORES") == [b"a", b"6"]
    assert m.w("zdiffstore", "d", 2, "plain", "k") == 1
    assert m.r("zrange", "d", 0, -1, "WITHSCORES") == [b"z", b"1"]
