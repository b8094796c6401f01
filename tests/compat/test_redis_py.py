"""redis-py's transaction pipelines, WATCH retry loops, `Lock` and `register_script`, as an
application uses them, against a follower of a 3-node `raftcache serve` cluster (with a
conflicting writer through another node), and again across a kill -9 of the leader."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError, ResponseError, WatchError

from tests.compat.support import kill_leader, no_retry, restart
from tests.helpers import ServerCluster, ServerNode, Workers, wait_until

_prefixes = itertools.count()


@pytest.fixture
def k():
    prefix = f"py{next(_prefixes)}:"
    return lambda name: prefix + name


@pytest.fixture
def r(follower: ServerNode) -> Iterator[redis.Redis]:
    with follower.redis(retry=no_retry()) as client:
        yield client


@pytest.fixture
def other(cluster: ServerCluster, follower: ServerNode) -> Iterator[redis.Redis]:
    """A second application instance, through another node than `r`."""
    node = next(n for n in cluster.nodes if n is not follower and n.alive)
    with node.redis(retry=no_retry()) as client:
        yield client


# ------------------------------------------------------------------ transaction pipelines
def test_transaction_pipeline_is_the_default(r, k):
    with r.pipeline() as p:  # transaction=True: MULTI ... EXEC
        p.set(k("a"), 1).incr(k("a")).get(k("a")).mset({k("b"): "x", k("c"): "y"}).mget(k("b"), k("c"))
        assert p.execute() == [True, 2, b"2", True, [b"x", b"y"]]


def test_transaction_pipeline_runtime_error_keeps_the_other_commands(r, k):
    with r.pipeline() as p:
        p.set(k("s"), "text").incr(k("s")).set(k("t"), "after")
        with pytest.raises(ResponseError, match="not an integer"):
            p.execute()
    assert r.mget(k("s"), k("t")) == [b"text", b"after"]  # EXEC applies the rest, as Redis
    with r.pipeline() as p:
        p.incr(k("s")).get(k("t"))
        replies = p.execute(raise_on_error=False)
    assert isinstance(replies[0], ResponseError) and replies[1] == b"after"


def test_transaction_pipeline_refused_command_discards_everything(r, k):
    with r.pipeline() as p:
        p.set(k("x"), 1).execute_command("SET", k("x"))  # wrong arity: refused while queuing
        with pytest.raises(ResponseError):
            p.execute()
    assert r.exists(k("x")) == 0  # EXECABORT: nothing applied


# ------------------------------------------------------------------ WATCH retry loops
def test_transaction_helper_retries_after_a_conflicting_writer(r, other, k):
    r.set(k("balance"), 100)
    calls = []

    def withdraw(pipe: redis.client.Pipeline) -> None:
        balance = int(pipe.get(k("balance")))
        if not calls:  # another application instance changes the key in between, once
            other.incrby(k("balance"), 50)
        calls.append(balance)
        pipe.multi()
        pipe.set(k("balance"), balance - 30)

    assert r.transaction(withdraw, k("balance")) == [True]
    assert calls == [100, 150]  # the first attempt was aborted by EXEC, the second saw the write
    assert int(r.get(k("balance"))) == 120
    assert int(other.get(k("balance"))) == 120


def test_manual_watch_loop(r, other, k):
    r.set(k("n"), 1)
    attempts = 0
    with r.pipeline() as p:
        while True:
            attempts += 1
            try:
                p.watch(k("n"))
                value = int(p.get(k("n")))
                if attempts == 1:
                    other.set(k("n"), 10)  # conflicting writer through another node
                p.multi()
                p.set(k("n"), value + 1)
                p.set(k("seen"), value)
                assert p.execute() == [True, True]
                break
            except WatchError:
                assert attempts == 1
    assert attempts == 2
    assert r.mget(k("n"), k("seen")) == [b"11", b"10"]


def test_watch_is_tripped_by_a_script_and_by_a_transaction(r, other, k):
    def by_transaction() -> None:
        with other.pipeline() as p:
            p.set(k("w"), "by-multi").execute()

    r.set(k("w"), "v")
    for conflicting in (lambda: other.eval("return redis.call('SET', KEYS[1], 'by-script')", 1, k("w")), by_transaction):
        with r.pipeline() as p:
            p.watch(k("w"))
            conflicting()
            p.multi()
            p.set(k("w"), "mine")
            with pytest.raises(WatchError):
                p.execute()
    assert r.get(k("w")) == b"by-multi"


def test_unwatched_transaction_is_not_aborted_by_unrelated_writes(r, other, k):
    with r.pipeline() as p:
        p.watch(k("mine"))
        other.set(k("unrelated"), 1)
        p.multi()
        p.set(k("mine"), 1)
        assert p.execute() == [True]


# ------------------------------------------------------------------ Lock
def test_lock_acquire_release_and_a_second_holder(r, other, k):
    mine = r.lock(k("lock"), timeout=30)
    theirs = other.lock(k("lock"), timeout=30)
    assert mine.acquire(blocking=False)
    assert mine.locked() and mine.owned()
    assert not theirs.acquire(blocking=False)
    assert theirs.locked() and not theirs.owned()
    mine.release()
    assert not mine.locked()
    with pytest.raises(LockError):
        mine.release()  # not held any more
    with theirs:  # context manager: blocking acquire, release on exit
        assert theirs.owned()
    assert not other.exists(k("lock"))


def test_lock_extend_and_reacquire(r, k):
    lock = r.lock(k("lock"), timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.extend(20)  # added to the remaining TTL
    assert 20_000 < r.pttl(k("lock")) <= 25_000
    assert lock.extend(2, replace_ttl=True)
    assert 0 < r.pttl(k("lock")) <= 2_000
    assert lock.reacquire()  # back to the lock's own timeout
    assert 2_000 < r.pttl(k("lock")) <= 5_000
    lock.release()


def test_lock_expiry_hands_the_lock_over(r, other, k):
    mine = r.lock(k("lock"), timeout=0.3)
    assert mine.acquire(blocking=False)
    theirs = other.lock(k("lock"), timeout=30)
    wait_until(lambda: theirs.acquire(blocking=False), 10, 0.05, "the expired lock to be free")
    # the old holder's token no longer matches: the extend and release scripts refuse it
    with pytest.raises(LockNotOwnedError):
        mine.extend(10)
    with pytest.raises(LockNotOwnedError):
        mine.release()
    assert theirs.owned()
    theirs.release()


def test_blocking_acquire_waits_for_the_holder(r, other, k):
    holder = other.lock(k("lock"), timeout=30)
    assert holder.acquire(blocking=False)
    # thread_local=False: the token the waiting thread acquires is seen by this thread too
    waiter = r.lock(k("lock"), timeout=30, sleep=0.02, thread_local=False)
    assert waiter.acquire(blocking_timeout=0.3) is False  # gives up while the holder holds it

    started = threading.Event()
    got = []

    def wait_for_it() -> None:
        started.set()
        got.append(waiter.acquire(blocking=True, blocking_timeout=20))

    with Workers() as workers:
        workers.start(wait_for_it)
        started.wait(10)
        assert holder.owned()
        holder.release()
    assert got == [True] and waiter.owned()
    waiter.release()


# ------------------------------------------------------------------ register_script
def test_register_script_loads_on_noscript_and_is_shared_by_every_node(r, other, k):
    r.script_flush()
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert r.script_exists(incr_by.sha) == [False]
    assert incr_by(keys=[k("c")], args=[5]) == 5  # EVALSHA -> NOSCRIPT -> SCRIPT LOAD -> EVALSHA
    assert incr_by(keys=[k("c")], args=[2]) == 7
    assert other.script_exists(incr_by.sha) == [True]  # the script cache is replicated state
    assert other.evalsha(incr_by.sha, 1, k("c"), 1) == 8
    with r.pipeline() as p:  # in a transaction pipeline (redis-py loads scripts before MULTI)
        incr_by(keys=[k("c")], args=[10], client=p)
        p.get(k("c"))
        assert p.execute() == [18, b"18"]
    failing = r.register_script("return redis.error_reply('MYERR custom failure')")
    with pytest.raises(ResponseError, match="custom failure"):
        failing()


# ------------------------------------------------------------------ across a leader kill
def test_across_a_leader_kill(cluster, follower, k):
    """State made before the kill (a held lock, a WATCH, a loaded script) is honoured after it,
    through the same follower connections, and the dead node catches up when restarted."""
    with follower.redis(retry=no_retry()) as r, follower.redis(retry=no_retry()) as r2:
        holder = r.lock(k("lock"), timeout=60)
        assert holder.acquire(blocking=False)
        script = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        sha = r.script_load(script.script)
        r.mset({k("a"): 1, k("b"): 1})
        watching = r.pipeline()
        watching.watch(k("a"))
        conflicted = r2.pipeline()
        conflicted.watch(k("b"))

        dead = kill_leader(cluster, follower)

        # the lock is still held, by the same token: nobody else gets it; its holder can
        # extend and release it
        assert not r2.lock(k("lock"), timeout=5).acquire(blocking=False)
        assert holder.extend(5) and holder.owned()
        holder.release()
        assert r2.lock(k("lock"), timeout=5).acquire(blocking=False)
        # the script cache survived: EVALSHA directly, no NOSCRIPT fallback
        assert r.evalsha(sha, 1, k("n"), 3) == 3
        assert script(keys=[k("n")], args=[1]) == 4
        # WATCH indexes taken before the kill are the same on the new leader: an untouched key
        # commits, a key written after the kill aborts
        watching.multi()
        watching.incr(k("a"))
        assert watching.execute() == [2]
        with cluster.leader().redis(retry=no_retry()) as on_new_leader:
            on_new_leader.set(k("b"), 5)
        conflicted.multi()
        conflicted.incr(k("b"))
        with pytest.raises(WatchError):
            conflicted.execute()
        # and the library loops work as before
        with r.pipeline() as p:
            assert p.incr(k("a")).incr(k("b")).execute() == [3, 6]

        def incr_a(p: redis.client.Pipeline) -> None:
            p.multi()
            p.incr(k("a"))

        assert r.transaction(incr_a, k("a")) == [4]

        restart(cluster, dead)
        with dead.redis(retry=no_retry()) as revived:
            assert revived.mget(k("a"), k("b"), k("n")) == [b"4", b"6", b"4"]
            assert revived.script_exists(sha) == [True]
