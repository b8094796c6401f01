"""Wall clocks for proposers (the state machine never reads a clock).

A node stamps every batch it proposes with ``clock.now_ms()``; the replicated clock is the
maximum stamp applied. Tests and fault injection swap in a ``ManualClock`` or shift a
``SystemClock`` with ``offset_ms``; :func:`proposal_clock` builds what a node stamps with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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

    def monotonic(self) -> float:
        """Elapsed time (seconds) is manual time too: see :func:`proposal_clock`."""
        return self._now / 1000.0

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms


class DisciplinedClock:
    """Proposal timestamps that follow elapsed time and only *slew* toward the wall clock.

    Replicated time is the largest timestamp any proposer stamped, so one node whose wall
    clock jumps an hour forward would expire every TTL key at once (and one jumping back
    would freeze expiry). Here the value is ``monotonic + offset``, and the offset moves
    toward ``wall - monotonic`` by at most ``max_slew`` of the elapsed time (10%: NTP slews
    by at most 500 ppm, so real corrections pass; a jump is absorbed over 10x its size). The
    first reading after start trusts the wall clock: there is nothing to compare it with.

    The slew allowance grows with the time between readings, so read it regularly even when
    there is nothing to stamp (a node does, every tick): read first after an hour of idleness,
    it would let a jump of up to six minutes through at once.
    """

    def __init__(self, wall: Clock, *, max_slew: float = 0.1, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.max_slew = max_slew
        self._monotonic = monotonic
        self._offset: float | None = None
        self._last_mono = 0.0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            mono = self._monotonic() * 1000.0
            target = self.wall.now_ms() - mono
            if self._offset is None:
                self._offset = target
            else:
                step = (mono - self._last_mono) * self.max_slew
                self._offset += min(step, max(-step, target - self._offset))
            self._last_mono = mono
            return round(mono + self._offset)  # nearest: truncating would lose float error as a whole ms


def proposal_clock(wall: Clock) -> DisciplinedClock:
    """What a node stamps its entries with: `wall`, disciplined against elapsed time. A wall
    clock that keeps its own elapsed time (``ManualClock``) is also the monotonic source, so
    time a test moves on is elapsed time, not a jump to slew over."""
    monotonic = getattr(wall, "monotonic", None)
    return DisciplinedClock(wall) if monotonic is None else DisciplinedClock(wall, monotonic=monotonic)
