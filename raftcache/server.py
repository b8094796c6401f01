"""The RESP2 server: asyncio glue between sockets, the sans-I/O parser, the command table
and the replica. Bytes in, bytes out.

Per connection: requests are parsed as they arrive; data commands go to the replica (where
commands of all connections share group-committed Raft entries) and reply slots are kept in
order, so pipelined commands are answered in order even though they complete out of order.
Results come back from the Raft thread through one loop wake-up per burst (`LoopDelivery`).

Protection: limits on bulk/array/inline sizes and on the unparsed input per connection,
``maxclients``, a deadline for half-sent commands (slowloris), reading paused while a
connection has too many commands in flight or is not reading its replies, and AUTH.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import platform
import resource
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import __version__
from . import commands as c
from .aio import LoopDelivery
from .errors import CommandError, NoAuthError, NoProtoError, ProtocolError, RaftCacheError, WrongPassError, resp_prefix
from .metrics import CommandStats
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
from .replica import LINEARIZABLE, Replica
from .replication import Role, validate_address
from .resp import OK, PONG, Map, RequestParser, encode_error, encode_reply

log = logging.getLogger(__name__)

_NOAUTH = encode_error("NOAUTH", "Authentication required.")  # also NoAuthError's word
_MAXCLIENTS = encode_error("ERR", "max number of clients reached")


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


@dataclass(frozen=True, slots=True)
class Peer:
    """What the node knows about a cluster member (from the config)."""

    id: str
    raft: str
    client: str

    @property
    def name(self) -> str:
        """How to show the member: its id, or its raft address when no id is known."""
        return self.id or self.raft


@dataclass
class _Stats:
    started: float = field(default_factory=time.monotonic)
    connections_received: int = 0
    rejected_connections: int = 0
    commands_processed: int = 0
    protocol_errors: int = 0


class _Connection(asyncio.Protocol):
    def __init__(self, server: RespServer) -> None:
        self.server = server
        settings = server.settings
        self.parser = RequestParser(
            max_bulk_len=settings.max_bulk_bytes,
            max_array_len=settings.max_array_len,
            max_inline_len=settings.max_inline_bytes,
        )
        self.authenticated = not settings.requirepass
        self.parser.authenticated = self.authenticated
        self.readonly = False
        self.protocol = 2  # RESP version, chosen with HELLO
        self.name = b""
        self.lib = b""
        self.id = next(server._ids)
        self.replies: deque[list[Any]] = deque()  # [reply bytes or None while pending]
        self.pending = 0
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.close_after_flush = False
        self.draining = False  # protocol error answered: discard input until the peer closes
        self.reading_paused = False
        self.writing_paused = False
        self.frame_started: float | None = None
        self.linger = False
        self.last_active = time.monotonic()
        self.created = self.last_active
        self.peer = ""

    # -------------------------------------------------------------- asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.stats.connections_received += 1
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(server.connections) >= server.settings.maxclients:
            server.stats.rejected_connections += 1
            self.transport.write(_MAXCLIENTS)
            self.closing = True
            self.transport.close()
            return
        server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing or self.draining:
            return
        now = time.monotonic()
        self.last_active = now
        parser = self.parser
        parser.feed(data)
        try:
            while not self.closing and not self.close_after_flush:
                args = parser.next()
                if args is None:
                    break
                self._dispatch(args)
        except ProtocolError as exc:
            self.server.stats.protocol_errors += 1
            log.info("client %s: %s; closing", self.peer, exc)
            self._immediate(encode_error("ERR", str(exc)))
            self.close_after_flush = self.linger = True
        else:
            if parser.buffered > self.server.settings.max_query_buffer_bytes:
                self.server.stats.protocol_errors += 1
                log.warning("client %s exceeded the query buffer limit; closing", self.peer)
                self.parser = None  # type: ignore[assignment]  # free the buffer now
                self._immediate(encode_error("ERR", "Protocol error: query buffer limit exceeded (limits.max_query_buffer_bytes)"))
                self.close_after_flush = self.linger = True
            elif parser.in_frame:
                if self.frame_started is None:
                    self.frame_started = now
            else:
                self.frame_started = None
        self._flush()
        self._update_reading()

    # ------------------------------------------------------------------- dispatch
    def _dispatch(self, args: list[bytes]) -> None:
        server = self.server
        spec = lookup(args[0])
        if spec is None:
            self._error("ERR", unknown_command_message(args))
            return
        if not spec.arity_ok(len(args)):
            self._error("ERR", wrong_arity_message(spec.name))
            return
        if not self.authenticated and "noauth" not in spec.flags:
            self._immediate(_NOAUTH)
            return
        server.stats.commands_processed += 1
        server.command_stats.calls[spec.name] += 1
        if spec.kind is Kind.LOCAL:
            try:
                reply = server.local[spec.name](self, args)
            except CommandError as err:
                self._error(resp_prefix(err), err.message)
                return
            if asyncio.iscoroutine(reply):
                self._reply_when_done(reply)
            elif reply is not _ASYNC:
                self._immediate(encode_reply(reply, self.protocol))
            return
        self._data_command(spec, args, None)

    def _data_command(self, spec: Spec, args: list[bytes], tag: c.SessionTag | None) -> None:
        try:
            command = build_command(spec, args, self.server.settings.limits)
        except CommandError as err:
            self._error(resp_prefix(err), err.message)
            return
        if isinstance(command, Immediate):  # TIME, OBJECT HELP: nothing to ask a replica
            self._finish_now(spec.render, command.reply)
            return
        replica = self.server.replica
        if spec.kind is Kind.READ and self.readonly:
            self._finish_now(spec.render, replica.read_local(command))
            return
        slot: list[Any] = [None]
        self.replies.append(slot)
        self.pending += 1
        # Render with the protocol in force now: a later HELLO must not change this reply.
        on_done = self.server.delivery.deliverer(
            partial(self._complete, slot, spec.render, self.protocol, spec.kind.value, time.perf_counter())
        )
        replica.submit(command, on_done, consistency=LINEARIZABLE, tag=tag)

    def _complete(self, slot: list[Any], render: Callable[[Any], Any], protocol: int, kind: str, start: float, result: Any) -> None:
        """On the loop: a replica result for a reply slot."""
        self.pending -= 1
        self.server.command_stats.latency[kind].observe(time.perf_counter() - start)
        slot[0] = self.server.render(render, result, protocol)
        if not self.closing:
            self._flush()
            self._update_reading()

    def _finish_now(self, render: Callable[[Any], Any], result: Any) -> None:
        self._immediate(self.server.render(render, result, self.protocol))

    def _reply_when_done(self, coroutine: Any) -> None:
        """A local command answered by a coroutine (membership, backups): keep its place."""
        slot: list[Any] = [None]
        self.replies.append(slot)
        self.pending += 1

        def done(task: asyncio.Task[Any]) -> None:
            self.pending -= 1
            if task.cancelled():
                result: Any = CommandError("cancelled: the node is stopping")
            else:
                result = task.exception() or task.result()
            slot[0] = self.server.render(_identity, result, self.protocol)
            if not self.closing:
                self._flush()
                self._update_reading()

        asyncio.get_running_loop().create_task(coroutine).add_done_callback(done)

    def _immediate(self, data: bytes) -> None:
        self.replies.append([data])

    def _error(self, prefix: str, message: str) -> None:
        self.server.command_stats.errors[prefix] += 1
        self._immediate(encode_error(prefix, message))

    def _flush(self) -> None:
        replies = self.replies
        if not replies or replies[0][0] is None or self.transport is None:
            if self.close_after_flush and not replies:
                self._close()
            return
        out = []
        while replies and replies[0][0] is not None:
            out.append(replies.popleft()[0])
        if not self.closing:
            self.transport.write(b"".join(out))
        if self.close_after_flush and not replies:
            self._close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        limit = self.server.settings.max_pending_per_client
        should_pause = self.writing_paused or self.pending >= limit
        if should_pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused and self.pending <= limit // 2:
            self.transport.resume_reading()
            self.reading_paused = False

    def _close(self) -> None:
        if self.closing or self.transport is None:
            return
        if self.linger and not self.draining and self.transport.can_write_eof():
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


_ASYNC = object()  # a local handler that answers later through a reply slot
_BACKUP_KEEP_S = 1800.0  # a backup not fetched and released within this is deleted
_BACKUP_CHUNK_MAX = 4 << 20


@dataclass
class _Backup:
    path: str
    created: float = field(default_factory=time.monotonic)
_LINGER_S = 2.0  # how long a connection closed for bad input keeps draining


def _identity(result: Any) -> Any:
    return result


class RespServer:
    """Serves one replica over RESP2."""

    def __init__(self, replica: Replica, settings: ServerSettings, *, node_id: str, peers: dict[str, Peer] | None = None) -> None:
        self.replica = replica
        self.settings = settings
        self.node_id = node_id
        self.peers = peers or {}  # raft address -> Peer
        self.connections: set[_Connection] = set()
        self.stats = _Stats()
        self.command_stats = CommandStats()
        self._ids = itertools.count(1)
        self._backups: dict[str, _Backup] = {}
        self._membership_lock: asyncio.Lock | None = None
        self.delivery: LoopDelivery = None  # type: ignore[assignment]  # set in start()
        self._server: asyncio.AbstractServer | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.address = ""
        self.local: dict[str, Callable[[_Connection, list[bytes]], Any]] = {
            "ping": self._ping,
            "echo": lambda conn, args: args[1],
            "quit": self._quit,
            "select": self._select,
            "auth": self._auth,
            "hello": self._hello,
            "client": self._client,
            "command": self._command,
            "config": self._config,
            "info": self._info,
            "readonly": partial(self._set_readonly, True),
            "readwrite": partial(self._set_readonly, False),
            "raftcache": self._raftcache,
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
        }
        self._registering: set[str] = set()
        self._backup_dir = tempfile.mkdtemp(prefix="raftcache-backups-")

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

    def rss_bytes(self) -> int:
        return _rss_bytes()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.delivery = LoopDelivery(loop)
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True, backlog=1024)
        sock = self._server.sockets[0].getsockname()
        self.address = f"{sock[0]}:{sock[1]}"
        self._reaper = asyncio.create_task(self._reap())
        log.info("serving RESP on %s", self.address)

    async def close(self) -> None:
        shutil.rmtree(self._backup_dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.cancel()
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
            self._register_members()
            for backup_id, backup in list(self._backups.items()):
                if now - backup.created > _BACKUP_KEEP_S:
                    self._drop_backup(backup_id)
            for conn in list(self.connections):
                if conn.frame_started is not None and now - conn.frame_started > settings.frame_timeout_s:
                    log.info("client %s left a command half-sent for %.0fs; closing", conn.peer, now - conn.frame_started)
                    conn._close()
                elif settings.idle_timeout_s and not conn.pending and now - conn.last_active > settings.idle_timeout_s:
                    conn._close()

    # ------------------------------------------------------------- local commands
    def _ping(self, conn: _Connection, args: list[bytes]) -> Any:
        if len(args) > 2:
            raise CommandError(wrong_arity_message("ping"))
        return args[1] if len(args) == 2 else PONG

    def _quit(self, conn: _Connection, args: list[bytes]) -> Any:
        conn.close_after_flush = True
        return OK

    def _select(self, conn: _Connection, args: list[bytes]) -> Any:
        if parse_int_arg(args[1]) != 0:
            raise CommandError("DB index is out of range")
        return OK

    def _auth(self, conn: _Connection, args: list[bytes]) -> Any:
        if len(args) > 3:
            raise CommandError("syntax error")
        password = args[-1]
        if not self.settings.requirepass:
            raise CommandError(
                "AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        user_ok = len(args) == 2 or args[1] == b"default"
        if not user_ok or password != self.settings.requirepass.encode():
            raise WrongPassError()
        conn.authenticated = True
        conn.parser.authenticated = True
        return OK

    def _hello(self, conn: _Connection, args: list[bytes]) -> Any:
        version = conn.protocol
        if len(args) >= 2:
            try:
                version = parse_int_arg(args[1])
            except CommandError:
                raise CommandError("Protocol version is not an integer or out of range") from None
            if version not in (2, 3):
                raise NoProtoError()
        i = 2
        while i < len(args):
            option = args[i].upper()
            if option == b"AUTH" and i + 2 < len(args):
                self._auth(conn, [b"auth", args[i + 1], args[i + 2]])
                i += 3
            elif option == b"SETNAME" and i + 1 < len(args):
                conn.name = args[i + 1]
                i += 2
            else:
                raise CommandError(f"Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
        if not conn.authenticated:
            raise NoAuthError(
                "HELLO must be called with the client already authenticated, otherwise the "
                "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client "
                "and select the RESP protocol version at the same time"
            )
        conn.protocol = version
        status = self.replica.status()
        return Map(
            {
                b"server": b"redis",
                b"version": b"7.0.0",
                b"proto": version,
                b"id": conn.id,
                b"mode": b"standalone",
                b"role": b"master" if status.role == "leader" else b"replica",
                b"modules": [],
            }
        )

    def _client(self, conn: _Connection, args: list[bytes]) -> Any:
        sub = args[1].upper()
        if sub == b"SETNAME" and len(args) == 3:
            if b" " in args[2] or b"\n" in args[2]:
                raise CommandError("Client names cannot contain spaces, newlines or special characters.")
            conn.name = args[2]
            return OK
        if sub == b"GETNAME" and len(args) == 2:
            return conn.name or None
        if sub == b"ID" and len(args) == 2:
            return conn.id
        if sub == b"SETINFO" and len(args) == 4:
            if args[2].upper() == b"LIB-NAME":
                conn.lib = args[3]
            return OK
        if sub == b"INFO" and len(args) == 2:
            return self._client_line(conn)
        if sub == b"LIST" and len(args) == 2:
            return b"".join(self._client_line(c) for c in sorted(self.connections, key=lambda c: c.id))
        raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try CLIENT HELP.")

    def _client_line(self, conn: _Connection) -> bytes:
        age = int(time.monotonic() - conn.created)
        idle = int(time.monotonic() - conn.last_active)
        return b"id=%d addr=%s name=%s age=%d idle=%d db=0 lib-name=%s\n" % (
            conn.id, conn.peer.encode(), conn.name, age, idle, conn.lib,
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
        return {
            b"save": b"",
            b"appendonly": b"no",
            b"databases": b"1",
            b"maxclients": b"%d" % s.maxclients,
            b"timeout": b"%d" % int(s.idle_timeout_s),
            b"proto-max-bulk-len": b"%d" % s.max_bulk_bytes,
            b"client-query-buffer-limit": b"%d" % s.max_query_buffer_bytes,
            b"maxmemory": b"0",
        }

    def _config(self, conn: _Connection, args: list[bytes]) -> Any:
        from .redis_semantics import compile_glob

        if args[1].upper() != b"GET" or len(args) < 3:
            raise CommandError("CONFIG supports only GET parameter [parameter ...] on raftcache")
        values = self._config_values()
        out = Map()
        for pattern in args[2:]:
            matches = compile_glob(pattern.lower())
            for name, value in values.items():
                if matches(name):
                    out[name] = value
        return out

    def _set_readonly(self, on: bool, conn: _Connection, args: list[bytes]) -> Any:
        conn.readonly = on
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
        peer = self.peer_lookup()  # one registry read for the whole reply
        leader = peer(status.leader) if status.leader else None
        rss = _rss_bytes()
        volatile = len(self.replica.fsm._expires)
        return {
            "server": {
                "redis_version": "7.0.0",
                "raftcache_version": __version__,
                "redis_mode": "standalone",
                "os": f"{platform.system()} {platform.release()} {platform.machine()}",
                "process_id": os.getpid(),
                "tcp_port": self.address.rsplit(":", 1)[-1],
                "uptime_in_seconds": uptime,
                "uptime_in_days": uptime // 86400,
            },
            "clients": {
                "connected_clients": len(self.connections),
                "maxclients": self.settings.maxclients,
                "blocked_clients": 0,
            },
            "memory": {"used_memory": rss, "used_memory_rss": rss, "used_memory_peak": _peak_rss_bytes()},
            "stats": {
                "total_connections_received": self.stats.connections_received,
                "total_commands_processed": self.stats.commands_processed,
                "rejected_connections": self.stats.rejected_connections,
                "protocol_errors": self.stats.protocol_errors,
            },
            "keyspace": {"db0": f"keys={status.keys},expires={volatile},avg_ttl=0"} if status.keys else {},
            "raft": {
                "raft_node_id": self.node_id,
                "raft_state": status.role,
                "raft_leader_id": leader.name if leader else "",
                "raft_leader_addr": status.leader or "",
                "raft_leader_client": leader.client if leader else "",
                "raft_term": status.term,
                "raft_commit_index": status.commit_index,
                "raft_applied_index": status.applied_index,
                "raft_log_len": status.log_len,
                "raft_last_snapshot_index": status.last_snapshot_index,
                "raft_snapshots_taken": status.snapshots_taken,
                "raft_members": ",".join(peer(a).name for a in status.members),
                "raft_connected_peers": ",".join(sorted(peer(a).name for a in self.replica.raft.connected_peers())),
                "raft_revision": status.revision,
                "raft_replicated_time_ms": status.replicated_time_ms,
                "raft_inflight_entries": status.inflight_entries,
                "raft_queued_requests": status.queued_requests,
            },
        }

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
        conn._data_command(spec, inner, c.SessionTag(client_id, seq, ack) if spec.kind is Kind.WRITE else None)
        return _ASYNC

    # ------------------------------------------------------------ members, backups
    def peer_lookup(self) -> Callable[[str], Peer]:
        """What this node knows of members (the replicated registry, else its config file),
        from one read of the registry: take one per request, then look up every member."""
        registry = self.replica.read_local(c.Members())

        def peer(raft: str) -> Peer:
            if raft in registry:
                node_id, client = registry[raft]
                return Peer(node_id, raft, client)
            return self.peers.get(raft, Peer("", raft, ""))

        return peer

    def peer(self, raft: str) -> Peer:
        return self.peer_lookup()(raft)

    def member_ids(self, addresses: Any) -> list[str]:
        """Node ids of these raft addresses (the address itself when no id is known)."""
        peer = self.peer_lookup()
        return [peer(a).name for a in addresses]

    def _register_members(self) -> None:
        """The leader records members it knows from its config in the replicated registry, so
        every node (and every client) learns their ids and client addresses."""
        if self.replica.raft.role is not Role.LEADER:
            return
        registry = self.replica.read_local(c.Members())
        for raft in self.replica.raft.status().members:
            peer = self.peers.get(raft)
            if raft in registry or peer is None or raft in self._registering:
                continue
            self._registering.add(raft)
            self.replica.submit(c.SetMember(raft, peer.id, peer.client), lambda result, r=raft: self._registering.discard(r))

    def _members(self, conn: _Connection, args: list[bytes]) -> Any:
        status = self.replica.raft.status()
        lookup = self.peer_lookup()
        rows = []
        for raft in status.members:
            peer = lookup(raft)
            rows.append([peer.id.encode(), raft.encode(), peer.client.encode(), int(raft == status.leader)])
        return rows

    def _require_leader(self) -> None:
        status = self.replica.raft.status()
        if status.role is not Role.LEADER:
            leader = self.peer(status.leader) if status.leader else None
            where = f"the leader is {leader.name} ({leader.client or 'no client address'})" if leader else "no leader is known"
            raise CommandError(f"membership changes go to the leader; {where}")

    def _resolve(self, node: bytes) -> str:
        """A member named by id or raft address -> its raft address."""
        name = node.decode("utf-8", "replace")
        peer = self.peer_lookup()
        for raft in self.replica.raft.status().members:
            if raft == name or peer(raft).id == name:
                return raft
        raise CommandError(f"no member named {name!r} (see RAFTCACHE MEMBERS)")

    def _member(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE MEMBER ADD <id> <raft> <client> [FORCE] | REMOVE <id> [FORCE]"""
        sub = args[2].upper() if len(args) > 2 else b""
        force = args[-1].upper() == b"FORCE"
        if sub == b"ADD" and len(args) in (6, 7):
            return self._member_add(args[3].decode(), args[4].decode(), args[5].decode(), force)
        if sub == b"REMOVE" and len(args) in (4, 5):
            return self._member_remove(args[3], force)
        raise CommandError("RAFTCACHE MEMBER ADD <id> <raft host:port> <client host:port> [FORCE] | REMOVE <id> [FORCE]")

    def _one_change_at_a_time(self) -> asyncio.Lock:
        if self._membership_lock is None:
            self._membership_lock = asyncio.Lock()
        if self._membership_lock.locked():
            raise CommandError("another membership change is in progress; one change at a time")
        return self._membership_lock

    async def _member_add(self, node_id: str, raft: str, client: str, force: bool) -> Any:
        self._require_leader()
        try:
            validate_address(raft)
            validate_address(client, "client address")
        except RaftCacheError as exc:
            raise CommandError(str(exc)) from None
        status = self.replica.raft.status()
        if raft in status.members:
            raise CommandError(f"{raft} is already a member")
        peer = self.peer_lookup()
        for member in status.members:
            if peer(member).id == node_id:
                raise CommandError(f"member id {node_id!r} is already used by {member}")
        missing = self._unreachable(status.members)
        if missing and not force:
            raise CommandError(
                f"refusing to add a member while {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} unreachable: "
                "the cluster would need one more "
                "vote with one already missing. Bring it back or remove it first (or add FORCE)"
            )
        async with self._one_change_at_a_time():
            await self._await_replica(lambda done: self.replica.add_member(raft, node_id, client, done))
            await self._until(lambda: raft in self.replica.raft.status().members, 10, "the new member to take effect")
        log.info("member %s (%s, client %s) added", node_id, raft, client)
        return OK

    async def _member_remove(self, node: bytes, force: bool) -> Any:
        self._require_leader()
        raft = self._resolve(node)
        status = self.replica.raft.status()
        if raft == status.address:
            raise CommandError("this node is the leader: transfer leadership first (RAFTCACHE TRANSFER), then remove it")
        remaining = [m for m in status.members if m != raft]
        reachable = len(remaining) - len(self._unreachable(remaining))
        if reachable <= len(remaining) // 2 and not force:
            raise CommandError(
                f"refusing: after removing {node.decode()} only {reachable} of {len(remaining)} remaining members are "
                "reachable, not a majority (add FORCE to do it anyway)"
            )
        async with self._one_change_at_a_time():
            await self._await_replica(lambda done: self.replica.remove_member(raft, done))
            await self._until(lambda: raft not in self.replica.raft.status().members, 10, "the removal to take effect")
        log.info("member %s removed", raft)
        return OK

    def _unreachable(self, members: Any) -> list[str]:
        own = self.replica.raft.settings.address
        connected = self.replica.raft.connected_peers()
        return self.member_ids(m for m in members if m != own and m not in connected)

    def _transfer(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE TRANSFER [id]: hand leadership to a member (the most caught-up by default)."""
        self._require_leader()
        target = self._resolve(args[2]) if len(args) > 2 else None
        return self._do_transfer(target)

    async def _do_transfer(self, target: str | None) -> Any:
        if target == self.replica.raft.settings.address:
            return self.node_id.encode()
        await self._await_replica(lambda done: self.replica.transfer_leadership(target, done))
        return (self.peer(self.replica.raft.status().leader or "").id or "").encode()

    def _backup(self, conn: _Connection, args: list[bytes]) -> Any:
        """RAFTCACHE BACKUP START | READ <id> <offset> <count> | END <id>"""
        sub = args[2].upper() if len(args) > 2 else b""
        if sub == b"START" and len(args) == 3:
            return self._backup_start()
        if sub == b"READ" and len(args) == 6:
            backup = self._backups.get(args[3].decode("utf-8", "replace"))
            if backup is None:
                raise CommandError("no such backup (it may have expired)")
            offset, count = parse_int_arg(args[4]), parse_int_arg(args[5])
            if offset < 0 or not 0 < count <= _BACKUP_CHUNK_MAX:
                raise CommandError(f"offset must be >= 0 and count in 1..{_BACKUP_CHUNK_MAX}")
            with open(backup.path, "rb") as f:
                f.seek(offset)
                return f.read(count)
        if sub == b"END" and len(args) == 4:
            self._drop_backup(args[3].decode("utf-8", "replace"))
            return OK
        raise CommandError("RAFTCACHE BACKUP START | READ <id> <offset> <count> | END <id>")

    async def _backup_start(self) -> Any:
        backup_id = uuid.uuid4().hex
        path = os.path.join(self._backup_dir, f"{backup_id}.rcs")
        info = await self._await_replica(lambda done: self.replica.backup(path, done, timeout=600))
        self._backups[backup_id] = _Backup(path)
        return [backup_id.encode(), info["bytes"], info["keys"], info["applied_index"]]

    def _drop_backup(self, backup_id: str) -> None:
        backup = self._backups.pop(backup_id, None)
        if backup is not None:
            try:
                os.unlink(backup.path)
            except OSError:
                pass

    async def _await_replica(self, start: Callable[[Callable[[Any], None]], None], *, raw: bool = False) -> Any:
        """Await a replica operation that reports through a callback (from any thread)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        start(self.delivery.resolver(future))
        result = await future
        if isinstance(result, BaseException) and not raw:
            raise result
        return result

    async def _until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise CommandError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    def _digest(self, conn: _Connection, args: list[bytes]) -> Any:
        return self._digest_reply()

    async def _digest_reply(self) -> Any:
        index, digest = await asyncio.wait_for(self._await_replica(self.replica.digest_async), 120)
        return [index, digest.encode()]

    def _compact(self, conn: _Connection, args: list[bytes]) -> Any:
        self.replica.raft.force_snapshot()
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


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
