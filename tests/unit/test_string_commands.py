"""The string and keyspace commands of issue 11 (SETNX ... OBJECT ENCODING): the state machine
per command, their parsing from Redis arguments, the client's encoding of them, and the codec.
Replies are checked against redis-server itself in tests/cluster/test_differential.py."""

from __future__ import annotations

import msgpack
import pytest

from raftcache import Cache
from raftcache import commands as c
from raftcache import redis_float
from raftcache.client import protocol
from raftcache.errors import CommandError, InvalidExpireError, NotIntegerError, SyntaxError_, ValueTooLargeError
from raftcache.redis_commands import Immediate, Limits, build_command, lookup
from raftcache.resp import RequestParser
from raftcache.statemachine import CacheStateMachine
from tests.helpers import LONE_RAFT, free_ports

T0 = 1_700_000_000_000


class Machine:
    def __init__(self) -> None:
        self.fsm = CacheStateMachine()
        self.now = T0

    def w(self, command):
        return self.fsm.apply(c.Batch(self.now, [(None, command)]))[0]

    def r(self, command):
        return self.fsm.read(command)

    def pttl(self, key: bytes) -> int:
        return self.r(c.Ttl(key, ms=True))

    def tick(self, ms: int) -> None:
        self.now += ms
        self.fsm.apply(c.Batch(self.now, []))


@pytest.fixture
def m() -> Machine:
    return Machine()


def parse(*words: str | bytes):
    args = [w.encode() if isinstance(w, str) else w for w in words]
    spec = lookup(args[0])
    assert spec is not None and spec.arity_ok(len(args)), args
    return build_command(spec, args, Limits())


# ------------------------------------------------------------------------- state machine
def test_getex_sets_and_drops_expiry(m):
    assert m.w(c.GetEx(b"k", b"10", 1000)) is None  # missing: nil, nothing created
    assert m.w(c.GetEx(b"k", b"abc", 1000)) is None  # the amount is judged only for a live key
    m.w(c.Set(b"k", b"v"))
    assert m.w(c.GetEx(b"k", b"10", 1000)) == b"v"
    assert m.pttl(b"k") == 10_000
    assert m.w(c.GetEx(b"k", b"500", 1)) == b"v"
    assert m.pttl(b"k") == 500
    assert m.w(c.GetEx(b"k")) == b"v"
    assert m.pttl(b"k") == 500  # no option: a plain GET
    assert m.w(c.GetEx(b"k", persist=True)) == b"v"
    assert m.pttl(b"k") == -1
    assert m.w(c.GetEx(b"k", b"%d" % (T0 + 2000), 1, absolute=True)) == b"v"
    assert m.pttl(b"k") == 2000
    assert m.w(c.GetEx(b"k", b"1", 1000, absolute=True)) == b"v"  # in the past: deleted
    assert m.r(c.Get(b"k")) is None


def test_getex_rejects_bad_amounts_of_a_live_key(m):
    m.w(c.Set(b"k", b"v"))
    assert isinstance(m.w(c.GetEx(b"k", b"abc", 1000)), NotIntegerError)
    for amount, unit in [(b"0", 1000), (b"-5", 1), (b"9223372036854775807", 1000), (b"9223372036854775807", 1)]:
        assert m.w(c.GetEx(b"k", amount, unit)) == InvalidExpireError("invalid expire time in 'getex' command")
    assert m.pttl(b"k") == -1


def test_incrbyfloat_formats_like_redis_and_keeps_the_ttl(m):
    assert m.w(c.IncrByFloat(b"f", b"10.5")) == b"10.5"
    m.w(c.Expire(b"f", 5000))
    assert m.w(c.IncrByFloat(b"f", b"0.1")) == b"10.6"  # a double would give 10.6000000000000001
    assert m.pttl(b"f") == 5000
    assert m.w(c.IncrByFloat(b"f", b"-10.6")) == b"0"
    assert m.w(c.IncrByFloat(b"f", b"5.0e3")) == b"5000"
    m.w(c.Set(b"t", b"abc"))
    assert m.w(c.IncrByFloat(b"t", b"1")) == CommandError("value is not a valid float")
    assert m.w(c.IncrByFloat(b"f", b"x")) == CommandError("value is not a valid float")
    assert m.w(c.IncrByFloat(b"f", b"inf")) == CommandError("increment would produce NaN or Infinity")
    assert m.r(c.Get(b"f")) == b"5000"


def test_setrange_pads_with_zero_bytes_and_keeps_the_ttl(m):
    assert m.w(c.SetRange(b"k", 3, b"")) == 0  # nothing written on a missing key: not created
    assert m.r(c.Exists((b"k",))) == 0
    assert m.w(c.SetRange(b"k", 2, b"ab")) == 4
    assert m.r(c.Get(b"k")) == b"\x00\x00ab"
    m.w(c.Expire(b"k", 1000))
    assert m.w(c.SetRange(b"k", 1, b"X")) == 4
    assert m.r(c.Get(b"k")) == b"\x00Xab"
    assert m.pttl(b"k") == 1000
    assert m.w(c.SetRange(b"k", 0, b"")) == 4
    assert m.w(c.SetRange(b"k", -1, b"x")) == CommandError("offset is out of range")
    too_far = m.w(c.SetRange(b"k", 512 * 1024 * 1024, b"x"))
    assert too_far == ValueTooLargeError("string exceeds maximum allowed size (proto-max-bulk-len)")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, -1, b"Hello"), (-3, -1, b"llo"), (1, 100, b"ello"), (3, 1, b""), (-100, 1, b"He"),
     (-1, -3, b""), (-60, -100, b""), (-100, -60, b"H"), (5, 5, b""), (2**63 - 1, 0, b"")],
)
def test_getrange_index_rules(m, start, end, expected):
    m.w(c.Set(b"k", b"Hello"))
    assert m.r(c.GetRange(b"k", start, end)) == expected
    assert m.r(c.GetRange(b"missing", 0, -1)) == b""


def test_msetnx_sets_all_or_nothing(m):
    assert m.w(c.MSetNx((b"a", b"1", b"b", b"2"))) is True
    assert m.w(c.MSetNx((b"b", b"x", b"c", b"3"))) is False
    assert m.r(c.MGet((b"a", b"b", b"c"))) == [b"1", b"2", None]
    assert m.w(c.MSetNx((b"c",))) == CommandError("wrong number of arguments for 'msetnx' command")


def test_rename_moves_value_and_expiry(m):
    assert m.w(c.Rename(b"a", b"b")) == CommandError("no such key")
    m.w(c.Set(b"a", b"1", ttl_ms=3000))
    m.w(c.Set(b"b", b"old"))
    assert m.w(c.Rename(b"a", b"a")) is True
    assert m.w(c.Rename(b"a", b"a", nx=True)) is False
    assert m.w(c.Rename(b"a", b"b", nx=True)) is False
    assert m.w(c.Rename(b"a", b"b")) is True
    assert m.r(c.MGet((b"a", b"b"))) == [None, b"1"]
    assert m.pttl(b"b") == 3000
    m.tick(3000)
    assert m.r(c.Get(b"b")) is None  # the moved expiry still fires
    assert m.w(c.Rename(b"b", b"c")) == CommandError("no such key")


def test_copy_keeps_source_and_copies_expiry(m):
    assert m.w(c.Copy(b"a", b"a")) == CommandError("source and destination objects are the same")
    assert m.w(c.Copy(b"a", b"b")) is False
    m.w(c.Set(b"a", b"1", ttl_ms=3000))
    m.w(c.Set(b"b", b"old"))
    assert m.w(c.Copy(b"a", b"b")) is False
    assert m.w(c.Copy(b"a", b"b", replace=True)) is True
    assert m.r(c.MGet((b"a", b"b"))) == [b"1", b"1"]
    assert m.pttl(b"b") == 3000
    m.w(c.Set(b"p", b"2"))
    assert m.w(c.Copy(b"p", b"q")) is True
    assert m.pttl(b"q") == -1


@pytest.mark.parametrize(
    ("value", "encoding"),
    [(b"0", "int"), (b"-9223372036854775808", "int"), (b"9223372036854775808", "embstr"), (b"007", "embstr"),
     (b"-0", "embstr"), (b"", "embstr"), (b"x" * 44, "embstr"), (b"x" * 45, "raw")],
)
def test_object_encoding_judges_the_bytes(m, value, encoding):
    m.w(c.Set(b"k", value))
    assert m.r(c.ObjectEncoding(b"k")) == encoding
    assert m.r(c.ObjectEncoding(b"missing")) is None


def test_replicas_store_identical_bytes_for_incrbyfloat():
    machines = [CacheStateMachine(), CacheStateMachine()]
    payloads = [c.encode_batch(T0 + i, [(None, c.IncrByFloat(b"f", b"0.1"))]) for i in range(30)]
    for fsm in machines:
        for payload in payloads:
            fsm.apply(c.decode_batch(payload))
    assert machines[0].digest() == machines[1].digest()
    assert machines[0].read(c.Get(b"f")) == b"3"


def test_embedded_cache_has_the_same_methods(tmp_path):
    """The API methods on the embedded Cache (a single in-process node, as test_cache_api)."""
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(tmp_path / "n1"), secret="s") as cache:
        cache.wait_ready(10)
        assert cache.setnx("a", "1") is True and cache.setnx("a", "2") is False
        assert cache.setex("e", 100, "v") is True and 0 < cache.ttl("e") <= 100
        with pytest.raises(InvalidExpireError, match="'psetex'"):
            cache.psetex("e", 0, "v")
        assert cache.getset("a", 5) == b"1"
        assert cache.getex("a", px=5000) == b"5" and 0 < cache.pttl("a") <= 5000
        assert cache.incrbyfloat("a", 0.1) == 5.1 and cache.get("a") == b"5.1"
        assert cache.setrange("a", 3, "!") == 4 and cache.getrange("a", -2, -1) == b"1!"
        assert cache.msetnx({"m": 1, "n": 2}) is True
        assert cache.rename("m", "m2") is True and cache.renamenx("m2", "n") is False
        assert cache.copy("m2", "c") is True and cache.copy("m2", "c", replace=True) is True
        with pytest.raises(CommandError, match="DB index is out of range"):
            cache.copy("m2", "c", destination_db=2)
        assert cache.touch("c", "missing", "n") == 2


# --------------------------------------------------------------------------- the codec
NEW_WRITES = [
    c.GetEx(b"k", b"10", 1000, False, False),
    c.GetEx(b"k", None, 1000, False, True),
    c.IncrByFloat(b"k", b"0.5"),
    c.SetRange(b"k", 7, b"v"),
    c.MSetNx((b"a", b"1", b"b", b"2")),
    c.Rename(b"a", b"b", True),
    c.Copy(b"a", b"b", True),
]


def test_new_writes_round_trip_and_old_opcodes_are_unchanged():
    tag = c.SessionTag(1, 2, 1)
    decoded = c.decode_batch(c.encode_batch(T0, [(tag, cmd) for cmd in NEW_WRITES]))
    assert decoded.commands == [(tag, cmd) for cmd in NEW_WRITES]
    # An entry written before these commands existed still decodes to the same command.
    old_entry = msgpack.packb((1, T0, [(1, None, 0, 0, b"k", b"v", "", False, None, None, False)]), use_bin_type=True)
    assert c.decode_batch(old_entry).commands == [(None, c.Set(b"k", b"v"))]
    assert [row[0] for row in msgpack.unpackb(c.encode_batch(T0, [(None, cmd) for cmd in NEW_WRITES]))[2]] == [
        14, 14, 15, 16, 17, 18, 19
    ]


@pytest.mark.parametrize("command", [*NEW_WRITES, c.GetRange(b"k", -3, 7), c.ObjectEncoding(b"k"), c.Set(b"k", b"v", c.COND_NX)])
def test_client_encoding_parses_back_to_the_same_command(command):
    parser = RequestParser()
    parser.feed(protocol.encode(command, None))
    args = parser.next()
    assert parse(*args) == command


# --------------------------------------------------------------------- argument parsing
def test_parsing_of_the_set_family():
    assert parse("SETNX", "k", "v") == c.Set(b"k", b"v", c.COND_NX)
    assert parse("SETEX", "k", "10", "v") == c.Set(b"k", b"v", ttl_ms=10_000)
    assert parse("PSETEX", "k", "10", "v") == c.Set(b"k", b"v", ttl_ms=10)
    assert parse("GETSET", "k", "v") == c.Set(b"k", b"v", get=True)
    for words in [("SETEX", "k", "0", "v"), ("SETEX", "k", "9223372036854775807", "v")]:
        with pytest.raises(InvalidExpireError, match="invalid expire time in 'setex' command"):
            parse(*words)
    with pytest.raises(InvalidExpireError, match="'psetex'"):
        parse("PSETEX", "k", "-1", "v")
    with pytest.raises(NotIntegerError):
        parse("SETEX", "k", "1.5", "v")


def test_set_options_are_checked_before_the_amount_as_redis_does():
    assert parse("SET", "k", "v", "EX", "1", "EX", "2") == c.Set(b"k", b"v", ttl_ms=2000)  # repeated: the last wins
    with pytest.raises(SyntaxError_):
        parse("SET", "k", "v", "EX", "0", "BOGUS")
    with pytest.raises(SyntaxError_):
        parse("SET", "k", "v", "EX", "x", "PX", "1")
    with pytest.raises(NotIntegerError):
        parse("SET", "k", "v", "EX", "x", "NX")


def test_parsing_of_getex_options():
    assert parse("GETEX", "k") == c.GetEx(b"k")
    assert parse("GETEX", "k", "persist") == c.GetEx(b"k", persist=True)
    assert parse("GETEX", "k", "PX", "5") == c.GetEx(b"k", b"5", 1)
    assert parse("GETEX", "k", "EXAT", "5") == c.GetEx(b"k", b"5", 1000, True)
    assert parse("GETEX", "k", "EX", "5", "EX", "6") == c.GetEx(b"k", b"6", 1000)  # Redis: the last wins
    for words in [("EX", "1", "PX", "1"), ("PERSIST", "EX", "1"), ("EX",), ("NX",), ("KEEPTTL",)]:
        with pytest.raises(SyntaxError_):
            parse("GETEX", "k", *words)


def test_parsing_of_the_other_commands():
    assert parse("INCRBYFLOAT", "k", "1e3") == c.IncrByFloat(b"k", b"1e3")
    with pytest.raises(CommandError, match="^value is not a valid float$"):
        parse("INCRBYFLOAT", "k", " 1")
    assert parse("SUBSTR", "k", "0", "-1") == c.GetRange(b"k", 0, -1)
    with pytest.raises(NotIntegerError):
        parse("GETRANGE", "k", "0", "x")
    with pytest.raises(CommandError, match="^offset is out of range$"):
        parse("SETRANGE", "k", "-1", "v")
    with pytest.raises(ValueTooLargeError, match="proto-max-bulk-len"):
        parse("SETRANGE", "k", "536870912", "v")
    with pytest.raises(ValueTooLargeError, match="max_value_bytes"):
        parse("SETRANGE", "k", str(Limits().max_value_bytes), "v")
    assert parse("SETRANGE", "k", "536870912", "") == c.SetRange(b"k", 536870912, b"")
    with pytest.raises(CommandError, match="wrong number of arguments for 'msetnx' command"):
        parse("MSETNX", "a", "1", "b")
    assert parse("RENAMENX", "a", "b") == c.Rename(b"a", b"b", True)
    assert parse("COPY", "a", "b", "replace", "DB", "0") == c.Copy(b"a", b"b", True)
    with pytest.raises(CommandError, match="^DB index is out of range$"):
        parse("COPY", "a", "b", "DB", "3")
    with pytest.raises(CommandError, match="must between -2147483648 and 2147483647"):
        parse("COPY", "a", "b", "DB", "2147483648")
    for words in [("DB",), ("REPLACE", "x")]:
        with pytest.raises(SyntaxError_):
            parse("COPY", "a", "b", *words)
    assert parse("TOUCH", "a", "b") == c.Exists((b"a", b"b"))


def test_object_and_time():
    assert parse("OBJECT", "encoding", "k") == c.ObjectEncoding(b"k")
    help_reply = parse("OBJECT", "HELP")
    assert isinstance(help_reply, Immediate) and help_reply.reply[0].startswith("OBJECT <subcommand>")
    with pytest.raises(CommandError, match=r"^unknown subcommand 'freq'. Try OBJECT HELP.$"):
        parse("OBJECT", "freq", "k")
    with pytest.raises(CommandError, match=r"^wrong number of arguments for 'object\|encoding' command$"):
        parse("OBJECT", "ENCODING")
    seconds, micros = parse("TIME").reply
    assert int(seconds) > 1_700_000_000 and 0 <= int(micros) < 1_000_000


# ------------------------------------------------------------------ long double arithmetic
@pytest.mark.parametrize(
    ("current", "increment", "result"),
    [
        (b"10.5", b"0.1", b"10.6"),
        (None, b"0x1p-18", b"0.00000381469726562"),  # an exact tie at 17 decimals: to even
        (b"1e17", b"1", b"100000000000000001"),  # needs more than a double's 53 bits
        (None, b"-1e-20", b"0"),  # "-0.00000000000000000" trimmed to "-0", then "0"
        (None, b"+.5", b"0.5"),
        (None, b"1.", b"1"),
    ],
)
def test_incr_by_float_matches_redis(current, increment, result):
    assert redis_float.incr_by_float(current, increment) == result


@pytest.mark.parametrize("text", [b"", b" 1", b"1 ", b"nan", b"1e5000", b"1e-5000", b".", b"0x", b"1e", b"x" * 5120])
def test_invalid_floats(text):
    assert redis_float.parse(text) is None


def test_huge_values_format_past_pythons_digit_limit():
    value = redis_float.incr_by_float(None, b"1e4900")
    assert value.isdigit() and len(value) == 4901
    assert redis_float.incr_by_float(value, b"1") == value  # 1 is below the last significant bit
