"""Helpers of the compat tests (fixtures are in conftest.py): redis-py without retries, and
the leader kill each compat module performs once.

Every client in tests/compat is built with redis-py's retries switched off (`no_retry`):
redis-py >= 6 retries a failed command by default, which would let a test pass on a second
attempt that a user's non-idempotent command (INCR, a rate-limit hit) could not afford."""

from __future__ import annotations

from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.helpers import ServerCluster, ServerNode, wait_until


def no_retry() -> Retry:
    """A fresh no-retry policy (redis-py deep-copies it per client)."""
    return Retry(NoBackoff(), 0)


def kill_leader(cluster: ServerCluster, survivor: ServerNode) -> ServerNode:
    """kill -9 the leader (never `survivor`); return once a new leader is elected and
    `survivor` follows it. Returns the dead node (restart it with `restart`)."""
    old = cluster.leader()
    assert old is not survivor, "the survivor must be a follower"
    old.kill()
    new = cluster.leader()
    assert new is not old
    wait_until(lambda: survivor.info()["raft_leader_id"] == new.id, 30, 0.05, f"{survivor.id} to follow {new.id}")
    return old


def restart(cluster: ServerCluster, node: ServerNode) -> None:
    """Bring a killed node back from its data directory and wait until every replica holds
    the same state (applied index and digest)."""
    node.start()
    cluster.converged()
