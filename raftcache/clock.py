"""Wall clocks for proposers (the state machine never reads a clock).

A node stamps every batch it proposes with ``clock.now_ms()``; the replicated clock is the
maximum stamp applied. Tests and fault injection swap in a ``ManualClock`` or shift a
``SystemClock`` with ``offset_ms``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """The host's wall clock, with an adjustable offset (for clock-jump fault tests)."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


class ManualClock:
    """A clock that only moves when told to (unit tests)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms
