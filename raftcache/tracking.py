"""Client-side caching (CLIENT TRACKING): node-local, sans-I/O, as Redis 7.0's tracking.c.

A connection that turns tracking on is told, by an ``invalidate`` message, when a key it may
have cached changes. Everything here belongs to one node: which keys its connections read,
which prefixes they broadcast on, where their messages go. Nothing is replicated: each node
learns about changes from its own applied stream (the change feed, ``feed.py``), so an
invalidation leaves a node once that node has applied the write, and a follower's readers are
told by the follower.

* ``ClientTracking``: one connection's state (CLIENT TRACKING's options, CLIENT CACHING's
  one-shot flag, the keys it is tracked for). The connection owns it.
* ``Tracker``: the node's tables. The *default mode* table maps each key a tracking connection
  read to the connection ids that read it; a change to the key invalidates it for them and
  drops the entry (they must read again to be told again), as Redis. It is bounded by
  ``max_keys`` (Redis's ``tracking-table-max-keys``): past it the oldest keys are dropped and
  their readers invalidated, so nothing is ever dropped silently. *BCAST* connections register
  prefixes instead and hear of every change under them. The tracker turns a change into
  ``Invalidation`` values; ``route`` resolves REDIRECT and encodes the bytes to send.

Ordering, which the server's shell provides (see server.py): a read's keys are remembered
before the read is evaluated *and* again when its reply is handed back, on the same event-loop
queue that carries the change feed's events, so a change applied after the read was evaluated
always finds the key in the table; an invalidation is queued behind every reply already
computed on that connection, so it never overtakes a reply that holds the old value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .errors import CommandError, NotIntegerError, SyntaxError_
from .feed import Gap, KeyEvent
from .redis_semantics import parse_int64
from .resp import OK, Map, SetReply, encode_reply

__all__ = [
    "DEFAULT_MAX_KEYS",
    "ClientTracking",
    "Invalidation",
    "Peer",
    "Tracker",
    "TrackingOptions",
    "feed_changes",
    "parse_tracking",
]

DEFAULT_MAX_KEYS = 1_000_000  # Redis's tracking-table-max-keys default

_PUSH_INVALIDATE = b">2\r\n$10\r\ninvalidate\r\n"
_PUSH_REDIR_BROKEN = b">2\r\n$21\r\ntracking-redir-broken\r\n"
_PUBSUB_INVALIDATE = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
INVALIDATE_CHANNEL = b"__redis__:invalidate"


class TrackingOptions(NamedTuple):
    """CLIENT TRACKING's arguments, parsed (the syntax only; the tracker judges the rest)."""

    on: bool
    redirect: int = 0
    bcast: bool = False
    optin: bool = False
    optout: bool = False
    noloop: bool = False
    prefixes: tuple[bytes, ...] = ()


def parse_tracking(args: list[bytes], exists: Callable[[int], bool]) -> TrackingOptions:
    """``CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]``,
    with Redis's errors in Redis's order: options left to right (a REDIRECT's client must be
    connected now, `exists(id)`), then ON/OFF."""
    redirect = 0
    flags: set[bytes] = set()
    prefixes: list[bytes] = []
    i = 3
    while i < len(args):
        word = args[i].upper()
        more = i + 1 < len(args)
        if word == b"REDIRECT" and more:
            if redirect:
                raise CommandError("A client can only redirect to a single other client")
            try:
                redirect = parse_int64(args[i + 1])
            except (ValueError, CommandError):
                raise NotIntegerError() from None
            if redirect <= 0 or not exists(redirect):
                raise CommandError("The client ID you want redirect to does not exist")
            i += 2
        elif word == b"PREFIX" and more:
            prefixes.append(args[i + 1])
            i += 2
        elif word in (b"BCAST", b"OPTIN", b"OPTOUT", b"NOLOOP"):
            flags.add(word)
            i += 1
        else:
            raise SyntaxError_()
    state = args[2].upper()
    if state not in (b"ON", b"OFF"):
        raise SyntaxError_()
    return TrackingOptions(
        state == b"ON", redirect, b"BCAST" in flags, b"OPTIN" in flags, b"OPTOUT" in flags, b"NOLOOP" in flags,
        tuple(prefixes),
    )


class ClientTracking:
    """One connection's tracking state (the connection holds it; the tracker reads it)."""

    __slots__ = ("bcast", "broken_redirect", "caching", "keys", "noloop", "on", "optin", "optout", "prefixes", "redirect")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Tracking off: every option and set back to its default."""
        self.on = False
        self.bcast = False
        self.optin = False
        self.optout = False
        self.noloop = False
        self.caching = False  # CLIENT CACHING YES/NO given for the next command (or transaction)
        self.broken_redirect = False
        self.redirect = 0  # 0: to itself
        self.prefixes: set[bytes] = set()  # BCAST
        self.keys: set[bytes] = set()  # default mode: the keys the table holds for it

    def reads_tracked(self) -> bool:
        """Whether the keys of the command about to run are to be remembered, and CLIENT
        CACHING's flag spent (it lasts one command, or one transaction, as Redis)."""
        if not self.on or self.bcast:
            return False
        given, self.caching = self.caching, False
        if self.optin:
            return given
        if self.optout:
            return not given
        return True

    def flags(self) -> SetReply:
        """CLIENT TRACKINGINFO's flags, in Redis's order (a set in RESP3, as Redis)."""
        out = SetReply([b"on" if self.on else b"off"])
        if self.bcast:
            out.append(b"bcast")
        if self.optin:
            out += [b"optin", b"caching-yes"] if self.caching else [b"optin"]
        if self.optout:
            out += [b"optout", b"caching-no"] if self.caching else [b"optout"]
        if self.noloop:
            out.append(b"noloop")
        if self.broken_redirect:
            out.append(b"broken_redirect")
        return out


class Invalidation(NamedTuple):
    """Tell tracking client `client` (or its REDIRECT target) that `keys` changed; None: all
    keys (FLUSHALL)."""

    client: int
    keys: tuple[bytes, ...] | None


class Peer(NamedTuple):
    """What routing needs to know about a connection: its RESP version and whether it is in
    pub/sub mode (a RESP2 redirect target hears invalidations as ``__redis__:invalidate``
    messages only then, as Redis)."""

    protocol: int
    subscribed: bool


class Tracker:
    """The node's tracking tables (see the module docstring). Used from one thread (the
    server's event loop)."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.max_keys = max_keys  # 0: unbounded (as Redis)
        self.clients: dict[int, ClientTracking] = {}  # connections with tracking on
        # key -> reader id, or a set of ids when several read it (most keys have one reader:
        # an int costs nothing beyond the table slot). Insertion order is eviction order.
        self._table: OrderedDict[bytes, int | set[int]] = OrderedDict()
        self.items = 0  # (key, reader) pairs in the table (INFO's tracking_total_items)
        self._prefixes: dict[bytes, set[int]] = {}  # BCAST: prefix -> client ids
        self._prefix_lengths: dict[int, int] = {}  # distinct prefix lengths -> prefixes of that length
        self._origins: dict[Any, int] = {}  # NOLOOP: origin of an in-flight write -> its client id
        self._noloop = 0  # clients with NOLOOP on

    # ------------------------------------------------------------------ commands
    def tracking(self, client_id: int, state: ClientTracking, args: list[bytes], exists: Callable[[int], bool]) -> Any:
        """CLIENT TRACKING ...; `exists(id)` says whether a client id is connected here."""
        opts = parse_tracking(args, exists)
        if not opts.on:
            self.disable(client_id, state)
            return OK
        if opts.prefixes and not opts.bcast:
            raise CommandError("PREFIX option requires BCAST mode to be enabled")
        if state.on and state.bcast != opts.bcast:
            raise CommandError(
                "You can't switch BCAST mode on/off before disabling tracking for this client, "
                "and then re-enabling it with a different mode."
            )
        if opts.bcast and (opts.optin or opts.optout):
            raise CommandError("OPTIN and OPTOUT are not compatible with BCAST")
        if opts.optin and opts.optout:
            raise CommandError("You can't specify both OPTIN mode and OPTOUT mode")
        if state.on and ((opts.optin and state.optout) or (opts.optout and state.optin)):
            raise CommandError(
                "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
                "and then re-enabling it with a different mode."
            )
        if opts.bcast:
            _check_prefixes(state.prefixes, opts.prefixes)
        self._enable(client_id, state, opts)
        return OK

    def _enable(self, client_id: int, state: ClientTracking, opts: TrackingOptions) -> None:
        if state.noloop:
            self._noloop -= 1
        state.on = True
        state.broken_redirect = False
        state.redirect = opts.redirect
        state.bcast, state.optin, state.optout, state.noloop = opts.bcast, opts.optin, opts.optout, opts.noloop
        if opts.noloop:
            self._noloop += 1
        self.clients[client_id] = state
        if opts.bcast:
            for prefix in opts.prefixes or (b"",):
                if prefix not in state.prefixes:
                    state.prefixes.add(prefix)
                    self._prefixes.setdefault(prefix, set()).add(client_id)
                    self._prefix_lengths[len(prefix)] = self._prefix_lengths.get(len(prefix), 0) + 1

    def disable(self, client_id: int, state: ClientTracking) -> None:
        """Tracking off (CLIENT TRACKING OFF, or the connection closed): its table entries and
        prefixes go now (Redis leaves table entries until the keys change; we free them)."""
        if state.noloop and state.on:
            self._noloop -= 1
        for prefix in state.prefixes:
            ids = self._prefixes[prefix]
            ids.discard(client_id)
            if not ids:
                del self._prefixes[prefix]
            count = self._prefix_lengths[len(prefix)] - 1
            if count:
                self._prefix_lengths[len(prefix)] = count
            else:
                del self._prefix_lengths[len(prefix)]
        for key in state.keys:
            self._unlink(key, client_id)
        state.reset()
        self.clients.pop(client_id, None)
        for origin in [o for o, owner in self._origins.items() if owner == client_id] if self._origins else ():
            del self._origins[origin]

    closed = disable

    @staticmethod
    def caching(state: ClientTracking, args: list[bytes]) -> Any:
        """CLIENT CACHING YES|NO."""
        if not state.on:
            raise CommandError(
                "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"
            )
        word = args[2].upper()
        if word == b"YES":
            if not state.optin:
                raise CommandError("CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        elif word == b"NO":
            if not state.optout:
                raise CommandError("CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        else:
            raise SyntaxError_()
        state.caching = True
        return OK

    @staticmethod
    def getredir(state: ClientTracking) -> int:
        return state.redirect if state.on else -1

    @staticmethod
    def info(state: ClientTracking) -> Map:
        """CLIENT TRACKINGINFO: flags, redirect (0: none; -1: tracking off), prefixes (sorted,
        as Redis's radix tree walks them)."""
        return Map({
            b"flags": state.flags(),
            b"redirect": state.redirect if state.on else -1,
            b"prefixes": sorted(state.prefixes),
        })

    # ------------------------------------------------------------- reads and writes
    def remember(self, client_id: int, keys: Iterable[bytes]) -> None:
        """A tracking connection reads `keys` (default mode): tell it when they change. Called
        before the read is evaluated and again when its reply comes back (see module doc);
        the table may pass ``max_keys`` until ``trim`` runs."""
        state = self.clients.get(client_id)
        if state is None or state.bcast:
            return
        table, mine = self._table, state.keys
        for key in keys:
            if key in mine:
                continue
            mine.add(key)
            self.items += 1
            readers = table.get(key)
            if readers is None:
                table[key] = client_id
            elif type(readers) is int:
                table[key] = {readers, client_id}
            else:
                readers.add(client_id)  # type: ignore[union-attr]

    def trim(self) -> list[Invalidation]:
        """Drop the oldest keys past ``max_keys``; their readers are invalidated (as Redis
        does on overflow: a reader must not keep a value nobody will invalidate)."""
        out: list[Invalidation] = []
        table = self._table
        while self.max_keys and len(table) > self.max_keys:
            key, readers = table.popitem(last=False)
            for client_id in _ids(readers):
                self._forget_key(client_id, key)
                out.append(Invalidation(client_id, (key,)))
        return out

    def wrote(self, client_id: int, origin: Any) -> None:
        """A write from `client_id` was submitted with this feed origin (NOLOOP needs to
        recognise the changes it causes). Call ``written(origin)`` when its reply is back."""
        state = self.clients.get(client_id)
        if state is not None and state.noloop and origin is not None:
            self._origins[origin] = client_id

    def written(self, origin: Any) -> None:
        if self._origins:
            self._origins.pop(origin, None)

    @property
    def watching_origins(self) -> bool:
        """Whether writes need their origins noted (some client has NOLOOP on)."""
        return self._noloop > 0

    # ------------------------------------------------------------------- changes
    def changed(self, keys: Iterable[tuple[bytes, Any]]) -> list[Invalidation]:
        """Keys changed by an applied entry, each with the feed origin of its write (None:
        expiry, eviction, or a write of another node's client). In order, one invalidation
        per key and reader in default mode (as Redis), one per client, prefix and entry in
        BCAST mode (Redis sends BCAST's once per event-loop turn; ours once per entry)."""
        out: list[Invalidation] = []
        table, clients, origins = self._table, self.clients, self._origins
        bcast: dict[tuple[int, bytes], list[bytes]] | None = {} if self._prefixes else None
        for key, origin in keys:
            writer = origins.get(origin) if origins and origin is not None else None
            readers = table.pop(key, None) if table else None
            if readers is not None:
                for client_id in _ids(readers):
                    state = clients.get(client_id)
                    self.items -= 1
                    if state is None:
                        continue
                    state.keys.discard(key)
                    if state.noloop and writer == client_id:
                        continue  # its own write: NOLOOP asked not to hear of it
                    out.append(Invalidation(client_id, (key,)))
            if bcast is not None:
                for length in self._prefix_lengths:
                    prefix = key[:length]
                    for client_id in self._prefixes.get(prefix, ()):
                        if writer == client_id and clients[client_id].noloop:
                            continue
                        bcast.setdefault((client_id, prefix), []).append(key)
        if bcast:
            out += [Invalidation(client_id, tuple(dict.fromkeys(keys_))) for (client_id, _), keys_ in bcast.items()]
        return out

    def apply(self, changes: Iterable[tuple[bytes, Any] | None]) -> list[Invalidation]:
        """An applied entry's changes in order (``feed_changes``): keys, and None where
        everything changed."""
        out: list[Invalidation] = []
        run: list[tuple[bytes, Any]] = []
        for change in changes:
            if change is None:
                if run:
                    out += self.changed(run)
                    run = []
                out += self.flushed()
            else:
                run.append(change)
        if run:
            out += self.changed(run)
        return out

    def flushed(self) -> list[Invalidation]:
        """FLUSHALL: every tracking client hears "everything" (a null key list), NOLOOP or not,
        BCAST or not, as Redis; the table empties."""
        self._table.clear()
        self.items = 0
        for state in self.clients.values():
            state.keys.clear()
        return [Invalidation(client_id, None) for client_id in self.clients]

    # -------------------------------------------------------------------- delivery
    def route(self, inv: Invalidation, peer: Callable[[int], Peer | None]) -> tuple[int, bytes] | None:
        """Where an invalidation goes and its bytes: the client itself (RESP3 push), its
        REDIRECT target (a RESP3 push, or a ``__redis__:invalidate`` message to a RESP2 target
        in pub/sub mode), nothing for a RESP2 client without one. A redirect target that has
        gone is reported to the client (``tracking-redir-broken``), as Redis."""
        state = self.clients.get(inv.client)
        if state is None:
            return None
        target = inv.client
        if state.redirect:
            target = state.redirect
            found = peer(target)
            if found is None:
                state.broken_redirect = True
                own = peer(inv.client)
                if own is None or own.protocol < 3:
                    return None
                return inv.client, _PUSH_REDIR_BROKEN + b":%d\r\n" % target
        else:
            found = peer(target)
            if found is None:
                return None
        keys = list(inv.keys) if inv.keys is not None else None
        if found.protocol >= 3:
            return target, _PUSH_INVALIDATE + encode_reply(keys, 3)
        if state.redirect and found.subscribed:
            return target, _PUBSUB_INVALIDATE + encode_reply(keys, 2)
        return None

    # ---------------------------------------------------------------------- status
    @property
    def total_keys(self) -> int:
        return len(self._table)

    @property
    def total_prefixes(self) -> int:
        return len(self._prefixes)

    def _unlink(self, key: bytes, client_id: int) -> None:
        readers = self._table.get(key)
        if readers is None:
            return
        if type(readers) is int:
            if readers == client_id:
                del self._table[key]
                self.items -= 1
        elif client_id in readers:  # type: ignore[operator]
            readers.discard(client_id)  # type: ignore[union-attr]
            self.items -= 1
            if len(readers) == 1:  # type: ignore[arg-type]
                self._table[key] = next(iter(readers))  # type: ignore[call-overload]

    def _forget_key(self, client_id: int, key: bytes) -> None:
        self.items -= 1
        state = self.clients.get(client_id)
        if state is not None:
            state.keys.discard(key)


def feed_changes(items: Iterable[Any]) -> list[tuple[bytes, Any] | None]:
    """What tracking needs of one applied entry's feed items (feed.py), on the Raft thread:
    ``(key, origin)`` per key event; None where everything may have changed: FLUSHALL, or a
    snapshot installed here (``Gap``: the keys it changed are unknown, so every tracking
    client is told to drop everything, as after FLUSHALL). Messages (PUBLISH) are not keys."""
    out: list[tuple[bytes, Any] | None] = []
    for item in items:
        if type(item) is KeyEvent:
            out.append(None if item.key is None else (item.key, item.origin))
        elif type(item) is Gap:
            out.append(None)
    return out


def _ids(readers: int | set[int]) -> Iterable[int]:
    return (readers,) if type(readers) is int else sorted(readers)  # type: ignore[arg-type]


def _overlap(a: bytes, b: bytes) -> bool:
    """Redis's stringCheckPrefix: one is a prefix of the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _check_prefixes(existing: set[bytes], new: tuple[bytes, ...]) -> None:
    """Redis's checkPrefixCollisionsOrReply: a client's prefixes must not overlap."""
    for i, prefix in enumerate(new):
        for old in sorted(existing):
            if _overlap(old, prefix):
                raise CommandError(
                    f"Prefix '{_text(prefix)}' overlaps with an existing prefix '{_text(old)}'. "
                    "Prefixes for a single client must not overlap."
                )
        for other in new[i + 1:]:
            if _overlap(prefix, other):
                raise CommandError(
                    f"Prefix '{_text(prefix)}' overlaps with another provided prefix '{_text(other)}'. "
                    "Prefixes for a single client must not overlap."
                )


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")
