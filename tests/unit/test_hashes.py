"""Hashes in the state machine alone (no sockets): every command's replies and errors as
Redis 7.0 gives them, encodings, deletion of an emptied hash, WATCH indexes, snapshots,
digests and replicated randomness."""

from __future__ import annotations

import io
from typing import Any

import pytest

from raftcache import commands as c
from raftcache.datatypes import COMMANDS
from raftcache.datatypes.hashes import MAX_LISTPACK_ENTRIES, MAX_LISTPACK_VALUE, MAX_RANDOM_REPLY, Hash
from raftcache.errors import CommandError, IntegerOverflowError, NotIntegerError, SyntaxError_, WrongTypeError
from raftcache.resp import OK, encode_reply
from raftcache.statemachine import CacheStateMachine

LONG = b"x" * (MAX_LISTPACK_VALUE + 1)


class Machine:
    def __init__(self) -> None:
        self.fsm = CacheStateMachine()
        self.now = 1_000

    def w(self, *args: bytes) -> Any:
        """Apply one data write; its result (a CommandError is returned, as the log does)."""
        return self.fsm.apply(c.Batch(self.now, [(None, c.DataWrite(args))]))[0]

    def r(self, *args: bytes) -> Any:
        return self.fsm.read(c.DataRead(args))

    def apply(self, *commands: Any) -> list[Any]:
        return self.fsm.apply(c.Batch(self.now, [(None, cmd) for cmd in commands]))

    def encoding(self, key: bytes) -> str | None:
        return self.fsm.read(c.ObjectEncoding(key))


@pytest.fixture
def m() -> Machine:
    machine = Machine()
    machine.apply(c.Set(b"s", b"text"))
    return machine


def read_error(m: Machine, *args: bytes) -> CommandError:
    with pytest.raises(CommandError) as info:
        m.r(*args)
    return info.value


# ------------------------------------------------------------------------ set and get
def test_hset_hget_hmget_and_insertion_order(m):
    assert m.w(b"hset", b"h", b"a", b"1", b"b", b"2", b"a", b"3") == 2  # a repeated field counts once
    assert m.r(b"hget", b"h", b"a") == b"3"
    assert m.r(b"hget", b"h", b"zz") is None
    assert m.r(b"hget", b"missing", b"a") is None
    assert m.r(b"hmget", b"h", b"b", b"zz", b"a") == [b"2", None, b"3"]
    assert m.r(b"hmget", b"missing", b"a", b"b") == [None, None]
    assert m.w(b"hset", b"h", b"c", b"4", b"a", b"5") == 1
    assert m.w(b"hdel", b"h", b"b") == 1
    assert m.w(b"hset", b"h", b"b", b"6") == 1
    # a listpack's order: an overwritten field keeps its place, a re-added one goes last
    assert m.r(b"hgetall", b"h") == {b"a": b"5", b"c": b"4", b"b": b"6"}
    assert list(m.r(b"hgetall", b"h")) == [b"a", b"c", b"b"]
    assert m.r(b"hkeys", b"h") == [b"a", b"c", b"b"]
    assert m.r(b"hvals", b"h") == [b"5", b"4", b"6"]
    assert m.fsm.read(c.Type(b"h")) == "hash"


def test_hgetall_is_a_map_reply_flat_in_resp2(m):
    m.w(b"hset", b"h", b"f", b"v", b"g", b"w")
    reply = m.r(b"hgetall", b"h")
    assert encode_reply(reply, 2) == b"*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"
    assert encode_reply(reply, 3) == b"%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"
    assert encode_reply(m.r(b"hgetall", b"missing"), 2) == b"*0\r\n"


def test_hmset_hsetnx(m):
    assert m.w(b"hmset", b"h", b"a", b"1", b"b", b"2") is OK
    assert m.w(b"hsetnx", b"h", b"a", b"9") == 0
    assert m.w(b"hsetnx", b"h", b"c", b"3") == 1
    assert m.w(b"hsetnx", b"new", b"f", b"v") == 1
    assert m.r(b"hgetall", b"h") == {b"a": b"1", b"b": b"2", b"c": b"3"}


def test_hdel_hexists_hlen_hstrlen_and_deletion_of_an_emptied_hash(m):
    m.w(b"hset", b"h", b"a", b"1", b"b", b"hello")
    assert m.r(b"hlen", b"h") == 2
    assert m.r(b"hlen", b"missing") == 0
    assert m.r(b"hexists", b"h", b"a") == 1
    assert m.r(b"hexists", b"h", b"zz") == 0
    assert m.r(b"hexists", b"missing", b"a") == 0
    assert m.r(b"hstrlen", b"h", b"b") == 5
    assert m.r(b"hstrlen", b"h", b"zz") == 0
    assert m.r(b"hstrlen", b"missing", b"a") == 0
    assert m.w(b"hdel", b"h", b"zz", b"a", b"a") == 1
    assert m.w(b"hdel", b"missing", b"a") == 0
    assert m.w(b"hdel", b"h", b"b") == 1
    assert m.fsm.read(c.Exists((b"h",))) == 0  # Redis never keeps an empty hash
    assert m.fsm.read(c.Type(b"h")) == "none"
    assert m.r(b"hgetall", b"h") == {}
    assert m.r(b"hkeys", b"h") == [] and m.r(b"hvals", b"h") == []


def test_watch_index_moves_only_when_the_hash_changes(m):
    m.w(b"hset", b"h", b"a", b"1")
    seen = m.fsm.watch_index(b"h")
    for unchanged in ((b"hdel", b"h", b"zz"), (b"hsetnx", b"h", b"a", b"2"), (b"hincrby", b"h", b"a", b"x"),
                      (b"hincrbyfloat", b"h", b"a", b"inf")):
        m.w(*unchanged)
        assert m.fsm.watch_index(b"h") == seen, unchanged
    m.w(b"hset", b"h", b"a", b"1")  # the same value: Redis still signals the key
    assert m.fsm.watch_index(b"h") != seen
    seen = m.fsm.watch_index(b"h")
    m.w(b"hincrby", b"h", b"a", b"0")
    assert m.fsm.watch_index(b"h") != seen


# --------------------------------------------------------------------------- counters
def test_hincrby(m):
    assert m.w(b"hincrby", b"h", b"n", b"5") == 5  # creates the key and the field
    assert m.w(b"hincrby", b"h", b"n", b"-7") == -2
    assert m.r(b"hget", b"h", b"n") == b"-2"
    assert m.w(b"hincrby", b"h", b"n", b"x") == NotIntegerError()
    assert m.w(b"hincrby", b"h", b"n", b"1.5") == NotIntegerError()
    for text in (b"abc", b" 1", b"007", b"-0", b"1.0", b"", b"9223372036854775808"):
        m.w(b"hset", b"h", b"t", text)
        assert m.w(b"hincrby", b"h", b"t", b"1") == CommandError("hash value is not an integer"), text
    m.w(b"hset", b"h", b"big", b"9223372036854775807", b"small", b"-9223372036854775808")
    assert m.w(b"hincrby", b"h", b"big", b"1") == IntegerOverflowError()
    assert m.w(b"hincrby", b"h", b"small", b"-1") == IntegerOverflowError()
    assert m.w(b"hincrby", b"h", b"big", b"-1") == 9223372036854775806
    assert m.w(b"hincrby", b"h", b"fresh", b"9223372036854775807") == 9223372036854775807
    assert m.w(b"hincrby", b"h", b"fresh", b"9223372036854775807") == IntegerOverflowError()
    assert m.w(b"hincrby", b"s", b"f", b"1") == WrongTypeError()
    assert m.w(b"hincrby", b"s", b"f", b"x") == NotIntegerError()  # the increment is checked first
    assert IntegerOverflowError().message == "increment or decrement would overflow"


@pytest.mark.parametrize(
    ("start", "increment", "expected"),
    [
        (None, b"10.5", b"10.5"),
        (b"10.5", b"0.1", b"10.6"),
        (b"5", b"1.5", b"6.5"),
        (b"1e3", b"1", b"1001"),
        (b"0x10", b"1", b"17"),
        (b"3.0000000000000000001", b"1e-19", b"3"),  # %.17Lf rounds it away
        (b"1", b"-1", b"0"),
        (b"-0.00000000000000001", b"0.000000000000000001", b"-0.00000000000000001"),
        (b"0", b"0x1p-18", b"0.00000381469726562"),
        (b"1", b"5e70", b"49999999999999999998867530932990474412769117149953577178426491979956224"),
        (b"1", b"5e60", b"4999999999999999999909754831201850596614029210421901198884864"),  # a double would differ
    ],
)
def test_hincrbyfloat_bytes_are_redis_long_double_ones(m, start, increment, expected):
    if start is not None:
        m.w(b"hset", b"h", b"f", start)
    assert m.w(b"hincrbyfloat", b"h", b"f", increment) == expected
    assert m.r(b"hget", b"h", b"f") == expected


def test_hincrbyfloat_errors(m):
    m.w(b"hset", b"h", b"t", b"abc", b"sp", b" 1", b"inf", b"inf", b"huge", b"1e5000", b"n", b"1")
    cases = [
        ((b"h", b"n", b"abc"), "value is not a valid float"),
        ((b"h", b"n", b"nan"), "value is not a valid float"),
        ((b"h", b"n", b""), "value is not a valid float"),
        ((b"h", b"n", b"1e5000"), "value is not a valid float"),  # overflows: refused as Redis refuses ERANGE
        ((b"h", b"n", b"inf"), "value is NaN or Infinity"),
        ((b"h", b"n", b"-infinity"), "value is NaN or Infinity"),
        ((b"h", b"t", b"1"), "hash value is not a float"),
        ((b"h", b"sp", b"1"), "hash value is not a float"),
        ((b"h", b"huge", b"1"), "hash value is not a float"),
        ((b"h", b"inf", b"1"), "increment would produce NaN or Infinity"),
    ]
    for args, message in cases:
        assert m.w(b"hincrbyfloat", *args) == CommandError(message), args
    assert m.w(b"hincrbyfloat", b"s", b"f", b"1") == WrongTypeError()
    assert m.w(b"hincrbyfloat", b"s", b"f", b"inf") == CommandError("value is NaN or Infinity")  # before the type
    m.w(b"hset", b"h", b"big", b"1e4932")
    assert m.w(b"hincrbyfloat", b"h", b"big", b"1e4932") == CommandError("increment would produce NaN or Infinity")
    assert m.r(b"hget", b"h", b"big") == b"1e4932"
    assert m.r(b"hget", b"h", b"n") == b"1"


# ---------------------------------------------------------------------------- errors
def test_wrongtype_from_every_command(m):
    for name, cmd in COMMANDS.items():
        if not name.startswith(b"h"):
            continue
        args = {b"hscan": (b"0",), b"hrandfield": (), b"hset": (b"f", b"v"), b"hmset": (b"f", b"v"),
                b"hsetnx": (b"f", b"v"), b"hincrby": (b"f", b"1"), b"hincrbyfloat": (b"f", b"1")}.get(name, (b"f",))
        if name in (b"hgetall", b"hkeys", b"hvals", b"hlen"):
            args = ()
        command = (c.DataWrite if cmd.write else c.DataRead)((name, b"s", *args))
        if cmd.write:
            assert m.apply(command) == [WrongTypeError()], name
        else:
            with pytest.raises(WrongTypeError):
                m.fsm.read(command)
    assert m.fsm.read(c.Get(b"s")) == b"text"


def test_wrong_arity_is_refused_by_the_handlers_too(m):
    """Commands built by the Python API reach the state machine without the server's checks."""
    for args in [(b"hset", b"h"), (b"hset", b"h", b"f"), (b"hset", b"h", b"f", b"v", b"g"), (b"hmset", b"h", b"f"),
                 (b"hsetnx", b"h", b"f"), (b"hsetnx", b"h", b"f", b"v", b"w"), (b"hdel", b"h"), (b"hincrby", b"h", b"f"),
                 (b"hincrbyfloat", b"h", b"f", b"1", b"2")]:
        name = args[0].decode()
        assert m.w(*args) == CommandError(f"wrong number of arguments for '{name}' command"), args
    for args in [(b"hget", b"h"), (b"hmget", b"h"), (b"hgetall",), (b"hlen", b"h", b"x"), (b"hrandfield",),
                 (b"hscan", b"h"), (b"hexists", b"h"), (b"hstrlen", b"h", b"f", b"g")]:
        assert read_error(m, *args).message == f"wrong number of arguments for '{args[0].decode()}' command"
    assert m.fsm.read(c.Exists((b"h",))) == 0


def test_command_table_matches_redis():
    expected = {  # Redis 7.0.15's COMMAND INFO: arity and flags beyond write/readonly/denyoom
        b"hset": (-4, True, True), b"hsetnx": (4, True, True), b"hget": (3, False, True), b"hmset": (-4, True, True),
        b"hmget": (-3, False, True), b"hincrby": (4, True, True), b"hincrbyfloat": (4, True, True),
        b"hdel": (-3, True, True), b"hlen": (2, False, True), b"hstrlen": (3, False, True), b"hkeys": (2, False, False),
        b"hvals": (2, False, False), b"hgetall": (2, False, False), b"hexists": (3, False, True),
        b"hrandfield": (-2, False, False), b"hscan": (-3, False, False),
    }
    got = {name: (cmd.arity, cmd.write, "fast" in cmd.flags) for name, cmd in COMMANDS.items() if name in expected}
    assert got == expected


# --------------------------------------------------------------------------- encodings
def test_listpack_until_too_many_fields_then_hashtable_for_good(m):
    pairs = [b for i in range(MAX_LISTPACK_ENTRIES) for b in (b"f%d" % i, b"v")]
    m.w(b"hset", b"h", *pairs)
    assert m.encoding(b"h") == "listpack"
    m.w(b"hset", b"h", b"f0", b"again")  # no new field
    assert m.encoding(b"h") == "listpack"
    m.w(b"hset", b"h", b"one-more", b"v")
    assert m.encoding(b"h") == "hashtable"
    m.w(b"hdel", b"h", *(b"f%d" % i for i in range(MAX_LISTPACK_ENTRIES)))
    assert m.r(b"hlen", b"h") == 1
    assert m.encoding(b"h") == "hashtable"  # Redis never converts back
    # repeated pairs in one HSET do not count as fields
    m.w(b"hset", b"dup", *[b"a", b"1"] * (MAX_LISTPACK_ENTRIES + 1))
    assert m.encoding(b"dup") == "listpack"


@pytest.mark.parametrize(
    ("setup", "command", "encoding"),
    [
        ((), (b"hset", b"h", b"a", b"1", LONG, b"2"), "hashtable"),
        ((), (b"hset", b"h", b"a", LONG), "hashtable"),
        ((), (b"hset", b"h", b"a", b"x" * MAX_LISTPACK_VALUE), "listpack"),
        ((), (b"hmset", b"h", LONG, b"1"), "hashtable"),
        ((b"hset", b"h", b"a", b"1"), (b"hsetnx", b"h", b"a", LONG), "listpack"),  # not set: not converted
        ((b"hset", b"h", b"a", b"1"), (b"hsetnx", b"h", b"b", LONG), "hashtable"),
        ((b"hset", b"h", b"a", b"1"), (b"hincrby", b"h", LONG, b"1"), "hashtable"),
        ((b"hset", b"h", b"a", b"1"), (b"hincrbyfloat", b"h", b"a", b"5e70"), "hashtable"),  # the result is long
        ((b"hset", b"h", b"a", b"1"), (b"hincrbyfloat", b"h", b"a", b"5e60"), "listpack"),
    ],
)
def test_long_fields_and_values_convert_as_redis_7_0(m, setup, command, encoding):
    if setup:
        m.w(*setup)
    m.w(*command)
    assert m.encoding(b"h") == encoding


def test_hset_with_a_long_argument_converts_even_when_it_only_overwrites(m):
    m.w(b"hset", b"h", b"a", b"1")
    m.w(b"hset", b"h", b"a", LONG, b"a", b"1")  # Redis looks at every argument first
    assert m.encoding(b"h") == "hashtable"
    assert m.r(b"hgetall", b"h") == {b"a": b"1"}


def test_copy_rename_and_snapshots_keep_the_encoding_and_order(m):
    m.w(b"hset", b"t", b"a", LONG, b"b", b"2")
    m.w(b"hdel", b"t", b"a")
    m.w(b"hset", b"l", b"z", b"1", b"y", b"2", b"x", b"3")
    m.apply(c.Copy(b"t", b"t2"), c.Rename(b"l", b"l2"), c.Expire(b"t", 60_000))
    assert m.encoding(b"t2") == "hashtable" and m.encoding(b"l2") == "listpack"
    m.w(b"hset", b"t2", b"c", b"3")
    assert m.r(b"hgetall", b"t") == {b"b": b"2"}  # the copy is deep
    buf = io.BytesIO()
    packer = c.packer()
    for section in m.fsm.snapshot_sections(chunk=1):
        buf.write(packer.pack(section))
    buf.seek(0)
    restored = CacheStateMachine()
    restored.restore((name, payload) for name, payload in c.unpacker(buf))
    assert restored.digest() == m.fsm.digest()
    for key in (b"t", b"t2", b"l2"):
        assert restored.read(c.ObjectEncoding(key)) == m.encoding(key)
        assert list(restored.read(c.DataRead((b"hgetall", key))).items()) == list(m.r(b"hgetall", key).items())
    assert restored.read(c.Ttl(b"t", True)) == m.fsm.read(c.Ttl(b"t", True))
    # the replicated generator travelled too: both draw the same next
    draw = c.Exec((c.DataRead((b"hrandfield", b"t2", b"-20")),))
    assert restored.apply(c.Batch(2_000, [(None, draw)])) == m.fsm.apply(c.Batch(2_000, [(None, draw)]))
    assert restored.digest() == m.fsm.digest()


def test_dump_load_round_trip():
    h = Hash({b"a": b"1", b"b": b""}, table=True)
    loaded = Hash.load(h.dump())
    assert list(loaded.fields.items()) == [(b"a", b"1"), (b"b", b"")]
    assert loaded.encoding() == "hashtable"
    assert Hash.load(Hash().dump()).encoding() == "listpack"


# ------------------------------------------------------------------------- HRANDFIELD
def test_hrandfield_counts_and_replies(m):
    fields = {b"f%d" % i: b"v%d" % i for i in range(10)}
    m.w(b"hset", b"h", *(b for pair in fields.items() for b in pair))
    assert m.r(b"hrandfield", b"h") in fields
    assert m.r(b"hrandfield", b"missing") is None
    assert m.r(b"hrandfield", b"missing", b"5") == []
    assert m.r(b"hrandfield", b"missing", b"-5", b"WITHVALUES") == []
    assert m.r(b"hrandfield", b"h", b"0") == []
    assert m.r(b"hrandfield", b"h", b"0", b"withvalues") == []
    for count in (1, 3, 4, 9):  # both of Redis's cases (count * 3 above and below the size)
        picked = m.r(b"hrandfield", b"h", b"%d" % count)
        assert len(picked) == count and len(set(picked)) == count and set(picked) <= set(fields)
    assert m.r(b"hrandfield", b"h", b"10") == list(fields)  # the whole hash, in its order
    assert m.r(b"hrandfield", b"h", b"100", b"WITHVALUES") == [b for pair in fields.items() for b in pair]
    repeats = m.r(b"hrandfield", b"h", b"-50")
    assert len(repeats) == 50 and set(repeats) <= set(fields) and len(set(repeats)) > 1
    pairs = m.r(b"hrandfield", b"h", b"-7", b"WithValues")
    assert len(pairs) == 14 and all(fields[f] == v for f, v in zip(pairs[0::2], pairs[1::2]))
    pairs = m.r(b"hrandfield", b"h", b"4", b"WITHVALUES")
    assert len(set(pairs[0::2])) == 4 and all(fields[f] == v for f, v in zip(pairs[0::2], pairs[1::2]))


def test_hrandfield_is_uniform_enough(m):
    m.w(b"hset", b"h", b"a", b"1", b"b", b"2", b"c", b"3")
    counts = {b"a": 0, b"b": 0, b"c": 0}
    for f in m.r(b"hrandfield", b"h", b"-3000"):
        counts[f] += 1
    assert all(800 < n < 1200 for n in counts.values()), counts
    firsts = {m.r(b"hrandfield", b"h", b"2")[0] for _ in range(60)}
    assert firsts == {b"a", b"b", b"c"}  # distinct picks come in a random order, not always the hash's


def test_hrandfield_errors(m):
    m.w(b"hset", b"h", b"a", b"1")
    assert isinstance(read_error(m, b"hrandfield", b"h", b"x"), NotIntegerError)
    assert isinstance(read_error(m, b"hrandfield", b"h", b"1.5"), NotIntegerError)
    assert read_error(m, b"hrandfield", b"h", b"-9223372036854775808").message == (
        "value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    assert isinstance(read_error(m, b"hrandfield", b"h", b"1", b"bogus"), SyntaxError_)
    assert isinstance(read_error(m, b"hrandfield", b"h", b"1", b"withvalues", b"x"), SyntaxError_)
    assert isinstance(read_error(m, b"hrandfield", b"s", b"1", b"bogus"), SyntaxError_)  # before the type
    for count in (b"4611686018427387904", b"-4611686018427387904", b"9223372036854775807"):
        assert read_error(m, b"hrandfield", b"h", count, b"WITHVALUES").message == "value is out of range"
    assert m.r(b"hrandfield", b"h", b"4611686018427387903", b"WITHVALUES") == [b"a", b"1"]
    assert m.r(b"hrandfield", b"h", b"9223372036854775807") == [b"a"]
    # a negative count repeats: a reply that long is refused instead of built
    assert read_error(m, b"hrandfield", b"h", b"-%d" % (MAX_RANDOM_REPLY + 1)).message == "value is out of range"
    assert read_error(m, b"hrandfield", b"h", b"-%d" % (MAX_RANDOM_REPLY // 2 + 1), b"WITHVALUES").message == "value is out of range"
    assert m.r(b"hrandfield", b"missing", b"-9223372036854775807") == []
    for args in ((b"s",), (b"s", b"0"), (b"s", b"-3", b"withvalues")):
        with pytest.raises(WrongTypeError):
            m.r(b"hrandfield", *args)


def test_hrandfield_in_a_transaction_draws_the_same_on_every_replica():
    fields = [b for i in range(200) for b in (b"f%d" % i, b"v")]
    batches = [
        c.Batch(1, [(None, c.DataWrite((b"hset", b"h", *fields)))]),
        c.Batch(2, [(None, c.Exec((c.DataRead((b"hrandfield", b"h")), c.DataRead((b"hrandfield", b"h", b"5")),
                                    c.DataRead((b"hrandfield", b"h", b"-5", b"WITHVALUES")))))]),
        c.Batch(3, [(None, c.Exec((c.DataRead((b"hrandfield", b"h", b"150")),)))]),
    ]
    a, b = CacheStateMachine(), CacheStateMachine()
    results_a = [a.apply(batch) for batch in batches]
    results_b = [b.apply(batch) for batch in batches]
    assert results_a == results_b
    assert a.digest() == b.digest()
    assert len(set(results_a[2][0][0])) == 150


# ------------------------------------------------------------------------------ HSCAN
def test_hscan_of_a_listpack_returns_everything_at_once(m):
    m.w(b"hset", b"h", b"b", b"1", b"a", b"2", b"ab", b"3")
    assert m.r(b"hscan", b"h", b"0") == [b"0", [b"b", b"1", b"a", b"2", b"ab", b"3"]]
    assert m.r(b"hscan", b"h", b"5", b"COUNT", b"1") == [b"0", [b"b", b"1", b"a", b"2", b"ab", b"3"]]
    assert m.r(b"hscan", b"h", b"0", b"match", b"a*") == [b"0", [b"a", b"2", b"ab", b"3"]]
    assert m.r(b"hscan", b"h", b"18446744073709551615") == [b"0", [b"b", b"1", b"a", b"2", b"ab", b"3"]]
    assert m.r(b"hscan", b"missing", b"0") == [b"0", []]


def test_hscan_of_a_hashtable_pages_through_every_field_once(m):
    fields = {b"f%d" % i: b"%d" % i for i in range(MAX_LISTPACK_ENTRIES + 100)}
    m.w(b"hset", b"h", *(b for pair in fields.items() for b in pair))
    assert m.encoding(b"h") == "hashtable"
    seen: dict[bytes, bytes] = {}
    cursor, calls = b"0", 0
    while True:
        cursor, flat = m.r(b"hscan", b"h", cursor, b"COUNT", b"50")
        calls += 1
        for f, v in zip(flat[0::2], flat[1::2]):
            assert f not in seen
            seen[f] = v
        if cursor == b"0":
            break
    assert seen == fields
    assert calls > 5
    cursor, flat = m.r(b"hscan", b"h", b"0", b"MATCH", b"f1*", b"COUNT", b"10000")
    assert cursor == b"0" and sorted(flat[0::2]) == sorted(f for f in fields if f.startswith(b"f1"))


def test_hscan_errors_in_redis_order(m):
    m.w(b"hset", b"h", b"a", b"1")
    for cursor in (b"x", b"-1x", b"18446744073709551616"):
        assert read_error(m, b"hscan", b"h", cursor).message == "invalid cursor"
        assert read_error(m, b"hscan", b"s", cursor).message == "invalid cursor"  # before the type
    with pytest.raises(WrongTypeError):
        m.r(b"hscan", b"s", b"0", b"COUNT", b"0")  # the type before the options
    assert m.r(b"hscan", b"missing", b"0", b"COUNT", b"0") == [b"0", []]  # a missing key: options unread
    for options in ((b"COUNT", b"0"), (b"COUNT", b"-1"), (b"MATCH",), (b"BOGUS", b"1"), (b"NOVALUES",)):
        assert isinstance(read_error(m, b"hscan", b"h", b"0", *options), SyntaxError_), options
    assert isinstance(read_error(m, b"hscan", b"h", b"0", b"COUNT", b"x"), NotIntegerError)


# --------------------------------------------------------------------- determinism
def test_replicas_fed_the_same_batches_have_equal_digests():
    batches = [
        c.Batch(1, [(None, c.DataWrite((b"hset", b"h", b"a", b"1", b"b", b"2"))),
                    (None, c.DataWrite((b"hincrbyfloat", b"h", b"f", b"0.1")))]),
        c.Batch(2, [(None, c.DataWrite((b"hdel", b"h", b"a"))), (None, c.DataWrite((b"hset", b"h", b"a", LONG)))]),
        c.Batch(3, [(None, c.DataWrite((b"hincrby", b"h", b"n", b"-4"))), (None, c.Exec((c.DataRead((b"hrandfield", b"h", b"-3")),)))]),
    ]
    a, b = CacheStateMachine(), CacheStateMachine()
    for batch in batches:
        assert a.apply(batch) == b.apply(batch)
        assert a.digest() == b.digest()
    before = a.digest()
    a.apply(c.Batch(4, [(None, c.DataWrite((b"hset", b"h", b"a", b"other")))]))
    assert a.digest() != before
