"""Cluster operations on one replica: membership changes with their quorum checks, leadership
transfer, backup staging and upkeep of the member registry.

Used by the RESP server (RAFTCACHE MEMBERS / MEMBER / TRANSFER / BACKUP) and by the embedded
``Cache`` / ``AsyncCache``, so both refuse the same unsafe changes with the same words.

Written once, with no event loop: an operation first checks what it can on the caller's
thread and raises ``CommandError`` when it refuses; otherwise it starts and reports through
``on_done(result_or_exception)``, called exactly once from whichever thread finishes it (the
Raft thread or a timer). Each caller drives that its own way: the server hands the callback
to its event loop, ``Cache`` blocks on it (``replica.wait_for``), ``AsyncCache`` resolves a
future.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import commands as c
from .errors import CommandError, RaftCacheError
from .replica import OnDone, Replica
from .addresses import validate_address

log = logging.getLogger(__name__)

BACKUP_KEEP_S = 1800.0  # a backup not fetched and released within this is deleted
BACKUP_CHUNK_MAX = 4 << 20
CHANGE_TIMEOUT_S = 10.0  # a committed change must show in this node's configuration by then
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Peer:
    """What the node knows about a cluster member (the registry, else the config file)."""

    id: str
    raft: str
    client: str

    @property
    def name(self) -> str:
        """How to show the member: its id, or its raft address when no id is known."""
        return self.id or self.raft


@dataclass(frozen=True, slots=True)
class Member:
    """One row of the member list (RAFTCACHE MEMBERS, ``Cache.members()``)."""

    id: str
    raft: str
    client: str
    leader: bool
    connected: bool  # this node has a connection to it (always True for this node itself)


@dataclass(frozen=True, slots=True)
class StagedBackup:
    """A consistent backup written to a local file, waiting to be fetched in chunks."""

    id: str
    path: str
    bytes: int
    keys: int
    applied_index: int
    created: float = field(default_factory=time.monotonic)


class ClusterOperations:
    """Membership, transfer, backups and the member registry of one replica (thread-safe)."""

    def __init__(self, replica: Replica, *, node_id: str | None = None, peers: Mapping[str, Peer] | None = None) -> None:
        self.replica = replica
        self.node_id = node_id or replica.node_id
        self.peers = dict(peers or {})  # raft address -> Peer, from the config file
        self._lock = threading.Lock()  # the two bookkeeping structures below
        self._registering: set[str] = set()
        self._backups: dict[str, StagedBackup] = {}
        self._backup_dir: str | None = None
        self._change = threading.Lock()  # held for the length of one membership change

    # ------------------------------------------------------------------ registry
    def peer_lookup(self) -> Callable[[str], Peer]:
        """What this node knows of members (the replicated registry, else its config file),
        from one read of the registry: take one per request, then look up every member."""
        registry = self.replica.read_local(c.Members())
        peers = self.peers

        def peer(raft: str) -> Peer:
            if raft in registry:
                node_id, client = registry[raft]
                return Peer(node_id, raft, client)
            return peers.get(raft, Peer("", raft, ""))

        return peer

    def peer(self, raft: str) -> Peer:
        return self.peer_lookup()(raft)

    def member_ids(self, addresses: Iterable[str]) -> list[str]:
        """Names of these raft addresses (the node id, or the address when no id is known)."""
        peer = self.peer_lookup()
        return [peer(a).name for a in addresses]

    def members(self) -> list[Member]:
        """The current Raft members as this node sees them, with ids and client addresses."""
        status = self.replica.status()
        peer = self.peer_lookup()
        connected = self.replica.connected_peers() | {self.replica.address}
        rows = []
        for raft in status.members:
            p = peer(raft)
            rows.append(Member(p.id, raft, p.client, raft == status.leader, raft in connected))
        return rows

    def resolve(self, name: str) -> str:
        """A member named by id or raft address -> its raft address."""
        peer = self.peer_lookup()
        for raft in self.replica.status().members:
            if raft == name or peer(raft).id == name:
                return raft
        raise CommandError(f"no member named {name!r} (see RAFTCACHE MEMBERS)")

    def register_members(self) -> None:
        """On the leader: record members known from the config file in the replicated
        registry, so every node (and every client) learns their ids and client addresses."""
        if not self.replica.is_leader():
            return
        registry = self.replica.read_local(c.Members())
        for raft in self.replica.status().members:
            peer = self.peers.get(raft)
            with self._lock:
                if raft in registry or peer is None or raft in self._registering:
                    continue
                self._registering.add(raft)
            self.replica.submit(c.SetMember(raft, peer.id, peer.client), lambda result, r=raft: self._registered(r))

    def _registered(self, raft: str) -> None:
        with self._lock:
            self._registering.discard(raft)

    def unreachable(self, members: Iterable[str]) -> list[str]:
        """Names of the given members, other than this node, that it has no connection to."""
        own = self.replica.address
        connected = self.replica.connected_peers()
        return self.member_ids(m for m in members if m != own and m not in connected)

    # --------------------------------------------------------------- membership
    def require_leader(self) -> None:
        status = self.replica.status()
        if status.role != "leader":
            leader = self.peer(status.leader) if status.leader else None
            where = f"the leader is {leader.name} ({leader.client or 'no client address'})" if leader else "no leader is known"
            raise CommandError(f"membership changes go to the leader; {where}")

    def add_member(self, node_id: str, raft: str, client: str, on_done: OnDone, *, force: bool = False) -> None:
        """Add a member. Refused (CommandError, raised) off the leader, for a bad address or a
        name already in use, while a member is unreachable (unless `force`: the cluster would
        need one more vote with one already missing), or during another change.
        `on_done(True)` once the member is in this node's configuration."""
        self.require_leader()
        try:
            validate_address(raft)
            validate_address(client, "client address")
        except RaftCacheError as exc:
            raise CommandError(str(exc)) from None
        members = self.replica.status().members
        if raft in members:
            raise CommandError(f"{raft} is already a member")
        peer = self.peer_lookup()
        for member in members:
            if peer(member).id == node_id:
                raise CommandError(f"member id {node_id!r} is already used by {member}")
        missing = self.unreachable(members)
        if missing and not force:
            raise CommandError(
                f"refusing to add a member while {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} unreachable: "
                "the cluster would need one more "
                "vote with one already missing. Bring it back or remove it first (or add FORCE)"
            )
        done = self._one_change_at_a_time(on_done)

        def changed(result: Any) -> None:
            if isinstance(result, BaseException):
                done(result)
                return
            log.info("member %s (%s, client %s) added", node_id, raft, client)
            self._until(lambda: raft in self.replica.status().members, "the new member to take effect", done)

        self.replica.add_member(raft, node_id, client, changed)

    def remove_member(self, node: str, on_done: OnDone, *, force: bool = False) -> None:
        """Remove a member named by id or raft address. Refused (CommandError, raised) off the
        leader, for the leader itself (transfer leadership first), when the remaining members
        would have no reachable majority (unless `force`), or during another change.
        `on_done(True)` once the member is out of this node's configuration."""
        self.require_leader()
        raft = self.resolve(node)
        members = self.replica.status().members
        if raft == self.replica.address:
            raise CommandError("this node is the leader: transfer leadership first (RAFTCACHE TRANSFER), then remove it")
        remaining = [m for m in members if m != raft]
        reachable = len(remaining) - len(self.unreachable(remaining))
        if reachable <= len(remaining) // 2 and not force:
            raise CommandError(
                f"refusing: after removing {node} only {reachable} of {len(remaining)} remaining members are "
                "reachable, not a majority (add FORCE to do it anyway)"
            )
        done = self._one_change_at_a_time(on_done)

        def changed(result: Any) -> None:
            if isinstance(result, BaseException):
                done(result)
                return
            log.info("member %s removed", raft)
            self._until(lambda: raft not in self.replica.status().members, "the removal to take effect", done)

        self.replica.remove_member(raft, changed)

    def _one_change_at_a_time(self, on_done: OnDone) -> OnDone:
        """Take the change lock (or refuse); the returned callback releases it, then reports."""
        if not self._change.acquire(blocking=False):
            raise CommandError("another membership change is in progress; one change at a time")

        def done(result: Any) -> None:
            self._change.release()
            on_done(result)

        return done

    def _until(self, condition: Callable[[], bool], what: str, on_done: OnDone, timeout: float = CHANGE_TIMEOUT_S) -> None:
        """`on_done(True)` once `condition()` holds, or a CommandError after `timeout`."""
        deadline = time.monotonic() + timeout

        def check() -> None:
            if condition():
                on_done(True)
            elif time.monotonic() > deadline:
                on_done(CommandError(f"timed out waiting for {what}"))
            else:
                timer = threading.Timer(_POLL_S, check)
                timer.daemon = True
                timer.start()

        check()

    # ------------------------------------------------------------------ transfer
    def transfer_leader(self, node: str | None, on_done: OnDone) -> None:
        """Hand leadership to the member named `node` (None: the most caught-up one).
        Refused (raised) off the leader; `on_done(Peer of the new leader)` or an error."""
        self.require_leader()
        target = self.resolve(node) if node is not None else None
        own = self.replica.address
        if target == own:
            on_done(Peer(self.node_id, own, self.peer(own).client))
            return

        def moved(result: Any) -> None:
            if isinstance(result, BaseException):
                on_done(result)
                return
            on_done(self.peer(self.replica.status().leader or ""))

        self.replica.transfer_leadership(target, moved)

    # ------------------------------------------------------------------- backups
    def start_backup(self, on_done: OnDone, *, timeout: float = 600.0) -> None:
        """Write a consistent backup to a local staging file; `on_done(StagedBackup)`. It is
        read with `read_backup`, released with `drop_backup`, or expires after a while."""
        backup_id = uuid.uuid4().hex
        path = os.path.join(self._staging_dir(), f"{backup_id}.rcs")

        def written(result: Any) -> None:
            if isinstance(result, BaseException):
                on_done(result)
                return
            backup = StagedBackup(backup_id, path, result["bytes"], result["keys"], result["applied_index"])
            with self._lock:
                self._backups[backup_id] = backup
            on_done(backup)

        self.replica.backup(path, written, timeout=timeout)

    def staged_backup(self, backup_id: str) -> StagedBackup:
        with self._lock:
            backup = self._backups.get(backup_id)
        if backup is None:
            raise CommandError("no such backup (it may have expired)")
        return backup

    def read_backup(self, backup: StagedBackup, offset: int, count: int) -> bytes:
        """Up to `count` bytes of a staged backup file from `offset`."""
        if offset < 0 or not 0 < count <= BACKUP_CHUNK_MAX:
            raise CommandError(f"offset must be >= 0 and count in 1..{BACKUP_CHUNK_MAX}")
        with open(backup.path, "rb") as f:
            f.seek(offset)
            return f.read(count)

    def drop_backup(self, backup_id: str) -> None:
        with self._lock:
            backup = self._backups.pop(backup_id, None)
        if backup is not None:
            try:
                os.unlink(backup.path)
            except OSError:
                pass

    def _staging_dir(self) -> str:
        with self._lock:
            if self._backup_dir is None:
                self._backup_dir = tempfile.mkdtemp(prefix="raftcache-backups-")
            return self._backup_dir

    # -------------------------------------------------------------- housekeeping
    def tick(self, now: float | None = None) -> None:
        """Periodic upkeep (about once a second): registry entries, expired backups."""
        now = time.monotonic() if now is None else now
        self.register_members()
        with self._lock:
            expired = [b.id for b in self._backups.values() if now - b.created > BACKUP_KEEP_S]
        for backup_id in expired:
            self.drop_backup(backup_id)

    def close(self) -> None:
        """Delete staged backups."""
        with self._lock:
            directory, self._backup_dir = self._backup_dir, None
            self._backups.clear()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
