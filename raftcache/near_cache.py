"""The near-cache: GET answered from process memory, kept current by a watch stream.

Opt-in (``Client(near_cache=...)``, ``Cache(near_cache=...)``): a bounded LRU of key ->
value (None for an absent key) filled by ordinary linearizable GETs and emptied, key by key,
by the events of a ``RAFTCACHE WATCH *`` stream (any event on a key drops it: a change, a
deletion, an expiry, an eviction). I/O-free and thread-safe; the owners drive it.

What a hit may return (the bound README's "Watching keys" states):

* the value was current at the moment the stream had delivered everything up to: a write
  is visible to near-cache reads once its event has reached this process, i.e. after the
  watched node applied it plus the delivery time (``measure: benchmarks/bench_all.py
  nearcache``, ``tests/cluster/test_watch.py``);
* the cache serves only while its stream is *up* and *heard from* within ``max_silence_s``
  (the server sends progress frames every ``[watch] progress_ms`` while it knows a leader):
  when the stream breaks or goes quiet, everything cached is dropped and GETs go to the
  cluster until a new stream is up, so a disconnected or partitioned client never serves
  from memory for longer than ``max_silence_s`` after the last word from its node;
* a fill cannot resurrect an old value: a GET's answer is stored only if no event for that
  key arrived while it was in flight, and only if the stream was up before it was sent (a
  GET sent after the stream's start reads at or after the stream's position, so every later
  change reaches us as an event).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from .errors import RaftCacheError

__all__ = ["NEAR_RESTART_ERRORS", "NEAR_RESTART_S", "NearCache", "NearCacheConfig", "near_cache_config"]

_MISSING: Any = object()
# Events that change every key at once rather than one (the feed's names for FLUSHALL/FLUSHDB).
FLUSH_EVENTS = frozenset({"flushall", "flushdb"})
# A client's stream gave up (its seq compacted on every node, or no node for the retry
# deadline): the near-cache (already dropped) starts a new stream from now after this pause.
NEAR_RESTART_ERRORS = (RaftCacheError, OSError)
NEAR_RESTART_S = 0.5


@dataclass(frozen=True, slots=True)
class NearCacheConfig:
    max_keys: int = 10_000  # LRU bound
    max_silence_s: float = 1.0  # serve from memory only if the stream spoke this recently


def near_cache_config(option: Any) -> NearCacheConfig | None:
    """``near_cache=`` as given: None/False (off), True (defaults), an int (max keys), or a
    NearCacheConfig."""
    if option is None or option is False:
        return None
    if option is True:
        return NearCacheConfig()
    if isinstance(option, int):
        if option < 1:
            raise ValueError("near_cache needs room for at least one key")
        return NearCacheConfig(max_keys=option)
    if isinstance(option, NearCacheConfig):
        return option
    raise TypeError("near_cache must be True, a key count or a NearCacheConfig")


class NearCache:
    """See the module docstring. ``lookup`` -> value or ``MISS``; fills go through
    ``begin_fill`` / ``finish_fill`` (or ``fill``, or whole reads through ``through`` /
    ``through_async``); the stream's driver calls ``up``, ``heard``, ``event``, ``down``."""

    MISS: Any = _MISSING

    def __init__(self, config: NearCacheConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[bytes, Any] = OrderedDict()
        self._inflight: dict[bytes, int] = {}
        self._dirty: set[bytes] = set()  # invalidated while a fill was in flight
        self._epoch = 0
        self._up = False
        self._heard = 0.0
        self._ready = threading.Event()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.drops = 0  # whole-cache drops (stream down, silent, or a flush)

    # ---------------------------------------------------------------- the stream
    def up(self) -> None:
        with self._lock:
            self._up = True
            self._heard = self._clock()
            self._ready.set()

    def wait_up(self, timeout: float) -> bool:
        """Wait (up to `timeout`) for the first stream to be up, so that first reads fill."""
        return self._ready.wait(timeout)

    def event(self, event: Any) -> None:
        """A watch event (``watch.WatchEvent``): its key may have changed."""
        if event.event in FLUSH_EVENTS:
            self.clear()
        else:
            self.invalidate(event.key)

    def heard(self) -> None:
        self._heard = self._clock()

    def down(self) -> None:
        with self._lock:
            self._drop_locked()
            self._up = False

    def invalidate(self, key: bytes) -> None:
        with self._lock:
            self.invalidations += 1
            self._data.pop(key, None)
            if key in self._inflight:
                self._dirty.add(key)
            self._heard = self._clock()

    def clear(self) -> None:
        """Every key may have changed (FLUSHALL, a snapshot-sized jump)."""
        with self._lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        self._data.clear()
        self._dirty.update(self._inflight)
        self._epoch += 1
        self.drops += 1

    @property
    def serving(self) -> bool:
        return self._up and self._clock() - self._heard <= self.config.max_silence_s

    # ------------------------------------------------------------------- reads
    def lookup(self, key: bytes) -> Any:
        with self._lock:
            if not self._up or self._clock() - self._heard > self.config.max_silence_s:
                if self._data:
                    self._drop_locked()  # quiet too long: nothing here may be trusted any more
                self.misses += 1
                return _MISSING
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                self.misses += 1
            else:
                self._data.move_to_end(key)
                self.hits += 1
            return value

    def begin_fill(self, key: bytes) -> int | None:
        """Before sending the GET that fills `key`: a token for finish_fill (None: do not fill)."""
        with self._lock:
            if not self._up:
                return None
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return self._epoch

    def finish_fill(self, key: bytes, token: int | None, value: Any, ok: bool = True) -> None:
        """The GET came back (`ok` False: it failed; nothing is stored)."""
        if token is None:
            return
        with self._lock:
            left = self._inflight.get(key, 1) - 1
            dirty = key in self._dirty
            if left <= 0:
                self._inflight.pop(key, None)
                self._dirty.discard(key)
            else:
                self._inflight[key] = left
            if not ok or dirty or token != self._epoch or not self._up:
                return
            data = self._data
            data[key] = value
            data.move_to_end(key)
            while len(data) > self.config.max_keys:
                data.popitem(last=False)

    def fill(self, key: bytes) -> Fill:
        """``with near.fill(key) as fill: fill.value = <the GET>``: stored on a clean exit,
        nothing when the GET raised."""
        return Fill(self, key, self.begin_fill(key))

    # The owners' GET, written once: sync (Client, Cache) and async (AsyncClient, AsyncCache)
    # differ only in awaiting `fetch` (the linearizable GET of the key).
    def through(self, key: bytes, fetch: Callable[[], Any]) -> Any:
        """The value from memory, else from `fetch()`, filling the cache with it."""
        value = self.lookup(key)
        if value is _MISSING:
            with self.fill(key) as fill:
                value = fill.value = fetch()
        return value

    async def through_async(self, key: bytes, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``through`` for an asyncio owner: `fetch()` is awaited."""
        value = self.lookup(key)
        if value is _MISSING:
            with self.fill(key) as fill:
                value = fill.value = await fetch()
        return value

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._data), "hits": self.hits, "misses": self.misses,
                "invalidations": self.invalidations, "drops": self.drops}


class Fill:
    """One GET filling one key (``NearCache.fill``)."""

    __slots__ = ("_key", "_near", "_token", "value")

    def __init__(self, near: NearCache, key: bytes, token: int | None) -> None:
        self._near = near
        self._key = key
        self._token = token
        self.value: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # any exception (a failed GET, a cancelled task) fills nothing, and is not swallowed
        self._near.finish_fill(self._key, self._token, self.value, ok=exc_type is None)
