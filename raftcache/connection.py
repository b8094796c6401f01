"""One client connection's protocol state, with no I/O (as h11's ``Connection``).

Fed the bytes a client sent (``receive_data``), it yields events (``next_event``): a
``Command`` to execute, ``NEED_DATA``, or ``ProtocolFailure`` (bad input, answered; the
connection closes once the answer is out). Whoever executes a command hands its reply bytes
back with ``complete(slot, data)``; ``data_to_send()`` returns what may leave now. Replies
leave in request order although pipelined commands may finish out of order.

It owns what belongs to the connection, not to the server or the data:

* the RESP request parser and its limits, the unparsed-input (query buffer) limit;
* AUTH gating (``NOAUTH`` before AUTH when a password is set), AUTH [user] and HELLO [AUTH],
  checked by an ``auth.Authenticator``; after repeated failures the connection is *held*
  (``hold_seconds`` > 0): it yields no command until the shell calls ``release()`` once the
  delay has passed, so only this connection waits;
* the RESP version chosen with HELLO (a command's reply is rendered in the version in force
  when it was received);
* the ACL check of every command against the authenticated user (``acl.User``): done here,
  once, where the client connected (a write forwarded to the leader is not checked again),
  also while MULTI queues; a refusal is Redis's ``-NOPERM`` and never leaves the connection.
  Handed-out commands carry the user's rules for scripts (``Command.script_acl``). ACL
  WHOAMI/LIST/USERS/GETUSER/CAT/LOG are answered here;
* READONLY / READWRITE (stale local reads), QUIT;
* CLIENT TRACKING's per-connection state (``tracking``, a ``tracking.ClientTracking``; the
  one-shot CLIENT CACHING flag is spent here by commands the connection answers itself) and
  the place of out-of-band pushes in the reply order (``push``);
* flow control it can judge alone: reading pauses while too many commands are in flight.

``mode`` is where per-connection modes go (MULTI queueing, subscribe mode): a command that
passed the gates (known, arity, auth) goes to its mode's router (``_by_mode``).

Transactions: MULTI switches to ``Mode.MULTI``, where commands are queued (``+QUEUED``) and
EXEC hands out one ``Command`` carrying the queue and the connection's ``WatchSet`` (the
indexes its WATCHes read; the server fills them in when the reads return). A command refused
while queuing (unknown, wrong arity, not allowed in a transaction, over the queue limit)
dooms the transaction: EXEC answers ``EXECABORT``.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import acl
from .auth import DEFAULT_USER, Authenticator, AuthThrottle
from .errors import CommandError, NoAuthError, NoProtoError, NotIntegerError, ProtocolError, WrongPassError, resp_prefix
from .pubsub import PubSubHub, Subscriptions, push_bytes
from .redis_commands import (
    QUEUE_CHECKS,
    Kind,
    Spec,
    lookup,
    parse_int_arg,
    unknown_command_message,
    wrong_arity_message,
)
from .redis_semantics import REDIS_VERSION
from .resp import OK, Map, RequestParser, SimpleString, encode_error, encode_reply
from .tracking import ClientTracking

NOAUTH_REPLY = encode_error("NOAUTH", "Authentication required.")  # also NoAuthError's word


class Mode(enum.Enum):
    """What the connection does with the next command. MULTI and subscribe mode go here."""

    NORMAL = "normal"  # every command is handed out to be executed
    MULTI = "multi"  # commands are queued until EXEC or DISCARD


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Any = _NeedData()  # no complete command buffered (or the connection is closing)


class Slot:
    """A place in the reply order; ``data`` is None until the reply is known."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


class WatchSet:
    """The keys a connection WATCHes and the modification index each had when read.

    WATCH is handed out as a command whose linearizable read completes later, and an EXEC
    pipelined behind it must wait for it: ``pending`` counts reads not yet back and
    ``when_ready`` runs the EXEC once they are. A key whose read failed gets index -1, which
    never matches, so the EXEC aborts rather than run unguarded."""

    __slots__ = ("_waiters", "indexes", "pending")

    def __init__(self) -> None:
        self.indexes: dict[bytes, int] = {}
        self.pending = 0
        self._waiters: list[Callable[[], None]] = []

    def record(self, keys: list[bytes], indexes: list[int] | None) -> None:
        """A WATCH read came back (`indexes` None: it failed)."""
        for i, key in enumerate(keys):
            # A key watched twice keeps its first index: a change in between must still abort.
            self.indexes.setdefault(key, -1 if indexes is None else indexes[i])
        self.pending -= 1
        if not self.pending:
            waiters, self._waiters = self._waiters, []
            for run in waiters:
                run()

    def when_ready(self, run: Callable[[], None]) -> None:
        if self.pending:
            self._waiters.append(run)
        else:
            run()


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, which
# costs ~2 µs per command on the hot path. Nothing mutates a Command after _hand_out builds it.
@dataclass(slots=True)
class Command:
    """A command to execute; answer it with ``Connection.complete(slot, reply_bytes)``."""

    spec: Spec
    args: list[bytes]
    slot: Slot
    protocol: int  # RESP version to render the reply in (2 or 3)
    readonly: bool  # READONLY was in force: reads may be answered from local state
    watches: WatchSet | None = None  # WATCH: where its indexes go; EXEC: what guards it
    queued: tuple[tuple[Spec, list[bytes]], ...] = field(default=())  # EXEC: the transaction
    script_acl: str | None = None  # the user's rules a script's redis.call is checked against (None: all)


@dataclass(frozen=True, slots=True)
class ProtocolFailure:
    """Input that cannot be parsed; the error is queued and the connection closes after it."""

    message: str
    over_limit: bool = False  # the unparsed input outgrew the query buffer limit


def _nothing(name: str) -> None:
    pass


QUEUED = SimpleString("QUEUED")
# What a RESP2 connection with subscriptions may still run (Redis 7.0).
SUBSCRIBED_ALLOWED = frozenset({"subscribe", "ssubscribe", "psubscribe", "unsubscribe", "sunsubscribe", "punsubscribe",
                                "ping", "quit", "reset"})
# Connection-level commands that may sit in a transaction: their replies depend on the
# arguments alone, so the server computes them at EXEC (see server._exec).
QUEUEABLE_LOCAL = frozenset({"ping", "echo", "select", "unwatch"})
QUEUED_COMMAND_OVERHEAD = 256  # bytes charged per queued command on top of its arguments


def is_tagged_exec(args: list[bytes]) -> bool:
    """``RAFTCACHE ONCE <client-id> <seq> <ack> EXEC``: EXEC with an exactly-once tag."""
    return len(args) == 6 and args[0].lower() == b"raftcache" and args[1].upper() == b"ONCE" and args[5].lower() == b"exec"


class Connection:
    """The protocol state of one client connection (see the module docstring)."""

    def __init__(
        self,
        *,
        conn_id: int = 0,
        requirepass: str = "",
        max_bulk_bytes: int = 8 << 20,
        max_array_len: int = 1024 * 1024,
        max_inline_bytes: int = 64 * 1024,
        max_query_buffer_bytes: int = 64 << 20,
        max_pending: int = 10_000,
        role: Callable[[], str] = lambda: "leader",
        on_command: Callable[[str], None] = _nothing,
        on_error: Callable[[str], None] = _nothing,
        authenticator: Authenticator | None = None,
        throttle: AuthThrottle = AuthThrottle(),
        on_auth_failure: Callable[[], None] = lambda: None,
        on_acl_denied: Callable[[str], None] = _nothing,
        clock: Callable[[], float] = time.monotonic,
        pubsub: PubSubHub | None = None,
    ) -> None:
        """`role()` answers HELLO's role ("leader" or another Raft role); `on_command(name)`
        counts each command accepted for execution, `on_error(prefix)` each error reply,
        `on_auth_failure()` each failed AUTH, `on_acl_denied(reason)` each NOPERM ("command" or
        "key"). `authenticator` defaults to one built from `requirepass`. `client_info()`
        (settable) describes the connection in ACL LOG entries."""
        self.id = conn_id
        self._auth_users = authenticator if authenticator is not None else Authenticator(requirepass)
        self._throttle = throttle
        self._on_auth_failure = on_auth_failure
        self.auth_failures = 0  # consecutive failed AUTH attempts
        self.hold_seconds = 0.0  # > 0: held after a failed AUTH; the shell calls release() after this long
        self.user = DEFAULT_USER
        self.acl_user: acl.User = self._auth_users.default
        self._acl_open = self.acl_user.unrestricted  # every command and key: no per-command check
        self._script_acl = acl.script_acl(self.acl_user)
        self._on_acl_denied = on_acl_denied
        self._clock = clock
        self.client_info: Callable[[], bytes] = lambda: b"id=%d user=%s" % (self.id, self.user.encode())
        self._parser: RequestParser | None = RequestParser(
            max_bulk_len=max_bulk_bytes, max_array_len=max_array_len, max_inline_len=max_inline_bytes
        )
        self._max_query_buffer = max_query_buffer_bytes
        self._max_pending = max_pending
        self._role = role
        self._on_command = on_command
        self._on_error = on_error
        self.authenticated = not self._auth_users.default_user_has_password
        self._parser.authenticated = self.authenticated
        self.protocol = 2
        self.readonly = False
        self.name = b""
        self.lib = b""
        self.mode = Mode.NORMAL
        self.tracking = ClientTracking()  # CLIENT TRACKING's options for this connection (tracking.py)
        self.on_tracking_off: Callable[[], None] = lambda: None  # RESET: the shell frees the node's entries
        self.closing = False  # QUIT or bad input: no more commands; close once replies are out
        self.bad_input = False  # closing because of a protocol error (unread input may follow)
        self.pending = 0  # commands handed out and not completed
        self.commands_parsed = 0  # complete commands read so far (the server's half-sent deadline)
        self._replies: deque[Slot] = deque()
        self._reading_paused = False
        self._own: dict[str, Callable[[list[bytes]], Any]] = {
            "auth": self._auth,
            "hello": self._hello,
            "readonly": lambda args: self._set_readonly(True),
            "readwrite": lambda args: self._set_readonly(False),
            "quit": self._quit,
            "multi": self._multi_start,
            "exec": self._without_multi,
            "discard": self._without_multi,
            "unwatch": self._unwatch,
            "acl": self._acl,
        }
        # MULTI state: the queue, its size, whether a refusal doomed it, the watched keys.
        self.watches = WatchSet()
        self._queue: list[tuple[Spec, list[bytes]]] = []
        self._queue_bytes = 0
        self._queue_doomed = False
        self._queue_over_limit = False
        self._over_limit_reply = b""
        # Pub/sub: this connection's subscriptions (the node's registry is `pubsub`); pushes
        # (messages) join the reply queue in arrival order, `on_push` tells the shell.
        self.subscriptions = Subscriptions()
        self._pubsub = pubsub
        self.on_push: Callable[[bool], None] = lambda now: None  # now: send at once, not at the end of the burst
        self.unsent_push_bytes = 0  # pushed and still queued here (behind an unanswered reply)
        self._pubsub_own: dict[str, Callable[[list[bytes]], bytes]] = {
            "subscribe": self._subscribe,
            "ssubscribe": self._ssubscribe,
            "psubscribe": self._psubscribe,
            "unsubscribe": self._unsubscribe,
            "sunsubscribe": self._sunsubscribe,
            "punsubscribe": self._punsubscribe,
            "reset": self._reset,
        }
        # A command that passed the gates (known, arity, auth) goes to its mode's router;
        # MULTI (queue until EXEC) and subscribe mode (only (P)SUBSCRIBE, PING, ...) add theirs.
        self._by_mode: dict[Mode, Callable[[Spec, list[bytes]], Command | None]] = {
            Mode.NORMAL: self._normal,
            Mode.MULTI: self._multi,
        }

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes) -> None:
        """Bytes from the client (ignored once the connection is closing)."""
        if not self.closing and self._parser is not None:
            self._parser.feed(data)

    def next_event(self) -> Command | ProtocolFailure | Any:
        """The next command to execute, NEED_DATA, or ProtocolFailure. Commands the connection
        answers itself (AUTH, HELLO, READONLY, QUIT, refusals) only queue their reply."""
        while not self.closing and self._parser is not None and not self.hold_seconds:
            parser = self._parser
            try:
                args = parser.next()
            except ProtocolError as exc:
                return self._fail(str(exc))
            if args is None:
                if parser.buffered > self._max_query_buffer:
                    self._parser = None  # free the buffer now
                    return self._fail("Protocol error: query buffer limit exceeded (limits.max_query_buffer_bytes)", over_limit=True)
                return NEED_DATA
            self.commands_parsed += 1
            event = self._route(args)
            if event is not None:
                return event
        return NEED_DATA

    @property
    def buffered(self) -> int:
        """Input received and not yet handed out (what the query buffer limit bounds)."""
        return self._parser.buffered if self._parser is not None else 0

    @property
    def in_frame(self) -> bool:
        """A command has started arriving and is not complete (for the half-sent deadline)."""
        return self._parser is not None and self._parser.in_frame

    # ----------------------------------------------------------------- output
    def complete(self, slot: Slot, data: bytes) -> None:
        """The reply to a handed-out command."""
        slot.data = data
        self.pending -= 1

    def data_to_send(self) -> bytes:
        """Replies ready to leave, in request order (b"" when the next one is not ready)."""
        replies = self._replies
        if not replies or replies[0].data is None:
            return b""  # the common case after each completion in a pipeline: nothing new in order
        first = replies.popleft().data
        if not replies:
            self.unsent_push_bytes = 0
            return first  # type: ignore[return-value]
        if replies[0].data is None:
            return first  # type: ignore[return-value]
        out = [first]
        while replies and replies[0].data is not None:
            out.append(replies.popleft().data)
        if not replies:
            self.unsent_push_bytes = 0
        return b"".join(out)  # type: ignore[arg-type]

    @property
    def finished(self) -> bool:
        """Closing, with every reply handed out by data_to_send: close the transport now."""
        return self.closing and not self._replies

    def reading_paused(self, writing_paused: bool = False) -> bool:
        """Whether to stop reading from the client: its replies are not being read, or too
        many of its commands are in flight (resume once half of them are answered)."""
        limit = self._max_pending
        if self.hold_seconds:
            return True
        if writing_paused or self.pending >= limit:
            self._reading_paused = True
        elif self._reading_paused and self.pending <= limit // 2:
            self._reading_paused = False
        return self._reading_paused

    # ---------------------------------------------------------------- routing
    def _route(self, args: list[bytes]) -> Command | None:
        spec = lookup(args[0])
        if spec is None:
            self._queue_doomed |= self.mode is Mode.MULTI  # a refusal while queuing dooms EXEC
            self._error("ERR", unknown_command_message(args))
            return None
        if not spec.arity_ok(len(args)):
            self._queue_doomed |= self.mode is Mode.MULTI  # a refusal while queuing dooms EXEC
            self._error("ERR", wrong_arity_message(spec.name))
            return None
        if not self.authenticated and "no_auth" not in spec.flags:
            self._replies.append(Slot(NOAUTH_REPLY))
            return None
        if not self._acl_open:  # checked once, here, where the client connected
            denial = self.acl_user.check(spec, args)
            if denial is not None:
                self._deny(spec, denial)
                return None
        if self.mode is Mode.NORMAL:  # the common case, without hashing the enum per command
            if self.protocol == 2 and self.subscriptions.total and spec.name not in SUBSCRIBED_ALLOWED:
                self._error("ERR", f"Can't execute '{acl.unit_of(spec, args)}': only (P|S)SUBSCRIBE / "
                                   "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
                return None
            return self._normal(spec, args)
        return self._by_mode[self.mode](spec, args)

    def _normal(self, spec: Spec, args: list[bytes]) -> Command | None:
        """Mode.NORMAL: answer connection commands here, hand out the rest."""
        self._on_command(spec.name)
        pubsub = self._pubsub_own.get(spec.name)
        if pubsub is not None:
            try:
                self._replies.append(Slot(pubsub(args)))
            except CommandError as err:
                self._error(resp_prefix(err), err.message)
            return None
        if spec.name == "ping" and self.protocol == 2 and self.subscriptions.total:
            # Redis's RESP2 PING in subscribe mode: ["pong", argument or ""]
            self._replies.append(Slot(push_bytes((b"pong", args[1] if len(args) > 1 else b""), 2)))
            return None
        own = self._own.get(spec.name)
        if own is not None:
            if spec.name != "multi":  # as Redis: CLIENT CACHING lasts one command (or one MULTI ... EXEC)
                self.tracking.caching = False
            try:
                reply = own(args)
            except CommandError as err:
                self._error(resp_prefix(err), err.message)
                return None
            self._replies.append(Slot(encode_reply(reply, self.protocol)))
            return None
        if spec.name == "raftcache" and is_tagged_exec(args):
            self._error("ERR", "EXEC without MULTI")
            return None
        watches = None
        if spec.name == "watch":
            watches = self.watches
            watches.pending += 1  # the server records the indexes when its read returns
        return self._hand_out(spec, args, watches)

    def _hand_out(self, spec: Spec, args: list[bytes], watches: WatchSet | None = None,
                  queued: tuple[tuple[Spec, list[bytes]], ...] = ()) -> Command:
        slot = Slot()
        self._replies.append(slot)
        self.pending += 1
        return Command(spec, args, slot, self.protocol, self.readonly, watches, queued, self._script_acl)

    # ----------------------------------------------------------------- pub/sub
    def push(self, data: bytes, *, now: bool = False) -> None:
        """A message for the client (a pub/sub message from the node's PubSubHub, a CLIENT
        TRACKING invalidation); the shell writes it and enforces the output-buffer limit,
        at once when `now` (the hub's last push to this connection in a burst; a
        connection's invalidations of one applied entry, joined), else once at the end of
        the loop's current callbacks.
        It goes behind every reply already computed and ahead of replies still being
        computed, as Redis's single thread would order them: a reply computed before the
        change a push announces must reach the client first (or a client-side cache would
        keep a value after its invalidation), and one computed later may reflect it."""
        if self.closing:
            return
        replies = self._replies
        i = len(replies)
        while i and replies[i - 1].data is None:
            i -= 1
        if i == len(replies):
            replies.append(Slot(data))
        else:
            replies.insert(i, Slot(data))
        self.unsent_push_bytes += len(data)
        self.on_push(now)

    def disconnect(self) -> None:
        """Close once the replies and messages queued so far have left (the node's hub asks:
        it skipped messages by installing a snapshot)."""
        if not self.closing:
            self.closing = True
            self.on_push(False)

    def _hub(self) -> PubSubHub:
        if self._pubsub is None:
            raise CommandError("pub/sub is not available on this connection")
        return self._pubsub

    def _subscribe(self, args: list[bytes]) -> bytes:
        return self._hub().subscribe(self, args[1:])

    def _ssubscribe(self, args: list[bytes]) -> bytes:
        return self._hub().subscribe(self, args[1:], shard=True)

    def _psubscribe(self, args: list[bytes]) -> bytes:
        return self._hub().psubscribe(self, args[1:])

    def _unsubscribe(self, args: list[bytes]) -> bytes:
        return self._hub().unsubscribe(self, args[1:])

    def _sunsubscribe(self, args: list[bytes]) -> bytes:
        return self._hub().unsubscribe(self, args[1:], shard=True)

    def _punsubscribe(self, args: list[bytes]) -> bytes:
        return self._hub().punsubscribe(self, args[1:])

    def drop_subscriptions(self) -> None:
        """The connection is gone: leave the node's registry."""
        if self._pubsub is not None:
            self._pubsub.drop(self)

    def _reset(self, args: list[bytes]) -> bytes:
        """RESET (Redis 6.2): discard MULTI and WATCH, leave every subscription, READWRITE,
        RESP2, no name, and the default user (unauthenticated if it has a password)."""
        self.drop_subscriptions()
        if self.tracking.on:  # RESET turns CLIENT TRACKING off too (Redis's clearClientConnectionState)
            self.on_tracking_off()
        self._end_multi()
        self.readonly = False
        self.protocol = 2
        self.name = b""
        self.user = DEFAULT_USER
        self.acl_user = self._auth_users.default
        self._acl_open = self.acl_user.unrestricted
        self._script_acl = acl.script_acl(self.acl_user)
        self.authenticated = not self._auth_users.default_user_has_password
        if self._parser is not None:
            self._parser.authenticated = self.authenticated
        return b"+RESET\r\n"

    # ------------------------------------------------------------ transactions
    def _multi(self, spec: Spec, args: list[bytes]) -> Command | None:
        """Mode.MULTI: queue, except what ends or cannot join a transaction."""
        self._on_command(spec.name)
        name = spec.name
        if name == "exec" or (name == "raftcache" and is_tagged_exec(args)):
            return self._exec(spec, args)
        if name == "discard":
            self.tracking.caching = False
            self._end_multi()
            self._replies.append(Slot(encode_reply(OK, self.protocol)))
        elif name == "multi":
            self._error("ERR", "MULTI calls can not be nested")  # as Redis: the queue survives
        elif name == "watch":
            self._error("ERR", "WATCH inside MULTI is not allowed")
        elif name == "quit":
            self._replies.append(Slot(encode_reply(self._quit(args), self.protocol)))
        elif spec.kind is Kind.LOCAL and name not in QUEUEABLE_LOCAL:
            self._queue_doomed = True
            self._error("ERR", "Command not allowed inside a transaction")
        elif (problem := _queue_problem(spec, args)) is not None:
            self._queue_doomed = True  # as Redis: an unknown subcommand dooms the transaction
            self._error("ERR", problem)
        else:
            self._enqueue(spec, args)
        return None

    def _enqueue(self, spec: Spec, args: list[bytes]) -> None:
        # Charged against the query buffer limit: a queue is input held for later, and a
        # client must not grow one without bound (1M queued commands cost < 300 MB).
        self._queue_bytes += QUEUED_COMMAND_OVERHEAD + sum(len(a) for a in args)
        if self._queue_over_limit or self._queue_bytes > self._max_query_buffer:
            if not self._queue_over_limit:
                self._queue = []  # free it now; the transaction can only be discarded
                self._queue_doomed = self._queue_over_limit = True
                self._over_limit_reply = encode_error(
                    "ERR",
                    f"transaction queue limit exceeded (limits.max_query_buffer_bytes = {self._max_query_buffer}, "
                    f"{QUEUED_COMMAND_OVERHEAD} bytes per command plus its arguments)",
                )
            self._on_error("ERR")
            self._replies.append(Slot(self._over_limit_reply))
            return
        self._queue.append((spec, args))
        self._replies.append(Slot(encode_reply(QUEUED, self.protocol)))

    def _exec(self, spec: Spec, args: list[bytes]) -> Command | None:
        queued, watches, doomed = tuple(self._queue), self.watches, self._queue_doomed
        self._end_multi()
        if doomed:
            self._error("EXECABORT", "Transaction discarded because of previous errors.")
            return None
        return self._hand_out(spec, args, watches, queued)

    def _end_multi(self) -> None:
        """EXEC or DISCARD: back to normal; the watched keys are forgotten too."""
        self.mode = Mode.NORMAL
        self.watches = WatchSet()
        self._queue = []
        self._queue_bytes = 0
        self._queue_doomed = self._queue_over_limit = False

    def _multi_start(self, args: list[bytes]) -> Any:
        self.mode = Mode.MULTI
        return OK

    def _without_multi(self, args: list[bytes]) -> Any:
        raise CommandError(f"{args[0].decode('utf-8', 'replace').upper()} without MULTI")

    def _unwatch(self, args: list[bytes]) -> Any:
        self.watches = WatchSet()  # a WATCH read still in flight records into the old set
        return OK

    def _deny(self, spec: Spec, denial: acl.Denial) -> None:
        """NOPERM, as Redis 7.0 words it; logged in ACL LOG; a transaction being queued is doomed."""
        self._on_acl_denied(denial.reason)
        self._auth_users.log.add(self._clock(), denial.reason, "toplevel", denial.object, self.user, self.client_info())
        message = "NOPERM " + acl.NOPERM[denial.reason].format(denial.object)
        if spec.name == "exec":  # as Redis: a refused EXEC aborts the transaction
            self._end_multi()
            self._error("EXECABORT", "Transaction discarded because of: " + message)
            return
        self._queue_doomed |= self.mode is Mode.MULTI
        self._error("NOPERM", message[len("NOPERM "):])

    def _error(self, prefix: str, message: str) -> None:
        self._on_error(prefix)
        self._replies.append(Slot(encode_error(prefix, message)))

    def _fail(self, message: str, *, over_limit: bool = False) -> ProtocolFailure:
        self._replies.append(Slot(encode_error("ERR", message)))
        self.closing = self.bad_input = True
        return ProtocolFailure(message, over_limit)

    # ----------------------------------------------------- connection commands
    def release(self) -> None:
        """The hold after a failed AUTH is over: commands are read again."""
        self.hold_seconds = 0.0

    def _auth(self, args: list[bytes]) -> Any:
        if len(args) > 3:
            raise CommandError("syntax error")
        if len(args) == 2 and not self._auth_users.has_passwords:
            # Redis refuses only the one-argument form then: AUTH <user> <pass> (and HELLO's
            # AUTH) still log in, `default` with any password while it is nopass.
            raise CommandError(
                "AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        user = DEFAULT_USER if len(args) == 2 else args[1].decode("utf-8", "replace")
        account = self._auth_users.authenticate(user, args[-1])
        if account is None:
            self.auth_failures += 1
            self.hold_seconds = self._throttle.delay_after(self.auth_failures)
            self._on_auth_failure()
            self._auth_users.log.add(self._clock(), "auth", "toplevel", "AUTH", user, self.client_info())
            raise WrongPassError()
        self.auth_failures = 0
        self.user = user
        self.acl_user = account
        self._acl_open = account.unrestricted
        self._script_acl = acl.script_acl(account)
        self.authenticated = True
        if self._parser is not None:
            self._parser.authenticated = True
        return OK

    def _hello(self, args: list[bytes]) -> Any:
        version = self.protocol
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
                self._auth([b"auth", args[i + 1], args[i + 2]])
                i += 3
            elif option == b"SETNAME" and i + 1 < len(args):
                self.name = args[i + 1]
                i += 2
            else:
                raise CommandError(f"Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
        if not self.authenticated:
            raise NoAuthError(
                "HELLO must be called with the client already authenticated, otherwise the "
                "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client "
                "and select the RESP protocol version at the same time"
            )
        self.protocol = version
        return Map(
            {
                b"server": b"redis",
                b"version": REDIS_VERSION.encode(),
                b"proto": version,
                b"id": self.id,
                b"mode": b"standalone",
                b"role": b"master" if self._role() == "leader" else b"replica",
                b"modules": [],
            }
        )

    def _set_readonly(self, on: bool) -> Any:
        self.readonly = on
        return OK

    def _quit(self, args: list[bytes]) -> Any:
        self.closing = True
        return OK

    # ------------------------------------------------------------------- ACL
    def _acl(self, args: list[bytes]) -> Any:
        sub = args[1].lower().decode("utf-8", "replace")
        entry = _ACL_SUBCOMMANDS.get(sub)
        if entry is None:
            raise CommandError(f"unknown subcommand '{args[1].decode('utf-8', 'replace')[:128]}'. Try ACL HELP.")
        arity, handler = entry
        if not (len(args) == arity if arity >= 0 else len(args) >= -arity):
            raise CommandError(wrong_arity_message(f"acl|{sub}"))
        return handler(self, args)

    def _acl_whoami(self, args: list[bytes]) -> Any:
        return self.user.encode()

    def _acl_users(self, args: list[bytes]) -> Any:
        return [name.encode() for name in sorted(self._auth_users.users)]

    def _acl_list(self, args: list[bytes]) -> Any:
        users = self._auth_users.users
        return [users[name].describe().encode() for name in sorted(users)]

    def _acl_getuser(self, args: list[bytes]) -> Any:
        user = self._auth_users.users.get(args[2].decode("utf-8", "replace"))
        return None if user is None else user.getuser()

    def _acl_cat(self, args: list[bytes]) -> Any:
        if len(args) == 2:
            return [cat.encode() for cat in acl.CATEGORIES]
        if len(args) > 3:
            raise CommandError(wrong_arity_message("acl|cat"))
        category = args[2].lower().decode("utf-8", "replace")
        try:
            return [unit.encode() for unit in acl.category_members(category)]
        except KeyError:
            raise CommandError(f"Unknown category '{args[2].decode('utf-8', 'replace')}'") from None

    def _acl_log(self, args: list[bytes]) -> Any:
        if len(args) > 3:
            raise CommandError(wrong_arity_message("acl|log"))
        log = self._auth_users.log
        if len(args) == 3 and args[2].upper() == b"RESET":
            log.reset()
            return OK
        count = None
        if len(args) == 3:
            count = parse_int_arg(args[2])
            if count < 0:
                raise NotIntegerError()
        return log.reply(self._clock(), count)

    def _acl_read_only(self, args: list[bytes]) -> Any:
        raise CommandError(
            f"ACL {args[1].decode('utf-8', 'replace').upper()} is not supported: users come from the [[users]] "
            "tables of the cluster file, the same on every node (edit it and restart the nodes)"
        )

    def _acl_help(self, args: list[bytes]) -> Any:
        return [SimpleString(line) for line in _ACL_HELP]


_ACL_HELP = [
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "GETUSER <username>",
    "    Get the user's details.",
    "LIST",
    "    Show users details in config file format.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "(SETUSER, DELUSER, SAVE, LOAD: users come from the [[users]] tables of the cluster file.)",
    "HELP",
    "    Prints this help.",
]
# ACL's subcommands: name -> (arity, handler)
_ACL_SUBCOMMANDS: dict[str, tuple[int, Callable[[Connection, list[bytes]], Any]]] = {
    "whoami": (2, Connection._acl_whoami),
    "users": (2, Connection._acl_users),
    "list": (2, Connection._acl_list),
    "getuser": (3, Connection._acl_getuser),
    "cat": (-2, Connection._acl_cat),
    "log": (-2, Connection._acl_log),
    "help": (2, Connection._acl_help),
    "setuser": (-3, Connection._acl_read_only),
    "deluser": (-3, Connection._acl_read_only),
    "save": (2, Connection._acl_read_only),
    "load": (2, Connection._acl_read_only),
}


def _queue_problem(spec: Spec, args: list[bytes]) -> str | None:
    """Why Redis would refuse to queue this command in MULTI beyond arity (a container
    command's unknown subcommand), or None."""
    check = QUEUE_CHECKS.get(spec.name)
    if check is None:
        return None
    try:
        check(args)
    except CommandError as err:
        return err.message
    return None
