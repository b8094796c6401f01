"""asyncio glue shared by AsyncCache, the RESP server and the async client."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class LoopDelivery:
    """Hands results from other threads (the Raft thread) to one event loop, one wake-up per
    burst.

    ``call_soon_threadsafe`` writes to the loop's self-pipe on every call; under load many
    results complete together, so they are queued and handed over in a single loop callback.
    Calls made on the loop's own thread take the same path (ordering stays simple).
    ``after_burst`` (if given) runs on the loop once each burst is handed over: the RESP
    server writes each connection's replies of a burst with one write there, not one per reply.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, after_burst: Callable[[], None] | None = None) -> None:
        self._loop = loop
        self._pending: list[tuple[Callable[[Any], None], Any]] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self._after_burst = after_burst

    def deliverer(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """A callable, safe from any thread, that runs ``fn(result)`` on the loop."""

        def deliver(result: Any) -> None:
            with self._lock:
                self._pending.append((fn, result))
                if self._scheduled:
                    return
                self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed: nobody is waiting any more
                pass

        return deliver

    def resolver(self, future: asyncio.Future[Any]) -> Callable[[Any], None]:
        """A callable, safe from any thread, that sets ``future``'s result on the loop."""
        return self.deliverer(lambda result: None if future.done() else future.set_result(result))

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        for fn, result in pending:
            try:
                fn(result)
            except Exception:  # one broken receiver must not drop the rest of the burst
                log.exception("result delivery failed")
        if self._after_burst is not None:
            try:
                self._after_burst()
            except Exception:
                log.exception("after-burst hook failed")
