"""RAFTCACHE WATCH, sans I/O: the node-local history of recent key changes, the state of one
watch stream, and the client's resume cursor.

* ``History`` — a bounded ring of the key events this node applied (``feed.KeyEvent``s,
  kept as ``WatchEvent``), oldest dropped first past ``max_events`` events or ``max_bytes``
  bytes. It knows every event with ``seq > horizon`` up to ``applied``; a watcher resuming
  after a seq below the horizon cannot be served without a gap and gets
  ``WatchCompactedError`` (etcd's "required revision has been compacted"), naming the
  oldest seq it could resume from. The history is output, not replicated state: on restart
  it is refilled by the log replay since the last snapshot (its horizon is that snapshot's
  position), and a snapshot installed from the leader resets it the same way.
  Thread-safety: the Raft thread records, event-loop threads read; one lock.
* ``WatchStream`` — one watcher's position in the history. It *pulls*: whatever the
  history holds after its position, filtered by its glob pattern, in seq order, so catch-up
  and live delivery are one path and each event is handed out exactly once. A seq ahead of
  what this node applied waits (bounded by a deadline) instead of skipping.
* ``WatchCursor`` — the client side: the last seq seen, the frames of a stream decoded into
  events, and where to resume after a failure (any other node, ``FROM`` the last seq). With
  a near-cache, the cursor also tells it what the stream does (up, heard from, down, events),
  so the clients' sync and async drivers only connect, send, read frames and sleep.

Wire format (RESP2 arrays; RESP3 pushes carry the same elements)::

    RAFTCACHE WATCH <pattern> [FROM <seq>] [VALUES]
      -> ["watching", pattern, seq]            the stream starts after seq
      -> ["event", seq, event, key]            one per matching change, in log order
         ["event", seq, event, key, value]     with VALUES (the value after the change, or nil)
      -> ["progress", seq]                     every event up to seq has been delivered
      -> -COMPACTED ... / -ERR ...             the stream ends
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import CommandError, WatchCompactedError
from .redis_semantics import compile_glob

if TYPE_CHECKING:
    from .near_cache import NearCache

__all__ = [
    "EVENT_OVERHEAD_BYTES",
    "History",
    "WatchCursor",
    "WatchEvent",
    "WatchRequest",
    "WatchStream",
    "attach_hub",
    "compacted_error",
    "parse_watch",
    "watch_hub",
]

# What one retained event costs beyond its key and value bytes (the tuple, the seq int, the
# bytes objects' headers, the list slots): measured in tests/unit/test_watch.py.
EVENT_OVERHEAD_BYTES = 200


class WatchEvent(NamedTuple):
    """One change of one key: ``seq`` (identical on every replica, increasing along the
    log), Redis's keyspace-event name (``set``, ``del``, ``expired``, ...), the key, and the
    value after the change when values are captured (else None)."""

    seq: int
    event: str
    key: bytes
    value: bytes | None = None


def compacted_error(seq: int, oldest: int) -> WatchCompactedError:
    return WatchCompactedError(
        f"required seq {seq} has been compacted (oldest available {oldest}); "
        "re-read the keys and watch FROM a newer seq",
        oldest=oldest,
    )


class History:
    """The bounded ring of recent events (see the module docstring)."""

    def __init__(self, max_events: int = 100_000, max_bytes: int = 64 << 20) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("the watch history needs room for at least one event")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._seqs: list[int] = []
        # Plain (seq, event, key, value) tuples, not WatchEvents: an exact tuple of atoms is
        # untracked by the cyclic GC at its first collection, a NamedTuple never is. 100,000
        # tracked events churning through the ring made every node run a full collection
        # (hundreds of ms with a million keys) every ~25,000 changes: the expiry storm's stall.
        self._events: list[tuple[int, str, bytes, bytes | None]] = []
        self._start = 0  # index of the oldest retained event (the prefix is dropped lazily)
        self._bytes = 0
        self.horizon = 0  # every event with seq > horizon is held (or not applied yet)
        self.applied = 0  # every event with seq <= applied has been recorded
        self.epoch = 0  # bumped by reset(): a stream that straddles one may have a gap

    # -------------------------------------------------------------- Raft thread
    def record(self, events: Iterable[tuple[int, str, bytes, bytes | None]], through: int | None = None) -> None:
        """Events of applied entries, in apply order, as (seq, event, key, value) tuples (or
        WatchEvents); `through` (>= their seqs): every event up to it is now recorded (an
        entry may change no key)."""
        with self._lock:
            seqs, kept = self._seqs, self._events
            last = seqs[-1] if len(seqs) > self._start else self.horizon
            for ev in events:
                seq = ev[0]
                if seq <= last:
                    continue  # replayed twice (a log repair re-applies): already held
                seqs.append(seq)
                kept.append(ev if type(ev) is tuple else tuple(ev))  # type: ignore[arg-type]
                self._bytes += _cost(ev)
                last = seq
            self.applied = max(self.applied, last, through or 0)
            self._trim_locked()

    def reset(self, horizon: int) -> None:
        """The state jumped to `horizon` without its events (restart from a snapshot, or a
        snapshot installed from the leader, or a history attached to a running replica):
        nothing at or before it can be replayed. Events after it already held stay."""
        with self._lock:
            live = self._seqs[self._start :]
            keep = bisect.bisect_right(live, horizon)
            events = self._events[self._start + keep :]
            self._seqs, self._events, self._start = live[keep:], events, 0
            self._bytes = sum(_cost(ev) for ev in events)
            self.horizon = horizon
            self.applied = max(self.applied, horizon)
            self.epoch += 1

    def _trim_locked(self) -> None:
        live = len(self._seqs) - self._start
        while live > self.max_events or (self._bytes > self.max_bytes and live > 1):
            ev = self._events[self._start]
            self._bytes -= _cost(ev)
            self.horizon = ev[0]
            self._events[self._start] = None  # type: ignore[call-overload]  # free it now
            self._start += 1
            live -= 1
        if self._start > 1024 and self._start * 2 > len(self._seqs):
            del self._seqs[: self._start]
            del self._events[: self._start]
            self._start = 0

    # ----------------------------------------------------------------- readers
    def read_after(self, seq: int, limit: int = 1000) -> tuple[list[WatchEvent], int]:
        """Up to `limit` events with seq > `seq`, oldest first, and the position they bring a
        reader to (their last seq, or `applied` once nothing more is held). Raises
        WatchCompactedError if events after `seq` were dropped."""
        with self._lock:
            if seq < self.horizon:
                raise compacted_error(seq, self.horizon)
            seqs = self._seqs
            i = bisect.bisect_right(seqs, seq, lo=self._start)
            out = [WatchEvent._make(ev) for ev in self._events[i : i + limit]]
            if i + limit >= len(seqs):
                return out, max(seq, self.applied)
            return out, out[-1].seq

    def check_start(self, seq: int) -> None:
        with self._lock:
            if seq < self.horizon:
                raise compacted_error(seq, self.horizon)

    def __len__(self) -> int:
        return len(self._seqs) - self._start

    @property
    def bytes(self) -> int:
        """Estimated memory held (keys, values and EVENT_OVERHEAD_BYTES per event)."""
        return self._bytes

    def oldest(self) -> int:
        """The oldest seq a watcher may resume FROM."""
        return self.horizon


def _cost(ev: tuple[int, str, bytes, bytes | None]) -> int:
    value = ev[3]
    return EVENT_OVERHEAD_BYTES + len(ev[2]) + (len(value) if value is not None else 0)


# ---------------------------------------------------------------------------- command
@dataclass(frozen=True, slots=True)
class WatchRequest:
    pattern: bytes
    after: int | None  # None: from this node's applied position ("now")
    values: bool


_MAX_PATTERN_BYTES = 1024


def parse_watch(args: list[bytes]) -> WatchRequest:
    """``RAFTCACHE WATCH <pattern> [FROM <seq>] [VALUES]`` (args include ``RAFTCACHE WATCH``)."""
    if len(args) < 3:
        raise CommandError("wrong number of arguments for 'raftcache|watch' command")
    pattern = args[2]
    if len(pattern) > _MAX_PATTERN_BYTES:
        raise CommandError(f"watch pattern longer than {_MAX_PATTERN_BYTES} bytes")
    try:
        compile_glob(pattern)
    except re.error:
        raise CommandError("invalid watch pattern") from None
    after: int | None = None
    values = False
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option == b"FROM" and i + 1 < len(args) and after is None:
            try:
                after = int(args[i + 1])
            except ValueError:
                raise CommandError("FROM needs a seq (an integer >= 0)") from None
            if after < 0:
                raise CommandError("FROM needs a seq (an integer >= 0)")
            i += 2
        elif option == b"VALUES" and not values:
            values = True
            i += 1
        else:
            raise CommandError("syntax error")
    return WatchRequest(pattern, after, values)


# ----------------------------------------------------------------------------- stream
@dataclass(slots=True, eq=False)  # identity: streams are keys of the hub's table
class WatchStream:
    """One watcher: the next events to deliver from a History, in seq order, each once.

    ``pull`` returns frames (plain lists, rendered by the caller in the connection's
    protocol) and raises ``WatchCompactedError`` when the history dropped events this
    stream had not delivered yet (a reader slower than the ring). While the stream's start
    is ahead of the history (``waiting``), nothing is delivered; ``expired(now)`` tells the
    caller to give up with ``future_error()``."""

    request: WatchRequest
    position: int
    epoch: int
    waiting_until: float = 0.0  # > 0: the start seq is ahead of this node; give up then
    delivered: int = 0
    _matches: Callable[[bytes], bool] = field(default=lambda key: True, repr=False)

    @classmethod
    def open(cls, request: WatchRequest, history: History, *, now: float, future_wait_s: float,
             readable: Callable[[bytes], bool] | None = None) -> WatchStream:
        """A stream after `request.after` (or after what this node applied): raises
        WatchCompactedError when that is older than the history. `readable(key)`: the keys
        the watcher may read (an ACL user's key patterns); others are left out."""
        after = history.applied if request.after is None else request.after
        history.check_start(after)
        matches = compile_glob(request.pattern)
        if readable is not None:
            glob = matches
            matches = lambda key: glob(key) and readable(key)
        stream = cls(request, after, history.epoch, _matches=matches)
        if after > history.applied:
            stream.waiting_until = now + future_wait_s
        return stream

    def greeting(self) -> list[Any]:
        return [b"watching", self.request.pattern, self.position]

    def pull(self, history: History, limit: int = 1000) -> list[list[Any]]:
        """Frames of the events held after this stream's position (at most `limit` read)."""
        if history.epoch != self.epoch:  # the history was reset under us: events are missing
            raise compacted_error(self.position, history.oldest())
        if self.waiting_until:
            if history.applied < self.position:
                return []
            self.waiting_until = 0.0
        events, position = history.read_after(self.position, limit)
        self.position = position
        matches, values = self._matches, self.request.values
        frames = []
        for ev in events:
            if matches(ev.key) or ev.event == "flushall":  # FLUSHALL changes every key
                frame = [b"event", ev.seq, ev.event.encode(), ev.key]
                if values:
                    frame.append(ev.value)
                frames.append(frame)
        self.delivered += len(frames)
        return frames

    def progress(self) -> list[Any]:
        return [b"progress", self.position]

    def expired(self, now: float) -> bool:
        return bool(self.waiting_until) and now >= self.waiting_until

    def future_error(self, history: History) -> CommandError:
        return CommandError(
            f"FROM seq {self.position} is ahead of this node (applied {history.applied}); "
            "it was not reached in time: is the seq from another cluster?"
        )


# ----------------------------------------------------------------------------- client
class WatchCursor:
    """The client's side of a watch that resumes by itself (I/O-free; ``client.sync`` and
    ``client.async_`` drive it). ``command()`` is what to send on a new connection;
    ``feed(frame)`` turns a frame into a ``WatchEvent`` (or None: greeting, progress) and
    keeps ``last`` (the seq to resume after); a ``WatchCompactedError`` frame raises it.
    ``next_endpoint()`` picks where to reconnect: the next node in turn, so a watcher
    leaves a node that failed it. A driver hands every batch of frames to ``on_frames``
    and every failure to ``on_failure`` (which says how long to wait, or raises)."""

    def __init__(self, pattern: bytes, endpoints: list[str], start_index: int | None = None, values: bool = False,
                 *, deadline: float = 15.0, silence_s: float = 3.0) -> None:
        self.pattern = pattern
        self.deadline = deadline  # give up after this long without a working stream
        self.silence_s = silence_s  # a stream with no frame (not even progress) this long is dead
        self.values = values
        self.last = start_index
        self.endpoints = endpoints
        self._turn = 0
        self.endpoint: str | None = None
        self.last_heard = time.monotonic()
        self.resumes = 0  # reconnections after the first
        self._failing_since: float | None = None
        self._failures = 0
        self._compacted: set[str] = set()  # nodes that said our seq left their history

    def connected(self) -> None:
        """The stream answered (its greeting arrived): failures so far are forgiven."""
        self._failing_since = None
        self._failures = 0
        self._compacted.clear()

    def failed(self, exc: BaseException) -> float:
        """The stream broke with `exc`: re-raise what retrying elsewhere cannot cure (a
        compacted seq, a refused command), else how long to wait before the next node."""
        from .errors import ClusterError, ProtocolError, StorageError

        if isinstance(exc, WatchCompactedError):
            # Histories are node-local: another node (one that did not restart from a
            # snapshot) may still hold the seq. Raise once every node has said no.
            self._compacted.add(self.endpoint or "")
            if len(self._compacted) >= len(set(self.endpoints)):
                raise exc
            return 0.0
        future = isinstance(exc, CommandError) and "ahead of this node" in exc.message
        if not isinstance(exc, (OSError, ProtocolError, ClusterError, StorageError, EOFError)) and not future:
            raise exc
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > self.deadline:
            from .errors import NoLeaderError

            raise NoLeaderError(f"watch: no node could serve the stream for {self.deadline:g}s (last: {exc})") from exc
        self._failures += 1
        # try every node once at once, then back off a little between rounds
        return 0.0 if self._failures % max(1, len(self.endpoints)) else min(1.0, 0.05 * self._failures)

    def command(self) -> list[bytes]:
        args = [b"RAFTCACHE", b"WATCH", self.pattern]
        if self.last is not None:
            args += [b"FROM", b"%d" % self.last]
        if self.values:
            args.append(b"VALUES")
        return args

    def rewind(self) -> None:
        """The next stream starts on the node of the last one, as a first connection."""
        self._turn = max(0, self._turn - 1)
        self.endpoint = None

    def next_endpoint(self) -> str:
        endpoint = self.endpoints[self._turn % len(self.endpoints)]
        self._turn += 1
        if self.endpoint is not None:
            self.resumes += 1
        self.endpoint = endpoint
        return endpoint

    # -------------------------------------------------------- the drivers' side
    def on_frames(self, frames: Iterable[Any], near: NearCache | None = None) -> Iterator[WatchEvent]:
        """The events of a batch of frames, each handed out as soon as it is decoded (an
        error frame raises after the events before it: they were seen, and ``last`` says so)."""
        for frame in frames:
            event = self.on_frame(frame, near)
            if event is not None:
                yield event

    def on_frame(self, frame: Any, near: NearCache | None = None) -> WatchEvent | None:
        """One frame: its event, if any. The greeting means the stream works (``connected``);
        `near` hears that the stream is up, that it spoke, and its events."""
        event = self.feed(frame)
        if frame[0] == b"watching":
            self.connected()
            if near is not None:
                near.up()
        if near is not None:
            near.heard()
            if event is not None:
                near.event(event)
        return event

    def on_failure(self, exc: BaseException, near: NearCache | None = None) -> float:
        """The stream broke (its connection is closed): `near` stops serving at once; then as
        ``failed``: how long to wait before the next node, or raise what no node can cure."""
        if near is not None:
            near.down()
        return self.failed(exc)

    def feed(self, frame: Any) -> WatchEvent | None:
        """One frame of the stream. Raises the error a ``-...`` frame stands for."""
        from .errors import error_from_resp
        from .resp import ErrorReply

        self.last_heard = time.monotonic()
        if isinstance(frame, ErrorReply):
            raise error_from_resp(frame.prefix, frame.message)
        if not isinstance(frame, list) or not frame:
            raise CommandError(f"unexpected watch frame {frame!r}")
        kind = frame[0]
        if kind == b"event":
            seq = int(frame[1])
            if self.last is not None and seq <= self.last:
                return None  # already seen (cannot happen with a correct server; never repeat)
            self.last = seq
            return WatchEvent(seq, frame[2].decode(), frame[3], frame[4] if len(frame) > 4 else None)
        if kind in (b"progress", b"watching"):
            seq = int(frame[-1])
            if self.last is None or seq > self.last:
                self.last = seq
            return None
        raise CommandError(f"unexpected watch frame {frame!r}")


# -------------------------------------------------------------------------------- hub
# Redis's "new" (a key was created) is always followed by the creating command's own event:
# a watcher gets one event per change, so it is left out (its seq is skipped).
SKIPPED_EVENTS = frozenset({"new"})


def attach_hub(replica: Any, hub: WatchHub, *, values: bool | None = None) -> None:
    """Feed `hub` from the replica's change feed (``replica.feed``, feed.py): key events go
    into the history (PUBLISH messages only move its position: seqs count them too), a
    ``Gap`` (a snapshot installed) resets it. Attach before ``replica.start()`` so the log
    replay refills the history; attached later, the history starts at the seq applied now."""
    from .feed import Gap, KeyEvent

    def listener(items: Any) -> None:
        events: list[tuple[int, str, bytes, bytes | None]] = []  # plain tuples: see History
        through = None
        for item in items:
            kind = type(item)
            if kind is KeyEvent and item.event in SKIPPED_EVENTS:
                through = item.seq
            elif kind is KeyEvent:
                events.append((item.seq, item.event, item.key if item.key is not None else b"", item.value))
                through = item.seq
            elif kind is Gap:
                if events:
                    hub.on_applied(events, through)
                    events = []
                hub.reset(item.seq)
                through = None
            else:
                through = item.seq  # a Message: no key, but a position
        if events or through is not None:
            hub.on_applied(events, through)

    replica.feed.add_listener(listener, values=hub.values_kept if values is None else values)
    # Nothing up to the seq applied now can be replayed; what the listener got since stays.
    hub.history.reset(replica.fsm.feed_seq)


def watch_hub(section: Any) -> WatchHub:
    """A hub sized by a ``config.WatchSection``."""
    return WatchHub(History(section.history_events, section.history_bytes), values_kept=section.history_values,
                    progress_s=section.progress_ms / 1000, future_wait_s=section.future_wait_ms / 1000)


class Sink:
    """Where a server-side stream's frames go (the connection's push path)."""

    def push(self, frame: list[Any]) -> bool:  # False: the connection is gone or over its limit
        raise NotImplementedError

    def fail(self, error: CommandError) -> None:  # the stream ends with this error
        raise NotImplementedError


class WatchHub:
    """A node's history and its watchers. The Raft thread records applied events
    (``on_applied``) and wakes the wakers; the event loop then ``pump``s every stream (each
    pulls what it has not delivered yet) and ``tick``s (progress frames, future-seq
    deadlines). Nothing here blocks the Raft thread: it appends to the ring and schedules."""

    def __init__(self, history: History, *, values_kept: bool = True, progress_s: float = 0.25,
                 future_wait_s: float = 5.0, batch: int = 1000) -> None:
        self.history = history
        self.values_kept = values_kept
        self.progress_s = progress_s
        self.future_wait_s = future_wait_s
        self.batch = batch  # events pulled per stream per pump (others get their turn)
        self._streams: dict[WatchStream, Sink] = {}
        self._wakers: list[Callable[[], None]] = []
        self._listeners: list[Callable[[list[WatchEvent]], None]] = []
        self.streams_failed = 0

    # -------------------------------------------------------------- Raft thread
    def on_applied(self, events: list[tuple[int, str, bytes, bytes | None]], through: int | None = None) -> None:
        self.history.record(events, through)
        if events and self._listeners:
            watch_events = [WatchEvent._make(ev) for ev in events]
            for listener in tuple(self._listeners):
                listener(watch_events)
        for wake in tuple(self._wakers):
            wake()

    def add_listener(self, listener: Callable[[list[WatchEvent]], None]) -> None:
        """`listener(events)` on the Raft thread, right after they are recorded (an embedded
        near-cache invalidates there: nothing can read the old value after that)."""
        self._listeners.append(listener)

    def reset(self, horizon: int) -> None:
        self.history.reset(horizon)
        for listener in tuple(self._listeners):
            listener([WatchEvent(horizon, "flushall", b"")])  # anything may have changed
        for wake in tuple(self._wakers):
            wake()

    def add_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.append(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        try:
            self._wakers.remove(wake)
        except ValueError:
            pass

    # --------------------------------------------------------------- event loop
    def open(self, request: WatchRequest, sink: Sink, now: float, readable: Callable[[bytes], bool] | None = None) -> WatchStream:
        """Start a stream (its greeting is the caller's reply); raises CommandError /
        WatchCompactedError to refuse it. `readable`: see WatchStream.open."""
        if request.values and not self.values_kept:
            raise CommandError("this node's watch history keeps no values ([watch] history_values = false)")
        stream = WatchStream.open(request, self.history, now=now, future_wait_s=self.future_wait_s, readable=readable)
        self._streams[stream] = sink
        return stream

    def close(self, stream: WatchStream) -> None:
        self._streams.pop(stream, None)

    def pump(self) -> bool:
        """Deliver what every stream has not seen yet; True if some stream has more."""
        more = False
        for stream, sink in list(self._streams.items()):
            more |= self._pump_one(stream, sink)
        return more

    def _pump_one(self, stream: WatchStream, sink: Sink) -> bool:
        try:
            frames = stream.pull(self.history, self.batch)
        except CommandError as err:
            self._fail(stream, sink, err)
            return False
        for frame in frames:
            if not sink.push(frame):
                self.close(stream)
                return False
        return stream.position < self.history.applied and not stream.waiting_until

    def tick(self, now: float, leader_known: bool) -> None:
        """Progress frames (only while a leader is known: a node cut off from the cluster
        goes quiet, and a near-cache stops trusting it), and future-seq deadlines."""
        for stream, sink in list(self._streams.items()):
            if stream.expired(now):
                self._fail(stream, sink, stream.future_error(self.history))
            elif leader_known and not stream.waiting_until and not sink.push(stream.progress()):
                self.close(stream)

    def _fail(self, stream: WatchStream, sink: Sink, err: CommandError) -> None:
        self.close(stream)
        self.streams_failed += 1
        sink.fail(err)

    def __len__(self) -> int:
        return len(self._streams)
