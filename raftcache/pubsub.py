"""Pub/sub and keyspace notifications on one node: who subscribes to what, and delivery of
the change feed's messages and key events to them.

Order: PUBLISH is a log entry (``commands.Publish``); the state machine keeps nothing and
hands a ``feed.Message`` to the node's ``Feed`` when it applies the entry, so every node
delivers every message to its own subscribers in log order: subscribers on different nodes
see one common order (each one a gap-free run of it while connected). Keyspace
notifications (``__keyspace@0__:<key>`` / ``__keyevent@0__:<event>``) come from the feed's
KeyEvents the same way, judged with the replicated ``notify-keyspace-events`` flags.

Threading: the Feed listener runs on the Raft thread and only queues each entry's items
(with the flags in force) for the event loop; the registry, matching, encoding and pushes
all run on the loop thread. The hub listens to the Feed only while this node has a
subscription, so with no subscriber the state machine builds no items at all.

Patterns use Redis's glob syntax, matched without backtracking (``redis_semantics.compile_glob``): a
pattern is split at its ``*``s into fixed-length segments found left to right, so a hostile
pattern (``*a*a*a...b``) costs linear time, never exponential.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .errors import CommandError
from .feed import Feed, FeedItem, Gap, KeyEvent, Message
from .redis_semantics import compile_glob

__all__ = [
    "NOTIFY_ERROR",
    "PubSubHub",
    "Subscriber",
    "Subscriptions",
    "notify_flags",
    "parse_notify_setting",
    "push_bytes",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------ notify-keyspace-events
_CLASS_LETTERS = "g$lshzxetdn"  # one bit each (Redis's NOTIFY_GENERIC ... NOTIFY_NEW)
_ALL = "g$lshzxetd"  # 'A' (not 'n', as Redis)
_ORDER = "g$lshzxetdn"  # keyspaceEventsFlagsToString's order of the class letters
NOTIFY_ERROR = (
    "CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - "
    "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
)


def parse_notify_setting(value: bytes) -> str:
    """Redis's keyspaceEventsStringToFlags, stored in its canonical text (CONFIG GET's)."""
    letters: set[str] = set()
    for ch in value.decode("latin-1"):
        if ch == "A":
            letters.update(_ALL)
        elif ch in _CLASS_LETTERS or ch in "KEm":
            letters.add(ch)
        else:
            raise CommandError(NOTIFY_ERROR)
    out = "A" if set(_ALL) <= letters else ""
    if not out:
        out = "".join(ch for ch in _ORDER if ch in letters and ch != "n")
    out += "n" if "n" in letters else ""
    return out + "".join(ch for ch in "KEm" if ch in letters)


def notify_flags(text: str) -> tuple[frozenset[str], bool, bool]:
    """(class letters, keyspace channel on, keyevent channel on) of a stored setting."""
    letters = set(text.replace("A", _ALL))
    return frozenset(letters & set(_CLASS_LETTERS)), "K" in letters, "E" in letters


# ------------------------------------------------------------------------ wire shapes
def push_bytes(parts: Sequence[bytes | int | None], protocol: int) -> bytes:
    """A pub/sub reply or message: an array in RESP2, a push (``>``) in RESP3."""
    out = [b"%c%d\r\n" % (62 if protocol == 3 else 42, len(parts))]
    for part in parts:
        if part is None:
            out.append(b"$-1\r\n" if protocol == 2 else b"_\r\n")
        elif type(part) is int:
            out.append(b":%d\r\n" % part)
        else:
            out += (b"$%d\r\n" % len(part), part, b"\r\n")  # type: ignore[arg-type]
    return b"".join(out)


class Subscriber(Protocol):
    """What the hub needs of a connection (``connection.Connection``)."""

    protocol: int
    subscriptions: Subscriptions

    def push(self, data: bytes, *, now: bool = False) -> None:
        """Queue bytes for the client (messages): never blocks. `now`: the hub has nothing
        more for it in this burst, so the bytes may leave at once."""

    def disconnect(self) -> None:
        """Close once what is queued has left (the node skipped messages: a snapshot)."""


class Subscriptions:
    """One connection's subscriptions (insertion-ordered, as UNSUBSCRIBE lists them)."""

    __slots__ = ("channels", "patterns", "shard")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard: dict[bytes, None] = {}

    @property
    def count(self) -> int:
        """SUBSCRIBE/PSUBSCRIBE's count (channels + patterns; shard channels apart, as Redis)."""
        return len(self.channels) + len(self.patterns)

    @property
    def total(self) -> int:
        return len(self.channels) + len(self.patterns) + len(self.shard)


class PubSubHub:
    """The node's subscription registry and delivery (see the module docstring)."""

    def __init__(self, feed: Feed | None, notify_setting: Callable[[], str], *, max_subscriptions: int = 100_000,
                 max_pattern_bytes: int = 1024) -> None:
        self._feed = feed
        self._notify_setting = notify_setting  # the replicated setting's text, read on the Raft thread
        self.max_subscriptions = max_subscriptions
        self.max_pattern_bytes = max_pattern_bytes
        self._channels: dict[bytes, dict[Subscriber, None]] = {}
        self._shard: dict[bytes, dict[Subscriber, None]] = {}
        self._patterns: dict[bytes, tuple[Callable[[bytes], bool], dict[Subscriber, None]]] = {}
        self._listening = False
        self._lock = threading.Lock()
        self._queue: list[tuple[Sequence[FeedItem], str]] = []
        self._scheduled = False
        self._wake: Callable[[Callable[[], None]], None] | None = None  # loop.call_soon_threadsafe
        self.messages_delivered = 0
        self.keyspace_notifications = 0

    def attach_loop(self, call_soon_threadsafe: Callable[[Callable[[], None]], None]) -> None:
        self._wake = call_soon_threadsafe

    # ------------------------------------------------------------------- registry
    def subscribe(self, sub: Subscriber, channels: Sequence[bytes], *, shard: bool = False) -> bytes:
        """(S)SUBSCRIBE: the confirmations, one per channel."""
        kind = b"ssubscribe" if shard else b"subscribe"
        mine = sub.subscriptions.shard if shard else sub.subscriptions.channels
        table = self._shard if shard else self._channels
        out = []
        for channel in channels:
            if channel not in mine:
                self._check_room(sub)
                mine[channel] = None
                table.setdefault(channel, {})[sub] = None
            count = len(mine) if shard else sub.subscriptions.count
            out.append(push_bytes((kind, channel, count), sub.protocol))
        self._update_listening()
        return b"".join(out)

    def psubscribe(self, sub: Subscriber, patterns: Sequence[bytes]) -> bytes:
        for pattern in patterns:
            if len(pattern) > self.max_pattern_bytes:
                raise CommandError(f"pattern of {len(pattern)} bytes is longer than pubsub.max_pattern_bytes "
                                   f"({self.max_pattern_bytes})")
        out = []
        mine = sub.subscriptions.patterns
        for pattern in patterns:
            if pattern not in mine:
                self._check_room(sub)
                mine[pattern] = None
                entry = self._patterns.get(pattern)
                if entry is None:
                    entry = self._patterns[pattern] = (compile_glob(pattern), {})
                entry[1][sub] = None
            out.append(push_bytes((b"psubscribe", pattern, sub.subscriptions.count), sub.protocol))
        self._update_listening()
        return b"".join(out)

    def unsubscribe(self, sub: Subscriber, channels: Sequence[bytes], *, shard: bool = False) -> bytes:
        """(S)UNSUBSCRIBE [channel ...]: none named means all; nothing to drop still answers."""
        kind = b"sunsubscribe" if shard else b"unsubscribe"
        subs = sub.subscriptions
        mine = subs.shard if shard else subs.channels
        table = self._shard if shard else self._channels
        out = []
        for channel in (channels or list(mine)):
            if mine.pop(channel, 0) is None:
                members = table.get(channel)
                if members is not None:
                    members.pop(sub, None)
                    if not members:
                        del table[channel]
            out.append(push_bytes((kind, channel, len(mine) if shard else subs.count), sub.protocol))
        if not out:
            out.append(push_bytes((kind, None, len(mine) if shard else subs.count), sub.protocol))
        self._update_listening()
        return b"".join(out)

    def punsubscribe(self, sub: Subscriber, patterns: Sequence[bytes]) -> bytes:
        subs = sub.subscriptions
        out = []
        for pattern in (patterns or list(subs.patterns)):
            if subs.patterns.pop(pattern, 0) is None:
                entry = self._patterns.get(pattern)
                if entry is not None:
                    entry[1].pop(sub, None)
                    if not entry[1]:
                        del self._patterns[pattern]
            out.append(push_bytes((b"punsubscribe", pattern, subs.count), sub.protocol))
        if not out:
            out.append(push_bytes((b"punsubscribe", None, subs.count), sub.protocol))
        self._update_listening()
        return b"".join(out)

    def drop(self, sub: Subscriber) -> None:
        """A connection went away (or RESET): forget all of its subscriptions."""
        subs = sub.subscriptions
        if subs.total:
            self.unsubscribe(sub, ())
            self.punsubscribe(sub, ())
            self.unsubscribe(sub, (), shard=True)

    def _check_room(self, sub: Subscriber) -> None:
        if sub.subscriptions.total >= self.max_subscriptions:
            raise CommandError(f"too many subscriptions on this connection (pubsub.max_subscriptions_per_client = "
                               f"{self.max_subscriptions})")

    def _update_listening(self) -> None:
        """Listen to the feed only while someone subscribes here (no cost otherwise)."""
        want = bool(self._channels or self._patterns or self._shard)
        if want != self._listening and self._feed is not None:
            self._listening = want
            if want:
                self._feed.add_listener(self._on_items)
            else:
                self._feed.remove_listener(self._on_items)

    # ------------------------------------------------------------------ PUBSUB
    def channels(self, pattern: bytes | None, *, shard: bool = False) -> list[bytes]:
        matches = compile_glob(pattern) if pattern is not None else None
        table = self._shard if shard else self._channels
        return [ch for ch in table if matches is None or matches(ch)]

    def numsub(self, channels: Sequence[bytes], *, shard: bool = False) -> list[Any]:
        table = self._shard if shard else self._channels
        out: list[Any] = []
        for channel in channels:
            out += (channel, len(table.get(channel, ())))
        return out

    def numpat(self) -> int:
        return len(self._patterns)

    def receivers(self, channel: bytes, *, shard: bool = False) -> int:
        """How many subscriptions here a message on `channel` reaches (PUBLISH's answer)."""
        if shard:
            return len(self._shard.get(channel, ()))
        count = len(self._channels.get(channel, ()))
        for matches, members in self._patterns.values():
            if matches(channel):
                count += len(members)
        return count

    # ------------------------------------------------------------------ delivery
    def _on_items(self, items: Sequence[FeedItem]) -> None:
        """Raft thread: queue the entry's items for the loop (no matching, no I/O here)."""
        setting = self._notify_setting()
        with self._lock:
            self._queue.append((items, setting))
            if self._scheduled or self._wake is None:
                return
            self._scheduled = True
        try:
            self._wake(self._drain)
        except RuntimeError:  # the loop is closed: nobody to deliver to
            pass

    def _drain(self) -> None:
        with self._lock:
            queue, self._queue = self._queue, []
            self._scheduled = False
        self.deliver(queue)

    def deliver(self, entries: Sequence[tuple[Sequence[FeedItem], str]]) -> None:
        """Loop thread: deliver entries' items (each with the notify setting it was applied
        under) as one burst, one push per subscriber (:func:`_send_burst`)."""
        burst: dict[Subscriber, list[bytes]] = {}
        for items, setting in entries:
            self._collect(items, setting, burst)
        _send_burst(burst)

    def _collect(self, items: Sequence[FeedItem], setting: str, burst: dict[Subscriber, list[bytes]]) -> None:
        """Add one entry's messages to each subscriber's share of `burst`, for the caller to
        send as one push per subscriber (:func:`_send_burst`). A gap sends what came before
        it, then disconnects every subscriber."""
        classes, keyspace, keyevent = notify_flags(setting) if setting else (frozenset(), False, False)
        for item in items:
            if type(item) is Gap:
                _send_burst(burst)
                burst.clear()
                self._disconnect_all()
            elif type(item) is Message:
                self._publish(item.channel, item.payload, item.shard, burst)
            elif type(item) is KeyEvent and (keyspace or keyevent) and item.key is not None and item.klass in classes:
                event = item.event.encode()
                self.keyspace_notifications += 1
                if keyspace:
                    self._publish(b"__keyspace@0__:" + item.key, event, False, burst)
                if keyevent:
                    self._publish(b"__keyevent@0__:" + event, item.key, False, burst)

    def _disconnect_all(self) -> None:
        """This node installed a snapshot: the messages in between were never applied here
        one by one, so its subscribers missed them. Closing their connections (after what
        is queued) makes the gap visible, as a disconnect, instead of silent."""
        subscribers: dict[Subscriber, None] = {}
        for table in (self._channels, self._shard):
            for members in table.values():
                subscribers.update(members)
        for _, members in self._patterns.values():
            subscribers.update(members)
        for sub in subscribers:
            sub.disconnect()

    def _publish(self, channel: bytes, payload: bytes, shard: bool, burst: dict[Subscriber, list[bytes]]) -> None:
        """Add one message to the share in `burst` of this node's subscribers of `channel`
        (and of the patterns that match it)."""
        encoded: dict[int, bytes] = {}
        delivered = 0
        members = (self._shard if shard else self._channels).get(channel)
        if members:
            kind = b"smessage" if shard else b"message"
            for sub in list(members):
                data = encoded.get(sub.protocol)
                if data is None:
                    data = encoded[sub.protocol] = push_bytes((kind, channel, payload), sub.protocol)
                burst.setdefault(sub, []).append(data)
                delivered += 1
        if not shard:
            for pattern, (matches, subs) in list(self._patterns.items()):
                if subs and matches(channel):
                    pencoded: dict[int, bytes] = {}
                    for sub in list(subs):
                        data = pencoded.get(sub.protocol)
                        if data is None:
                            data = pencoded[sub.protocol] = push_bytes((b"pmessage", pattern, channel, payload), sub.protocol)
                        burst.setdefault(sub, []).append(data)
                        delivered += 1
        self.messages_delivered += delivered


def _send_burst(burst: dict[Subscriber, list[bytes]]) -> None:
    """One push per subscriber, in the order each first got a message, sent at once: a
    subscriber's bytes leave while the hub goes on to the next, instead of all of them
    waiting for a write pass after the whole burst."""
    for sub, chunks in burst.items():
        sub.push(chunks[0] if len(chunks) == 1 else b"".join(chunks), now=True)
