"""Waiting for blocking pops (BLPOP, BLMOVE, BZPOPMIN, ...): node-local, never replicated.

A blocking command is a replicated *attempt* (``datatypes.blocking``): it pops, or answers
None when its keys are empty. The node that received it then parks the caller here until
this node's state machine applies a change to one of its keys, and proposes the attempt
again. Across nodes the first attempt to commit wins; on one node waiters are served in
arrival order (Redis's FIFO), because only the first waiter of a key is woken, a waiter's
own pop that leaves elements behind wakes the next one, and a newcomer whose keys all have
waiters here queues behind them without attempting.

Two layers:

* ``WaiterRegistry``: sans-I/O bookkeeping (per-key FIFO queues; who attempts next), no
  threads, no clock, unit-tested alone.
* ``BlockingPops``: drives the registry for one replica. Thread-safe: the state machine
  reports changed keys from the apply thread (``key_listener``: a dict lookup when nobody
  waits; the keys of one applied batch are handed over in one ``post``), attempt results
  arrive on the Raft thread, timeouts and disconnects come from the caller's side (the
  server's event loop, or a Cache caller's thread). Callers are told the outcome through
  their ``on_done`` exactly once: the attempt's result (a value or an error), or None when
  the timeout passed first.

The one race that matters: a key may change between an attempt being applied (empty) and
its waiter parking. So a waiter is in its keys' queues *before* its first attempt is
proposed, and a change that arrives while its attempt is in flight marks it ``dirty``: an
unserved attempt is then retried at once instead of parking, and a served one hands the
wake-up on to the next waiter.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import commands as c

__all__ = ["BlockingPops", "Waiter", "WaiterRegistry"]

log = logging.getLogger(__name__)

OnDone = Callable[[Any], None]
Submit = Callable[[Any, "c.SessionTag | None", OnDone], None]


class Waiter:
    """One blocked caller: its keys, its attempt, and where it stands."""

    __slots__ = ("command", "dirty", "expired", "finished", "keys", "on_done", "running", "tag")

    def __init__(self, keys: Sequence[bytes], command: Any = None, tag: c.SessionTag | None = None,
                 on_done: OnDone | None = None) -> None:
        self.keys = tuple(dict.fromkeys(keys))  # a key named twice waits once
        self.command = command
        self.tag = tag  # the exactly-once tag every attempt carries (None: the node's own session)
        self.on_done = on_done
        self.running = False  # an attempt is in flight
        self.dirty = False  # one of its keys changed while the attempt was in flight
        self.expired = False  # the timeout passed while an attempt was in flight
        self.finished = False  # answered (or cancelled): the registry forgot it

    def __repr__(self) -> str:
        state = "running" if self.running else "finished" if self.finished else "parked"
        return f"Waiter({list(self.keys)!r}, {state}{', dirty' if self.dirty else ''})"


class WaiterRegistry:
    """Per-key FIFO queues of waiters and the rule of who attempts next (not thread-safe)."""

    def __init__(self) -> None:
        self._queues: dict[bytes, deque[Waiter]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def watching(self, key: bytes) -> bool:
        """Somebody waits on `key` (a dict lookup: safe to ask from another thread)."""
        return key in self._queues

    def keys(self) -> list[bytes]:
        return list(self._queues)

    def add(self, waiter: Waiter, *, may_park: bool = True) -> bool:
        """Queue a new waiter behind the others of its keys. True: it attempts now. False
        (`may_park` and every key already has waiters here): it parks at once, so that it
        cannot take an element on its way to a waiter that came first; the element reaches
        it down the chain of wake-ups (a key with waiters is empty, or its first waiter is
        being woken)."""
        attempt = not may_park or not all(key in self._queues for key in waiter.keys)
        for key in waiter.keys:
            self._queues.setdefault(key, deque()).append(waiter)
        waiter.running = attempt
        self._count += 1
        return attempt

    def changed(self, keys: Iterable[bytes]) -> list[Waiter]:
        """These keys changed: the waiters that must attempt now (each marked running). Only
        a key's first waiter is woken; if it is already attempting, it is marked dirty."""
        start: list[Waiter] = []
        for key in keys:
            queue = self._queues.get(key)
            if not queue:
                continue
            first = queue[0]
            if not first.running:
                first.running = True
                start.append(first)
            elif first not in start:  # woken by another key of this same batch: once is enough
                first.dirty = True
        return start

    def attempt_done(self, waiter: Waiter, finished: bool) -> tuple[bool, list[Waiter]]:
        """A waiter's attempt came back. `finished`: it was served (or failed, or its time is
        up) and leaves. Returns (attempt again now, other waiters to start)."""
        waiter.running = False
        dirty, waiter.dirty = waiter.dirty, False
        if finished:
            return False, self._drop(waiter, dirty)
        if dirty:  # a key changed while the attempt was in flight: it may have missed it
            waiter.running = True
            return True, []
        return False, []

    def remove(self, waiter: Waiter) -> list[Waiter]:
        """Forget a waiter (timeout while parked, disconnect); returns waiters to start in its
        place (a wake-up it had absorbed while attempting passes on)."""
        dirty, waiter.dirty = waiter.dirty, False
        return self._drop(waiter, dirty)

    def _drop(self, waiter: Waiter, pass_on: bool) -> list[Waiter]:
        if waiter.finished:
            return []
        waiter.finished = True
        self._count -= 1
        for key in waiter.keys:
            queue = self._queues.get(key)
            if queue is None:
                continue
            try:
                queue.remove(waiter)
            except ValueError:
                pass
            if not queue:
                del self._queues[key]
        return self.changed(waiter.keys) if pass_on else []


class BlockingPops:
    """Parks blocking pops of one replica and re-proposes them when their keys change.

    `submit(command, tag, on_done)` proposes an attempt (the replica's ``submit``);
    `post(fn)` runs `fn` soon on some other thread than the caller's (the Raft thread's
    ``call_soon``): the state machine's key reports arrive while it applies, when nothing
    may be proposed or waited for."""

    def __init__(self, submit: Submit, post: Callable[[Callable[[], None]], None]) -> None:
        self._submit = submit
        self._post = post
        self._registry = WaiterRegistry()
        self._lock = threading.Lock()
        self._changed: list[bytes] = []
        self._drain_posted = False

    def __len__(self) -> int:
        """How many callers are blocked (INFO's blocked_clients)."""
        return len(self._registry)

    # ------------------------------------------------------------ the state machine side
    def key_listener(self, key: bytes) -> None:
        """The state machine changed `key` (apply thread): cheap when nobody waits on it."""
        if not self._registry.watching(key):
            return
        with self._lock:
            self._changed.append(key)
            if self._drain_posted:
                return
            self._drain_posted = True
        self._post(self._drain)

    def restored(self) -> None:
        """The whole state was replaced (snapshot installed): every waiter looks again."""
        with self._lock:
            self._changed.extend(self._registry.keys())
            if self._drain_posted or not self._changed:
                return
            self._drain_posted = True
        self._post(self._drain)

    def _drain(self) -> None:
        with self._lock:
            keys, self._changed = self._changed, []
            self._drain_posted = False
            start = self._registry.changed(dict.fromkeys(keys))
        for waiter in start:
            self._attempt(waiter)

    # ----------------------------------------------------------------- the caller side
    def block(self, command: Any, keys: Sequence[bytes], on_done: OnDone, *, tag: c.SessionTag | None = None) -> Waiter:
        """Attempt `command` now and, while its attempts answer None, again whenever one of
        `keys` changes. `on_done(result)` once: the first non-None result (or error), or None
        after ``expire``. Never after ``cancel``."""
        waiter = Waiter(keys, command, tag, on_done)
        with self._lock:
            # A tagged request may be the retry of a pop already served (its answer is in the
            # session table): it always attempts first.
            attempt = self._registry.add(waiter, may_park=tag is None)
        if attempt:
            self._attempt(waiter)
        return waiter

    def expire(self, waiter: Waiter) -> None:
        """The waiter's timeout passed: answer None, unless an attempt is in flight (it may
        pop: its result is the answer)."""
        with self._lock:
            if waiter.finished:
                return
            if waiter.running:
                waiter.expired = True
                return
            start = self._registry.remove(waiter)
        self._start(start)
        self._finish(waiter, None)

    def cancel(self, waiter: Waiter) -> None:
        """The caller went away (disconnect): forget it; it hears nothing. An attempt already
        in flight may still pop: that element goes with the lost reply, as with Redis."""
        with self._lock:
            if waiter.finished:
                return
            waiter.on_done = None
            start = self._registry.remove(waiter)
        self._start(start)

    # ------------------------------------------------------------------- attempts
    def _attempt(self, waiter: Waiter) -> None:
        self._submit(waiter.command, waiter.tag, lambda result: self._attempted(waiter, result))

    def _attempted(self, waiter: Waiter, result: Any) -> None:
        with self._lock:
            if waiter.finished:  # cancelled meanwhile: nobody to tell
                if result is not None and not isinstance(result, BaseException):
                    log.info("a blocking pop served a client that had gone: %r", result)
                return
            finished = result is not None or waiter.expired
            again, start = self._registry.attempt_done(waiter, finished)
        self._start(start)
        if again:
            self._attempt(waiter)
        elif finished:
            self._finish(waiter, result)

    def _start(self, waiters: list[Waiter]) -> None:
        for waiter in waiters:
            self._attempt(waiter)

    @staticmethod
    def _finish(waiter: Waiter, result: Any) -> None:
        on_done, waiter.on_done = waiter.on_done, None
        if on_done is not None:
            try:
                on_done(result)
            except Exception:
                log.exception("blocking pop result callback failed")
