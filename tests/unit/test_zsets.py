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
from raftcache.resp import NullArray, Pairs
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


# ------------------------------------------ ZUNION/ZINTER/ZDIFF, ZINTERCARD, ZRANGESTORE
def _scored(m: Machine, key: str) -> list[bytes]:
    return m.r("zrange", key, 0, -1, "WITHSCORES")


def test_read_forms_answer_what_the_store_forms_store(m):
    m.w("zadd", "k", 1, "a", 2, "b", 3, "c")
    m.w("zadd", "j", 10, "b", 20, "c", 30, "d")
    for op, options in [("union", ()), ("union", ("WEIGHTS", 2, 0.5, "AGGREGATE", "MAX")), ("inter", ()),
                        ("inter", ("AGGREGATE", "min")), ("inter", ("weights", "inf", "-inf")), ("diff", ())]:
        m.w(f"z{op}store", "out", 2, "k", "j", *options)
        assert m.r(f"z{op}", 2, "k", "j", *options, "WITHSCORES") == _scored(m, "out"), (op, options)
        assert m.r(f"z{op}", 2, "k", "j", *options) == m.r("zrange", "out", 0, -1), (op, options)
    assert m.r("zunion", 2, "k", "j", "WITHSCORES") == [b"a", b"1", b"b", b"12", b"c", b"23", b"d", b"30"]
    assert m.r("zinter", 2, "k", "j", "withscores", "weights", 1, 2) == [b"b", b"22", b"c", b"43"]  # options any order
    assert m.r("zdiff", 3, "k", "j", "missing", "WITHSCORES") == [b"a", b"1"]
    assert m.r("zunion", 1, "missing") == [] and m.r("zinter", 2, "k", "missing", "WITHSCORES") == []
    assert m.fsm.read(c.Exists((b"missing",))) == 0


def test_read_forms_reply_scores_as_computed_and_pairs_in_resp3(m):
    m.w("zadd", "k", 0, "a", 1, "b")
    # Redis replies from the skiplist it built: -0 stays -0 (a stored listpack reads it back as 0)
    assert m.r("zunion", 1, "k", "WEIGHTS", -1, "WITHSCORES") == [b"b", b"-1", b"a", b"-0"]
    m.w("zunionstore", "out", 1, "k", "WEIGHTS", -1)
    assert _scored(m, "out") == [b"b", b"-1", b"a", b"0"]
    assert isinstance(m.r("zunion", 1, "k", "WITHSCORES"), Pairs)  # nested pairs in RESP3, as ZRANGE's
    assert not isinstance(m.r("zunion", 1, "k"), Pairs)


def test_read_forms_take_real_sets_and_refuse_other_types(m, monkeypatch):
    from raftcache.datatypes import sets

    monkeypatch.setattr(sets, "COLLECTIONS", [FakeSet])
    m.fsm.replace(b"plain", FakeSet([b"a", b"z"]))
    m.w("zadd", "k", 1, "a", 2, "b")
    assert m.r("zunion", 2, "k", "plain", "WITHSCORES") == [b"z", b"1", b"a", b"2", b"b", b"2"]
    assert m.r("zdiff", 2, "plain", "k") == [b"z"] and m.r("zintercard", 2, "plain", "k") == 1
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"s", b"v"))]))
    for args in [("zunion", 2, "k", "s"), ("zinter", 1, "s"), ("zdiff", 2, "missing", "s"), ("zintercard", 2, "k", "s"),
                 ("zunion", 1, "s", "WEIGHTS", "x"), ("zintercard", 1, "s", "LIMIT", -1)]:  # WRONGTYPE before options
        with pytest.raises(WrongTypeError):
            m.r(*args)


def test_zintercard_counts_up_to_its_limit(m):
    m.w("zadd", "k", *[x for i in range(10) for x in (i, f"m{i}")])
    m.w("zadd", "j", *[x for i in range(5, 20) for x in (i, f"m{i}")])
    assert m.r("zintercard", 2, "k", "j") == 5
    assert m.r("zintercard", 2, "k", "j", "LIMIT", 0) == 5  # 0: no limit
    assert m.r("zintercard", 2, "k", "j", "limit", 3) == 3
    assert m.r("zintercard", 2, "k", "j", "LIMIT", 9223372036854775807) == 5
    assert m.r("zintercard", 2, "k", "j", "LIMIT", 1, "LIMIT", 4) == 4  # the last one counts
    assert m.r("zintercard", 1, "k") == 10 and m.r("zintercard", 2, "k", "missing") == 0


@pytest.mark.parametrize(("args", "message"), [
    (("zunion", 0, "k"), "^at least 1 input key is needed for 'zunion' command$"),
    (("zinter", -1, "k"), "^at least 1 input key is needed for 'zinter' command$"),
    (("zdiff", 0, "k"), "^at least 1 input key is needed for 'zdiff' command$"),
    (("zintercard", 0, "k"), "^at least 1 input key is needed for 'zintercard' command$"),
    (("zunion", 2, "k"), "^syntax error$"),  # more keys than arguments
    (("zintercard", 3, "k", "j"), "^syntax error$"),
    (("zdiff", 9223372036854775807, "k"), "^syntax error$"),
    (("zunion", "x", "k"), "^value is not an integer or out of range$"),
    (("zintercard", "1.5", "k"), "^value is not an integer or out of range$"),
    (("zinter", "99999999999999999999", "k"), "^value is not an integer or out of range$"),
    (("zunion", 2, "k", "j", "WEIGHTS", 1), "^syntax error$"),  # fewer weights than keys
    (("zunion", 2, "k", "j", "WEIGHTS", 1, 2, 3), "^syntax error$"),  # more
    (("zinter", 1, "k", "WEIGHTS", "nan"), "^weight value is not a float$"),
    (("zunion", 1, "k", "WEIGHTS", "1x"), "^weight value is not a float$"),
    (("zunion", 1, "k", "AGGREGATE", "avg"), "^syntax error$"),
    (("zunion", 1, "k", "AGGREGATE"), "^syntax error$"),
    (("zunion", 1, "k", "LIMIT", 1), "^syntax error$"),
    (("zdiff", 1, "k", "WEIGHTS", 1), "^syntax error$"),  # no WEIGHTS/AGGREGATE for a difference
    (("zdiff", 1, "k", "AGGREGATE", "SUM"), "^syntax error$"),
    (("zintercard", 1, "k", "WITHSCORES"), "^syntax error$"),
    (("zintercard", 1, "k", "WEIGHTS", 1), "^syntax error$"),
    (("zintercard", 1, "k", "AGGREGATE", "MAX"), "^syntax error$"),
    (("zintercard", 1, "k", "LIMIT"), "^syntax error$"),
    (("zintercard", 1, "k", "LIMIT", -1), "^LIMIT can't be negative$"),
    (("zintercard", 1, "k", "LIMIT", "x"), "^LIMIT can't be negative$"),
    (("zintercard", 1, "k", "LIMIT", "99999999999999999999"), "^LIMIT can't be negative$"),
])
def test_read_form_errors_are_redis_messages(m, args, message):
    m.w("zadd", "k", 1, "a")
    m.w("zadd", "j", 1, "a")
    with pytest.raises(CommandError, match=message):
        m.r(*args)


@pytest.mark.parametrize(("args", "message"), [
    (("zunionstore", "d", 0, "k"), "^at least 1 input key is needed for 'zunionstore' command$"),
    (("zdiffstore", "d", 2, "k"), "^syntax error$"),
    (("zinterstore", "d", 1, "k", "WITHSCORES"), "^syntax error$"),  # no WITHSCORES when storing
    (("zunionstore", "d", 1, "k", "LIMIT", 1), "^syntax error$"),
    (("zrangestore", "d", "k", 0, -1, "WITHSCORES"), "^syntax error$"),
    (("zrangestore", "d", "k", 0, -1, "LIMIT", 0, 1),
     "^syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX$"),
    (("zrangestore", "d", "k", 0, -1, "BYSCORE", "BYLEX"), "^syntax error$"),
    (("zrangestore", "d", "k", 0, -1, "REV", "REV"), "^syntax error$"),
    (("zrangestore", "d", "k", "x", -1), "^value is not an integer or out of range$"),
    (("zrangestore", "d", "k", "x", 1, "BYSCORE"), "^min or max is not a float$"),
    (("zrangestore", "d", "k", "a", "+", "BYLEX"), "^min or max not valid string range item$"),
    (("zrangestore", "d", "k", "-inf", "inf", "BYSCORE", "LIMIT", "x", 1), "^value is not an integer or out of range$"),
])
def test_store_form_errors_are_redis_messages_and_leave_no_trace(m, args, message):
    m.w("zadd", "k", 1, "a")
    m.w("zadd", "d", 5, "kept")
    with pytest.raises(CommandError, match=message):
        m.w(*args)
    assert _scored(m, "d") == [b"kept", b"5"]


def test_zrangestore_stores_each_kind_of_range(m):
    m.w("zadd", "k", 1, "a", 2, "b", 3, "c", 4, "d")
    m.w("zadd", "l", 0, "a", 0, "b", 0, "c")
    assert m.w("zrangestore", "d", "k", 1, -2) == 2 and _scored(m, "d") == [b"b", b"2", b"c", b"3"]
    assert m.w("zrangestore", "d", "k", 0, 0, "REV") == 1 and _scored(m, "d") == [b"d", b"4"]
    assert m.w("zrangestore", "d", "k", "(1", "+inf", "BYSCORE", "LIMIT", 1, 5) == 2
    assert _scored(m, "d") == [b"c", b"3", b"d", b"4"]
    assert m.w("zrangestore", "d", "k", "+inf", "-inf", "byscore", "rev", "limit", 0, 2) == 2
    assert _scored(m, "d") == [b"c", b"3", b"d", b"4"]
    assert m.w("zrangestore", "d", "l", "(a", "+", "BYLEX") == 2 and m.r("zrange", "d", 0, -1) == [b"b", b"c"]
    assert m.w("zrangestore", "d", "l", "+", "-", "BYLEX", "REV", "LIMIT", 0, 1) == 1 and m.r("zrange", "d", 0, -1) == [b"c"]


def test_zrangestore_replaces_or_deletes_its_destination(m):
    m.w("zadd", "k", 1, "a", 2, "b")
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"s", b"v", ttl_ms=100_000))]))
    assert m.w("zrangestore", "s", "k", 0, -1) == 2  # another type, with an expiry: replaced, no expiry
    assert m.fsm.read(c.Ttl(b"s")) == -1 and _scored(m, "s") == [b"a", b"1", b"b", b"2"]
    assert m.w("zrangestore", "s", "k", 5, 9) == 0  # an empty range deletes it
    assert m.fsm.read(c.Exists((b"s",))) == 0
    m.w("zadd", "d", 1, "x")
    assert m.w("zrangestore", "d", "missing", 0, -1) == 0 and m.fsm.read(c.Exists((b"d",))) == 0
    assert m.w("zrangestore", "k", "k", 1, 1) == 1 and _scored(m, "k") == [b"b", b"2"]  # onto its own source
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"str", b"v"))]))
    with pytest.raises(WrongTypeError):
        m.w("zrangestore", "d", "str", 0, -1)
    with pytest.raises(CommandError, match="not an integer"):  # arguments are checked before the type
        m.w("zrangestore", "d", "str", "x", -1)


def test_zrangestore_encoding_is_sized_as_redis_sizes_it(m):
    """A rank range of more than 128 members is a skiplist from the start (a -0 score stays
    -0); a score range starts as a listpack and converts at the 129th member (-0 read as 0)."""
    m.w("zadd", "k", *[x for i in range(1, 130) for x in (i, f"m{i:03}")])
    m.w("zadd", "k", "-0", "neg")  # a skiplist keeps the double
    assert m.r("zscore", "k", "neg") == b"-0"
    assert m.w("zrangestore", "byrank", "k", 0, -1) == 130
    assert m.fsm.read(c.ObjectEncoding(b"byrank")) == "skiplist" and m.r("zscore", "byrank", "neg") == b"-0"
    assert m.w("zrangestore", "byscore", "k", "-inf", "+inf", "BYSCORE") == 130
    assert m.fsm.read(c.ObjectEncoding(b"byscore")) == "skiplist" and m.r("zscore", "byscore", "neg") == b"0"
    assert m.w("zrangestore", "small", "k", 0, 127) == 128
    assert m.fsm.read(c.ObjectEncoding(b"small")) == "listpack" and m.r("zscore", "small", "neg") == b"0"
    m.w("zadd", "long", 1, "a", 2, "x" * 65)
    assert m.w("zrangestore", "d", "long", 0, -1) == 2 and m.fsm.read(c.ObjectEncoding(b"d")) == "skiplist"


def test_new_commands_are_declared_as_redis_7_0_declares_them():
    """Redis 7.0.15's COMMAND INFO: arity, flags, legacy key triple; reads take the read path."""
    from raftcache.redis_commands import Kind, Limits, build_command, command_info, lookup

    expected = {
        b"zunion": (-3, ["readonly", "movablekeys"], 0, 0, 0), b"zinter": (-3, ["readonly", "movablekeys"], 0, 0, 0),
        b"zdiff": (-3, ["readonly", "movablekeys"], 0, 0, 0), b"zintercard": (-3, ["readonly", "movablekeys"], 0, 0, 0),
        b"zrangestore": (-5, ["write", "denyoom"], 1, 2, 1),
        b"zunionstore": (-4, ["write", "denyoom", "movablekeys"], 1, 1, 1),
        b"zadd": (-4, ["write", "denyoom", "fast"], 1, 1, 1),
    }
    for name, (arity, flags, first, last, step) in expected.items():
        info = command_info(lookup(name))
        assert (info[1], [str(f) for f in info[2]], *info[3:6]) == (arity, flags, first, last, step), name
    for name, kind, command in [(b"zunion", Kind.READ, c.DataRead), (b"zintercard", Kind.READ, c.DataRead),
                                (b"zrangestore", Kind.WRITE, c.DataWrite)]:
        spec = lookup(name)
        assert spec.kind is kind and type(build_command(spec, [name, b"1", b"k", b"k", b"k"], Limits())) is command
        assert (name in datatypes.READ_HANDLERS) == (kind is Kind.READ)


def test_acl_and_tracking_see_the_counted_keys():
    from raftcache import acl
    from raftcache.redis_commands import lookup

    def positions(*words: str) -> list[int]:
        args = [w.encode() for w in words]
        return acl.key_positions(words[0], lookup(args[0]), args)

    assert positions("zunion", "2", "a", "b", "WEIGHTS", "1", "2") == [2, 3]
    assert positions("zintercard", "1", "a", "LIMIT", "5") == [2]
    assert positions("zdiff", "x", "a") == [] and positions("zinter", "3", "a") == []  # the command answers the error
    assert positions("zrangestore", "dst", "src", "0", "-1") == [1, 2]
    u = acl.parse_user("u", ["on", "%R~r:*", "%W~w:*", "+@all"])
    check = lambda *words: u.check(lookup(words[0].encode()), [w.encode() for w in words])
    assert check("zunion", "2", "r:a", "r:b") is None
    assert check("zinter", "2", "r:a", "secret", "WITHSCORES") == acl.Denial("key", "secret")
    assert check("zrangestore", "w:dst", "r:src", "0", "-1") is None
    assert check("zrangestore", "r:dst", "r:src", "0", "-1") == acl.Denial("key", "r:dst")


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


def test_api_read_forms_and_zrangestore(cache):
    cache.zadd("ua", {"a": 1, "b": 2, "c": 3})
    cache.zadd("ub", {"b": 10, "c": 20, "d": 30})
    assert cache.zunion(["ua", "ub"]) == [b"a", b"b", b"c", b"d"]
    assert cache.zunion({"ua": 2, "ub": 0.5}, aggregate="MAX", withscores=True) == [
        (b"a", 2.0), (b"b", 5.0), (b"c", 10.0), (b"d", 15.0)]
    assert cache.zinter(["ua", "ub"], withscores=True, score_cast_func=int) == [(b"b", 12), (b"c", 23)]
    assert cache.zinter({"ua": 1, "ub": -1}, aggregate="min") == [b"c", b"b"]
    assert cache.zdiff(["ua", "ub"], withscores=True) == [(b"a", 1.0)] and cache.zdiff(["ub", "ua"]) == [b"d"]
    assert cache.zintercard(2, ["ua", "ub"]) == 2 and cache.zintercard(2, ["ua", "ub"], limit=1) == 1
    assert cache.zrangestore("ur", "ub", "(10", "+inf", byscore=True) == 2
    assert cache.zrange("ur", 0, -1, withscores=True) == [(b"c", 20.0), (b"d", 30.0)]
    assert cache.zrangestore("ur", "ua", 0, 0, desc=True) == 1 and cache.zrange("ur", 0, -1) == [b"c"]
    assert cache.zrangestore("ur", "ub", "+inf", "-inf", byscore=True, desc=True, offset=1, num=1) == 1
    assert cache.zrange("ur", 0, -1) == [b"c"]
    assert cache.zrangestore("ur", "nothing", 0, -1) == 0 and cache.zcard("ur") == 0
    with pytest.raises(CommandError, match="aggregate can be"):
        cache.zunion(["ua"], aggregate="avg")
    with pytest.raises(CommandError, match="LIMIT can't be negative"):
        cache.zintercard(1, ["ua"], limit=-1)
    with pytest.raises(CommandError, match="at least 1 input key"):
        cache.zdiff([])


@pytest.mark.skipif(b"sadd" not in datatypes.COMMANDS, reason="the sets module is not on this branch")
def test_real_sets_count_as_score_one_in_store_forms(m):
    m.w("sadd", "plain", "a", "z")
    m.w("zadd", "k", 1, "a", 2, "b")
    assert m.w("zinterstore", "i", 2, "plain", "k", "WEIGHTS", 5, 1) == 1
    assert m.r("zrange", "i", 0, -1, "WITHSCORES") == [b"a", b"6"]
    assert m.w("zdiffstore", "d", 2, "plain", "k") == 1
    assert m.r("zrange", "d", 0, -1, "WITHSCORES") == [b"z", b"1"]
