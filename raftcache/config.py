"""Cluster configuration: TOML -> frozen dataclasses, validated field by field.

Each section is a dataclass whose fields carry their own check and documentation, so the
loader is one loop and every error names the file, the key and the problem::

    cluster.toml: raft.heartbeat_ms: must be an integer >= 1 (got "fast")

Unknown keys are errors too (with a did-you-mean), because a misspelt timeout silently
ignored is worse than a refusal to start. Relative ``data_dir``, ``secret_file`` and TLS file
paths are resolved against the directory of the config file, so a cluster starts the same from
any working directory.

The cluster secret may sit in the file (``secret``), in a file of its own (``secret_file``)
or in an environment variable (``secret_env``), so the config itself can be committed; it is
read by ``ClusterConfig.secret()`` when a node starts, not at load, so operator commands that
never need it (``raftcache status --config``) work where the secret is absent.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .tls import AUTH_CLIENTS, DEFAULT_PROTOCOLS, ServerTls, protocols_problem

if TYPE_CHECKING:
    from .acl import User

Check = Callable[[Any], str | None]


def _opt(default: Any, check: Check | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "doc": doc})


def _req(check: Check | None = None, doc: str = "") -> Any:
    return field(metadata={"check": check, "doc": doc, "required": True})


def _int_min(low: int, high: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
            return f"must be an integer >= {low}" if high is None else f"must be an integer {low}-{high}"
        return None

    return check


def _number_min(low: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < low:
            return f"must be a number >= {low}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _nonempty_string(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _address(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a \"host:port\" string"
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"must be host:port with a port in 1-65535 (got {v!r})"
    if host.strip("[]") in ("0.0.0.0", "::"):
        return f"must be an address peers can reach, not the wildcard {host}"
    return None


# ------------------------------------------------------------------------------ sections
def _env_name(v: Any) -> str | None:
    return None if isinstance(v, str) and v and v.replace("_", "a").isalnum() else "must be an environment variable name"


@dataclass(frozen=True)
class ClusterSection:
    secret: str = _opt("", _string, "authenticates and encrypts peer (raft) traffic; required unless all raft addresses are loopback")
    secret_file: str = _opt("", _string, "read the secret from this file instead (first line; relative to the config file)")
    secret_env: str = _opt("", lambda v: None if v == "" else _env_name(v), "read the secret from this environment variable instead")
    fsync: str = _opt("always", _one_of("always", "no"), "journal fsync policy for nodes with a data_dir")
    request_timeout_ms: int = _opt(5000, _int_min(1), "deadline of one client command, retries included")


@dataclass(frozen=True)
class RaftSection:
    heartbeat_ms: int = _opt(50, _int_min(1), "leader heartbeat interval")
    election_timeout_min_ms: int = _opt(1000, _int_min(10), "randomised election timeout, lower bound")
    election_timeout_max_ms: int = _opt(2000, _int_min(20), "randomised election timeout, upper bound")
    leader_lease_ms: int = _opt(2500, _int_min(10), "a leader without majority contact this long steps down")
    entry_timeout_ms: int = _opt(2000, _int_min(10), "a proposal silent this long is retried (outcome unknown)")
    max_inflight_batches: int = _opt(1, _int_min(1), "group-commit entries in flight per node")
    max_batch_commands: int = _opt(8192, _int_min(1), "client commands per Raft entry")
    max_batch_bytes: int = _opt(1 << 20, _int_min(1024), "bytes per Raft entry (a bigger single command gets its own)")
    clock_interval_ms: int = _opt(100, _int_min(10), "least spacing of the leader's expiry sweeps; idle, nothing is proposed")
    peer_compression_level: int = _opt(0, _int_min(0, 9), "zlib level of peer messages: 0 (none) on LAN, 1-3 on slow links")


@dataclass(frozen=True)
class SnapshotSection:
    min_entries: int = _opt(20_000, _int_min(2), "compact the log after this many entries")
    min_interval_s: float = _opt(600.0, _number_min(1), "... or after this long since the last snapshot")
    max_log_mb: int = _opt(64, _int_min(1), "... or when the journal holds this many MiB")


@dataclass(frozen=True)
class ServerSection:
    requirepass: str = _opt("", _string, "clients must AUTH with this password (empty: no auth)")
    maxclients: int = _opt(10_000, _int_min(1), "connections beyond this get an error and are closed")
    frame_timeout_s: float = _opt(10.0, _number_min(0.1), "close a connection that leaves a command half-sent this long")
    idle_timeout_s: float = _opt(0.0, _number_min(0), "close connections idle this long (0: never, as Redis)")
    max_pending_per_client: int = _opt(10_000, _int_min(1), "pipelined commands in flight per connection before reading pauses")
    debug_commands: bool = _opt(False, _bool, "allow RAFTCACHE DEBUG (fault injection: clock offset); tests only")
    protected_mode: bool = _opt(True, _bool, "without requirepass, refuse clients that are not on loopback (as Redis)")
    tracking_table_max_keys: int = _opt(1_000_000, _int_min(0), "CLIENT TRACKING: keys remembered per node before the oldest are invalidated (0: no limit)")
    tls_cert_file: str = _opt("", _string, "certificate chain of the client port; when set, the port speaks TLS only")
    tls_key_file: str = _opt("", _string, "private key of tls_cert_file")
    tls_ca_cert_file: str = _opt("", _string, "CA certificates that client certificates must chain to")
    tls_auth_clients: str = _opt("yes", _one_of(*AUTH_CLIENTS), "client certificates: required, checked if sent, or not asked for")
    tls_protocols: str = _opt(DEFAULT_PROTOCOLS, lambda v: _string(v) or protocols_problem(v), "TLS versions accepted")
    tls_client_cert_file: str = _opt("", _string, "certificate the CLI and `up` present to TLS nodes (default: tls_cert_file)")
    tls_client_key_file: str = _opt("", _string, "key of tls_client_cert_file (default: tls_key_file)")

    def tls(self) -> ServerTls | None:
        """The client port's TLS options, or None for plain text."""
        if not self.tls_cert_file:
            return None
        return ServerTls(self.tls_cert_file, self.tls_key_file, self.tls_ca_cert_file, self.tls_auth_clients, self.tls_protocols)

    def client_cert(self) -> tuple[str, str]:
        """(cert, key) a client built from this config presents (Redis's tls-client-cert-file rule)."""
        if self.tls_client_cert_file:
            return self.tls_client_cert_file, self.tls_client_key_file
        return self.tls_cert_file, self.tls_key_file


@dataclass(frozen=True)
class LimitsSection:
    max_value_bytes: int = _opt(1 << 20, _int_min(1), "largest value a client may store")
    max_key_bytes: int = _opt(64 * 1024, _int_min(1), "largest key")
    script_max_instructions: int = _opt(
        20_000_000, _int_min(1000), "Lua instructions one EVAL may run before it is stopped (stamped into the log entry)"
    )
    max_bulk_bytes: int = _opt(8 << 20, _int_min(1), "largest RESP bulk string accepted (protocol error above)")
    max_array_len: int = _opt(1024 * 1024, _int_min(1), "most arguments in one command")
    max_inline_bytes: int = _opt(64 * 1024, _int_min(16), "longest inline command / RESP header line")
    max_query_buffer_bytes: int = _opt(64 << 20, _int_min(1024), "unparsed input held per connection before it is closed")


def _memory_value(v: Any) -> str | None:
    from .eviction import parse_memory

    if isinstance(v, bool) or not isinstance(v, (int, str)) or parse_memory(str(v).encode()) is None:
        return 'must be a byte count or a size such as "512mb" or "2gb" (k/m/g = 1000s, kb/mb/gb = 1024s)'
    return None


def _policy(v: Any) -> str | None:
    from .eviction import POLICIES

    return None if v in POLICIES else "must be one of " + ", ".join(POLICIES)


@dataclass(frozen=True)
class MemorySection:
    """Initial values of the cluster-wide memory settings: proposed by the first leader for
    every setting the cluster has never had set; CONFIG SET changes them afterwards (and
    wins over later edits of this file, which only seed)."""

    maxmemory: int | str = _opt(0, _memory_value, "dataset size limit as accounted (0: none), e.g. \"2gb\"")
    maxmemory_policy: str = _opt("noeviction", _policy, "what to do at the limit (Redis's policies)")
    maxmemory_samples: int = _opt(5, _int_min(1, 2**31 - 1), "keys sampled per eviction")

    def initial_settings(self) -> tuple[tuple[str, bytes], ...]:
        """(CONFIG name, value) of the settings that differ from Redis's defaults."""
        values = {"maxmemory": str(self.maxmemory).encode(), "maxmemory-policy": self.maxmemory_policy.encode(),
                  "maxmemory-samples": b"%d" % self.maxmemory_samples}
        defaults = {"maxmemory": b"0", "maxmemory-policy": b"noeviction", "maxmemory-samples": b"5"}
        return tuple((name, value) for name, value in values.items() if value != defaults[name])


def _notify_classes(v: Any) -> str | None:
    from .errors import CommandError
    from .pubsub import parse_notify_setting

    if not isinstance(v, str):
        return "must be a string of Redis's event class characters, e.g. \"Ex\""
    try:
        parse_notify_setting(v.encode())
    except CommandError:
        return "invalid event class character; use 'Ag$lshzxeKEtmdn'"
    return None


@dataclass(frozen=True)
class PubSubSection:
    """Pub/sub and keyspace notifications. `notify_keyspace_events` seeds the replicated
    setting (as [memory] does: CONFIG SET changes it afterwards); the rest is per node."""

    notify_keyspace_events: str = _opt("", _notify_classes, "initial notify-keyspace-events classes (Redis's letters; \"\": off)")
    output_buffer_hard_mb: int = _opt(32, _int_min(1), "a subscriber with this much unsent output is disconnected")
    output_buffer_soft_mb: int = _opt(8, _int_min(1), "... or with this much for output_buffer_soft_seconds")
    output_buffer_soft_seconds: int = _opt(60, _int_min(0), "(Redis's client-output-buffer-limit pubsub 32mb 8mb 60)")
    max_subscriptions_per_client: int = _opt(100_000, _int_min(1), "channels + patterns one connection may subscribe to")
    max_pattern_bytes: int = _opt(1024, _int_min(1), "longest PSUBSCRIBE pattern")

    def initial_settings(self) -> tuple[tuple[str, bytes], ...]:
        return (("notify-keyspace-events", self.notify_keyspace_events.encode()),) if self.notify_keyspace_events else ()


@dataclass(frozen=True)
class WatchSection:
    """RAFTCACHE WATCH's node-local history (raftcache/watch.py): output, not replicated state."""

    history_events: int = _opt(100_000, _int_min(1), "recent key events kept for watchers to resume from (about 200 bytes + key + value each)")
    history_bytes: int = _opt(64 << 20, _int_min(1024), "... and at most this many bytes of them (oldest dropped first)")
    history_values: bool = _opt(True, _bool, "keep each event's new value (needed by WATCH ... VALUES)")
    progress_ms: int = _opt(250, _int_min(10), "a watch stream gets a progress frame this often while its node knows a leader")
    future_wait_ms: int = _opt(5000, _int_min(0), "WATCH FROM a seq this node has not applied yet waits this long for it")


@dataclass(frozen=True)
class NodeSection:
    id: str = _req(_nonempty_string, "node name, unique in the cluster")
    raft: str = _req(_address, "peer (raft) address")
    client: str = _opt("", lambda v: None if v == "" else _address(v), "RESP address for clients")
    data_dir: str | None = _opt(None, _nonempty_string, "journal and snapshots; absent = memory only")
    metrics: str = _opt("", lambda v: None if v == "" else _address(v), "Prometheus metrics address")


@dataclass(frozen=True)
class ClusterConfig:
    path: str
    cluster: ClusterSection
    raft: RaftSection
    snapshot: SnapshotSection
    server: ServerSection
    limits: LimitsSection
    nodes: tuple[NodeSection, ...]
    memory: MemorySection = field(default_factory=MemorySection)
    pubsub: PubSubSection = field(default_factory=PubSubSection)
    watch: WatchSection = field(default_factory=WatchSection)
    users: tuple[User, ...] = ()  # [[users]]: ACL users, rules already applied

    def node(self, node_id: str) -> NodeSection:
        for node in self.nodes:
            if node.id == node_id:
                return node
        known = ", ".join(n.id for n in self.nodes)
        raise ConfigError(f"no node with id {node_id!r} (nodes: {known})", file=self.path, key="nodes")

    def peers_of(self, node_id: str) -> tuple[str, ...]:
        return tuple(n.raft for n in self.nodes if n.id != node_id)

    def secret(self) -> str:
        """The cluster secret from wherever the file says it is ("" when none is set)."""
        cl = self.cluster
        if cl.secret_file:
            try:
                with open(cl.secret_file, encoding="utf-8") as f:
                    value = f.readline().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {cl.secret_file}: {exc.strerror or exc}", file=self.path, key="cluster.secret_file") from None
            if not value:
                raise ConfigError(f"{cl.secret_file} is empty", file=self.path, key="cluster.secret_file")
            return value
        if cl.secret_env:
            value = os.environ.get(cl.secret_env, "").strip()
            if not value:
                raise ConfigError(f"environment variable {cl.secret_env} is not set", file=self.path, key="cluster.secret_env")
            return value
        return cl.secret


_SECTIONS: dict[str, type] = {
    "cluster": ClusterSection,
    "raft": RaftSection,
    "snapshot": SnapshotSection,
    "server": ServerSection,
    "limits": LimitsSection,
    "memory": MemorySection,
    "pubsub": PubSubSection,
    "watch": WatchSection,
}


def _build(cls: type, table: Mapping[str, Any], file: str, prefix: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError("must be a table", file=file, key=prefix)
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            problem = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            raise ConfigError(problem, file=file, key=f"{prefix}.{key}")
    values = {}
    for name, f in known.items():
        dotted = f"{prefix}.{name}"
        if name not in table:
            if f.metadata.get("required"):
                raise ConfigError("is required", file=file, key=dotted)
            continue
        value = table[name]
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{problem} (got {value!r})", file=file, key=dotted)
        values[name] = value
    return cls(**values)


def load_config(path: str) -> ClusterConfig:
    """Read and validate a cluster TOML file; raises ConfigError naming file, key and problem."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=path) from None
    return config_from_mapping(data, path)


def config_from_mapping(data: Mapping[str, Any], path: str = "<config>") -> ClusterConfig:
    for key in data:
        if key not in _SECTIONS and key not in ("nodes", "users"):
            hint = difflib.get_close_matches(key, [*_SECTIONS, "nodes", "users"], n=1)
            raise ConfigError("unknown section" + (f" (did you mean {hint[0]!r}?)" if hint else ""), file=path, key=key)
    sections = {name: _build(cls, data.get(name, {}), path, name) for name, cls in _SECTIONS.items()}
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("at least one [[nodes]] entry is required", file=path, key="nodes")
    base = os.path.dirname(os.path.abspath(path)) if not path.startswith("<") else os.getcwd()
    nodes = []
    for i, table in enumerate(raw_nodes):
        node = _build(NodeSection, table, path, f"nodes[{i}]")
        if node.data_dir is not None and not os.path.isabs(node.data_dir):
            node = replace(node, data_dir=os.path.normpath(os.path.join(base, node.data_dir)))
        nodes.append(node)
    _check_unique(nodes, path)
    cluster: ClusterSection = sections["cluster"]
    given = [k for k in ("secret", "secret_file", "secret_env") if getattr(cluster, k)]
    if len(given) > 1:
        raise ConfigError(f"give one of secret, secret_file, secret_env (got {', '.join(given)})", file=path, key=f"cluster.{given[1]}")
    if cluster.secret_file:
        sections["cluster"] = replace(cluster, secret_file=_resolve(base, cluster.secret_file))
    server: ServerSection = sections["server"]
    if bool(server.tls_cert_file) != bool(server.tls_key_file):
        missing = "tls_key_file" if server.tls_cert_file else "tls_cert_file"
        raise ConfigError("is required with " + ("tls_cert_file" if server.tls_cert_file else "tls_key_file"), file=path, key=f"server.{missing}")
    tls_files = ("tls_cert_file", "tls_key_file", "tls_ca_cert_file", "tls_client_cert_file", "tls_client_key_file")
    sections["server"] = replace(server, **{k: _resolve(base, getattr(server, k)) for k in tls_files if getattr(server, k)})
    limits: LimitsSection = sections["limits"]
    if limits.max_bulk_bytes < limits.max_value_bytes:
        raise ConfigError("must be at least limits.max_value_bytes", file=path, key="limits.max_bulk_bytes")
    raft: RaftSection = sections["raft"]
    if raft.election_timeout_min_ms <= 3 * raft.heartbeat_ms:
        raise ConfigError("must exceed 3 x raft.heartbeat_ms", file=path, key="raft.election_timeout_min_ms")
    if raft.election_timeout_max_ms <= raft.election_timeout_min_ms:
        raise ConfigError("must exceed raft.election_timeout_min_ms", file=path, key="raft.election_timeout_max_ms")
    return ClusterConfig(path=path, nodes=tuple(nodes), users=_users(data.get("users", []), path), **sections)


def _users(raw: Any, path: str) -> tuple[User, ...]:
    """[[users]] tables: `name` and `rules` (Redis's ACL SETUSER rules, one string or a list)."""
    from .acl import RuleError, parse_user  # the command table, only for files that define users

    if not isinstance(raw, list):
        raise ConfigError("must be [[users]] tables", file=path, key="users")
    users: dict[str, User] = {}
    for i, table in enumerate(raw):
        where = f"users[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError("must be a table", file=path, key=where)
        for key in table:
            if key not in ("name", "rules"):
                raise ConfigError("unknown key (a user has name and rules)", file=path, key=f"{where}.{key}")
        name, rules = table.get("name"), table.get("rules")
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
            raise ConfigError(f"must be a non-empty name without spaces (got {name!r})", file=path, key=f"{where}.name")
        if name in users:
            raise ConfigError(f"user {name!r} is defined twice", file=path, key=f"{where}.name")
        if isinstance(rules, str):
            rules = rules.split()
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise ConfigError('must be a string of ACL rules ("on #<sha256> ~key:* +@read") or a list of them',
                              file=path, key=f"{where}.rules")
        try:
            users[name] = parse_user(name, rules)
        except RuleError as exc:
            raise ConfigError(f"user {name!r}: rule {exc.rule!r}: {exc.problem}", file=path, key=f"{where}.rules") from None
    return tuple(users.values())


def _resolve(base: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _check_unique(nodes: list[NodeSection], path: str) -> None:
    for attrs in (("id",), ("data_dir",), ("raft", "client", "metrics")):  # one address, one use
        seen: dict[Any, str] = {}
        for i, node in enumerate(nodes):
            for attr in attrs:
                value = getattr(node, attr)
                if value in ("", None):
                    continue
                if value in seen:
                    raise ConfigError(f"{value!r} is already used by {seen[value]}", file=path, key=f"nodes[{i}].{attr}")
                seen[value] = f"nodes[{i}].{attr}"
