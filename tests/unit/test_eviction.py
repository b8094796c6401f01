"""maxmemory on the state machine alone: accounting, every policy, reads as accesses, and
determinism (two replicas, one restored from a snapshot mid-way, evict the same keys)."""

from __future__ import annotations

from typing import Any

import pytest

from raftcache import commands as c
from raftcache.errors import CommandError, OutOfMemoryError
from raftcache.eviction import EXPIRY_OVERHEAD, KEY_OVERHEAD, POLICIES, parse_memory
from raftcache.statemachine import CacheStateMachine

T0 = 1_700_000_000_000


class Machine:
    def __init__(self, fsm: CacheStateMachine | None = None) -> None:
        self.fsm = fsm or CacheStateMachine()
        self.now = T0

    def do(self, *commands: Any) -> list[Any]:
        self.now += 1
        return self.fsm.apply(c.Batch(self.now, [(None, cmd) for cmd in commands]))

    def config(self, name: str, value: str | int) -> Any:
        return self.do(c.SetConfig(name, str(value).encode()))[0]

    def keys(self) -> set[bytes]:
        return set(self.fsm.read(c.Keys(b"*")))


def key_cost(key: bytes, value: bytes) -> int:
    return KEY_OVERHEAD + len(key) + len(value)


def test_accounting_follows_writes_expiry_and_deletes():
    m = Machine()
    assert m.fsm.used_memory == 0
    m.do(c.Set(b"a", b"x" * 100), c.Set(b"b", b"y"))
    assert m.fsm.used_memory == key_cost(b"a", b"x" * 100) + key_cost(b"b", b"y")
    m.do(c.Set(b"a", b"short"), c.Expire(b"b", 60_000))
    assert m.fsm.used_memory == key_cost(b"a", b"short") + key_cost(b"b", b"y") + EXPIRY_OVERHEAD
    m.do(c.Append(b"a", b"er"), c.Persist(b"b"))
    assert m.fsm.used_memory == key_cost(b"a", b"shorter") + key_cost(b"b", b"y")
    m.do(c.Rename(b"a", b"renamed"))
    assert m.fsm.used_memory == key_cost(b"renamed", b"shorter") + key_cost(b"b", b"y")
    m.do(c.Delete((b"renamed", b"b")))
    assert m.fsm.used_memory == 0
    m.do(c.Set(b"t", b"v", ttl_ms=5))
    m.now += 10
    m.do(c.Sweep(100))
    assert m.fsm.used_memory == 0 and m.fsm.expired_keys == 1
    m.do(c.MSet((b"p", b"1", b"q", b"2")), c.FlushAll())
    assert m.fsm.used_memory == 0


def test_restore_recomputes_the_same_accounting():
    m = Machine()
    m.do(*(c.Set(b"k%d" % i, b"v" * i, ttl_ms=100_000 if i % 3 else None) for i in range(50)))
    other = CacheStateMachine()
    other.restore(m.fsm.snapshot_sections())
    assert other.used_memory == m.fsm.used_memory > 0


@pytest.mark.parametrize("value, expected", [(b"0", 0), (b"1024", 1024), (b"1k", 1000), (b"1KB", 1024), (b"10mb", 10 << 20),
                                             (b"2g", 2 * 10**9), (b"1gb", 1 << 30), (b"-5", None), (b"1.5mb", None),
                                             (b"garbage", None), (b"", None), (b"10 mb", None)])
def test_memory_values_parse_as_redis(value, expected):
    assert parse_memory(value) == expected


def test_bad_settings_get_redis_errors_and_change_nothing():
    m = Machine()
    cases = [
        ("maxmemory", "-5", "CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"),
        ("maxmemory", "lots", "CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"),
        ("maxmemory-policy", "lru", ("CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) "
         "must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, "
         "allkeys-lfu, allkeys-random, noeviction")),
        ("maxmemory-samples", "0", ("CONFIG SET failed (possibly related to argument 'maxmemory-samples') - argument must "
         "be between 1 and 2147483647 inclusive")),
        ("maxmemory-samples", "x", ("CONFIG SET failed (possibly related to argument 'maxmemory-samples') - argument "
         "couldn't be parsed into an integer")),
    ]
    before = m.fsm.digest()
    for name, value, message in cases:
        result = m.config(name, value)
        assert isinstance(result, CommandError) and result.message == message
    m.do()  # the clock moved; nothing else
    assert m.fsm.memory_settings.stored == {}
    assert m.fsm.read(c.DbSize()) == 0 and before  # settings untouched


def fill(m: Machine, n: int, prefix: bytes = b"k", size: int = 20, ttl_ms: int | None = None) -> list[bytes]:
    keys = [b"%s%04d" % (prefix, i) for i in range(n)]
    for key in keys:
        m.do(c.Set(key, b"v" * size, ttl_ms=ttl_ms))
    return keys


def limit_for(n_keys: int, size: int = 20, key_len: int = 5) -> int:
    return n_keys * (KEY_OVERHEAD + key_len + size)


def test_noeviction_refuses_growth_but_not_deletes_or_reads():
    m = Machine()
    fill(m, 10)
    m.config("maxmemory", limit_for(5))
    assert m.do(c.Set(b"new", b"v")) == [OutOfMemoryError()]
    assert str(m.do(c.Append(b"k0000", b"x"))[0]) == "command not allowed when used memory > 'maxmemory'."
    assert m.do(c.Exec((c.Get(b"k0001"), c.Set(b"x", b"1")))) == [OutOfMemoryError()]
    assert m.fsm.read(c.Get(b"k0001")) == b"v" * 20
    assert m.do(c.Delete((b"k0000", b"k0001")), c.Expire(b"k0002", 10_000)) == [2, 1]
    assert len(m.keys()) == 8 and m.fsm.evicted_keys == 0


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_allkeys_policies_keep_the_dataset_under_the_limit(policy):
    m = Machine()
    m.config("maxmemory-policy", policy)
    m.config("maxmemory", limit_for(50))
    biggest = key_cost(b"k0000", b"v" * 20)
    for key in fill(m, 200):
        assert m.fsm.used_memory <= limit_for(50) + biggest, key  # over by at most one command
    assert 45 <= len(m.keys()) <= 51
    assert m.fsm.evicted_keys >= 149


def test_lru_keeps_keys_that_reads_touch():
    m = Machine()
    m.config("maxmemory-policy", "allkeys-lru")
    m.config("maxmemory-samples", 10)
    hot = fill(m, 40, b"h")
    fill(m, 40, b"c")
    m.config("maxmemory", limit_for(80))
    for _ in range(5):  # reads recorded on a node, proposed as Access entries
        m.now += 1_000
        for key in hot:
            assert m.fsm.read(c.Get(key)) is not None
        m.do(c.Access(m.fsm.take_read_accesses()))
    fill(m, 40, b"n")  # 40 new keys push 40 out
    left = m.keys()
    assert sum(k.startswith(b"h") for k in left) >= 36, sorted(left)  # the read keys survive
    assert sum(k.startswith(b"c") for k in left) <= 8


def test_lfu_keeps_frequently_read_keys():
    m = Machine()
    m.config("maxmemory-policy", "allkeys-lfu")
    hot = fill(m, 30, b"h")
    fill(m, 30, b"c")
    m.config("maxmemory", limit_for(60))
    for _ in range(40):
        m.do(c.Access(tuple(hot)))
    fill(m, 30, b"n")
    left = m.keys()
    assert sum(k.startswith(b"h") for k in left) >= 27, sorted(left)


def test_volatile_ttl_evicts_the_soonest_to_expire_and_spares_persistent_keys():
    m = Machine()
    m.config("maxmemory-policy", "volatile-ttl")
    persistent = fill(m, 10, b"p")
    for i in range(20):
        m.do(c.Set(b"t%04d" % i, b"v" * 20, ttl_ms=1_000_000 + i * 1_000))
    m.config("maxmemory-samples", 10)
    m.config("maxmemory", m.fsm.used_memory - 4 * (KEY_OVERHEAD + 5 + 20 + EXPIRY_OVERHEAD))
    m.do(c.Set(b"x0000", b"v" * 20))
    left = m.keys()
    assert set(persistent) <= left
    gone = {b"t%04d" % i for i in range(20)} - left
    assert 4 <= len(gone) <= 5 and all(int(k[1:]) < 10 for k in gone), sorted(gone)  # the nearest expiries went


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
def test_volatile_policies_without_volatile_keys_answer_oom(policy):
    m = Machine()
    m.config("maxmemory-policy", policy)
    fill(m, 10)
    m.config("maxmemory", limit_for(5))
    assert m.do(c.Set(b"new", b"v")) == [OutOfMemoryError()]
    assert len(m.keys()) == 10


def test_lowering_maxmemory_below_the_dataset_evicts_as_writes_come():
    m = Machine()
    m.config("maxmemory-policy", "allkeys-random")
    fill(m, 100)
    m.config("maxmemory", limit_for(10))
    assert len(m.keys()) == 100  # nothing happens until a write needs room
    m.do(c.Set(b"w", b"1"))
    assert len(m.keys()) <= 11


def test_a_value_larger_than_maxmemory_is_written_then_evicted():
    m = Machine()
    m.config("maxmemory-policy", "allkeys-lru")
    m.config("maxmemory", 4096)
    assert m.do(c.Set(b"big", b"x" * 10_000)) == [True]  # under the limit before it: allowed
    assert m.fsm.used_memory > 4096
    assert m.do(c.Set(b"small", b"y")) == [True]
    assert m.keys() == {b"small"}


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "noeviction"])
def test_replicas_evict_the_same_keys_even_after_a_restore(policy):
    """Two replicas fed the same entries (with Access records) stay identical; a third,
    restored from a snapshot mid-way (its indexes laid out differently), too."""
    a, b = Machine(), Machine()
    script: list[list[Any]] = [[c.SetConfig("maxmemory-policy", policy.encode())], [c.SetConfig("maxmemory", b"%d" % limit_for(40))]]
    for i in range(150):
        script.append([c.Set(b"k%04d" % i, b"v" * (10 + i % 30), ttl_ms=(10_000_000 + i * 7 % 13 * 1000) if i % 2 else None)])
        if i % 10 == 0:
            script.append([c.Access(tuple(b"k%04d" % j for j in range(0, i, 3)))])
        if i % 17 == 0:
            script.append([c.Delete((b"k%04d" % (i // 2),))])
        if i % 5 == 0:  # collections too, grown in steps (their accounting is re-measured)
            script.append([c.DataWrite((b"sadd", b"s%d" % (i % 3), *(b"m%d:%d" % (i, j) for j in range(i % 40 + 1))))])
    restored: Machine | None = None
    for step, commands in enumerate(script):
        ra, rb = a.do(*commands), b.do(*commands)
        assert ra == rb
        if restored is not None:
            assert restored.do(*commands) == ra
        if step == len(script) // 2:
            restored = Machine(CacheStateMachine())
            restored.fsm.restore(a.fsm.snapshot_sections(chunk=7))
            restored.now = a.now
    assert restored is not None
    assert a.fsm.digest() == b.fsm.digest() == restored.fsm.digest()
    assert a.keys() == restored.keys()
    assert a.fsm.evicted_keys > (5 if policy.startswith("volatile") else 30)


def test_settings_travel_in_snapshots_and_the_digest():
    m = Machine()
    m.config("maxmemory", "10mb")
    m.config("maxmemory-policy", "allkeys-lfu")
    other = CacheStateMachine()
    other.restore(m.fsm.snapshot_sections())
    assert other.memory_settings.maxmemory == 10 << 20
    assert other.memory_settings.policy == POLICIES["allkeys-lfu"]
    assert other.digest() == m.fsm.digest()
    m.config("maxmemory-samples", 7)
    assert other.digest() != m.fsm.digest()


def test_read_access_record_is_bounded():
    m = Machine()
    m.config("maxmemory-policy", "allkeys-lru")
    keys = fill(m, 300)
    for _ in range(3):
        for key in keys:
            m.fsm.read(c.Get(key))
    record = m.fsm.take_read_accesses()
    assert len(record) == 256 and set(record) <= set(keys)
    assert m.fsm.take_read_accesses() == ()
    assert m.fsm.keyspace_hits == 900
    m.fsm.read(c.Get(b"missing"))
    assert m.fsm.keyspace_misses == 1


def test_collections_are_accounted_and_evicted_like_any_key():
    m = Machine()
    w = c.DataWrite
    m.do(w((b"hset", b"h", *[b"f%d" % i if j == 0 else b"v" * 30 for i in range(200) for j in range(2)])),
         w((b"sadd", b"s", *(b"member:%d" % i for i in range(300)))))
    used = m.fsm.used_memory
    assert used > 200 * 30 + 300 * 10
    m.do(w((b"hdel", b"h", *(b"f%d" % i for i in range(100)))))
    assert m.fsm.used_memory < used  # re-measured as it shrank
    other = CacheStateMachine()
    other.restore(m.fsm.snapshot_sections())
    assert other.used_memory == m.fsm.used_memory  # the accounting travels in the snapshot
    assert other.digest() == m.fsm.digest()
    m.do(c.Delete((b"h", b"s")))
    assert m.fsm.used_memory == 0
    m.config("maxmemory-policy", "allkeys-lru")
    m.do(w((b"sadd", b"big", *(b"x%d" % i for i in range(500)))))
    m.config("maxmemory", m.fsm.used_memory // 2)
    m.do(c.Set(b"k", b"v"))
    assert m.keys() == {b"k"}  # the whole collection went


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-random"])
def test_sampling_through_long_runs_of_deleted_keys_matches_a_restored_replica(policy):
    """A replica that deleted a long run of keys walks (and compacts) its creation index while
    sampling; one restored from a snapshot has no such leftovers. Both must evict alike."""
    a = Machine()
    fill(a, 3000)
    a.do(c.Delete(tuple(b"k%04d" % i for i in range(500, 2500))))  # a 2000-entry run of leftovers
    restored = Machine(CacheStateMachine())
    restored.fsm.restore(a.fsm.snapshot_sections())
    restored.now = a.now
    for m in (a, restored):
        m.config("maxmemory-policy", policy)
        m.config("maxmemory", limit_for(600))
    for i in range(400):
        command = c.Set(b"n%04d" % i, b"v" * 20)
        assert a.do(command) == restored.do(command)
    assert a.fsm.evicted_keys == restored.fsm.evicted_keys > 300
    assert a.keys() == restored.keys() and a.fsm.digest() == restored.fsm.digest()


def test_a_mass_deletion_is_compacted_in_bounded_slices():
    """The creation-order index drops its leftovers a slice per applied entry: no entry pays
    for the whole index, SCAN and sampling answer as before meanwhile."""
    from raftcache.statemachine import _COMPACT_SLICE

    m = Machine()
    for start in range(0, 40_000, 1000):
        m.do(*(c.Set(b"k%05d" % i, b"v") for i in range(start, start + 1000)))
    m.do(c.Delete(tuple(b"k%05d" % i for i in range(0, 40_000) if i % 10)))  # 36K leftovers
    entries = len(m.fsm._order_keys)
    assert entries > _COMPACT_SLICE * 2  # the pass is still running after that entry
    m.do()
    assert entries - len(m.fsm._order_keys) <= _COMPACT_SLICE  # one slice's worth per entry
    scanned, cursor = [], 0
    while True:
        cursor, keys = m.fsm.read(c.Scan(cursor, None, 1000))
        scanned += keys
        m.do()  # compaction advances between SCAN calls
        if cursor == 0:
            break
    assert sorted(scanned) == [b"k%05d" % i for i in range(0, 40_000, 10)]
    assert len(m.fsm._order_keys) == 4000  # done: only live entries left
