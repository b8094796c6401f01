"""One test (or a few) per state-machine operation, against Redis's documented behaviour."""

from __future__ import annotations

import pytest

from raftcache import commands as c
from raftcache.errors import (
    CommandError,
    IntegerOverflowError,
    InvalidExpireError,
    NotIntegerError,
    SessionExpiredError,
)
from raftcache.statemachine import SESSION_TTL_MS, CacheStateMachine

T0 = 1_700_000_000_000


class Machine:
    """A state machine with a hand-driven clock: `w` applies writes, `r` reads."""

    def __init__(self) -> None:
        self.fsm = CacheStateMachine()
        self.now = T0

    def w(self, command, tag=None):
        return self.fsm.apply(c.Batch(self.now, [(tag, command)]))[0]

    def r(self, command):
        return self.fsm.read(command)

    def tick(self, ms: int) -> None:
        self.now += ms
        self.fsm.apply(c.Batch(self.now, []))


@pytest.fixture
def m() -> Machine:
    return Machine()


def test_set_get_and_overwrite(m):
    assert m.r(c.Get(b"k")) is None
    assert m.w(c.Set(b"k", b"v1")) is True
    assert m.r(c.Get(b"k")) == b"v1"
    assert m.w(c.Set(b"k", b"v2")) is True
    assert m.r(c.Get(b"k")) == b"v2"


def test_set_nx_xx(m):
    assert m.w(c.Set(b"k", b"a", cond=c.COND_XX)) is False
    assert m.r(c.Get(b"k")) is None
    assert m.w(c.Set(b"k", b"a", cond=c.COND_NX)) is True
    assert m.w(c.Set(b"k", b"b", cond=c.COND_NX)) is False
    assert m.r(c.Get(b"k")) == b"a"
    assert m.w(c.Set(b"k", b"c", cond=c.COND_XX)) is True
    assert m.r(c.Get(b"k")) == b"c"


def test_set_get_option_returns_old_value(m):
    assert m.w(c.Set(b"k", b"a", get=True)) is None
    assert m.w(c.Set(b"k", b"b", get=True)) == b"a"
    # NX + GET: not set, old value returned
    assert m.w(c.Set(b"k", b"z", cond=c.COND_NX, get=True)) == b"b"
    assert m.r(c.Get(b"k")) == b"b"


def test_set_ttl_expires_with_replicated_time(m):
    m.w(c.Set(b"k", b"v", ttl_ms=1000))
    assert m.r(c.Ttl(b"k")) == 1
    assert m.r(c.Ttl(b"k", ms=True)) == 1000
    m.tick(999)
    assert m.r(c.Get(b"k")) == b"v"
    m.tick(1)
    assert m.r(c.Get(b"k")) is None
    assert m.r(c.Ttl(b"k")) == -2
    assert m.r(c.Exists((b"k",))) == 0


def test_set_clears_ttl_unless_keepttl(m):
    m.w(c.Set(b"k", b"v", ttl_ms=5000))
    m.w(c.Set(b"k", b"v2", keepttl=True))
    assert m.r(c.Ttl(b"k", ms=True)) == 5000
    m.w(c.Set(b"k", b"v3"))
    assert m.r(c.Ttl(b"k")) == -1


def test_set_absolute_expiry_in_the_past_deletes(m):
    m.w(c.Set(b"k", b"v"))
    assert m.w(c.Set(b"k", b"v2", at_ms=T0 - 1)) is True
    assert m.r(c.Get(b"k")) is None


def test_set_rejects_non_positive_ttl(m):
    assert isinstance(m.w(c.Set(b"k", b"v", ttl_ms=0)), InvalidExpireError)
    assert m.r(c.Get(b"k")) is None


def test_getdel(m):
    m.w(c.Set(b"k", b"v"))
    assert m.w(c.GetDel(b"k")) == b"v"
    assert m.w(c.GetDel(b"k")) is None
    assert m.r(c.Get(b"k")) is None


def test_delete_counts_live_keys_only(m):
    m.w(c.MSet((b"a", b"1", b"b", b"2")))
    m.w(c.Set(b"gone", b"x", ttl_ms=10))
    m.tick(10)
    assert m.w(c.Delete((b"a", b"b", b"nope", b"gone"))) == 2
    assert m.r(c.DbSize()) == 0  # the expired key was removed too


def test_exists_counts_duplicates(m):
    m.w(c.Set(b"a", b"1"))
    assert m.r(c.Exists((b"a", b"a", b"b"))) == 2


def test_mset_mget(m):
    m.w(c.Set(b"a", b"old", ttl_ms=1000))
    assert m.w(c.MSet((b"a", b"1", b"b", b"2"))) is True
    assert m.r(c.MGet((b"a", b"b", b"c"))) == [b"1", b"2", None]
    assert m.r(c.Ttl(b"a")) == -1  # MSET clears expiry like SET


def test_mset_odd_pairs_rejected_without_change(m):
    result = m.w(c.MSet((b"a", b"1", b"b")))
    assert isinstance(result, CommandError)
    assert m.r(c.Get(b"a")) is None


@pytest.mark.parametrize(
    "start, delta, expected",
    [(None, 5, 5), (b"10", 5, 15), (b"-3", -4, -7), (b"0", 0, 0)],
)
def test_incrby(m, start, delta, expected):
    if start is not None:
        m.w(c.Set(b"n", start))
    assert m.w(c.IncrBy(b"n", delta)) == expected
    assert m.r(c.Get(b"n")) == str(expected).encode()


@pytest.mark.parametrize("bad", [b"abc", b"1.5", b" 1", b"+1", b"01", b"-0", b"", b"99999999999999999999"])
def test_incr_rejects_non_integers(m, bad):
    m.w(c.Set(b"n", bad))
    result = m.w(c.IncrBy(b"n", 1))
    assert isinstance(result, NotIntegerError)
    assert str(result) == "value is not an integer or out of range"
    assert m.r(c.Get(b"n")) == bad


def test_incr_overflow(m):
    m.w(c.Set(b"n", str(2**63 - 1).encode()))
    result = m.w(c.IncrBy(b"n", 1))
    assert isinstance(result, IntegerOverflowError)
    assert str(result) == "increment or decrement would overflow"
    m.w(c.Set(b"m", str(-(2**63)).encode()))
    assert isinstance(m.w(c.IncrBy(b"m", -1)), IntegerOverflowError)


def test_incr_keeps_ttl(m):
    m.w(c.Set(b"n", b"1", ttl_ms=3000))
    m.w(c.IncrBy(b"n", 1))
    assert m.r(c.Ttl(b"n", ms=True)) == 3000


def test_append_and_strlen(m):
    assert m.w(c.Append(b"k", b"ab")) == 2
    assert m.w(c.Append(b"k", b"cd")) == 4
    assert m.r(c.Get(b"k")) == b"abcd"
    assert m.r(c.Strlen(b"k")) == 4
    assert m.r(c.Strlen(b"missing")) == 0


def test_expire_persist_ttl(m):
    assert m.w(c.Expire(b"k", 1000)) == 0  # missing key
    m.w(c.Set(b"k", b"v"))
    assert m.r(c.Ttl(b"k")) == -1
    assert m.w(c.Expire(b"k", 10_000)) == 1
    assert m.r(c.Ttl(b"k")) == 10
    assert m.w(c.Persist(b"k")) == 1
    assert m.w(c.Persist(b"k")) == 0
    assert m.r(c.Ttl(b"k")) == -1


def test_expire_nonpositive_deletes(m):
    m.w(c.Set(b"k", b"v"))
    assert m.w(c.Expire(b"k", -1)) == 1
    assert m.r(c.Get(b"k")) is None


def test_expire_absolute(m):
    m.w(c.Set(b"k", b"v"))
    assert m.w(c.Expire(b"k", T0 + 2500, absolute=True)) == 1
    assert m.r(c.Ttl(b"k", ms=True)) == 2500


@pytest.mark.parametrize(
    "current_ms, cond, new_ms, applied",
    [
        (None, c.COND_NX, 100, 1),
        (500, c.COND_NX, 100, 0),
        (None, c.COND_XX, 100, 0),
        (500, c.COND_XX, 100, 1),
        (500, c.COND_GT, 1000, 1),
        (500, c.COND_GT, 100, 0),
        (None, c.COND_GT, 100, 0),  # no expiry counts as infinite
        (500, c.COND_LT, 100, 1),
        (500, c.COND_LT, 1000, 0),
        (None, c.COND_LT, 100, 1),
    ],
)
def test_expire_conditions(m, current_ms, cond, new_ms, applied):
    m.w(c.Set(b"k", b"v", ttl_ms=current_ms))
    assert m.w(c.Expire(b"k", new_ms, cond=cond)) == applied


def test_ttl_rounds_like_redis(m):
    m.w(c.Set(b"k", b"v", ttl_ms=1499))
    assert m.r(c.Ttl(b"k")) == 1
    m.w(c.Set(b"k", b"v", ttl_ms=1500))
    assert m.r(c.Ttl(b"k")) == 2


def test_cas(m):
    assert m.w(c.Cas(b"k", b"a", b"b")) is False  # missing key never matches
    m.w(c.Set(b"k", b"a", ttl_ms=5000))
    assert m.w(c.Cas(b"k", b"x", b"b")) is False
    assert m.r(c.Get(b"k")) == b"a"
    assert m.w(c.Cas(b"k", b"a", b"b")) is True
    assert m.r(c.Get(b"k")) == b"b"
    assert m.r(c.Ttl(b"k", ms=True)) == 5000  # expiry kept
    assert m.w(c.Cas(b"k", b"b", b"c", ttl_ms=100)) is True
    assert m.r(c.Ttl(b"k", ms=True)) == 100


def test_flushall(m):
    m.w(c.MSet((b"a", b"1", b"b", b"2")))
    m.w(c.Set(b"t", b"x", ttl_ms=100))
    assert m.w(c.FlushAll()) is True
    assert m.r(c.DbSize()) == 0
    assert m.r(c.Keys(b"*")) == []
    assert m.r(c.Scan(0)) == (0, [])


def test_type(m):
    assert m.r(c.Type(b"k")) == "none"
    m.w(c.Set(b"k", b"v"))
    assert m.r(c.Type(b"k")) == "string"


def test_keys_pattern_and_expired_hidden(m):
    m.w(c.MSet((b"user:1", b"a", b"user:2", b"b", b"other", b"c")))
    m.w(c.Set(b"user:3", b"x", ttl_ms=5))
    assert sorted(m.r(c.Keys(b"user:*"))) == [b"user:1", b"user:2", b"user:3"]
    m.tick(5)
    assert sorted(m.r(c.Keys(b"user:*"))) == [b"user:1", b"user:2"]
    assert sorted(m.r(c.Keys(b"*"))) == [b"other", b"user:1", b"user:2"]
    assert m.r(c.Keys(b"user:[12]")) == [b"user:1", b"user:2"]


def test_scan_returns_every_key_present_for_the_whole_scan(m):
    for i in range(100):
        m.w(c.Set(b"k%d" % i, b"v"))
    seen: list[bytes] = []
    cursor = 0
    steps = 0
    while True:
        cursor, keys = m.r(c.Scan(cursor, None, 7))
        seen += keys
        steps += 1
        # churn during the scan: delete and re-create other keys, add new ones
        m.w(c.Delete((b"k%d" % (steps * 3 % 100),)))
        m.w(c.Set(b"new%d" % steps, b"v"))
        m.w(c.Set(b"k%d" % (steps * 3 % 100), b"again"))
        if cursor == 0:
            break
        assert steps < 1000
    untouched = {b"k%d" % i for i in range(100)} - {b"k%d" % (s * 3 % 100) for s in range(1, steps + 1)}
    assert untouched <= set(seen)


def test_scan_match_and_count(m):
    for i in range(50):
        m.w(c.Set(b"a%d" % i, b"v"))
        m.w(c.Set(b"b%d" % i, b"v"))
    found = []
    cursor = 0
    while True:
        cursor, keys = m.r(c.Scan(cursor, b"a*", 10))
        assert len(keys) <= 10
        found += keys
        if cursor == 0:
            break
    assert sorted(found) == sorted(b"a%d" % i for i in range(50))


def test_sweep_deletes_expired_keys_in_batches(m):
    for i in range(10):
        m.w(c.Set(b"t%d" % i, b"v", ttl_ms=100 + i))
    m.w(c.Set(b"keep", b"v", ttl_ms=10_000))
    assert m.fsm.next_expiry_due() is False
    m.tick(200)
    assert m.fsm.next_expiry_due() is True
    assert m.r(c.DbSize()) == 11  # hidden but still stored until swept
    assert m.w(c.Sweep(4)) == 4
    assert m.w(c.Sweep(100)) == 6
    assert m.fsm.next_expiry_due() is False
    assert m.r(c.DbSize()) == 1


def test_sweep_skips_keys_whose_expiry_changed(m):
    m.w(c.Set(b"k", b"v", ttl_ms=100))
    m.w(c.Expire(b"k", 10_000))
    m.tick(200)
    assert m.w(c.Sweep(10)) == 0
    assert m.r(c.Get(b"k")) == b"v"


def test_replicated_clock_never_goes_back(m):
    m.w(c.Set(b"k", b"v", ttl_ms=1000))
    m.fsm.apply(c.Batch(T0 - 50_000, []))  # a proposer with a slow clock
    assert m.fsm.now_ms == T0
    assert m.r(c.Ttl(b"k", ms=True)) == 1000


def test_revision_and_key_info(m):
    m.w(c.Set(b"a", b"1"))
    m.w(c.Set(b"b", b"1"))
    m.w(c.Set(b"a", b"2"))
    mod, created, expiry = m.fsm.key_info(b"a")
    assert (mod, created, expiry) == (3, 1, None)
    assert m.fsm.revision == 3
    assert m.fsm.key_info(b"zz") is None


# ------------------------------------------------------------------------ exactly-once
def test_retried_write_is_answered_from_the_session_table(m):
    tag = c.SessionTag(42, 1, 1)
    assert m.w(c.IncrBy(b"n", 5), tag) == 5
    assert m.w(c.IncrBy(b"n", 5), tag) == 5  # the retry: same answer, not applied again
    assert m.r(c.Get(b"n")) == b"5"
    assert m.w(c.Append(b"s", b"x"), c.SessionTag(42, 2, 1)) == 1
    assert m.w(c.Append(b"s", b"x"), c.SessionTag(42, 2, 1)) == 1
    assert m.r(c.Get(b"s")) == b"x"


def test_session_errors_are_remembered_too(m):
    m.w(c.Set(b"n", b"abc"))
    first = m.w(c.IncrBy(b"n", 1), c.SessionTag(7, 1, 1))
    m.w(c.Set(b"n", b"1"))  # an untagged write makes the command valid now
    assert m.w(c.IncrBy(b"n", 1), c.SessionTag(7, 1, 1)) == first  # still the first answer


def test_ack_releases_results_and_refuses_stale_duplicates(m):
    for seq in range(1, 6):
        m.w(c.IncrBy(b"n", 1), c.SessionTag(9, seq, 1))
    m.w(c.IncrBy(b"n", 1), c.SessionTag(9, 6, 6))  # the client has answers for 1..5
    result = m.w(c.IncrBy(b"n", 1), c.SessionTag(9, 3, 6))
    assert isinstance(result, SessionExpiredError)
    assert m.r(c.Get(b"n")) == b"6"


def test_forgotten_session_refuses_retries_it_cannot_judge(m):
    m.w(c.IncrBy(b"n", 1), c.SessionTag(5, 1, 1))
    m.tick(SESSION_TTL_MS + 1)
    assert m.fsm.session_count == 0
    result = m.w(c.IncrBy(b"n", 1), c.SessionTag(5, 2, 2))  # ack > 1: the session existed
    assert isinstance(result, SessionExpiredError)
    assert m.r(c.Get(b"n")) == b"1"
    # a new client (first seq, nothing acknowledged) starts a session
    assert m.w(c.IncrBy(b"n", 1), c.SessionTag(6, 1, 1)) == 2


def test_out_of_order_seqs_from_one_client(m):
    assert m.w(c.IncrBy(b"n", 1), c.SessionTag(3, 2, 1)) == 1
    assert m.w(c.IncrBy(b"n", 1), c.SessionTag(3, 1, 1)) == 2
    assert m.w(c.IncrBy(b"n", 1), c.SessionTag(3, 2, 1)) == 1  # duplicate of seq 2


# --------------------------------------------------------------------- snapshot/restore
def test_snapshot_restore_round_trip(m):
    m.w(c.MSet((b"a", b"1", b"b", b"2")))
    m.w(c.Set(b"t", b"x", ttl_ms=5000))
    m.w(c.IncrBy(b"n", 3), c.SessionTag(11, 1, 1))
    m.w(c.IncrBy(b"bad", 1), c.SessionTag(11, 2, 1))
    m.w(c.Set(b"bad", b"zz"))
    m.w(c.IncrBy(b"bad", 1), c.SessionTag(11, 3, 1))  # an error result in the session table
    sections = list(m.fsm.snapshot_sections(chunk=2))
    other = CacheStateMachine()
    other.restore(sections)
    assert other.digest() == m.fsm.digest()
    assert other.read(c.Ttl(b"t", ms=True)) == 5000
    assert other.read(c.Scan(0, None, 100)) == m.fsm.read(c.Scan(0, None, 100))
    # the restored session table still answers retries, errors included
    replay = c.Batch(m.now, [(c.SessionTag(11, 1, 1), c.IncrBy(b"n", 3)), (c.SessionTag(11, 3, 1), c.IncrBy(b"bad", 1))])
    assert m.fsm.apply(replay) == other.apply(replay)
    assert other.read(c.Get(b"n")) == b"3"


def test_restore_discards_previous_state(m):
    m.w(c.Set(b"old", b"1"))
    empty = list(CacheStateMachine().snapshot_sections())
    m.fsm.restore(empty)
    assert m.r(c.Get(b"old")) is None
    assert m.fsm.digest() == CacheStateMachine().digest()


def test_digest_depends_on_values_and_expiry(m):
    base = m.fsm.digest()
    m.w(c.Set(b"k", b"v"))
    with_key = m.fsm.digest()
    assert with_key != base
    m.w(c.Expire(b"k", 5000))
    assert m.fsm.digest() != with_key


# Every operation must treat an expired-but-not-yet-swept key exactly like a missing key.
EXPIRED_EQUALS_MISSING = [
    c.Get(b"k"),
    c.MGet((b"k",)),
    c.Exists((b"k",)),
    c.Strlen(b"k"),
    c.Ttl(b"k"),
    c.Ttl(b"k", ms=True),
    c.Type(b"k"),
    c.Keys(b"*"),
    c.Scan(0),
    c.Set(b"k", b"n", cond=c.COND_NX),
    c.Set(b"k", b"n", cond=c.COND_XX),
    c.Set(b"k", b"n", get=True),
    c.Set(b"k", b"n", keepttl=True),
    c.GetDel(b"k"),
    c.Delete((b"k",)),
    c.IncrBy(b"k", 1),
    c.Append(b"k", b"x"),
    c.Expire(b"k", 1000),
    c.Persist(b"k"),
    c.Cas(b"k", b"7", b"8"),
]


@pytest.mark.parametrize("command", EXPIRED_EQUALS_MISSING, ids=lambda cmd: type(cmd).__name__)
def test_expired_key_behaves_as_missing(command):
    expired, missing = Machine(), Machine()
    expired.w(c.Set(b"k", b"7", ttl_ms=10))
    expired.tick(10)
    missing.tick(10)
    run = (lambda mm: mm.w(command)) if c.is_write(command) else (lambda mm: mm.r(command))
    assert run(expired) == run(missing)
    for probe in (c.Get(b"k"), c.Ttl(b"k", ms=True), c.Keys(b"*")):
        assert expired.r(probe) == missing.r(probe)


def test_member_registry(m):
    assert m.w(c.SetMember("127.0.0.1:7101", "n1", "127.0.0.1:7001")) is True
    assert m.w(c.SetMember("127.0.0.1:7104", "n4", "127.0.0.1:7004")) is True
    clash = m.w(c.SetMember("127.0.0.1:7105", "n4", "127.0.0.1:7005"))
    assert isinstance(clash, CommandError) and "already used" in str(clash)
    assert m.r(c.Members()) == {"127.0.0.1:7101": ("n1", "127.0.0.1:7001"), "127.0.0.1:7104": ("n4", "127.0.0.1:7004")}
    assert m.w(c.RemoveMember("127.0.0.1:7101")) is True
    restored = CacheStateMachine()
    restored.restore(m.fsm.snapshot_sections())
    assert restored.read(c.Members()) == {"127.0.0.1:7104": ("n4", "127.0.0.1:7004")}
    assert restored.digest() == m.fsm.digest()


def test_expire_conditions_combine_like_redis(m):
    m.w(c.Set(b"k", b"v", ttl_ms=500))
    assert m.w(c.Expire(b"k", 1000, cond="gtxx")) == 1
    assert m.w(c.Expire(b"k", 100, cond="gtxx")) == 0
    m.w(c.Persist(b"k"))
    assert m.w(c.Expire(b"k", 100, cond="ltxx")) == 0  # XX: no expiry yet
