"""The change feed on the state machine alone: Redis 7.0's event names for every command
family (strings, keyspace, expiry, eviction, hashes, lists, sets, sorted sets, transactions,
scripts), PUBLISH as a message, the replicated seq (dense, identical on two machines, carried
by snapshots and the digest), and the Feed hub's delivery."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from raftcache import commands as c
from raftcache.feed import EVENT_CLASS, Feed, Gap, KeyEvent, Message
from raftcache.statemachine import CacheStateMachine

T0 = 1_700_000_000_000


def _b(word: Any) -> bytes:
    return word if isinstance(word, bytes) else str(word).encode()


def dw(*words: Any) -> c.DataWrite:
    return c.DataWrite(tuple(_b(w) for w in words))


class Machine:
    """A state machine with a Feed listening; `do` applies one batch and returns its events."""

    def __init__(self, values: bool = False) -> None:
        self.fsm = CacheStateMachine()
        self.feed = Feed(self.fsm)
        self.got: list[Any] = []
        self.feed.add_listener(self.got.extend, values=values)
        self.now = T0

    def do(self, *commands: Any, advance: int = 1, tag: c.SessionTag | None = None) -> list[Any]:
        self.now += advance
        self.got.clear()
        results = self.fsm.apply(c.Batch(self.now, [(tag, cmd) for cmd in commands]))
        self.feed.deliver(self.fsm.take_items())
        for result in results:
            if isinstance(result, Exception):
                raise result
        return list(self.got)

    def events(self, *commands: Any, **kw: Any) -> list[tuple[str, bytes | None]]:
        return [(e.event, e.key) for e in self.do(*commands, **kw)]


@pytest.fixture
def m() -> Machine:
    return Machine()


# ----------------------------------------------------------------- strings and keyspace
def test_string_commands_name_their_events_as_redis(m):
    assert m.events(c.Set(b"k", b"1")) == [("new", b"k"), ("set", b"k")]
    assert m.events(c.Set(b"k", b"2", ttl_ms=10_000)) == [("set", b"k"), ("expire", b"k")]
    assert m.events(c.Set(b"k", b"3", cond=c.COND_NX)) == []  # nothing set, nothing said
    assert m.events(c.IncrBy(b"n", 5)) == [("new", b"n"), ("incrby", b"n")]
    assert m.events(c.IncrByFloat(b"n", b"1.5")) == [("incrbyfloat", b"n")]
    assert m.events(c.Append(b"k", b"x")) == [("append", b"k")]
    assert m.events(c.SetRange(b"k", 0, b"z")) == [("setrange", b"k")]
    assert m.events(c.MSet((b"a", b"1", b"b", b"2"))) == [("new", b"a"), ("set", b"a"), ("new", b"b"), ("set", b"b")]
    assert m.events(c.MSetNx((b"a", b"1", b"c", b"2"))) == []
    assert m.events(c.Cas(b"a", b"1", b"9")) == [("set", b"a")]
    assert m.events(c.Persist(b"k")) == [("persist", b"k")]
    assert m.events(c.Expire(b"k", 5000)) == [("expire", b"k")]
    assert m.events(c.GetEx(b"k", persist=True)) == [("persist", b"k")]
    assert m.events(c.GetEx(b"k", amount=b"100")) == [("expire", b"k")]
    assert m.events(c.Rename(b"k", b"k2")) == [("new", b"k2"), ("rename_from", b"k"), ("rename_to", b"k2")]
    assert m.events(c.Copy(b"k2", b"k3")) == [("new", b"k3"), ("copy_to", b"k3")]
    assert m.events(c.GetDel(b"k3")) == [("del", b"k3")]
    assert m.events(c.Delete((b"a", b"missing", b"b"))) == [("del", b"a"), ("del", b"b")]
    assert m.events(c.Expire(b"k2", 0)) == [("del", b"k2")]  # a past expiry deletes
    assert m.events(c.FlushAll()) == [("flushall", None)]


def test_expiry_sweeps_lazy_expiry_and_classes(m):
    m.do(c.Set(b"e1", b"v", ttl_ms=10), c.Set(b"e2", b"v", ttl_ms=10), c.Set(b"e3", b"v", ttl_ms=10))
    events = m.do(c.Sweep(1), advance=100)
    assert [(e.event, e.key, e.origin, e.klass) for e in events] == [("expired", b"e1", None, "x")]
    # A write meeting an expired key expires it first (Redis's lazy expiry), once.
    assert m.events(c.Set(b"e2", b"new")) == [("expired", b"e2"), ("new", b"e2"), ("set", b"e2")]
    assert m.events(dw("sadd", "e3", "m")) == [("expired", b"e3"), ("new", b"e3"), ("sadd", b"e3")]
    assert m.events(c.Sweep(10)) == []  # neither comes back from the sweep
    assert {e: EVENT_CLASS[e] for e in ("set", "del", "lpush", "hset", "sadd", "zadd", "evicted")} == {
        "set": "$", "del": "g", "lpush": "l", "hset": "h", "sadd": "s", "zadd": "z", "evicted": "e"}


def test_evictions_are_evicted_events_without_origin(m):
    m.do(c.SetConfig("maxmemory-policy", b"allkeys-random"))
    for i in range(20):
        m.do(c.Set(b"k%02d" % i, b"v" * 50))
    m.do(c.SetConfig("maxmemory", b"%d" % (m.fsm.used_memory - 1)))
    events = m.do(c.Set(b"big", b"v" * 500), tag=c.SessionTag(7, 1, 0))
    evicted = [e for e in events if e.event == "evicted"]
    assert evicted and all(e.origin is None for e in evicted)
    assert [e.event for e in events if e.key == b"big"] == ["new", "set"]
    assert next(e for e in events if e.key == b"big").origin == (7, 1)
    assert m.fsm.evicted_keys == len(evicted)


# ------------------------------------------------------------------------ data types
@pytest.mark.parametrize(
    ("setup", "command", "expected"),
    [
        ([], ("hset", "h", "f", "v"), [("new", b"h"), ("hset", b"h")]),
        ([("hset", "h", "f", "v")], ("hsetnx", "h", "g", "v"), [("hset", b"h")]),
        ([("hset", "h", "f", "1")], ("hincrby", "h", "f", "2"), [("hincrby", b"h")]),
        ([("hset", "h", "f", "1")], ("hincrbyfloat", "h", "f", "2.5"), [("hincrbyfloat", b"h")]),
        ([("hset", "h", "f", "v", "g", "w")], ("hdel", "h", "f"), [("hdel", b"h")]),
        ([("hset", "h", "f", "v")], ("hdel", "h", "f"), [("hdel", b"h"), ("del", b"h")]),
        ([], ("rpush", "l", "a", "b"), [("new", b"l"), ("rpush", b"l")]),
        ([("rpush", "l", "a")], ("lpushx", "l", "b"), [("lpush", b"l")]),
        ([("rpush", "l", "a", "b")], ("lpop", "l"), [("lpop", b"l")]),
        ([("rpush", "l", "a")], ("rpop", "l"), [("rpop", b"l"), ("del", b"l")]),
        ([("rpush", "l", "a")], ("lset", "l", "0", "b"), [("lset", b"l")]),
        ([("rpush", "l", "a", "b")], ("lrem", "l", "0", "a"), [("lrem", b"l")]),
        ([("rpush", "l", "a", "b")], ("ltrim", "l", "5", "9"), [("ltrim", b"l"), ("del", b"l")]),
        ([("rpush", "l", "a")], ("linsert", "l", "BEFORE", "a", "z"), [("linsert", b"l")]),
        ([("rpush", "l", "a", "b")], ("lmove", "l", "d", "LEFT", "RIGHT"),
         [("new", b"d"), ("rpush", b"d"), ("lpop", b"l")]),  # Redis: the push, then the pop
        ([("rpush", "l", "a", "b")], ("lmove", "l", "l", "RIGHT", "LEFT"), [("lpush", b"l"), ("rpop", b"l")]),
        ([("rpush", "l", "a")], ("rpoplpush", "l", "d"), [("new", b"d"), ("lpush", b"d"), ("rpop", b"l"), ("del", b"l")]),
        ([("rpush", "l", "a", "b")], ("lmpop", "2", "x", "l", "RIGHT", "COUNT", "5"), [("rpop", b"l"), ("del", b"l")]),
        ([("rpush", "l", "a", "b")], ("blpop", "l", "0"), [("lpop", b"l")]),
        ([("rpush", "l", "a", "b")], ("blmpop", "0", "1", "l", "LEFT"), [("lpop", b"l")]),
        ([("rpush", "l", "a", "b")], ("blmove", "l", "d", "RIGHT", "LEFT", "0"),
         [("new", b"d"), ("lpush", b"d"), ("rpop", b"l")]),
        ([], ("sadd", "s", "a"), [("new", b"s"), ("sadd", b"s")]),
        ([("sadd", "s", "a")], ("sadd", "s", "a"), []),  # nothing added: no event, as Redis
        ([("sadd", "s", "a", "b")], ("srem", "s", "a"), [("srem", b"s")]),
        ([("sadd", "s", "a")], ("spop", "s"), [("spop", b"s"), ("del", b"s")]),
        ([("sadd", "s", "a", "b")], ("spop", "s", "5"), [("spop", b"s"), ("del", b"s")]),
        ([("sadd", "s", "a", "b")], ("smove", "s", "t", "a"), [("srem", b"s"), ("new", b"t"), ("sadd", b"t")]),
        ([("sadd", "s", "a")], ("smove", "s", "t", "a"), [("srem", b"s"), ("del", b"s"), ("new", b"t"), ("sadd", b"t")]),
        ([("sadd", "s", "a", "b"), ("sadd", "t", "a")], ("smove", "s", "t", "a"), [("srem", b"s")]),  # t unchanged
        ([("sadd", "s", "a"), ("sadd", "t", "b")], ("sunionstore", "u", "s", "t"), [("new", b"u"), ("sunionstore", b"u")]),
        ([("sadd", "s", "a"), ("sadd", "u", "b")], ("sinterstore", "u", "s", "none"), [("del", b"u")]),
        ([("sadd", "s", "a"), ("sadd", "u", "b")], ("sdiffstore", "u", "s"), [("sdiffstore", b"u")]),
        ([], ("zadd", "z", "1", "a"), [("new", b"z"), ("zadd", b"z")]),
        ([("zadd", "z", "1", "a")], ("zadd", "z", "XX", "INCR", "2", "a"), [("zincr", b"z")]),
        ([("zadd", "z", "1", "a")], ("zincrby", "z", "2", "a"), [("zincr", b"z")]),
        ([("zadd", "z", "1", "a", "2", "b")], ("zrem", "z", "a"), [("zrem", b"z")]),
        ([("zadd", "z", "1", "a")], ("zremrangebyscore", "z", "0", "5"), [("zremrangebyscore", b"z"), ("del", b"z")]),
        ([("zadd", "z", "1", "a", "2", "b")], ("zremrangebyrank", "z", "0", "0"), [("zremrangebyrank", b"z")]),
        ([("zadd", "z", "0", "a", "0", "b")], ("zremrangebylex", "z", "[a", "[a"), [("zremrangebylex", b"z")]),
        ([("zadd", "z", "1", "a", "2", "b")], ("zpopmax", "z"), [("zpopmax", b"z")]),
        ([("zadd", "z", "1", "a")], ("bzpopmin", "z", "0"), [("zpopmin", b"z"), ("del", b"z")]),
        ([("zadd", "z", "1", "a", "2", "b")], ("zmpop", "1", "z", "MAX"), [("zpopmax", b"z")]),
        ([("zadd", "z", "1", "a")], ("zunionstore", "d", "1", "z"), [("new", b"d"), ("zunionstore", b"d")]),
        ([("zadd", "z", "1", "a"), ("zadd", "d", "1", "x")], ("zinterstore", "d", "2", "z", "d"), [("del", b"d")]),
        ([("zadd", "z", "1", "a"), ("zadd", "d", "1", "x")], ("zdiffstore", "d", "1", "z"), [("zdiffstore", b"d")]),
        ([("zadd", "z", "1", "a")], ("zrangestore", "d", "z", "0", "-1"), [("new", b"d"), ("zrangestore", b"d")]),
        ([("zadd", "z", "1", "a"), ("zadd", "d", "1", "x")], ("zrangestore", "d", "z", "5", "9"), [("del", b"d")]),
    ],
)
def test_data_type_commands_yield_redis_event_names(m, setup, command, expected):
    for words in setup:
        m.do(dw(*words))
    assert m.events(dw(*command)) == expected


def test_transactions_and_scripts_record_their_inner_changes(m):
    tag = c.SessionTag(42, 1, 0)
    events = m.do(c.Exec((c.Set(b"a", b"1"), dw("lpush", "l", "x"), c.Get(b"a"))), tag=tag)
    assert [(e.event, e.key, e.origin) for e in events] == [
        ("new", b"a", (42, 1)), ("set", b"a", (42, 1)), ("new", b"l", (42, 1)), ("lpush", b"l", (42, 1))]
    script = b"redis.call('set', KEYS[1], 'v'); redis.call('hset', KEYS[2], 'f', 'v'); return 1"
    sha = __import__("hashlib").sha1(script).hexdigest()
    assert m.events(c.Eval(sha, script, (b"s1", b"h1"), (), 1_000_000, 1 << 20, 1 << 20)) == [
        ("new", b"s1"), ("set", b"s1"), ("new", b"h1"), ("hset", b"h1")]
    # A retried tagged write answered from the session table changes nothing: no events.
    assert m.do(c.Set(b"a", b"2"), tag=tag) == []


def test_publish_is_a_message_and_stores_nothing(m):
    before = m.fsm.digest()
    items = m.do(c.Publish(b"news", b"hello"), c.Publish(b"s", b"x", True), tag=None)
    assert items == [Message(items[0].seq, b"news", b"hello", None, False), Message(items[0].seq + 1, b"s", b"x", None, True)]
    assert len(m.fsm) == 0
    assert m.fsm.digest() != before  # only the seq moved: replicated, so it is in the digest


def test_values_are_captured_only_when_asked():
    plain, valued = Machine(), Machine(values=True)
    for mm in (plain, valued):
        mm.do(c.Set(b"k", b"v1"), dw("hset", "h", "f", "v"))
    assert [e.value for e in plain.do(c.Set(b"k", b"v2"))] == [None]
    assert [e.value for e in valued.do(c.Set(b"k", b"v2"), c.Append(b"k", b"!"), dw("hset", "h", "f", "w"))] == [
        b"v2", b"v2!", None]  # (collections carry no value)
    assert [e.value for e in valued.do(c.Delete((b"k",)))] == [None]


# ---------------------------------------------------------------------- the seq counter
def _random_batches(seed: int, n: int) -> list[c.Batch]:
    rnd = random.Random(seed)
    batches = []
    now = T0
    for _ in range(n):
        now += rnd.randint(0, 50)
        cmds: list[Any] = []
        for _ in range(rnd.randint(1, 6)):
            k = b"k%d" % rnd.randint(0, 15)
            cmds.append(rnd.choice([
                c.Set(k, b"v%d" % rnd.randint(0, 9), ttl_ms=rnd.choice([None, 30, 1000])),
                c.Delete((k, b"k%d" % rnd.randint(0, 15))),
                c.IncrBy(b"n%d" % rnd.randint(0, 3), 1),
                dw("rpush", b"l" + k, "a", "b"), dw("lpop", b"l" + k), dw("sadd", b"s" + k, rnd.randint(0, 5)),
                dw("spop", b"s" + k), dw("zadd", b"z" + k, rnd.randint(0, 9), "m"), dw("hdel", b"h" + k, "f"),
                dw("hset", b"h" + k, "f", "v"), c.Publish(b"ch", b"msg"), c.Sweep(5), c.Rename(k, b"r" + k),
                c.Expire(k, rnd.choice([0, 20, 500])),
            ]))
        batches.append(c.Batch(now, [(None, cmd) for cmd in cmds]))
    return batches


def _apply_all(fsm: CacheStateMachine, batches: list[c.Batch]) -> list[Any]:
    feed = Feed(fsm)
    got: list[Any] = []
    feed.add_listener(got.extend)
    for batch in batches:
        fsm.apply(batch)
        feed.deliver(fsm.take_items())
    return got


def test_two_machines_fed_the_same_batches_number_every_item_alike():
    batches = _random_batches(7, 300)
    first, second = CacheStateMachine(), CacheStateMachine()
    a, b = _apply_all(first, batches), _apply_all(second, batches)
    assert a == b and len(a) > 500
    assert [item.seq for item in a] == list(range(1, len(a) + 1))  # dense, strictly increasing
    assert first.digest() == second.digest()
    # A machine nobody listens to records nothing, yet counts the same (the seq is state).
    silent = CacheStateMachine()
    for batch in batches:
        silent.apply(batch)
        assert silent.take_items() == []
    assert silent.feed_seq == first.feed_seq and silent.digest() == first.digest()


def test_seq_survives_snapshot_and_restore():
    batches = _random_batches(11, 200)
    original = CacheStateMachine()
    _apply_all(original, batches[:120])
    buf = io.BytesIO()
    pack = c.packer().pack
    for section in original.snapshot_sections(chunk=16):
        buf.write(pack(section))
    buf.seek(0)
    restored = CacheStateMachine()
    restored.restore(tuple(section) for section in c.unpacker(buf))
    assert restored.feed_seq == original.feed_seq > 0 and restored.digest() == original.digest()
    assert _apply_all(restored, batches[120:]) == _apply_all(original, batches[120:])


def test_feed_hub_delivery_listeners_and_gap():
    fsm = CacheStateMachine()
    feed = Feed(fsm)
    assert not fsm.recording
    got: list[Any] = []

    def broken(items: Any) -> None:
        raise RuntimeError("a listener's bug")

    feed.add_listener(broken)
    feed.add_listener(got.extend)
    assert fsm.recording and not fsm.record_values
    fsm.apply(c.Batch(T0, [(None, c.Set(b"k", b"v"))]))
    feed.deliver(fsm.take_items())  # the broken listener is logged and skipped
    assert [e.event for e in got] == ["new", "set"] and isinstance(got[0], KeyEvent)
    feed.gap(99)
    assert got[-1] == Gap(99)
    feed.remove_listener(broken)
    feed.remove_listener(got.extend)
    assert not fsm.recording
