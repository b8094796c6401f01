"""raftcache.operations on a stand-in replica: the membership rules (leader only, quorum
checks, one change at a time, FORCE), transfer, registry upkeep and backup staging, with no
Raft and no sockets. The real thing: tests/cluster/test_embedded.py and test_cli_ops.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from raftcache import commands as c
from raftcache.errors import CommandError, NoLeaderError
from raftcache.operations import BACKUP_KEEP_S, ClusterOperations, Member, Peer

A, B, C, D = (f"127.0.0.1:{7101 + i}" for i in range(4))


class FakeReplica:
    """The accessors ClusterOperations uses; membership calls are held until `finish()`."""

    node_id = "n1"
    address = A

    def __init__(self, members: list[str], connected: set[str], *, leader: str | None = A) -> None:
        self.members = list(members)
        self.connected = connected
        self.leader = leader
        self.registry: dict[str, tuple[str, str]] = {}
        self.held: list[Callable[[], None]] = []
        self.submitted: list[Any] = []
        self.error: BaseException | None = None  # the next membership call fails with this

    def status(self) -> Any:
        return SimpleNamespace(role="leader" if self.leader == A else "follower", leader=self.leader, members=tuple(self.members))

    def read_local(self, command: Any) -> Any:
        assert type(command) is c.Members
        return dict(self.registry)

    def is_leader(self) -> bool:
        return self.leader == A

    def connected_peers(self) -> frozenset[str]:
        return frozenset(self.connected)

    def add_member(self, raft: str, node_id: str, client: str, on_done: Callable[[Any], None]) -> None:
        def commit() -> None:
            self.registry[raft] = (node_id, client)
            self.members.append(raft)
            on_done(True)

        self.held.append(commit)

    def remove_member(self, raft: str, on_done: Callable[[Any], None]) -> None:
        if self.error is not None:
            on_done(self.error)
            return

        def commit() -> None:
            self.members.remove(raft)
            on_done(True)

        self.held.append(commit)

    def transfer_leadership(self, target: str | None, on_done: Callable[[Any], None]) -> None:
        self.leader = target or B
        on_done(None)

    def submit(self, command: Any, on_done: Callable[[Any], None]) -> None:
        self.submitted.append((command, on_done))

    def backup(self, path: str, on_done: Callable[[Any], None], *, timeout: float) -> None:
        with open(path, "wb") as f:
            f.write(b"0123456789")
        on_done({"bytes": 10, "keys": 3, "applied_index": 42})

    def finish(self) -> None:
        self.held.pop(0)()


def outcome() -> tuple[list[Any], Callable[[Any], None]]:
    box: list[Any] = []
    return box, box.append


def ops_for(replica: FakeReplica, **peers: Peer) -> ClusterOperations:
    return ClusterOperations(replica, peers=peers)  # type: ignore[arg-type]


def test_add_is_refused_while_a_member_is_unreachable_unless_forced():
    replica = FakeReplica([A, B, C], {B})
    ops = ops_for(replica, **{C: Peer("n3", C, "127.0.0.1:7003")})
    box, done = outcome()
    with pytest.raises(CommandError, match="refusing to add a member while n3 is unreachable"):
        ops.add_member("n4", D, "127.0.0.1:7004", done)
    assert replica.held == []
    ops.add_member("n4", D, "127.0.0.1:7004", done, force=True)
    replica.finish()
    assert box == [True]
    assert ops.members()[-1] == Member("n4", D, "127.0.0.1:7004", False, False)


def test_add_refuses_a_member_or_id_already_there_and_bad_addresses():
    replica = FakeReplica([A, B, C], {B, C})
    replica.registry[B] = ("n2", "127.0.0.1:7002")
    ops = ops_for(replica)
    with pytest.raises(CommandError, match=f"{B} is already a member"):
        ops.add_member("n9", B, "127.0.0.1:7009", print)
    with pytest.raises(CommandError, match=f"member id 'n2' is already used by {B}"):
        ops.add_member("n2", D, "127.0.0.1:7009", print)
    with pytest.raises(CommandError, match="client address"):
        ops.add_member("n4", D, "nowhere", print)


def test_removal_leaving_no_reachable_majority_is_refused_unless_forced():
    replica = FakeReplica([A, B, C], {B})  # C is down
    ops = ops_for(replica)
    with pytest.raises(CommandError, match=r"refusing: after removing 127\.0\.0\.1:7102 only 1 of 2 remaining members are reachable"):
        ops.remove_member(B, print)
    box, done = outcome()
    ops.remove_member(C, done)  # removing the dead one leaves {A, B}, both reachable
    replica.finish()
    assert box == [True] and replica.members == [A, B]
    ops.remove_member(B, done, force=True)
    replica.finish()
    assert replica.members == [A]


def test_the_leader_does_not_remove_itself_and_unknown_names_are_refused():
    ops = ops_for(FakeReplica([A, B, C], {B, C}))
    with pytest.raises(CommandError, match="transfer leadership first"):
        ops.remove_member(A, print)
    with pytest.raises(CommandError, match="no member named 'ghost'"):
        ops.remove_member("ghost", print)


def test_one_change_at_a_time():
    replica = FakeReplica([A, B, C], {B, C, D})
    ops = ops_for(replica)
    first, done = outcome()
    ops.add_member("n4", D, "127.0.0.1:7004", done)
    with pytest.raises(CommandError, match="another membership change is in progress"):
        ops.remove_member(C, print)
    replica.finish()
    assert first == [True]
    second, done = outcome()
    ops.remove_member(C, done)  # the first change has finished: allowed
    replica.finish()
    assert second == [True]


def test_a_failed_change_reports_the_error_and_releases_the_lock():
    replica = FakeReplica([A, B, C], {B, C})
    replica.error = NoLeaderError("membership remove not applied: no leader")
    ops = ops_for(replica)
    box, done = outcome()
    ops.remove_member(C, done)
    assert box == [replica.error]
    replica.error = None
    ops.remove_member(C, done)  # not stuck behind the failed change
    replica.finish()
    assert box[-1] is True and replica.members == [A, B]


def test_followers_refuse_changes_and_name_the_leader():
    replica = FakeReplica([A, B, C], {B, C}, leader=B)
    ops = ops_for(replica, **{B: Peer("n2", B, "127.0.0.1:7002")})
    for change in (lambda: ops.add_member("n4", D, "127.0.0.1:7004", print), lambda: ops.remove_member(C, print),
                   lambda: ops.transfer_leader(None, print)):
        with pytest.raises(CommandError, match=r"membership changes go to the leader; the leader is n2 \(127\.0\.0\.1:7002\)"):
            change()
    replica.leader = None
    with pytest.raises(CommandError, match="no leader is known"):
        ops.remove_member(C, print)


def test_transfer_names_the_new_leader():
    replica = FakeReplica([A, B, C], {B, C})
    ops = ops_for(replica, **{C: Peer("n3", C, "127.0.0.1:7003")})
    box, done = outcome()
    ops.transfer_leader(A, done)  # already leading: nothing to do
    assert box == [Peer("n1", A, "")]
    ops.transfer_leader("n3", done)
    assert box[-1] == Peer("n3", C, "127.0.0.1:7003") and replica.leader == C


def test_the_leader_registers_configured_members_once():
    replica = FakeReplica([A, B, C], {B, C})
    ops = ops_for(replica, **{B: Peer("n2", B, "127.0.0.1:7002"), C: Peer("n3", C, "127.0.0.1:7003")})
    replica.registry[C] = ("n3", "127.0.0.1:7003")
    ops.tick()
    ops.tick()  # still in flight: not proposed again
    assert [cmd for cmd, _ in replica.submitted] == [c.SetMember(B, "n2", "127.0.0.1:7002")]
    replica.submitted[0][1](True)
    ops.tick()
    assert len(replica.submitted) == 2  # not yet in the registry: proposed again
    replica.leader = B
    ops.tick()
    assert len(replica.submitted) == 2  # only the leader does it


def test_backups_are_staged_read_in_chunks_and_expire():
    ops = ops_for(FakeReplica([A], set()))
    box, done = outcome()
    ops.start_backup(done)
    (backup,) = box
    assert (backup.bytes, backup.keys, backup.applied_index) == (10, 3, 42)
    staged = ops.staged_backup(backup.id)
    assert ops.read_backup(staged, 0, 4) + ops.read_backup(staged, 4, 100) == b"0123456789"
    with pytest.raises(CommandError, match="offset must be >= 0"):
        ops.read_backup(staged, -1, 4)
    ops.tick(now=backup.created + BACKUP_KEEP_S + 1)
    with pytest.raises(CommandError, match="no such backup"):
        ops.staged_backup(backup.id)
    assert not os.path.exists(backup.path)
    ops.start_backup(done)
    ops.close()
    assert not os.path.exists(box[-1].path)
