"""The counters a node keeps: connections, commands, errors and latencies.

Plain integers and bucket arrays, bumped on the hot path (the server's event loop, the Raft
thread for commit latency) and only read elsewhere: INFO copies them, and the Prometheus
exporter (``metrics``) turns them into metric families when scraped. Nothing here imports
prometheus-client, so the server and the replica count without loading it.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, fields

# Latency bucket bounds, seconds (Prometheus convention: cumulative, plus +Inf).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> tuple[list[tuple[str, int]], float]:
        counts, total = list(self.counts), self.total
        running, out = 0, []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts):
            running += count
            out.append((bound, running))
        return out, total


class GcPauses:
    """How long the cyclic GC held the process, per generation (a full collection of a
    million-key node can stall every thread for hundreds of ms). Counted only once
    `install`ed: `raftcache serve` does; an embedding application's GC is its own."""

    def __init__(self) -> None:
        self.by_generation = [LatencyHistogram() for _ in range(3)]
        self._started = 0.0
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            self.installed = True
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].observe(time.perf_counter() - self._started)


GC_PAUSES = GcPauses()  # one per process: the GC is


class CommandStats:
    """What the server counts per command; cheap enough for every command."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # by RESP error word
        self.latency: dict[str, LatencyHistogram] = {"read": LatencyHistogram(), "write": LatencyHistogram()}

    def reset(self) -> None:
        """CONFIG RESETSTAT (Prometheus sees a counter reset, as after a restart)."""
        self.calls.clear()
        self.errors.clear()
        self.latency = {kind: LatencyHistogram() for kind in self.latency}


@dataclass
class ServerStats:
    """What the server counts per connection (INFO stats, and the exporter)."""

    started: float = field(default_factory=time.monotonic)
    connections_received: int = 0
    rejected_connections: int = 0
    commands_processed: int = 0
    reads_processed: int = 0  # reads from client sockets (INFO's total_reads_processed)
    writes_processed: int = 0  # writes to client sockets (total_writes_processed)
    protocol_errors: int = 0
    auth_failures: int = 0  # failed AUTH / HELLO AUTH (INFO's acl_access_denied_auth)
    acl_denied_cmd: int = 0  # NOPERM for a command (acl_access_denied_cmd)
    acl_denied_key: int = 0  # NOPERM for a key (acl_access_denied_key)
    acl_denied_channel: int = 0  # NOPERM for a channel (acl_access_denied_channel)
    output_limit_closes: int = 0  # subscribers dropped over the pub/sub output-buffer limit

    def reset(self) -> None:
        """CONFIG RESETSTAT: the counts start again; uptime does not (as Redis)."""
        for counter in fields(self):
            if counter.name != "started":
                setattr(self, counter.name, 0)
