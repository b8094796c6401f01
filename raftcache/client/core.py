"""The client's logic, free of I/O: leader following, failover, retries, exactly-once tags.

Operations are generators. They *yield* what they need done — ``Call(endpoint, payload,
replies, timeout)`` or ``Sleep(seconds)`` — and receive the replies (or have the I/O error
thrown in). ``sync.Client`` and ``async_.AsyncClient`` are small drivers that perform those
requests with blocking sockets or asyncio; everything that decides anything is here, once.

Stale reads (``consistency="stale"``) go to the known leader, or else to any node that
answers, with no discovery round and no leader needed, each wrapped as ``READONLY <read>
READWRITE`` so the node answers from its local state and the pooled connection is back to
linearizable reads afterwards. ``timeout=`` on a call replaces ``RetryPolicy.deadline`` for it.

Retry rules: reads are always safe to retry; writes are tagged (client id, seq, ack) and
sent as ``RAFTCACHE ONCE``, so a retry after an unknown outcome (connection lost, node died,
``-UNKNOWN``) is answered from the cluster's session table instead of being applied twice.
A write is reported as ``OutcomeUnknownError`` only when the deadline ends with its outcome
still unknown; a command that certainly never ran gets ``NoLeaderError``.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .. import commands as c
from ..api import STALE, consistency_level
from ..datatypes.blocking import BLOCKING, parse_blocking
from ..errors import (
    CommandError,
    NodeClosedError,
    NoLeaderError,
    OutcomeUnknownError,
    OverloadedError,
    ProtocolError,
    RaftCacheError,
    SessionExpiredError,
    StorageError,
)
from ..resp import ErrorReply, encode_command
from ..session import ClientSession
from ..status import from_info
from . import protocol


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying one command (or pipeline), and how to back off."""

    deadline: float = 15.0  # total budget per command, all attempts included
    attempt_timeout: float = 7.0  # per attempt; above the server's own 5 s request deadline
    backoff_base: float = 0.05
    backoff_max: float = 1.0
    jitter: float = 0.5  # +- this fraction of each backoff
    retry_on: tuple[type[BaseException], ...] = (
        OSError,  # connection refused / reset / timeout
        ProtocolError,
        NoLeaderError,
        OverloadedError,
        OutcomeUnknownError,
        StorageError,  # that node stopped; another can serve
        NodeClosedError,
    )
    leader_recheck_s: float = 5.0  # re-ask who leads this often (return to the leader after a change)

    def backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 16)))
        return max(0.0, base * (1 + self.jitter * (2 * random.random() - 1)))


@dataclass(frozen=True, slots=True)
class Call:
    endpoint: str
    payload: bytes
    replies: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Op = Call | Sleep
Plan = Generator[Op, Any, Any]

_INFO_RAFT = encode_command(b"INFO", b"raft")
_READONLY = encode_command(b"READONLY")
_READWRITE = encode_command(b"READWRITE")


@dataclass(frozen=True, slots=True)
class StaleRead:
    """A read to be answered from one node's local state (``consistency="stale"``)."""

    command: Any


def as_requested(command: Any, consistency: str | None) -> Any:
    """The command to execute for a `consistency=` argument (checked: ValueError if unknown)."""
    if consistency_level(consistency) != STALE:
        return command
    if c.is_write(command):
        raise ValueError("consistency applies to reads only")
    return StaleRead(command)


def describe_error(exc: BaseException | None) -> str:
    """One line on why a node could not be reached or used (TLS problems said as such)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the node's certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}; is this a TLS port, and is our certificate accepted?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def parse_info(text: bytes | str) -> dict[str, str]:
    """INFO's ``key:value`` lines as a dict."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value
    return fields


_FOREVER_S = 1e7  # what a blocking timeout of 0 stretches a call by (about 4 months)


def _blocking_seconds(command: Any) -> float:
    """How long the server may hold a blocking pop (BLPOP, ...) before answering: its
    socket timeout and deadline are stretched by as much. 0 for every other command."""
    if type(command) is not c.DataWrite or command.args[0] not in BLOCKING:
        return 0.0
    try:
        ms = parse_blocking(command.args).timeout_ms
    except CommandError:
        return 0.0  # refused at once
    return _FOREVER_S if ms == 0 else min(ms / 1000, _FOREVER_S)


@dataclass
class _Item:
    command: Any
    write: bool
    stale: bool = False
    seq: int = 0
    maybe_applied: bool = False
    error: BaseException | None = None


@dataclass
class ClientCore:
    endpoints: list[str]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    session: ClientSession = field(default_factory=ClientSession)
    leader: str | None = None
    _leader_checked: float = 0.0
    _suspect_until: dict[str, float] = field(default_factory=dict)  # endpoints that just failed
    _unreachable: dict[str, BaseException] = field(default_factory=dict)  # why each endpoint failed discovery

    # ------------------------------------------------------------------ execution
    def execute(self, commands: list[Any], *, timeout: float | None = None) -> Plan:
        """Run commands (one, or a pipeline; ``StaleRead`` wraps a stale read) to completion
        within `timeout` seconds (default: the policy's deadline); returns one result or
        exception instance per command, in order."""
        items = [
            _Item(cmd.command, False, stale=True) if isinstance(cmd, StaleRead) else _Item(cmd, c.is_write(cmd))
            for cmd in commands
        ]
        for item in items:
            if item.write:
                item.seq = self.session.issue()
        results: list[Any] = [None] * len(items)
        pending = list(range(len(items)))
        wait = sum(_blocking_seconds(item.command) for item in items)  # BLPOP & co. wait server-side, one after another
        budget = (self.retry.deadline if timeout is None else timeout) + wait
        deadline = time.monotonic() + budget
        attempt = 0
        while pending:
            if all(items[i].stale for i in pending):
                endpoint = self._any_node()
            else:
                endpoint = yield from self._target(deadline)
            if endpoint is None:
                reasons = "; ".join(f"{e}: {describe_error(why)}" for e, why in self._unreachable.items()) or "no endpoints"
                for i in pending:
                    items[i].error = items[i].error or NoLeaderError(f"no node reachable ({reasons})")
                if self.endpoints and all(isinstance(self._unreachable.get(e), ssl.SSLError) for e in self.endpoints):
                    # Every node failed the TLS handshake (a plain-text port, an untrusted
                    # certificate): a setting to fix, not a fault to wait out.
                    for i in pending:
                        results[i] = self._give_up(items[i], budget)
                    break
            else:
                payload = b"".join(self._encode(items[i]) for i in pending)
                count = sum(3 if items[i].stale else protocol.reply_count(items[i].command) for i in pending)
                attempt_timeout = max(0.05, min(self.retry.attempt_timeout + wait, deadline - time.monotonic()))
                try:
                    replies = yield Call(endpoint, payload, count, attempt_timeout)
                except self.retry.retry_on as exc:
                    self._lost(endpoint)
                    for i in pending:
                        items[i].maybe_applied |= items[i].write
                        items[i].error = exc
                else:
                    pending = self._settle(items, pending, replies, results)
            if not pending:
                break
            if time.monotonic() >= deadline:
                for i in pending:
                    results[i] = self._give_up(items[i], budget)
                break
            yield Sleep(min(self.retry.backoff(attempt), max(0.0, deadline - time.monotonic())))
            attempt += 1
        return results

    def _encode(self, item: _Item) -> bytes:
        if item.stale:  # three replies: OK, the read's, OK
            return _READONLY + protocol.encode(item.command, None) + _READWRITE
        tag = c.SessionTag(self.session.client_id, item.seq, self.session.low) if item.write else None
        return protocol.encode(item.command, tag)

    @staticmethod
    def _replies_per_item(items: list[_Item], pending: list[int], replies: list[Any]) -> list[Any]:
        """One reply per pending item: a stale read's own reply (or its READONLY's error)."""
        out, at = [], 0
        for i in pending:
            if items[i].stale:
                switch, reply = replies[at], replies[at + 1]
                out.append(switch if isinstance(switch, ErrorReply) else reply)
                at += 3
            else:
                n = protocol.reply_count(items[i].command)  # a transaction has several
                out.append(replies[at] if n == 1 else protocol.combine(items[i].command, replies[at : at + n]))
                at += n
        return out

    def _settle(self, items: list[_Item], pending: list[int], replies: list[Any], results: list[Any]) -> list[int]:
        """Record final results; return the indexes that need another attempt."""
        again = []
        for i, reply in zip(pending, self._replies_per_item(items, pending, replies)):
            item = items[i]
            result = protocol.decode(item.command, reply)
            if isinstance(result, SessionExpiredError) and item.write and not item.maybe_applied:
                self.session.answered(item.seq)  # the cluster forgot us: a fresh session
                self.session.rotate()
                item.seq = self.session.issue()
                again.append(i)
                continue
            if isinstance(result, self.retry.retry_on):
                if isinstance(result, OutcomeUnknownError):
                    item.maybe_applied = True
                if isinstance(result, (NoLeaderError, StorageError, NodeClosedError)):
                    self.leader = None
                item.error = result
                again.append(i)
                continue
            if item.write:
                self.session.answered(item.seq)
            results[i] = result
        return again

    def _give_up(self, item: _Item, budget: float) -> BaseException:
        if item.write:
            self.session.answered(item.seq)
        cause = item.error
        if item.write and item.maybe_applied:
            return OutcomeUnknownError(f"outcome unknown after {budget:g}s of retries: {cause}")
        if isinstance(cause, RaftCacheError):
            return cause
        return NoLeaderError(f"no node could serve the command within {budget:g}s: {describe_error(cause)}")

    # ------------------------------------------------------------- leader tracking
    def _lost(self, endpoint: str) -> None:
        """A call to `endpoint` failed: ask the others first for a while."""
        self._suspect_until[endpoint] = time.monotonic() + self.retry.backoff_max + 1.0
        if endpoint == self.leader:
            self.leader = None

    def _any_node(self) -> str | None:
        """Where a stale read goes: the leader when known (its state is the freshest), else
        the first endpoint that has not just failed. No discovery round: a stale read must
        work when no leader is known or none exists."""
        now = time.monotonic()
        order = ([self.leader] if self.leader else []) + [e for e in self.endpoints if e != self.leader]
        fresh = [e for e in order if self._suspect_until.get(e, 0.0) <= now]
        return (fresh or order or [None])[0]

    def _target(self, deadline: float) -> Plan:
        """The endpoint to send to: the leader when known, else any node that answers (every
        node accepts every command). Returns None when no node answered."""
        now = time.monotonic()
        if self.leader is not None and now - self._leader_checked < self.retry.leader_recheck_s:
            return self.leader
        self._leader_checked = now
        order = ([self.leader] if self.leader else []) + [e for e in self.endpoints if e != self.leader]
        order.sort(key=lambda e: self._suspect_until.get(e, 0.0) > now)  # stable: suspects last
        reachable = None
        for endpoint in order:
            timeout = max(0.05, min(2.0, deadline - time.monotonic()))
            try:
                (reply,) = yield Call(endpoint, _INFO_RAFT, 1, timeout)
            except self.retry.retry_on as exc:
                self._unreachable[endpoint] = exc
                continue
            self._unreachable.pop(endpoint, None)
            if isinstance(reply, ErrorReply):  # e.g. NOAUTH: the driver reports it on the real call
                return endpoint
            status = from_info(parse_info(reply))
            if status.role == "leader":
                self.leader = endpoint
                return endpoint
            leader = status.leader_client
            if leader:
                if leader not in self.endpoints:
                    self.endpoints.append(leader)
                self.leader = leader
                return leader
            reachable = reachable or endpoint
        self.leader = None
        return reachable

    def node_info(self, endpoint: str, timeout: float = 2.0) -> Plan:
        """INFO of one node (all sections), as a dict."""
        (reply,) = yield Call(endpoint, encode_command(b"INFO", b"all"), 1, timeout)
        if isinstance(reply, ErrorReply):
            raise protocol.decode(c.Barrier(), reply)
        return parse_info(reply)
