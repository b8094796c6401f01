"""The RESP server: asyncio glue between sockets, the connection protocol objects, the
command table and the replica. Bytes in, bytes out.

Per connection, an I/O-free ``connection.Connection`` parses requests, answers AUTH, HELLO,
READONLY/READWRITE and QUIT itself and keeps replies in request order; the shell here
(``_Connection``) feeds it what the socket reads, executes the commands it hands out (data
commands go to the replica, where commands of all connections share group-committed Raft
entries) and writes what it says may leave. Results come back from the Raft thread through
one loop wake-up per burst (`LoopDelivery`). Cluster operations (membership, transfer,
backups) are ``operations.ClusterOperations``; this module only maps RAFTCACHE commands to them.

Protection: limits on bulk/array/inline sizes and on the unparsed input per connection,
``maxclients``, a deadline for half-sent commands (slowloris), reading paused while a
connection has too many commands in flight or is not reading its replies, and AUTH.

Security at the door: protected mode (as Redis: with no password for the default user,
clients not on loopback get ``-DENIED ...`` and are closed), TLS on the whole client port
when the server is given an ``ssl.SSLContext`` (``tls.py``), and a connection held for a
while after repeated failed AUTHs (``auth.AuthThrottle``; a timer releases it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import platform
import resource
import secrets
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from . import __version__
from . import commands as c
from .acl import READ as ACL_READ
from .acl import User, key_positions
from .aio import LoopDelivery
from .auth import Authenticator, AuthThrottle
from .blocking import Waiter
from .connection import NEED_DATA, Command, Connection, ProtocolFailure, Slot
from .datatypes.blocking import BLOCKING, parse_blocking
from .errors import CommandError, ExecAbortError, resp_prefix
from .eviction import SETTINGS as REPLICATED_SETTINGS
from .eviction import format_bytes, parse_setting
from .operations import ClusterOperations, Peer
from .pubsub import PubSubHub
from .redis_commands import (
    COMMANDS,
    Immediate,
    Kind,
    Limits,
    Spec,
    build_command,
    command_docs,
    command_info,
    lookup,
    parse_int_arg,
    unknown_command_message,
    wrong_arity_message,
)
from .redis_semantics import REDIS_VERSION
from .replica import LINEARIZABLE, Replica
from .resp import OK, PONG, ErrorReply, Map, NullArray, SimpleString, encode_error, encode_reply
from .stats import CommandStats, ServerStats
from .status import to_info
from .tracking import DEFAULT_MAX_KEYS, Invalidation, Tracker, feed_changes
from .tracking import Peer as TrackingPeer
from .watch import History, Sink, WatchHub, WatchStream, attach_hub, parse_watch

if TYPE_CHECKING:
    import ssl

__all__ = ["Peer", "RespServer", "ServerSettings"]

log = logging.getLogger(__name__)

# The Redis release whose commands, replies and error strings ours follow (for the commands
# we implement; README lists the rest). 7.2 is the first with CLIENT SETINFO, which redis-py
# sends on connect and which we answer.
RUN_ID = secrets.token_hex(20)  # random per process start, as Redis's run_id (40 hex digits)
_OS = f"{platform.system()} {platform.release()} {platform.machine()}"
_ARCH_BITS = struct.calcsize("P") * 8

_MAXCLIENTS = encode_error("ERR", "max number of clients reached")

# Where each CONFIG parameter is set instead of CONFIG SET (the error a change gets names it).
_CONFIG_SOURCE: dict[bytes, str] = {
    b"maxclients": "[server] maxclients in the cluster file",
    b"timeout": "[server] idle_timeout_s in the cluster file",
    b"proto-max-bulk-len": "[limits] max_bulk_bytes in the cluster file",
    b"client-query-buffer-limit": "[limits] max_query_buffer_bytes in the cluster file",
    b"protected-mode": "[server] protected_mode in the cluster file",
    b"save": "persistence is the Raft journal and snapshots",
    b"appendonly": "persistence is the Raft journal and snapshots",
    b"databases": "one database",
    b"tracking-table-max-keys": "[server] tracking_table_max_keys in the cluster file",
}


def _config_help(args: list[bytes]) -> Any:
    return [
        b"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        b"GET <pattern>",
        b"    Return parameters matching the glob-like <pattern> and their values.",
        b"SET <directive> <value>",
        b"    Accepted when <value> is the one in force; raftcache's parameters are set in the cluster file.",
        b"RESETSTAT",
        b"    Reset statistics reported by the INFO command.",
        b"HELP",
        b"    Print this help.",
    ]

# Redis 7.2's words (src/networking.c, clientAcceptHandler), typo included; with raftcache the
# remedies are `protected_mode = false` in [server] or a `requirepass` (CONFIG SET is not served).
DENIED_PROTECTED_MODE = (
    b"-DENIED Redis is running in protected mode because protected "
    b"mode is enabled and no password is set for the default user. "
    b"In this mode connections are only accepted from the loopback interface. "
    b"If you want to connect from external computers to Redis you "
    b"may adopt one of the following solutions: "
    b"1) Just disable protected mode sending the command "
    b"'CONFIG SET protected-mode no' from the loopback interface "
    b"by connecting to Redis from the same host the server is "
    b"running, however MAKE SURE Redis is not publicly accessible "
    b"from internet if you do so. Use CONFIG REWRITE to make this "
    b"change permanent. "
    b"2) Alternatively you can just disable the protected mode by "
    b"editing the Redis configuration file, and setting the protected "
    b"mode option to 'no', and then restarting the server. "
    b"3) If you started the server manually just for testing, restart "
    b"it with the '--protected-mode no' option. "
    b"4) Setup a an authentication password for the default user. "
    b"NOTE: You only need to do one of the above things in order for "
    b"the server to start accepting connections from the outside.\r\n"
)
_TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a ClientHello: never valid RESP


def _is_local_peer(host: str) -> bool:
    """Whether a peer address is loopback (Redis's connIsLocal), IPv4-mapped IPv6 included."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True, slots=True)
class ServerSettings:
    requirepass: str = ""
    maxclients: int = 10_000
    frame_timeout_s: float = 10.0
    idle_timeout_s: float = 0.0
    max_pending_per_client: int = 10_000
    debug_commands: bool = False
    max_bulk_bytes: int = 8 << 20
    max_array_len: int = 1024 * 1024
    max_inline_bytes: int = 64 * 1024
    max_query_buffer_bytes: int = 64 << 20
    limits: Limits = field(default_factory=Limits)
    protected_mode: bool = True
    auth_throttle: AuthThrottle = AuthThrottle()
    users: tuple[User, ...] = ()  # ACL users ([[users]]); `default` among them replaces requirepass's
    tracking_table_max_keys: int = DEFAULT_MAX_KEYS  # CLIENT TRACKING's key table bound (0: none)
    # Pub/sub ([pubsub]): Redis's `client-output-buffer-limit pubsub 32mb 8mb 60`, and bounds
    # on what one connection may subscribe to.
    pubsub_hard_limit_bytes: int = 32 << 20
    pubsub_soft_limit_bytes: int = 8 << 20
    pubsub_soft_seconds: float = 60.0
    max_subscriptions_per_client: int = 100_000
    max_pattern_bytes: int = 1024


class Later(NamedTuple):
    """A local command's answer that comes later: `start(on_done)` begins it, `on_done` (any
    thread) receives the result, `render` turns it into the reply value."""

    start: Callable[[Callable[[Any], None]], None]
    render: Callable[[Any], Any]


class Submit(NamedTuple):
    """A local command that turns into a data command (RAFTCACHE ONCE)."""

    spec: Spec
    args: list[bytes]
    tag: c.SessionTag | None


class _Connection(asyncio.Protocol):
    """The asyncio shell around a `Connection`: transport callbacks in, executed commands'
    replies back, bytes out, closing and flow control on the transport."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        settings = server.settings
        self.proto = Connection(
            conn_id=next(server._ids),
            requirepass=settings.requirepass,
            max_bulk_bytes=settings.max_bulk_bytes,
            max_array_len=settings.max_array_len,
            max_inline_bytes=settings.max_inline_bytes,
            max_query_buffer_bytes=settings.max_query_buffer_bytes,
            max_pending=settings.max_pending_per_client,
            role=server.role,
            on_command=server.count_command,
            on_error=server.count_error,
            authenticator=server.authenticator,
            throttle=settings.auth_throttle,
            on_auth_failure=server.count_auth_failure,
            on_acl_denied=server.count_acl_denied,
            pubsub=server.pubsub,
        )
        self.proto.on_push = self._pushed
        self.soft_limit_since: float | None = None  # over the pub/sub soft limit since then
        self.push_flush_pending = False  # pushed messages wait for one write at the end of the burst
        self.proto.client_info = lambda: server._client_line(self).rstrip(b"\n")
        self.proto.on_tracking_off = lambda: server.tracking_off(self)
        self.hold_timer: asyncio.TimerHandle | None = None
        self.first_data = True
        self.transport: asyncio.Transport | None = None
        self.closing = False  # the transport is closed (or closing)
        self.draining = False  # protocol error answered: discard input until the peer closes
        self.reading_paused = False
        self.writing_paused = False
        self.frame_started: float | None = None
        self.last_active = time.monotonic()
        self.created = self.last_active
        self.peer = ""
        # A blocking pop in progress (BLPOP ...): nothing else of this connection runs until
        # it is answered, as in Redis; the timer answers nil when its timeout passes.
        self.blocked: Waiter | None = None
        self.block_timer: asyncio.TimerHandle | None = None
        self.track_reads = False  # the command being executed has its reads tracked (CLIENT TRACKING)
        self.watching: WatchStream | None = None  # RAFTCACHE WATCH: this connection streams

    @property
    def id(self) -> int:
        return self.proto.id

    @property
    def pending(self) -> int:
        return self.proto.pending

    # -------------------------------------------------------------- asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.stats.connections_received += 1
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        refusal = None
        if len(server.connections) >= server.settings.maxclients:
            refusal = _MAXCLIENTS
        elif server.protected and not (peer and _is_local_peer(str(peer[0]))):
            refusal = DENIED_PROTECTED_MODE
        if refusal is not None:
            server.stats.rejected_connections += 1
            self.transport.write(refusal)
            self.closing = True
            self.transport.close()
            return
        server.connections.add(self)
        server.by_id[self.id] = self

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.proto.drop_subscriptions()
        if self.hold_timer is not None:
            self.hold_timer.cancel()
        if self.blocked is not None:  # a dead client must not be handed the next element
            self.server.replica.blocking.cancel(self.blocked)
            self._unblock()
        if self.watching is not None:
            self.server.watch.close(self.watching)
        self.server.connections.discard(self)
        self.server.by_id.pop(self.id, None)
        if self.proto.tracking.on:
            self.server.tracking_off(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing or self.draining:
            return
        if self.first_data:
            self.first_data = False
            if data[0] == _TLS_HANDSHAKE and self.server.tls is None:
                # A TLS client on the plain-text port: closing at once gives it a clean
                # handshake error instead of a wait for a ServerHello that never comes.
                log.info("client %s sent a TLS handshake to the plain-text client port; closing", self.peer)
                self.server.stats.protocol_errors += 1
                self.closing = True
                self.transport.close()  # type: ignore[union-attr]
                return
        self.last_active = time.monotonic()
        self.server.stats.reads_processed += 1
        self.proto.receive_data(data)
        self._process()

    def _process(self) -> None:
        """Execute what the connection hands out, then write and adjust flow control."""
        now = time.monotonic()
        proto = self.proto
        parsed = proto.commands_parsed
        while not self.closing and self.blocked is None:
            event = proto.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, ProtocolFailure):
                self.server.stats.protocol_errors += 1
                log.log(logging.WARNING if event.over_limit else logging.INFO, "client %s: %s; closing", self.peer, event.message)
                break
            self._execute(event)
        if proto.hold_seconds and self.hold_timer is None and not self.closing:
            # repeated failed AUTHs: this connection reads nothing until the timer releases it
            self.hold_timer = asyncio.get_running_loop().call_later(proto.hold_seconds, self._release)
        if self.blocked is not None:
            self.frame_started = None  # input waits behind a blocked command: not slowloris
            if proto.buffered > self.server.settings.max_query_buffer_bytes:
                log.warning("client %s sent more than the query buffer limit while blocked; closing", self.peer)
                self.server.stats.protocol_errors += 1
                self._close()
        elif proto.in_frame:
            # The half-sent deadline is per command: a stream that keeps completing commands
            # (a long pipeline or transaction cut at chunk boundaries) is not slowloris.
            if self.frame_started is None or proto.commands_parsed != parsed:
                self.frame_started = now
        else:
            self.frame_started = None
        self._flush()
        self._update_reading()

    def _release(self) -> None:
        self.hold_timer = None
        if self.closing:
            return
        self.proto.release()
        self._process()

    # ------------------------------------------------------------------ execute
    def _execute(self, command: Command) -> None:
        spec, args, slot = command.spec, command.args, command.slot
        tracking = self.proto.tracking
        # Whether this command's reads are remembered for CLIENT TRACKING (spends CLIENT
        # CACHING's one-shot flag, which CLIENT's own subcommands leave alone, as Redis).
        self.track_reads = tracking.on and spec.name != "client" and tracking.reads_tracked()
        if self.watching is not None:  # a watch stream is all this connection carries now
            self.proto.complete(slot, _WATCHING)
            return
        if command.watches is not None:  # WATCH or EXEC
            self.server.transactions.execute(self, command)
            return
        if spec.kind is not Kind.LOCAL:
            self._data_command(command, spec, args, None)
            return
        server = self.server
        try:
            reply = server.local[spec.name](self, args)
            if isinstance(reply, Later):  # an operation refuses by raising before it starts
                reply.start(server.delivery.deliverer(partial(self._answer, slot, reply.render, command.protocol)))
                return
        except CommandError as err:
            self.proto.complete(slot, server.render(_identity, err, command.protocol))
            return
        if isinstance(reply, Submit):
            self._data_command(command, reply.spec, reply.args, reply.tag)
        elif asyncio.iscoroutine(reply):
            self._reply_when_done(slot, command.protocol, reply)
        else:
            self.proto.complete(slot, encode_reply(reply, command.protocol))

    def _data_command(self, command: Command, spec: Spec, args: list[bytes], tag: c.SessionTag | None) -> None:
        server = self.server
        try:
            cmd = build_command(spec, args, server.settings.limits)
        except CommandError as err:
            self.proto.complete(command.slot, server.render(_identity, err, command.protocol))
            return
        if isinstance(cmd, Immediate):  # TIME, OBJECT HELP: nothing to ask a replica
            self.proto.complete(command.slot, server.render(spec.render, cmd.reply, command.protocol))
            return
        if command.script_acl is not None and type(cmd) in _SCRIPT_TYPES:
            cmd = cmd._replace(acl=command.script_acl)  # its redis.calls are checked on every replica
        replica = server.replica
        if spec.name in BLOCKING_COMMANDS:
            self._block(command, spec, cmd, tag)
            return
        keys = self._tracked_keys(spec, args) if spec.kind is Kind.READ and self.track_reads else None
        if keys:  # remembered before the read is evaluated (see tracking.py)
            server.tracker.remember(self.id, keys)
        if spec.kind is Kind.READ and command.readonly:
            self.proto.complete(command.slot, server.render(spec.render, replica.read_local(cmd), command.protocol))
            if keys:
                server.send_invalidations(server.tracker.trim())
            return
        render = spec.render
        if type(cmd) is c.Publish:
            # PUBLISH answers the receivers on this node, counted when the reply is rendered:
            # the hub delivered the message on this loop just before (it was queued first).
            render = partial(_receivers, server.pubsub, cmd.channel, cmd.shard)
        complete = partial(self._complete, command.slot, render, command.protocol, spec.kind.value, time.perf_counter())
        if keys:
            complete = partial(self._tracked_complete, keys, None, complete)
        elif spec.kind is Kind.WRITE and server.tracker.watching_origins:
            self._submit_noloop(cmd, complete, tag)
            return
        replica.submit(cmd, server.delivery.deliverer(complete), consistency=LINEARIZABLE, tag=tag)

    # ------------------------------------------------------------- CLIENT TRACKING
    def _tracked_keys(self, spec: Spec, args: list[bytes]) -> list[bytes]:
        """The keys a read command reads (EVAL_RO: the keys it declares)."""
        return [args[i] for i in key_positions(spec.name, spec, args) if i < len(args)]

    def _tracked_complete(self, keys: list[bytes] | None, origin: list[Any] | None, complete: Callable[[Any], None],
                          result: Any) -> None:
        """On the loop: a tracked read's reply (or a NOLOOP connection's write reply). The keys
        are remembered again first: a change applied after the read was evaluated comes later
        on this queue and must find them, even if an earlier change had consumed the entry.
        Keys dropped to keep the table bounded are invalidated after this reply."""
        tracker = self.server.tracker
        if keys:
            tracker.remember(self.id, keys)
        if origin is not None:
            tracker.written(origin[0])
        complete(result)
        if keys:
            self.server.send_invalidations(tracker.trim())

    def _submit_noloop(self, cmd: Any, complete: Callable[[Any], None], tag: c.SessionTag | None,
                       keys: list[bytes] | None = None) -> None:
        """Submit a write noting its feed origin, so NOLOOP can recognise the changes it causes."""
        box: list[Any] = [None]
        server = self.server
        origin = server.replica.submit(
            cmd, server.delivery.deliverer(partial(self._tracked_complete, keys, box, complete)),
            consistency=LINEARIZABLE, tag=tag,
        )
        box[0] = origin
        server.tracker.wrote(self.id, origin)

    def _block(self, command: Command, spec: Spec, cmd: c.DataWrite, tag: c.SessionTag | None) -> None:
        """A blocking pop: attempt now; while the keys are empty, park until a change to one
        of them on this node or the timeout (raftcache.blocking)."""
        server = self.server
        try:
            parsed = parse_blocking(cmd.args)  # the same errors every replica would give
        except CommandError as err:
            self.proto.complete(command.slot, server.render(_identity, err, command.protocol))
            return
        on_done = server.delivery.deliverer(
            partial(self._unblocked, command.slot, spec.render, command.protocol, time.perf_counter())
        )
        blocking = server.replica.blocking
        self.blocked = waiter = blocking.block(cmd, parsed.keys, on_done, tag=tag)
        if parsed.timeout_ms and not waiter.finished and parsed.timeout_ms < _FOREVER_MS:
            self.block_timer = asyncio.get_running_loop().call_later(parsed.timeout_ms / 1000, blocking.expire, waiter)

    def _unblocked(self, slot: Slot, render: Callable[[Any], Any], protocol: int, start: float, result: Any) -> None:
        """On the loop: the blocking pop is answered (an element, an error, or nil at its
        timeout); the commands pipelined behind it run now."""
        self._unblock()
        if result is None:
            render = _null_array  # what Redis answers every blocked command that times out
        self._complete(slot, render, protocol, "write", start, result)
        if not self.closing:
            self._process()

    def _unblock(self) -> None:
        self.blocked = None
        if self.block_timer is not None:
            self.block_timer.cancel()
            self.block_timer = None

    def _complete(self, slot: Slot, render: Callable[[Any], Any], protocol: int, kind: str, start: float, result: Any) -> None:
        """On the loop: a replica result for a reply slot. Always a receiver of a delivery
        burst (every caller is wrapped in ``server.delivery.deliverer``), so the write waits
        for the burst's end (:meth:`RespServer._write_completed`): a pipelining client whose
        16 replies complete together gets one write, not 16."""
        server = self.server
        server.command_stats.latency[kind].observe(time.perf_counter() - start)
        self.proto.complete(slot, server.render(render, result, protocol))
        server.completed[self] = None

    def _answer(self, slot: Slot, render: Callable[[Any], Any], protocol: int, result: Any) -> None:
        """On the loop: the result of a handed-out command."""
        self.proto.complete(slot, self.server.render(render, result, protocol))
        if not self.closing:
            self._flush()
            self._update_reading()

    def _reply_when_done(self, slot: Slot, protocol: int, coroutine: Any) -> None:
        """A local command answered by a coroutine: keep its place."""

        def done(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                result: Any = CommandError("cancelled: the node is stopping")
            else:
                result = task.exception() or task.result()
            self._answer(slot, _identity, protocol, result)

        asyncio.get_running_loop().create_task(coroutine).add_done_callback(done)

    # ------------------------------------------------------------------- output
    def _pushed(self, now: bool = False) -> None:
        """A pub/sub message was queued: write it, then judge the output buffer against the
        pub/sub limits (Redis's client-output-buffer-limit pubsub): over the hard limit, or
        over the soft one for longer than its seconds, the connection is dropped at once, its
        unsent output discarded. Nothing here waits, so a client that does not read never
        slows the apply path (the hub runs on this loop, fed by a queue) or other clients."""
        if self.closing or self.transport is None:
            return
        if now:  # joined for us (a burst's messages, an entry's invalidations): send them now,
            self._flush_pushed()  # even with a deferred flush pending (it finds nothing left)
            return
        if self.push_flush_pending:
            return
        # The rest (a watch stream's frames, a closing error): one write per connection at
        # the end of the loop's current callbacks, not a send per push.
        self.push_flush_pending = True
        asyncio.get_running_loop().call_soon(self._flush_pushed)

    def _flush_pushed(self) -> None:
        self.push_flush_pending = False
        if self.closing or self.transport is None:
            return
        self._flush()
        self.check_output_limit(time.monotonic())

    def check_output_limit(self, now: float) -> None:
        if self.closing or self.transport is None:
            return
        settings = self.server.settings
        size = self.transport.get_write_buffer_size() + self.proto.unsent_push_bytes
        if size > settings.pubsub_hard_limit_bytes:
            self._drop_slow(f"{size} bytes of output queued (pub/sub hard limit {settings.pubsub_hard_limit_bytes})")
        elif size > settings.pubsub_soft_limit_bytes:
            if self.soft_limit_since is None:
                self.soft_limit_since = now
            elif now - self.soft_limit_since > settings.pubsub_soft_seconds:
                self._drop_slow(f"over the pub/sub soft limit ({settings.pubsub_soft_limit_bytes} bytes) for "
                                f"{now - self.soft_limit_since:.0f}s")
        else:
            self.soft_limit_since = None

    def _drop_slow(self, why: str) -> None:
        log.warning("client %s does not read its pub/sub messages: %s; closing", self.peer, why)
        self.server.stats.output_limit_closes += 1
        self._abort()

    def _flush(self) -> None:
        if self.transport is None:
            return
        data = self.proto.data_to_send()
        if data and not self.closing:
            self.server.stats.writes_processed += 1
            self.transport.write(data)
        if self.proto.finished:
            self._close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        should_pause = self.proto.reading_paused(self.writing_paused)
        if should_pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    def _close(self) -> None:
        if self.closing or self.transport is None:
            return
        if self.proto.bad_input and not self.draining and self.transport.can_write_eof():
            # Closing with unread input makes the kernel send RST, and the peer may lose the
            # error we just wrote. Half-close instead, ignore what still arrives, then close.
            self.draining = True
            self.transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER_S, self._abort)
            return
        self.closing = True
        self.transport.close()

    def _abort(self) -> None:
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.abort()

    def eof_received(self) -> bool:
        if self.draining:
            self._abort()
        return False


class _WatchSink(Sink):
    """A watch stream's frames onto its connection, through the connection's one push path:
    RESP3 pushes or RESP2 arrays, behind the replies already computed, under the pub/sub
    output-buffer limits (a watcher that does not read is dropped; its client resumes
    elsewhere from its last seq)."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def push(self, frame: list[Any]) -> bool:
        conn, proto = self.conn, self.conn.proto
        if conn.closing or conn.transport is None or proto.closing:
            return False
        data = encode_reply(frame, proto.protocol)
        if proto.protocol == 3:
            data = b">" + data[1:]  # the same elements as a push
        proto.push(data)
        return True

    def fail(self, error: CommandError) -> None:
        conn, proto = self.conn, self.conn.proto
        if conn.closing or conn.transport is None or proto.closing:
            return
        proto.push(conn.server.render(_identity, error, proto.protocol))
        proto.disconnect()  # closes once what is queued has left


_WATCHING = encode_error("ERR", "this connection carries a RAFTCACHE WATCH stream: send nothing but QUIT (or close it)")
_LINGER_S = 2.0  # how long a connection closed for bad input keeps draining
_FOREVER_MS = 100 * 365 * 86400 * 1000  # a longer timeout waits as 0 does (Redis's would overflow)
BLOCKING_COMMANDS = frozenset(name.decode() for name in BLOCKING)


_SCRIPT_TYPES = (c.Eval, c.EvalRo)


def _identity(result: Any) -> Any:
    return result


def _ok(result: Any) -> Any:
    return OK


def _receivers(hub: PubSubHub, channel: bytes, shard: bool, result: Any) -> int:
    return hub.receivers(channel, shard=shard)


def _notify_text(stored: str) -> bytes:
    """CONFIG GET's spelling: Redis omits 'n' next to 'A' (keyspaceEventsFlagsToString)."""
    return (stored.replace("n", "") if stored.startswith("A") else stored).encode()


_PUBSUB_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]
# PUBSUB's subcommands: name -> (least args, most args, handler(hub, args))
_PUBSUB_SUBCOMMANDS: dict[bytes, tuple[int, float, Callable[[PubSubHub, list[bytes]], Any]]] = {
    b"channels": (2, 3, lambda hub, args: hub.channels(args[2] if len(args) == 3 else None)),
    b"numsub": (2, float("inf"), lambda hub, args: hub.numsub(args[2:])),
    b"numpat": (2, 2, lambda hub, args: hub.numpat()),
    b"shardchannels": (2, 3, lambda hub, args: hub.channels(args[2] if len(args) == 3 else None, shard=True)),
    b"shardnumsub": (2, float("inf"), lambda hub, args: hub.numsub(args[2:], shard=True)),
    b"help": (2, 2, lambda hub, args: [SimpleString(line) for line in _PUBSUB_HELP]),
}


def _null_array(result: Any) -> Any:
    return NullArray


class RespServer:
    """Serves one replica over RESP2."""

    def __init__(self, replica: Replica, settings: ServerSettings, *, node_id: str, peers: dict[str, Peer] | None = None,
                 watch: WatchHub | None = None) -> None:
        self.replica = replica
        if watch is None:  # attached late: the history starts at what is applied now
            watch = WatchHub(History())
            attach_hub(replica, watch)
        self.watch = watch
        self._watch_pump_due = False
        self._watch_ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.settings = settings
        self.node_id = node_id
        self.ops = ClusterOperations(replica, node_id=node_id, peers=peers)
        self.authenticator = Authenticator(settings.requirepass, settings.users)
        # Protected mode bites only when the default user needs no password (as Redis).
        self.protected = settings.protected_mode and not self.authenticator.default_user_has_password
        self.tls: ssl.SSLContext | None = None  # set by start(); then the port speaks TLS only
        self.pubsub = PubSubHub(replica.feed, replica.notify_setting, max_subscriptions=settings.max_subscriptions_per_client,
                                max_pattern_bytes=settings.max_pattern_bytes)
        self.transactions = Transactions(self)
        self.connections: set[_Connection] = set()
        self.by_id: dict[int, _Connection] = {}  # connections by CLIENT ID
        self.tracker = Tracker(settings.tracking_table_max_keys)  # CLIENT TRACKING (tracking.py)
        self._tracking_feed: Callable[[Any], None] | None = None  # our feed listener, while anyone tracks
        self.stats = ServerStats()
        self.command_stats = CommandStats()
        self._ids = itertools.count(1)
        self.delivery: LoopDelivery = None  # type: ignore[assignment]  # set in start()
        self.completed: dict[_Connection, None] = {}  # got replies in this delivery burst, in order
        self._server: asyncio.AbstractServer | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.address = ""
        self.local: dict[str, Callable[[_Connection, list[bytes]], Any]] = {
            "ping": self._ping,
            "echo": lambda conn, args: args[1],
            "select": self._select,
            "client": self._client,
            "command": self._command,
            "config": self._config,
            "info": self._info,
            "raftcache": self._raftcache,
            "pubsub": self._pubsub_command,
        }
        self._raftcache_subcommands: dict[bytes, Callable[[_Connection, list[bytes]], Any]] = {
            b"ONCE": self._once,
            b"DIGEST": self._digest,
            b"COMPACT": self._compact,
            b"DEBUG": self._debug,
            b"MEMBERS": self._members,
            b"MEMBER": self._member,
            b"TRANSFER": self._transfer,
            b"BACKUP": self._backup,
            b"INDEX": self.transactions.index,
            b"WATCHED": self.transactions.watched,
            b"WATCH": self._watch_start,
        }

    def _write_completed(self) -> None:
        """The end of a delivery burst: one write per connection that got replies in it."""
        completed, self.completed = self.completed, {}
        for conn in completed:
            if conn.closing:
                continue
            try:
                conn._flush()
                conn._update_reading()
            except Exception:  # one broken connection must not hold the others' replies
                log.exception("client %s: writing replies failed", conn.peer)

    def render(self, render: Callable[[Any], Any], result: Any, protocol: int) -> bytes:
        """A result (or exception) as reply bytes; counts error replies."""
        if isinstance(result, BaseException):
            message = result.message if isinstance(result, CommandError) else str(result)
            prefix = resp_prefix(result)
            self.command_stats.errors[prefix] += 1
            return encode_error(prefix, message)
        try:
            return encode_reply(render(result), protocol)
        except Exception:  # a rendering bug must not take the connection down silently
            log.exception("cannot render %r", result)
            return encode_error("ERR", "internal error rendering the reply")

    def role(self) -> str:
        return self.replica.status().role

    def count_command(self, name: str) -> None:
        self.stats.commands_processed += 1
        self.command_stats.calls[name] += 1

    def count_error(self, prefix: str) -> None:
        self.command_stats.errors[prefix] += 1

    def count_auth_failure(self) -> None:
        self.stats.auth_failures += 1

    def count_acl_denied(self, reason: str) -> None:
        if reason == "key":
            self.stats.acl_denied_key += 1
        elif reason == "channel":
            self.stats.acl_denied_channel += 1
        else:
            self.stats.acl_denied_cmd += 1

    def rss_bytes(self) -> int:
        return _rss_bytes()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        """Listen on host:port; with `tls`, every connection must complete a TLS handshake
        first (a failed handshake closes that connection only)."""
        loop = asyncio.get_running_loop()
        self.delivery = LoopDelivery(loop, after_burst=self._write_completed)
        self.pubsub.attach_loop(loop.call_soon_threadsafe)
        self._loop = loop
        self.tls = tls
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, backlog=1024, ssl=tls,
            ssl_handshake_timeout=self.settings.frame_timeout_s if tls is not None else None,
        )
        sock = self._server.sockets[0].getsockname()
        self.address = f"{sock[0]}:{sock[1]}"
        self._reaper = asyncio.create_task(self._reap())
        self.watch.add_waker(self._watch_wake)
        self._watch_ticker = asyncio.create_task(self._watch_ticks())
        log.info("serving RESP on %s", self.address)

    async def close(self) -> None:
        self.ops.close()
        self.watch.remove_waker(self._watch_wake)
        if self._reaper is not None:
            self._reaper.cancel()
        if self._watch_ticker is not None:
            self._watch_ticker.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn._close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _reap(self) -> None:
        """Close connections that sit on a half-sent command (slowloris) or idle too long."""
        settings = self.settings
        while True:
            await asyncio.sleep(min(1.0, settings.frame_timeout_s / 2))
            now = time.monotonic()
            self.ops.tick(now)
            for conn in list(self.connections):
                if conn.frame_started is not None and now - conn.frame_started > settings.frame_timeout_s:
                    log.info("client %s left a command half-sent for %.0fs; closing", conn.peer, now - conn.frame_started)
                    conn._close()
                elif settings.idle_timeout_s and not conn.pending and now - conn.last_active > settings.idle_timeout_s \
                        and not conn.proto.subscriptions.total:  # (Redis never times out a subscriber)
                    conn._close()
                elif conn.soft_limit_since is not None:
                    conn.check_output_limit(now)

    # ------------------------------------------------------------- local commands
    def _ping(self, conn: _Connection, args: list[bytes]) -> Any:
        if len(args) > 2:
            raise CommandError(wrong_arity_message("ping"))
        return args[1] if len(args) == 2 else PONG

    def _select(self, conn: _Connection, args: list[bytes]) -> Any:
        if parse_int_arg(args[1]) != 0:
            raise CommandError("DB index is out of range")
        return OK

    def _client(self, conn: _Connection, args: list[bytes]) -> Any:
        sub = args[1].upper()
        tracking = _CLIENT_TRACKING.get(sub)
        if tracking is not None:
            arity, handler = tracking
            if not (len(args) == arity if arity > 0 else len(args) >= -arity):
                raise CommandError(wrong_arity_message(f"client|{sub.decode().lower()}"))
            return handler(self, conn, args)
        if sub == b"SETNAME" and len(args) == 3:
            if b" " in args[2] or b"\n" in args[2]:
                raise CommandError("Client names cannot contain spaces, newlines or special characters.")
            conn.proto.name = args[2]
            return OK
        if sub == b"GETNAME" and len(args) == 2:
            return conn.proto.name or None
        if sub == b"ID" and len(args) == 2:
            return conn.id
        if sub == b"SETINFO" and len(args) == 4:
            if args[2].upper() == b"LIB-NAME":
                conn.proto.lib = args[3]
            return OK
        if sub == b"INFO" and len(args) == 2:
            return self._client_line(conn)
        if sub == b"LIST" and len(args) == 2:
            return b"".join(self._client_line(c) for c in sorted(self.connections, key=lambda c: c.id))
        raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try CLIENT HELP.")

    # ------------------------------------------------------------- CLIENT TRACKING
    def _client_tracking(self, conn: _Connection, args: list[bytes]) -> Any:
        reply = self.tracker.tracking(conn.id, conn.proto.tracking, args, self.by_id.__contains__)
        self._listen_to_feed()
        return reply

    def tracking_off(self, conn: _Connection) -> None:
        """The connection closed (or RESET) while tracking: free what the tables held for it."""
        self.tracker.closed(conn.id, conn.proto.tracking)
        self._listen_to_feed()

    def _listen_to_feed(self) -> None:
        """Listen to the change feed only while some connection tracks: the state machine
        records feed items only while someone listens. A listener added now sees every entry
        whose apply starts after this, and a read submitted after this is evaluated after
        such an entry, so no change to a key read from now on is missed."""
        feed = self.replica.feed
        if self.tracker.clients and self._tracking_feed is None:
            deliver = self.delivery.deliverer(self._invalidate)

            def listener(items: Any) -> None:  # the Raft thread: filter, then hand to the loop
                changes = feed_changes(items)
                if changes:
                    deliver(changes)

            self._tracking_feed = listener
            feed.add_listener(listener)
        elif not self.tracker.clients and self._tracking_feed is not None:
            feed.remove_listener(self._tracking_feed)
            self._tracking_feed = None

    def _invalidate(self, changes: list[Any]) -> None:
        """On the loop: an applied entry's changes, in order, after every reply computed
        before it was applied (one queue carries both)."""
        self.send_invalidations(self.tracker.apply(changes))

    def send_invalidations(self, invalidations: list[Invalidation]) -> None:
        """Each target connection gets its invalidations as one push, written at once (its
        output-buffer limit applies, pub/sub's): so they are on its socket before anything
        this loop does next, such as writing a reply computed after the write they announce
        (a linearizable read of it, on any connection, at the end of the delivery burst).
        Deferred to a later loop callback, a client could see that reply and still serve
        the old value from its cache."""
        tracker, by_id = self.tracker, self.by_id
        joined: dict[int, list[bytes]] = {}
        for inv in invalidations:
            routed = tracker.route(inv, self._tracking_peer)
            if routed is not None:
                joined.setdefault(routed[0], []).append(routed[1])
        for conn_id, pushes in joined.items():
            target = by_id.get(conn_id)
            if target is not None:
                target.proto.push(b"".join(pushes), now=True)

    def _tracking_peer(self, conn_id: int) -> TrackingPeer | None:
        conn = self.by_id.get(conn_id)
        if conn is None:
            return None
        return TrackingPeer(conn.proto.protocol, conn.proto.subscriptions.total > 0)

    def _client_line(self, conn: _Connection) -> bytes:
        age = int(time.monotonic() - conn.created)
        idle = int(time.monotonic() - conn.last_active)
        return b"id=%d addr=%s name=%s age=%d idle=%d db=0 user=%s lib-name=%s\n" % (
            conn.id, conn.peer.encode(), conn.proto.name, age, idle, conn.proto.user.encode(), conn.proto.lib,
        )

    def _command(self, conn: _Connection, args: list[bytes]) -> Any:
        if len(args) == 1:
            return [command_info(spec) for spec in COMMANDS.values()]
        sub = args[1].upper()
        if sub == b"COUNT":
            return len(COMMANDS)
        names = [a.lower() for a in args[2:]] or list(COMMANDS)
        if sub == b"INFO":
            return [command_info(COMMANDS[n]) if n in COMMANDS else None for n in names]
        if sub == b"DOCS":
            return Map({n: command_docs(COMMANDS[n]) for n in names if n in COMMANDS})
        raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try COMMAND HELP.")

    def _config_values(self) -> dict[bytes, bytes]:
        s = self.settings
        memory = self.replica.memory_info()
        return {
            b"save": b"",
            b"appendonly": b"no",
            b"databases": b"1",
            b"maxclients": b"%d" % s.maxclients,
            b"timeout": b"%d" % int(s.idle_timeout_s),
            b"proto-max-bulk-len": b"%d" % s.max_bulk_bytes,
            b"client-query-buffer-limit": b"%d" % s.max_query_buffer_bytes,
            b"protected-mode": b"yes" if s.protected_mode else b"no",
            b"notify-keyspace-events": _notify_text(memory["notify_keyspace_events"]),
            b"tracking-table-max-keys": b"%d" % s.tracking_table_max_keys,
            # replicated (eviction.SETTINGS): the same on every node once applied
            b"maxmemory": b"%d" % memory["maxmemory"],
            b"maxmemory-policy": memory["maxmemory_policy"].encode(),
            b"maxmemory-samples": b"%d" % memory["maxmemory_samples"],
        }

    def _config(self, conn: _Connection, args: list[bytes]) -> Any:
        sub = args[1].upper()
        handler = _CONFIG_SUBCOMMANDS.get(sub)
        if handler is None:
            raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try CONFIG HELP.")
        return handler(self, args)

    def _config_get(self, args: list[bytes]) -> Any:
        from .redis_semantics import compile_glob

        if len(args) < 3:
            raise CommandError("wrong number of arguments for 'config|get' command")
        values = self._config_values()
        out = Map()
        for pattern in args[2:]:
            matches = compile_glob(pattern.lower())
            for name, value in values.items():
                if matches(name):
                    out[name] = value
        return out

    def _config_set(self, args: list[bytes]) -> Any:
        """Replicated settings (maxmemory & co) are proposed through the log, so every node
        applies them at the same index. The other parameters raftcache knows are set in the
        cluster file (or fixed by its design): CONFIG SET accepts a value equal to the one in
        force and refuses a change with Redis's error, naming where it is set."""
        if len(args) < 4 or len(args) % 2:
            raise CommandError("wrong number of arguments for 'config|set' command")
        values = self._config_values()
        pairs = [(args[i].lower(), args[i + 1]) for i in range(2, len(args), 2)]
        for name, _ in pairs:  # as Redis: every name is checked before anything is judged
            if name not in values:
                raise CommandError(f"Unknown option or number of arguments for CONFIG SET - '{name.decode('utf-8', 'replace')}'")
        replicated = []
        for name, value in pairs:
            setting = name.decode()
            if setting in REPLICATED_SETTINGS:
                parse_setting(setting, value)  # Redis's error now, before anything is proposed
                replicated.append(c.SetConfig(setting, value))
            elif value.lower() != values[name].lower():
                where = _CONFIG_SOURCE.get(name, "fixed by raftcache's design")
                raise CommandError(
                    f"CONFIG SET failed (possibly related to argument '{name.decode()}') - "
                    f"not settable at run time on raftcache ({where})"
                )
        if replicated:
            return Later(lambda done: self._propose_all(replicated, done), _ok)
        return OK

    def _propose_all(self, commands: list[Any], done: Callable[[Any], None]) -> None:
        """Apply replicated commands one after the other; the first error stops the rest."""
        def next_one(result: Any) -> None:
            if isinstance(result, BaseException) or not commands:
                done(result)
                return
            self.replica.submit(commands.pop(0), next_one)

        next_one(True)

    def _config_resetstat(self, args: list[bytes]) -> Any:
        if len(args) != 2:
            raise CommandError("wrong number of arguments for 'config|resetstat' command")
        self.stats.reset()
        self.command_stats.reset()
        return OK

    # -------------------------------------------------------------------- INFO
    def _info(self, conn: _Connection, args: list[bytes]) -> Any:
        wanted = [a.decode("utf-8", "replace").lower() for a in args[1:]] or ["default"]
        sections = self.info_sections()
        if "all" in wanted or "everything" in wanted or "default" in wanted:
            chosen = list(sections)
        else:
            chosen = [name for name in sections if name in wanted]
        out = []
        for name in chosen:
            out.append(f"# {name.capitalize()}")
            out += [f"{k}:{v}" for k, v in sections[name].items()]
            out.append("")
        return "\r\n".join(out).encode()

    def info_sections(self) -> dict[str, dict[str, Any]]:
        status = self.replica.status()
        uptime = int(time.monotonic() - self.stats.started)
        rss = _rss_bytes()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        volatile = self.replica.volatile_keys()
        memory = self.replica.memory_info()
        return {
            "server": {
                "redis_version": REDIS_VERSION,
                "raftcache_version": __version__,
                "redis_git_sha1": "00000000",
                "redis_git_dirty": 0,
                "redis_mode": "standalone",
                "os": _OS,
                "arch_bits": _ARCH_BITS,
                "process_id": os.getpid(),
                "process_supervised": "no",
                "run_id": RUN_ID,
                "tcp_port": int(self.address.rsplit(":", 1)[-1] or 0),
                "server_time_usec": time.time_ns() // 1000,
                "uptime_in_seconds": uptime,
                "uptime_in_days": uptime // 86400,
                "executable": sys.executable,
            },
            "clients": {
                "connected_clients": len(self.connections),
                "cluster_connections": 0,
                "maxclients": self.settings.maxclients,
                "blocked_clients": len(self.replica.blocking),
                "tracking_clients": len(self.tracker.clients),
            },
            "memory": {
                "used_memory": memory["used_memory"],  # the dataset as accounted (eviction.py)
                "used_memory_human": format_bytes(memory["used_memory"]),
                "used_memory_rss": rss,
                "used_memory_rss_human": format_bytes(rss),
                "used_memory_peak": _peak_rss_bytes(),
                "maxmemory": memory["maxmemory"],
                "maxmemory_human": format_bytes(memory["maxmemory"]),
                "maxmemory_policy": memory["maxmemory_policy"],
                "maxmemory_samples": memory["maxmemory_samples"],
                "mem_fragmentation_ratio": f"{rss / memory['used_memory']:.2f}" if memory["used_memory"] else "0.00",
            },
            "persistence": {"loading": 0},
            "stats": {
                "total_connections_received": self.stats.connections_received,
                "total_commands_processed": self.stats.commands_processed,
                "total_reads_processed": self.stats.reads_processed,
                "total_writes_processed": self.stats.writes_processed,
                "rejected_connections": self.stats.rejected_connections,
                "protocol_errors": self.stats.protocol_errors,
                "acl_access_denied_auth": self.stats.auth_failures,
                "expired_keys": memory["expired_keys"],
                "evicted_keys": memory["evicted_keys"],
                "keyspace_hits": memory["keyspace_hits"],
                "keyspace_misses": memory["keyspace_misses"],
                "acl_access_denied_cmd": self.stats.acl_denied_cmd,
                "acl_access_denied_key": self.stats.acl_denied_key,
                "acl_access_denied_channel": self.stats.acl_denied_channel,
                "pubsub_channels": len(self.pubsub.channels(None)),
                "pubsub_patterns": self.pubsub.numpat(),
                "pubsub_shardchannels": len(self.pubsub.channels(None, shard=True)),
                "client_output_buffer_limit_disconnections": self.stats.output_limit_closes,
                "tracking_total_keys": self.tracker.total_keys,
                "tracking_total_items": self.tracker.items,
                "tracking_total_prefixes": self.tracker.total_prefixes,
            },
            "cpu": {"used_cpu_sys": f"{usage.ru_stime:.6f}", "used_cpu_user": f"{usage.ru_utime:.6f}"},
            "cluster": {"cluster_enabled": 0},  # Redis Cluster's sharding protocol, which we do not speak
            "keyspace": {"db0": f"keys={status.keys},expires={volatile},avg_ttl=0"} if status.keys else {},
            "raft": to_info(status, self.ops.peer_lookup()),  # one registry read for the whole reply
        }

    # ------------------------------------------------------------------ PUBSUB
    def _pubsub_command(self, conn: _Connection, args: list[bytes]) -> Any:
        """PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP: this node's
        subscriptions (as Redis: each server answers for its own clients)."""
        sub = args[1].lower()
        entry = _PUBSUB_SUBCOMMANDS.get(sub)
        if entry is None:
            raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP.")
        low, high, handler = entry
        if not low <= len(args) <= high:
            raise CommandError(f"unknown subcommand or wrong number of arguments for '{args[1].decode('utf-8', 'replace')}'. "
                               "Try PUBSUB HELP.")
        return handler(self.pubsub, args)
    # ------------------------------------------------------------ RAFTCACHE WATCH
    def _watch_start(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE WATCH <pattern> [FROM <seq>] [VALUES] (raftcache/watch.py): the reply is
        the greeting; the stream follows on the connection, which carries nothing else."""
        request = parse_watch(args)
        sink = _WatchSink(conn)
        user = conn.proto.acl_user
        # an ACL user limited to some keys sees the changes of those keys only (as it could read them)
        readable = None if user.allkeys else partial(user.key_allowed, needed=ACL_READ)
        conn.watching = self.watch.open(request, sink, time.monotonic(), readable)
        self._watch_wake()
        return conn.watching.greeting()

    def _watch_wake(self) -> None:
        """Any thread (the Raft thread after each applied entry): pump the streams soon, once.
        With no stream open, nothing: a wake-up per applied entry costs the loop a self-pipe
        write and a turn. No event is lost: the history records an entry before this is
        called, and `open` registers its stream before it wakes the pump itself."""
        if self._watch_pump_due or self._loop is None or not self.watch:
            return
        self._watch_pump_due = True
        try:
            self._loop.call_soon_threadsafe(self._watch_pump)
        except RuntimeError:  # the loop is closed: the node is stopping
            pass

    def _watch_pump(self) -> None:
        self._watch_pump_due = False
        if self.watch.pump():  # more than one batch waiting: let other work run in between
            self._watch_wake()

    async def _watch_ticks(self) -> None:
        hub = self.watch
        while True:
            await asyncio.sleep(hub.progress_s)
            if len(hub):
                hub.tick(time.monotonic(), self.replica.status().leader is not None)

    # -------------------------------------------------------------- RAFTCACHE ...
    def _raftcache(self, conn: _Connection, args: list[bytes]) -> Any:
        handler = self._raftcache_subcommands.get(args[1].upper())
        if handler is None:
            raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try RAFTCACHE ONCE | DIGEST | COMPACT | DEBUG.")
        return handler(conn, args)

    def _once(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE ONCE <client-id> <seq> <ack> <command> [args...]: an exactly-once write."""
        if len(args) < 6:
            raise CommandError(wrong_arity_message("raftcache|once"))
        client_id, seq, ack = (parse_int_arg(a) for a in args[2:5])
        if client_id <= 0 or seq <= 0 or ack <= 0 or ack > seq:
            raise CommandError("RAFTCACHE ONCE needs client-id > 0 and 0 < ack <= seq")
        inner = args[5:]
        spec = lookup(inner[0])
        if spec is None:
            raise CommandError(unknown_command_message(inner))
        if spec.kind is Kind.LOCAL:
            raise CommandError(f"RAFTCACHE ONCE wraps data commands, not '{spec.name}'")
        if not spec.arity_ok(len(inner)):
            raise CommandError(wrong_arity_message(spec.name))
        return Submit(spec, inner, c.SessionTag(client_id, seq, ack) if spec.kind is Kind.WRITE else None)

    # ------------------------------------------------------------ members, backups
    def peer_lookup(self) -> Callable[[str], Peer]:
        """Member names from one registry read (see ClusterOperations.peer_lookup)."""
        return self.ops.peer_lookup()

    def _members(self, conn: _Connection, args: list[bytes]) -> Any:
        return [[m.id.encode(), m.raft.encode(), m.client.encode(), int(m.leader)] for m in self.ops.members()]

    def _member(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE MEMBER ADD <id> <raft> <client> [FORCE] | REMOVE <id> [FORCE]"""
        sub = args[2].upper() if len(args) > 2 else b""
        force = args[-1].upper() == b"FORCE"
        ops = self.ops
        if sub == b"ADD" and len(args) in (6, 7):
            node_id, raft, client = (a.decode() for a in args[3:6])
            return Later(lambda done: ops.add_member(node_id, raft, client, done, force=force), _ok)
        if sub == b"REMOVE" and len(args) in (4, 5):
            node = args[3].decode("utf-8", "replace")
            return Later(lambda done: ops.remove_member(node, done, force=force), _ok)
        raise CommandError("RAFTCACHE MEMBER ADD <id> <raft host:port> <client host:port> [FORCE] | REMOVE <id> [FORCE]")

    def _transfer(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE TRANSFER [id]: hand leadership to a member (the most caught-up by default)."""
        node = args[2].decode("utf-8", "replace") if len(args) > 2 else None
        return Later(lambda done: self.ops.transfer_leader(node, done), lambda peer: peer.id.encode())

    def _backup(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE BACKUP START | READ <id> <offset> <count> | END <id>"""
        sub = args[2].upper() if len(args) > 2 else b""
        if sub == b"START" and len(args) == 3:
            return Later(self.ops.start_backup, lambda b: [b.id.encode(), b.bytes, b.keys, b.applied_index])
        if sub == b"READ" and len(args) == 6:
            backup = self.ops.staged_backup(args[3].decode("utf-8", "replace"))
            return self.ops.read_backup(backup, parse_int_arg(args[4]), parse_int_arg(args[5]))
        if sub == b"END" and len(args) == 4:
            self.ops.drop_backup(args[3].decode("utf-8", "replace"))
            return OK
        raise CommandError("RAFTCACHE BACKUP START | READ <id> <offset> <count> | END <id>")

    async def _await_replica(self, start: Callable[[Callable[[Any], None]], None]) -> Any:
        """Await a replica operation that reports through a callback (from any thread)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        start(self.delivery.resolver(future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def _digest(self, conn: _Connection, args: list[bytes]) -> Any:
        return self._digest_reply()

    async def _digest_reply(self) -> Any:
        index, digest = await asyncio.wait_for(self._await_replica(self.replica.digest_async), 120)
        return [index, digest.encode()]

    def _compact(self, conn: _Connection, args: list[bytes]) -> Any:
        self.replica.force_snapshot()
        return OK

    def _debug(self, conn: _Connection, args: list[bytes]) -> Any:
        if not self.settings.debug_commands:
            raise CommandError("RAFTCACHE DEBUG is disabled (server.debug_commands = false)")
        if len(args) == 4 and args[2].upper() == b"CLOCK-OFFSET":
            clock = self.replica.clock
            if not hasattr(clock, "offset_ms"):
                raise CommandError("this node's clock cannot be shifted")
            clock.offset_ms = parse_int_arg(args[3])  # type: ignore[attr-defined]
            return OK
        raise CommandError("RAFTCACHE DEBUG CLOCK-OFFSET <ms>")


class Transactions:
    """WATCH and EXEC for the connections of a server (the queueing is connection.py's).

    WATCH reads its keys' modification indexes through the linearizable read path, into the
    connection's WatchSet. EXEC waits for those reads, builds every queued command (a
    command whose arguments are bad answers its error in place, as Redis's runtime errors),
    and submits the data commands with the watched indexes as ONE ``Exec`` write: one Raft
    entry row, applied atomically on every replica. Connection commands allowed in a
    transaction (PING, ECHO, SELECT, UNWATCH) and TIME are answered here, in their place."""

    _OP: Any = object()  # a plan slot whose result comes from the state machine

    def __init__(self, server: RespServer) -> None:
        self.server = server

    def index(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE INDEX key [key ...]: the keys' WATCH indexes (a linearizable read), for
        clients that keep them themselves (raftcache.Client's transactions)."""
        if len(args) < 3:
            raise CommandError(wrong_arity_message("raftcache|index"))
        read = c.WatchIndex(build_command(lookup(b"exists"), args[1:], self.server.settings.limits).keys)
        return Later(lambda done: self.server.replica.submit(read, done, consistency=LINEARIZABLE), _identity)

    def watched(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE WATCHED key index [key index ...]: WATCH with indexes read earlier (by
        RAFTCACHE INDEX, possibly through another node): the next EXEC aborts if one moved."""
        if len(args) < 4 or len(args) % 2:
            raise CommandError(wrong_arity_message("raftcache|watched"))
        pairs = [(args[i], parse_int_arg(args[i + 1])) for i in range(2, len(args), 2)]
        indexes = conn.proto.watches.indexes
        for key, index in pairs:
            indexes.setdefault(key, index)
        return OK

    def execute(self, conn: _Connection, command: Command) -> None:
        if command.spec.name == "watch":
            self._watch(conn, command)
        else:
            watches = command.watches
            assert watches is not None
            watches.when_ready(partial(self._exec, conn, command, conn.track_reads))

    def _watch(self, conn: _Connection, command: Command) -> None:
        server, watches, keys = self.server, command.watches, command.args[1:]
        assert watches is not None

        def done(result: Any) -> None:
            failed = isinstance(result, BaseException)
            watches.record(keys, None if failed else result)
            conn._answer(command.slot, _ok, command.protocol, result)

        try:
            cmd = build_command(lookup(b"exists"), command.args, server.settings.limits)  # checks key sizes
        except CommandError as err:
            done(err)
            return
        server.replica.submit(c.WatchIndex(cmd.keys), server.delivery.deliverer(done), consistency=LINEARIZABLE)

    def _exec(self, conn: _Connection, command: Command, track_reads: bool = False) -> None:
        server = self.server
        try:
            tag = _exec_tag(command.args)
        except CommandError as err:
            conn._answer(command.slot, _identity, command.protocol, err)
            return
        plan: list[tuple[Callable[[Any], Any], Any]] = []  # (render, result or _OP) per queued command
        ops = []
        for spec, args in command.queued:
            try:
                if spec.kind is Kind.LOCAL:
                    plan.append((_identity, OK if spec.name == "unwatch" else server.local[spec.name](conn, args)))
                    continue
                cmd = build_command(spec, args, server.settings.limits)
            except CommandError as err:
                plan.append((_identity, err))
                continue
            if isinstance(cmd, Immediate):
                plan.append((spec.render, cmd.reply))
            else:
                if command.script_acl is not None and type(cmd) in _SCRIPT_TYPES:
                    cmd = cmd._replace(acl=command.script_acl)
                ops.append(cmd)
                plan.append((spec.render, self._OP))
        watches = command.watches
        assert watches is not None
        render = partial(self._render, plan)
        if not ops and not watches.indexes:
            conn._answer(command.slot, render, command.protocol, [])
            return
        exec_cmd = c.Exec(tuple(ops), tuple(watches.indexes.items()))
        limit = server.replica.options.raft.max_entry_bytes
        if c.size_hint(exec_cmd) > limit:  # one transaction is one Raft entry
            error = ExecAbortError(f"Transaction discarded because of: it exceeds one Raft entry (raft max_entry_bytes {limit})")
            conn._answer(command.slot, _identity, command.protocol, error)
            return
        complete = partial(conn._complete, command.slot, render, command.protocol, "write", time.perf_counter())
        keys = None
        if track_reads:  # the transaction's reads, for CLIENT TRACKING
            keys = [key for spec, args in command.queued if spec.kind is Kind.READ for key in conn._tracked_keys(spec, args)]
            server.tracker.remember(conn.id, keys)
        if server.tracker.watching_origins:
            conn._submit_noloop(exec_cmd, complete, tag, keys)
            return
        if keys:
            complete = partial(conn._tracked_complete, keys, None, complete)
        server.replica.submit(exec_cmd, server.delivery.deliverer(complete), consistency=LINEARIZABLE, tag=tag)

    def _render(self, plan: list[tuple[Callable[[Any], Any], Any]], results: list[Any] | None) -> Any:
        """EXEC's reply: nil if a watched key moved, else one element per queued command."""
        if results is None:
            return NullArray
        out = []
        applied = iter(results)
        errors = self.server.command_stats.errors
        for render, value in plan:
            if value is self._OP:
                value = next(applied)
            if isinstance(value, BaseException):
                prefix = resp_prefix(value)
                errors[prefix] += 1
                out.append(ErrorReply.from_parts(prefix, value.message if isinstance(value, CommandError) else str(value)))
            else:
                out.append(render(value))
        return out


def _exec_tag(args: list[bytes]) -> c.SessionTag | None:
    """The exactly-once tag of ``RAFTCACHE ONCE <client-id> <seq> <ack> EXEC``, or None."""
    if len(args) == 1:
        return None
    client_id, seq, ack = (parse_int_arg(a) for a in args[2:5])
    if client_id <= 0 or seq <= 0 or ack <= 0 or ack > seq:
        raise CommandError("RAFTCACHE ONCE needs client-id > 0 and 0 < ack <= seq")
    return c.SessionTag(client_id, seq, ack)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# CLIENT's tracking subcommands: name -> (arity, as Redis's "client|..." entries; handler)
_CLIENT_TRACKING: dict[bytes, tuple[int, Callable[[RespServer, _Connection, list[bytes]], Any]]] = {
    b"TRACKING": (-3, RespServer._client_tracking),
    b"CACHING": (3, lambda server, conn, args: Tracker.caching(conn.proto.tracking, args)),
    b"GETREDIR": (2, lambda server, conn, args: Tracker.getredir(conn.proto.tracking)),
    b"TRACKINGINFO": (2, lambda server, conn, args: Tracker.info(conn.proto.tracking)),
}

# CONFIG's subcommands (a table, built once): name -> handler(server, args)
_CONFIG_SUBCOMMANDS: dict[bytes, Callable[[RespServer, list[bytes]], Any]] = {
    b"GET": RespServer._config_get,
    b"SET": RespServer._config_set,
    b"RESETSTAT": RespServer._config_resetstat,
    b"HELP": lambda server, args: _config_help(args),
}
