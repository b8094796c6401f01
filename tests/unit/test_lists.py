"""The list type in the state machine alone: command semantics, WRONGTYPE, deletion of
emptied lists, bounded allocation on huge ranges, snapshots, determinism, exactly-once
pops, and the module functions the blocking pops reuse."""

from __future__ import annotations

import io
import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftcache import commands as c
from raftcache.datatypes import lists
from raftcache.errors import CommandError, NotIntegerError, SyntaxError_, WrongTypeError
from raftcache.resp import OK, NullArray
from raftcache.statemachine import CacheStateMachine

T0 = 1_700_000_000_000
HUGE, TINY = b"9223372036854775807", b"-9223372036854775808"


def _args(words: tuple) -> tuple[bytes, ...]:
    return tuple(w if isinstance(w, bytes) else str(w).encode() for w in words)


class Machine:
    def __init__(self) -> None:
        self.fsm = CacheStateMachine()

    def w(self, *words, tag=None):
        """A list write, as the server would send it; errors come back raised."""
        result = self.fsm.apply(c.Batch(T0, [(tag, c.DataWrite(_args(words)))]))[0]
        if isinstance(result, Exception):
            raise result
        return result

    def r(self, *words):
        return self.fsm.read(c.DataRead(_args(words)))

    def items(self, key: str) -> list[bytes]:
        return self.r("lrange", key, 0, -1)

    def exists(self, key: str) -> bool:
        return self.fsm.read(c.Exists((key.encode(),))) == 1


@pytest.fixture
def m() -> Machine:
    return Machine()


# ------------------------------------------------------------------------ pushes and pops
def test_push_order_and_lengths(m):
    assert m.w("rpush", "l", "a", "b") == 2
    assert m.w("lpush", "l", "1", "2", "3") == 5  # pushed one by one: the last ends first
    assert m.items("l") == [b"3", b"2", b"1", b"a", b"b"]
    assert m.w("lpushx", "none", "x") == 0 and m.w("rpushx", "none", "x", "y") == 0
    assert not m.exists("none")
    assert m.w("rpushx", "l", "z") == 6 and m.w("lpushx", "l", "0") == 7
    assert m.r("llen", "l") == 7 and m.r("llen", "none") == 0
    assert m.fsm.read(c.Type(b"l")) == "list"
    assert m.fsm.read(c.ObjectEncoding(b"l")) == "quicklist"


def test_pop_count_rules(m):
    m.w("rpush", "l", "a", "b", "c", "d")
    assert m.w("lpop", "l") == b"a"
    assert m.w("rpop", "l") == b"d"
    assert m.w("lpop", "l", 0) == []  # an existing list and count 0: empty array
    assert m.w("lpop", "none", 0) is NullArray  # no list and a count: nil array
    assert m.w("lpop", "none") is None  # no list, no count: nil
    with pytest.raises(CommandError, match="must be positive"):
        m.w("lpop", "l", -1)
    with pytest.raises(CommandError, match="must be positive"):
        m.w("rpop", "l", "x")
    with pytest.raises(CommandError, match="wrong number of arguments for 'lpop' command"):
        m.w("lpop", "l", 1, 2)
    assert m.w("rpop", "l", HUGE) == [b"c", b"b"]  # tail first
    assert not m.exists("l")  # an emptied list is deleted


def test_emptied_lists_are_deleted_by_every_remover(m):
    removers = [("lpop", "k"), ("rpop", "k", 5), ("lrem", "k", 0, "v"), ("ltrim", "k", 1, 0),
                ("lmove", "k", "other", "LEFT", "RIGHT"), ("rpoplpush", "k", "other"), ("lmpop", 1, "k", "LEFT")]
    for words in removers:
        m.w("rpush", "k", "v")
        m.w(*words)
        assert not m.exists("k"), words
        assert m.fsm.read(c.Type(b"k")) == "none"


def test_lmove_and_rpoplpush(m):
    m.w("rpush", "l", "1", "2", "3")
    assert m.w("lmove", "l", "l", "LEFT", "RIGHT") == b"1"  # onto itself: a rotation
    assert m.items("l") == [b"2", b"3", b"1"]
    assert m.w("rpoplpush", "l", "l") == b"1"
    assert m.items("l") == [b"1", b"2", b"3"]
    assert m.w("lmove", "l", "d", "right", "left") == b"3"
    assert m.w("lmove", "l", "d", "Left", "Right") == b"1"
    assert m.items("d") == [b"3", b"1"] and m.items("l") == [b"2"]
    assert m.w("lmove", "none", "d", "LEFT", "LEFT") is None
    with pytest.raises(SyntaxError_):
        m.w("lmove", "l", "d", "LEFT", "UP")
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"s", b"v"))]))
    with pytest.raises(WrongTypeError):  # checked before anything moves
        m.w("lmove", "l", "s", "LEFT", "LEFT")
    assert m.items("l") == [b"2"]
    assert m.w("lmove", "none", "s", "LEFT", "LEFT") is None  # no source: the type of dst is never looked at


def test_lmpop(m):
    m.w("rpush", "b", "1", "2", "3")
    assert m.w("lmpop", 3, "none", "b", "c", "RIGHT", "COUNT", 2) == [b"b", [b"3", b"2"]]
    assert m.w("lmpop", 1, "b", "left", "count", 10) == [b"b", [b"1"]]
    assert m.w("lmpop", 1, "b", "LEFT") is NullArray
    for words, message in [((0, "b", "LEFT"), "numkeys should be greater than 0"),
                           (("x", "b", "LEFT"), "numkeys should be greater than 0"),
                           ((2, "b", "LEFT"), "syntax error"), ((1, "b", "UP"), "syntax error"),
                           ((1, "b", "LEFT", "COUNT", 0), "count should be greater than 0"),
                           ((1, "b", "LEFT", "COUNT", 1, "COUNT", 1), "syntax error"),
                           ((HUGE, "b", "LEFT"), "syntax error")]:
        with pytest.raises(CommandError, match=message):
            m.w("lmpop", *words)


# ------------------------------------------------------------------------------ reads
@pytest.mark.parametrize(("start", "end", "expected"), [
    (0, -1, "abcde"), (0, HUGE, "abcde"), (TINY, HUGE, "abcde"), (-2, HUGE, "de"), (-100, 1, "ab"),
    (3, 1, ""), (5, 10, ""), (HUGE, HUGE, ""), (TINY, TINY, ""), (-1, -1, "e"), (1, -2, "bcd"), (-3, -4, ""),
])
def test_lrange_and_ltrim_clamp_like_redis(m, start, end, expected):
    m.w("rpush", "l", *"abcde")
    assert m.r("lrange", "l", start, end) == [ch.encode() for ch in expected]
    assert m.w("ltrim", "l", start, end) is OK
    assert m.items("l") == [ch.encode() for ch in expected]
    assert m.exists("l") == bool(expected)


def test_huge_ranges_allocate_only_the_result(m):
    m.w("rpush", "big", *(b"%06d" % i for i in range(100_000)))
    tracemalloc.start()
    try:
        assert m.r("lrange", "big", -2, HUGE) == [b"099998", b"099999"]
        assert m.r("lrange", "big", TINY, 1) == [b"000000", b"000001"]
        assert m.r("lrange", "big", HUGE, TINY) == []
        assert m.r("lindex", "big", TINY) is None and m.r("lindex", "big", -1) == b"099999"
        assert m.r("lpos", "big", "099999", "RANK", -1, "COUNT", 1) == [99_999]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64_000, peak  # a copy of the list would be > 800 KB
    assert m.w("ltrim", "big", -3, HUGE) is OK
    assert m.items("big") == [b"099997", b"099998", b"099999"]


def test_lindex_lset(m):
    m.w("rpush", "l", "a", "b", "c")
    assert [m.r("lindex", "l", i) for i in (0, 2, 3, -1, -3, -4)] == [b"a", b"c", None, b"c", b"a", None]
    assert m.r("lindex", "none", "x") is None  # the key is looked up before the index is parsed
    with pytest.raises(NotIntegerError):
        m.r("lindex", "l", "x")
    assert m.w("lset", "l", -1, "z") is OK
    with pytest.raises(CommandError, match="index out of range"):
        m.w("lset", "l", 3, "z")
    with pytest.raises(CommandError, match="no such key"):
        m.w("lset", "none", "x", "z")
    assert m.items("l") == [b"a", b"b", b"z"]


def test_lrem_linsert(m):
    m.w("rpush", "l", *"axbxcx")
    assert m.w("lrem", "l", -2, "x") == 2
    assert m.items("l") == [b"a", b"x", b"b", b"c"]
    assert m.w("lrem", "l", 1, "nope") == 0
    assert m.w("lrem", "none", "1", "x") == 0
    with pytest.raises(NotIntegerError):
        m.w("lrem", "none", "x", "x")
    assert m.w("linsert", "l", "BEFORE", "x", "p") == 5
    assert m.w("linsert", "l", "after", "c", "q") == 6
    assert m.w("linsert", "l", "AFTER", "nope", "q") == -1
    assert m.w("linsert", "none", "AFTER", "a", "q") == 0
    with pytest.raises(SyntaxError_):
        m.w("linsert", "none", "NEAR", "a", "q")
    assert m.items("l") == [b"a", b"p", b"x", b"b", b"c", b"q"]


def test_lpos(m):
    m.w("rpush", "l", *"abcabca")  # a at 0, 3, 6
    assert m.r("lpos", "l", "a") == 0
    assert m.r("lpos", "l", "a", "RANK", 2) == 3
    assert m.r("lpos", "l", "a", "RANK", -1) == 6
    assert m.r("lpos", "l", "a", "RANK", -3) == 0
    assert m.r("lpos", "l", "a", "RANK", 4) is None
    assert m.r("lpos", "l", "a", "COUNT", 0) == [0, 3, 6]
    assert m.r("lpos", "l", "a", "RANK", -1, "COUNT", 2) == [6, 3]
    assert m.r("lpos", "l", "a", "COUNT", 0, "MAXLEN", 4) == [0, 3]
    assert m.r("lpos", "l", "a", "RANK", -1, "MAXLEN", 1) == 6
    assert m.r("lpos", "l", "z", "COUNT", 1) == []
    assert m.r("lpos", "none", "a") is None and m.r("lpos", "none", "a", "COUNT", 1) == []
    # Redis 7.0 negates RANK in a C long: the most negative one searches from the tail,
    # accepts every match and is never stopped by COUNT
    assert m.r("lpos", "l", "a", "RANK", TINY) == 6
    assert m.r("lpos", "l", "a", "RANK", TINY, "COUNT", 1) == [6, 3, 0]
    for words, message in [(("RANK", 0), "RANK can't be zero"), (("COUNT", -1), "COUNT can't be negative"),
                           (("COUNT", "x"), "COUNT can't be negative"), (("MAXLEN", -1), "MAXLEN can't be negative"),
                           (("RANK", "x"), "not an integer"), (("COUNT",), "syntax error"), (("NOPE", 1), "syntax error")]:
        with pytest.raises(CommandError, match=message):
            m.r("lpos", "none", "a", *words)  # options are checked before the key


def test_wrongtype_everywhere(m):
    m.fsm.apply(c.Batch(T0, [(None, c.Set(b"s", b"v"))]))
    for words in [("lpush", "s", "x"), ("rpushx", "s", "x"), ("lpop", "s"), ("rpop", "s", 0), ("lrange", "s", 0, 1),
                  ("llen", "s"), ("lindex", "s", "x"), ("lset", "s", "x", "v"), ("lrem", "s", 0, "v"),
                  ("ltrim", "s", 0, 1), ("linsert", "s", "BEFORE", "v", "w"), ("lpos", "s", "v"),
                  ("lmove", "s", "d", "LEFT", "LEFT"), ("rpoplpush", "s", "d"), ("lmpop", 2, "none", "s", "LEFT")]:
        with pytest.raises(WrongTypeError):
            (m.w if lists_command_writes(words[0]) else m.r)(*words)
    m.w("rpush", "l", "a")
    result = m.fsm.apply(c.Batch(T0, [(None, c.IncrBy(b"l", 1))]))[0]
    assert isinstance(result, WrongTypeError)


def lists_command_writes(name: str) -> bool:
    return next(cmd.write for cmd in lists.COMMANDS if cmd.name == name)


# -------------------------------------------------------- module functions (blocking pops)
def test_pop_and_move_functions_reply_as_the_commands(m):
    m.w("rpush", "l", "a", "b", "c")
    fsm = m.fsm
    assert lists.pop(fsm, b"l", True, None) == b"a"
    assert lists.pop(fsm, b"l", False, 5) == [b"c", b"b"]
    assert lists.pop(fsm, b"l", True, None) is None
    assert lists.pop(fsm, b"l", True, 1) is NullArray
    m.w("rpush", "l", "x")
    assert lists.move(fsm, b"l", b"d", True, False) == b"x"
    assert not m.exists("l") and m.items("d") == [b"x"]
    assert lists.parse_mpop(_args(("blmpop", 0, 2, "a", "b", "RIGHT", "COUNT", 3)), 2) == ([b"a", b"b"], False, 3)
    assert lists.mpop(fsm, [b"none", b"d"], True, 1) == [b"d", [b"x"]]


# ------------------------------------------------- snapshots, determinism, exactly-once
def _random_batches(seed: int, n: int) -> list[c.Batch]:
    rng = random.Random(seed)
    words = [("rpush", "k{}", "v{}"), ("lpush", "k{}", "v{}", "w"), ("lpop", "k{}"), ("rpop", "k{}", "2"),
             ("lrem", "k{}", "1", "v{}"), ("ltrim", "k{}", "1", "-1"), ("linsert", "k{}", "AFTER", "v{}", "n"),
             ("lset", "k{}", "0", "s"), ("lmove", "k{}", "k{}", "LEFT", "RIGHT"), ("lmpop", "2", "k{}", "k{}", "RIGHT")]
    batches = []
    for i in range(n):
        pattern = rng.choice(words)
        command = tuple(w.format(rng.randrange(4)) for w in pattern)
        batches.append(c.Batch(T0 + i, [(c.SessionTag(7, i + 1, i + 1), c.DataWrite(_args(command)))]))
    return batches


def test_two_machines_fed_the_same_batches_agree():
    one, two = CacheStateMachine(), CacheStateMachine()
    for batch in _random_batches(5, 400):
        assert one.apply(batch) == two.apply(batch)
    assert one.digest() == two.digest()
    assert one.digest() != CacheStateMachine().digest()


def test_snapshot_bytes_restore_to_the_same_state():
    m = Machine()
    for batch in _random_batches(9, 300):
        m.fsm.apply(batch)
    m.w("rpush", "big", *range(1000))
    nil_array = m.w("lpop", "none", 3, tag=c.SessionTag(8, 1, 1))  # a nil-array result in the session table
    assert nil_array is NullArray
    buffer, packer = io.BytesIO(), c.packer()
    for section in m.fsm.snapshot_sections(chunk=16):
        buffer.write(packer.pack(section))
    buffer.seek(0)
    other = CacheStateMachine()
    other.restore(tuple(section) for section in c.unpacker(buffer))
    assert other.digest() == m.fsm.digest()
    assert other.read(c.DataRead((b"lrange", b"big", b"0", b"-1"))) == m.items("big")
    assert other.read(c.ObjectEncoding(b"big")) == "quicklist"
    retry = c.Batch(T0, [(c.SessionTag(8, 1, 1), c.DataWrite((b"lpop", b"none", b"3")))])
    assert other.apply(retry) == [NullArray]


def test_a_retried_pop_returns_the_same_element_once(m):
    m.w("rpush", "q", "1", "2")
    tag = c.SessionTag(3, 1, 1)
    assert m.w("lpop", "q", tag=tag) == b"1"
    assert m.w("lpop", "q", tag=tag) == b"1"  # the retry gets the recorded answer
    assert m.items("q") == [b"2"]


def test_copy_is_independent(m):
    m.w("rpush", "l", "a")
    m.fsm.apply(c.Batch(T0, [(None, c.Copy(b"l", b"l2"))]))
    m.w("rpush", "l2", "b")
    assert m.items("l") == [b"a"] and m.items("l2") == [b"a", b"b"]


# ------------------------------------------------------------ the packed layout itself
_VALUES = st.sampled_from([b"", b"a", b"bb", b"ccc", b"dddddd", b"0123456789abcdef", b"a"])
_OPS = st.one_of(
    st.tuples(st.sampled_from(["push_left", "push_right"]), st.lists(_VALUES, max_size=9)),
    st.tuples(st.sampled_from(["pop_left", "pop_right"])),
    st.tuples(st.sampled_from(["take", "drop"]), st.booleans(), st.integers(0, 12)),
    st.tuples(st.sampled_from(["get", "set", "insert"]), st.integers(0, 40), _VALUES),
    st.tuples(st.just("span"), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("remove"), _VALUES, st.integers(1, 5), st.booleans()),
    st.tuples(st.sampled_from(["index", "reload", "copy"]), _VALUES),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OPS, max_size=40))
def test_packed_list_behaves_as_a_python_list(monkeypatch_chunks, ops):
    """Tiny chunks (3 elements, 8 bytes), so every operation crosses chunk boundaries."""
    packed, model = lists.PackedList(), []
    for op, *arg in ops:
        if op == "push_left":
            packed.push_left(arg[0])
            model[:0] = reversed(arg[0])
        elif op == "push_right":
            packed.push_right(arg[0])
            model += arg[0]
        elif op in ("pop_left", "pop_right") and model:
            assert (packed.pop_left() if op == "pop_left" else packed.pop_right()) == model.pop(0 if op == "pop_left" else -1)
        elif op == "take":
            left, n = arg
            expected = model[:n] if left else model[::-1][:n]
            assert packed.take(left, n) == expected
            model = model[n:] if left else model[: max(0, len(model) - n)]
        elif op == "drop":
            left, n = arg[0], min(arg[1], len(model))
            packed.drop(left, n)
            model = model[n:] if left else model[: len(model) - n]
        elif op == "get" and model:
            assert packed[arg[0] % len(model)] == model[arg[0] % len(model)]
        elif op == "set" and model:
            packed[arg[0] % len(model)] = arg[1]
            model[arg[0] % len(model)] = arg[1]
        elif op == "insert":
            at = arg[0] % (len(model) + 1)
            packed.insert(at, arg[1])
            model.insert(at, arg[1])
        elif op == "span":
            lo, hi = sorted((min(arg[0], len(model)), min(arg[1], len(model))))
            assert packed.span(lo, hi) == model[lo:hi]
        elif op == "remove":
            value, limit, from_tail = arg
            order = list(range(len(model)))[:: -1 if from_tail else 1]
            gone = [i for i in order if model[i] == value][:limit]
            assert packed.remove(value, limit, from_tail) == len(gone)
            model = [v for i, v in enumerate(model) if i not in set(gone)]
        elif op == "index":
            assert packed.index(arg[0]) == (model.index(arg[0]) if arg[0] in model else -1)
        elif op == "reload":
            packed = lists.PackedList.load(*packed.dump())
        elif op == "copy":
            packed, old = packed.copy(), packed
            old.push_right([b"not shared"])
        assert len(packed) == len(model) == sum(len(ch.lens) for ch in packed.chunks)
        assert all(ch.lens and len(ch.data) == sum(ch.lens) for ch in packed.chunks)
        assert all(len(ch.lens) <= 3 and (len(ch.data) <= 8 or len(ch.lens) == 1) for ch in packed.chunks)
        assert list(packed) == model and list(reversed(packed)) == model[::-1]


@pytest.fixture
def monkeypatch_chunks(monkeypatch):
    monkeypatch.setattr(lists, "CHUNK_ITEMS", 3)
    monkeypatch.setattr(lists, "CHUNK_BYTES", 8)


def test_dump_is_the_same_however_the_chunks_fall():
    one = lists.PackedList([b"x%d" % i for i in range(300)])
    two = lists.PackedList()
    for i in reversed(range(300)):
        two.push_left([b"x%d" % i])
    assert [len(ch.lens) for ch in one.chunks] != [len(ch.lens) for ch in two.chunks]
    assert one.dump() == two.dump()


def test_removals_in_the_middle_leave_few_chunks():
    packed = lists.PackedList([b"%05d" % i for i in range(10_000)])
    for i in range(10_000):
        if i % 50:
            packed.remove(b"%05d" % i, 1, False)
    assert list(packed) == [b"%05d" % i for i in range(0, 10_000, 50)]
    assert len(packed.chunks) <= 2  # 200 elements: two full chunks, not one per survivor
