"""Prometheus metrics of one node (``metrics = "host:port"`` in its [[nodes]] entry).

The hot path only bumps plain counters and bucket arrays (``stats.CommandStats``, owned by
the server's event loop); everything is turned into Prometheus metric families when scraped, by
a custom collector that also reads the replica's status. Scrapes run on prometheus-client's
HTTP thread and only ever copy what the loop writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry

from .stats import GC_PAUSES

if TYPE_CHECKING:  # the exporter is handed a server; importing it here would be a circle
    from .server import RespServer


class NodeCollector:
    """Exports a node's state and counters at scrape time."""

    def __init__(self, server: RespServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Any]:
        server = self._server
        replica = server.replica
        status = replica.status()
        labels = ["node"]
        node = [server.node_id]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric(node, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels)
            family.add_metric(node, value)
            return family

        yield gauge("raftcache_raft_term", "Current Raft term", status.term)
        role = GaugeMetricFamily("raftcache_raft_role", "1 for this node's current Raft role", labels=["node", "role"])
        for name in ("leader", "follower", "candidate"):
            role.add_metric([server.node_id, name], 1 if status.role == name else 0)
        yield role
        yield gauge("raftcache_raft_commit_index", "Highest log index known committed", status.commit_index)
        yield gauge("raftcache_raft_applied_index", "Highest log index applied to the state", status.applied_index)
        yield gauge("raftcache_raft_log_length", "Entries held in the Raft log", status.log_len)
        yield gauge("raftcache_raft_last_snapshot_index", "Log index of the last snapshot", status.last_snapshot_index)
        yield counter("raftcache_snapshots", "Snapshots (log compactions) written", status.snapshots_taken)
        yield gauge(
            "raftcache_snapshot_last_duration_seconds", "Duration of the last snapshot", status.last_snapshot_seconds or 0.0
        )
        yield gauge("raftcache_keys", "Keys held", status.keys)
        yield gauge("raftcache_memory_rss_bytes", "Resident memory of the node process", server.rss_bytes())
        memory = server.replica.memory_info()
        yield gauge("raftcache_memory_used_bytes", "Dataset bytes as the state machine accounts them (maxmemory's measure)",
                    memory["used_memory"])
        yield gauge("raftcache_memory_max_bytes", "maxmemory (0: no limit)", memory["maxmemory"])
        yield counter("raftcache_evicted_keys", "Keys evicted by the maxmemory policy", memory["evicted_keys"])
        yield counter("raftcache_expired_keys", "Keys removed because their expiry passed", memory["expired_keys"])
        yield counter("raftcache_keyspace_hits", "Reads that found their key", memory["keyspace_hits"])
        yield counter("raftcache_keyspace_misses", "Reads that did not find their key", memory["keyspace_misses"])
        yield gauge("raftcache_connected_clients", "Open client connections", len(server.connections))
        yield counter("raftcache_connections", "Client connections accepted", server.stats.connections_received)
        yield counter("raftcache_rejected_connections", "Connections refused (maxclients, protected mode)", server.stats.rejected_connections)
        yield counter("raftcache_protocol_errors", "Connections closed for malformed input", server.stats.protocol_errors)
        yield counter("raftcache_auth_failures", "Failed AUTH attempts (wrong password or user)", server.stats.auth_failures)
        yield counter("raftcache_acl_denied_commands", "NOPERM: a user ran a command its rules do not allow", server.stats.acl_denied_cmd)
        yield counter("raftcache_acl_denied_keys", "NOPERM: a user touched a key its patterns do not allow", server.stats.acl_denied_key)

        stats = server.command_stats
        calls = CounterMetricFamily("raftcache_commands", "Commands processed, by command", labels=["node", "command"])
        for name, count in sorted(dict(stats.calls).items()):
            calls.add_metric([server.node_id, name], count)
        yield calls
        errors = CounterMetricFamily("raftcache_command_errors", "Error replies, by RESP error word", labels=["node", "error"])
        for word, count in sorted(dict(stats.errors).items()):
            errors.add_metric([server.node_id, word], count)
        yield errors
        latency = HistogramMetricFamily(
            "raftcache_command_duration_seconds", "Time from parsing a data command to its reply", labels=["node", "kind"]
        )
        for kind, histogram in stats.latency.items():
            buckets, total = histogram.cumulative()
            latency.add_metric([server.node_id, kind], buckets, total)
        yield latency
        commit = HistogramMetricFamily(
            "raftcache_raft_commit_seconds", "Time from proposing a Raft entry to applying it here", labels=["node"]
        )
        buckets, total = replica.commit_latency.cumulative()
        commit.add_metric([server.node_id], buckets, total)
        yield commit
        applied = HistogramMetricFamily(
            "raftcache_raft_apply_seconds", "The state machine's time to apply one Raft entry here", labels=["node"]
        )
        buckets, total = replica.apply_latency.cumulative()
        applied.add_metric([server.node_id], buckets, total)
        yield applied
        if GC_PAUSES.installed:
            pauses = HistogramMetricFamily(
                "raftcache_gc_pause_seconds", "Python's cyclic GC collections, by generation (2: full)",
                labels=["node", "generation"],
            )
            for generation, histogram in enumerate(GC_PAUSES.by_generation):
                buckets, total = histogram.cumulative()
                pauses.add_metric([server.node_id, str(generation)], buckets, total)
            yield pauses
        raft = CounterMetricFamily("raftcache_raft_events", "Proposals, commits and failures", labels=["node", "event"])
        for event, count in sorted(dict(replica.counters).items()):
            raft.add_metric([server.node_id, event], count)
        yield raft


def start_metrics_server(address: str, server: RespServer) -> Any:
    """Serve /metrics for this node on `address` (host:port); returns the HTTP server."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(NodeCollector(server))  # type: ignore[arg-type]
    host, port = address.rsplit(":", 1)
    http_server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return http_server
