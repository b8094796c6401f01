"""The change feed: what the state machine did, entry by entry, handed to node-local listeners.

Contract (pub/sub, keyspace notifications, client tracking and watch all build on it):

* While it applies an entry the state machine records, in apply order, one item per change:

  - ``KeyEvent(seq, event, key, origin, value)`` for every key change. ``event`` is the name
    Redis 7.0 gives it in its ``notifyKeyspaceEvent`` calls (``set``, ``del``, ``expire``,
    ``expired``, ``evicted``, ``rename_from``, ``rename_to``, ``copy_to``, ``new``, ``hset``,
    ``lpush``, ``zincr``, ...); ``KeyEvent.klass`` is its notify-keyspace-events class letter
    (``EVENT_CLASS``). A collection a command empties yields the command's event, then
    ``del`` (as Redis). ``origin`` is the exactly-once tag ``(client_id, seq)`` of the
    command that caused it (every write from a node carries one: the node's own session
    for plain Redis clients), None for expiry sweeps, evictions and untagged entries.
    ``value`` is the key's string value right after the event, only when some listener asked
    for values (``add_listener(..., values=True)``), and None for collections or gone keys.
  - ``Message(seq, channel, payload, origin, shard)`` for a PUBLISH (SPUBLISH: ``shard``).
    The state machine does not keep it: it exists only as this output.
  - One ``flushall`` KeyEvent with ``key`` None for FLUSHALL (Redis sends no keyspace
    notification for it; tracking and watchers need to know everything went).

* ``seq`` is a **replicated per-item counter** kept by the state machine: every item above
  takes the next number, whether or not anyone listens, so the same item has the same seq on
  every replica, seqs increase strictly along the log and are dense (no holes). The counter
  is part of the replicated state (snapshots and the digest carry it); the items are not.
  Why not (log index, position): the consensus layer does not hand ``apply`` the entry's
  index (pysyncobj applies its own no-op and membership entries without us, so the index is
  only inferable from internals), and a dense counter lets any receiver see a gap by itself:
  if the seq it gets is not the last one + 1 (for a full stream), it missed something.
* Recording costs one counter increment per item when nobody listens: the items are built
  only while ``Feed`` has a listener (``CacheStateMachine.recording``, read at the start of
  each entry), and values are sliced out only while a listener asked for them.
* ``Feed`` is node-local. The replica hands it each applied entry's items on the Raft thread
  right after the entry is applied (``Feed.deliver``), and ``Gap(seq)`` after a snapshot is
  installed (the items up to ``seq`` were never applied here one by one). Listeners must not
  block or do I/O: they enqueue (a connection's output buffer, a queue) and return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "DATA_EVENTS",
    "EVENT_CLASS",
    "STORE_COMMANDS",
    "Feed",
    "FeedItem",
    "Gap",
    "KeyEvent",
    "Listener",
    "Message",
    "data_events",
]

log = logging.getLogger(__name__)

# notify-keyspace-events class of every event name the state machine emits (Redis 7.0's).
EVENT_CLASS: dict[str, str] = {
    # generic (g)
    "del": "g", "expire": "g", "persist": "g", "rename_from": "g", "rename_to": "g", "copy_to": "g",
    # strings ($)
    "set": "$", "setrange": "$", "incrby": "$", "incrbyfloat": "$", "append": "$",
    # lists (l)
    "lpush": "l", "rpush": "l", "lpop": "l", "rpop": "l", "linsert": "l", "lset": "l", "lrem": "l",
    "ltrim": "l",
    # hashes (h)
    "hset": "h", "hdel": "h", "hincrby": "h", "hincrbyfloat": "h",
    # sets (s)
    "sadd": "s", "srem": "s", "spop": "s", "sinterstore": "s", "sunionstore": "s", "sdiffstore": "s",
    # sorted sets (z)
    "zadd": "z", "zincr": "z", "zrem": "z", "zremrangebyscore": "z", "zremrangebyrank": "z",
    "zremrangebylex": "z", "zpopmin": "z", "zpopmax": "z", "zunionstore": "z", "zinterstore": "z",
    "zdiffstore": "z", "zrangestore": "z",
    "expired": "x",
    "evicted": "e",
    "new": "n",  # key creation (Redis 7.0's 'n', not part of 'A')
    "flushall": "",  # never a keyspace notification (Redis sends none)
}


class KeyEvent(NamedTuple):
    seq: int
    event: str
    key: bytes | None  # None only for "flushall"
    origin: tuple[int, int] | None = None  # (client_id, seq) of the causing command
    value: bytes | None = None  # with values=True listeners: the string value after the event

    @property
    def klass(self) -> str:
        """The notify-keyspace-events class letter ('g', '$', 'l', ..., 'x', 'e', 'n')."""
        return EVENT_CLASS[self.event]


class Message(NamedTuple):
    seq: int
    channel: bytes
    payload: bytes
    origin: tuple[int, int] | None = None
    shard: bool = False  # SPUBLISH


class Gap(NamedTuple):
    """Items up to and including ``seq`` were not delivered here (a snapshot was installed)."""

    seq: int


FeedItem = KeyEvent | Message | Gap
Listener = Callable[[Sequence[FeedItem]], None]


# ------------------------------------------------------------- data-type command events
# The event(s) a data-type command yields for a key it changed (`Keyspace.changed`), by
# command name. A string: always that event; a function (args, key) -> names: the event
# depends on the arguments (direction, INCR) or on which of the command's keys changed.
def _direction(at: Callable[[Sequence[bytes]], int], left: str, right: str) -> Callable[[Sequence[bytes], bytes], tuple[str, ...]]:
    def names(args: Sequence[bytes], key: bytes) -> tuple[str, ...]:
        return (left,) if args[at(args)].upper() in (b"LEFT", b"MIN") else (right,)

    return names


def _move(pop_at: int | None, push_at: int | None) -> Callable[[Sequence[bytes], bytes], tuple[str, ...]]:
    """LMOVE-like: the source gets the pop event, the destination the push event (both, push
    first as Redis, when they are one list; for two lists lists.move changes the destination
    first, as Redis). None: RPOPLPUSH's fixed right pop / left push."""

    def names(args: Sequence[bytes], key: bytes) -> tuple[str, ...]:
        pop = "rpop" if pop_at is None or args[pop_at].upper() == b"RIGHT" else "lpop"
        push = "lpush" if push_at is None or args[push_at].upper() == b"LEFT" else "rpush"
        if args[1] == args[2]:
            return (push, pop)
        return (pop,) if key == args[1] else (push,)

    return names


def _smove(args: Sequence[bytes], key: bytes) -> tuple[str, ...]:
    return ("srem",) if key == args[1] else ("sadd",)


_ZADD_FLAGS = frozenset({b"NX", b"XX", b"CH", b"INCR", b"GT", b"LT"})


def _zadd(args: Sequence[bytes], key: bytes) -> tuple[str, ...]:
    for arg in args[2:]:  # flags come before the first score
        word = arg.upper()
        if word not in _ZADD_FLAGS:
            break
        if word == b"INCR":
            return ("zincr",)
    return ("zadd",)


DATA_EVENTS: dict[bytes, str | Callable[[Sequence[bytes], bytes], tuple[str, ...]]] = {
    b"hset": "hset", b"hmset": "hset", b"hsetnx": "hset", b"hdel": "hdel", b"hincrby": "hincrby",
    b"hincrbyfloat": "hincrbyfloat",
    b"lpush": "lpush", b"lpushx": "lpush", b"rpush": "rpush", b"rpushx": "rpush", b"lpop": "lpop",
    b"rpop": "rpop", b"lset": "lset", b"lrem": "lrem", b"ltrim": "ltrim", b"linsert": "linsert",
    b"lmove": _move(3, 4), b"rpoplpush": _move(None, None), b"blmove": _move(3, 4),
    b"brpoplpush": _move(None, None),
    b"lmpop": _direction(lambda a: int(a[1]) + 2, "lpop", "rpop"),
    b"blmpop": _direction(lambda a: int(a[2]) + 3, "lpop", "rpop"),
    b"blpop": "lpop", b"brpop": "rpop",
    b"sadd": "sadd", b"srem": "srem", b"spop": "spop", b"smove": _smove, b"sinterstore": "sinterstore",
    b"sunionstore": "sunionstore", b"sdiffstore": "sdiffstore",
    b"zadd": _zadd, b"zincrby": "zincr", b"zrem": "zrem", b"zremrangebyscore": "zremrangebyscore",
    b"zremrangebyrank": "zremrangebyrank", b"zremrangebylex": "zremrangebylex", b"zpopmin": "zpopmin",
    b"zpopmax": "zpopmax", b"bzpopmin": "zpopmin", b"bzpopmax": "zpopmax",
    b"zmpop": _direction(lambda a: int(a[1]) + 2, "zpopmin", "zpopmax"),
    b"bzmpop": _direction(lambda a: int(a[2]) + 3, "zpopmin", "zpopmax"),
    b"zunionstore": "zunionstore", b"zinterstore": "zinterstore", b"zdiffstore": "zdiffstore",
    b"zrangestore": "zrangestore",
}
# Commands that replace their destination whole: an empty result deletes it with "del" only.
STORE_COMMANDS = frozenset({b"sinterstore", b"sunionstore", b"sdiffstore", b"zunionstore", b"zinterstore", b"zdiffstore",
                            b"zrangestore"})


def data_events(args: Sequence[bytes], key: bytes) -> tuple[str, ...]:
    """The event names a data-type command (``args``, name first) yields for ``key``."""
    found = DATA_EVENTS.get(args[0]) if args else None
    if found is None:
        return ()
    if type(found) is str:
        return (found,)
    return found(args, key)  # type: ignore[operator]


# ---------------------------------------------------------------------------- the hub
class Feed:
    """Node-local hub: the replica delivers each applied entry's items; listeners get them.

    ``machine`` is the state machine whose ``recording`` / ``record_values`` flags this hub
    sets (it records items only while somebody listens)."""

    def __init__(self, machine: Any) -> None:
        self._machine = machine
        self._lock = threading.Lock()
        self._listeners: tuple[tuple[Listener, bool], ...] = ()  # replaced whole: delivery reads it lock-free

    def add_listener(self, fn: Listener, *, values: bool = False) -> None:
        """Call ``fn(items)`` with each applied entry's items (on the Raft thread). ``values``:
        string values are captured into KeyEvents (costs a copy per changed string)."""
        with self._lock:
            self._listeners = (*self._listeners, (fn, values))
            self._update()

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = tuple(pair for pair in self._listeners if pair[0] != fn)
            self._update()

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def _update(self) -> None:
        self._machine.record_values = any(values for _, values in self._listeners)
        self._machine.recording = bool(self._listeners)

    def deliver(self, items: Sequence[FeedItem]) -> None:
        """Hand one entry's items to every listener; a failing listener is logged and skipped."""
        for fn, _ in self._listeners:
            try:
                fn(items)
            except Exception:
                log.exception("feed listener %r failed", fn)

    def gap(self, seq: int) -> None:
        """A snapshot was installed: items up to ``seq`` will never be delivered here."""
        self.deliver((Gap(seq),))
