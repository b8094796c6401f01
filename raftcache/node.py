"""Run one cluster node in this process: the replica, its RESP server, signals, exit codes.

``raftcache serve`` calls :func:`run_node`. SIGTERM/SIGINT stop it cleanly (exit 0); a fatal
storage error (disk full, corrupt snapshot) stops it with exit status 3 after logging why.
SIGHUP re-reads the TLS certificate, key and CA files (new connections use them).

Before anything touches the data directory, :func:`check_security` refuses what must never
run (a missing or weak cluster secret when raft traffic leaves the host, unreadable TLS files)
and warns about what is merely risky (a client port off loopback without a password).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl

from . import cluster_secret
from .addresses import is_loopback
from .auth import Authenticator
from .cache import options_from_config
from .config import ClusterConfig
from .errors import BindError, ConfigError
from .redis_commands import Limits
from .replica import Replica
from .server import Peer, RespServer, ServerSettings
from .stats import GC_PAUSES
from .tls import reload_server_context, server_context
from .watch import attach_hub, watch_hub

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 3


def server_settings(config: ClusterConfig) -> ServerSettings:
    s, lim = config.server, config.limits
    return ServerSettings(
        requirepass=s.requirepass,
        maxclients=s.maxclients,
        frame_timeout_s=s.frame_timeout_s,
        idle_timeout_s=s.idle_timeout_s,
        max_pending_per_client=s.max_pending_per_client,
        debug_commands=s.debug_commands,
        max_bulk_bytes=lim.max_bulk_bytes,
        max_array_len=lim.max_array_len,
        max_inline_bytes=lim.max_inline_bytes,
        max_query_buffer_bytes=lim.max_query_buffer_bytes,
        limits=Limits(
            max_key_bytes=lim.max_key_bytes,
            max_value_bytes=lim.max_value_bytes,
            script_max_instructions=lim.script_max_instructions,
        ),
        protected_mode=s.protected_mode,
        tracking_table_max_keys=s.tracking_table_max_keys,
        users=config.users,
        pubsub_hard_limit_bytes=config.pubsub.output_buffer_hard_mb << 20,
        pubsub_soft_limit_bytes=config.pubsub.output_buffer_soft_mb << 20,
        pubsub_soft_seconds=float(config.pubsub.output_buffer_soft_seconds),
        max_subscriptions_per_client=config.pubsub.max_subscriptions_per_client,
        max_pattern_bytes=config.pubsub.max_pattern_bytes,
    )


def _secret_key(config: ClusterConfig) -> str:
    cl = config.cluster
    return "cluster.secret_file" if cl.secret_file else "cluster.secret_env" if cl.secret_env else "cluster.secret"


def check_security(config: ClusterConfig, node_id: str) -> ssl.SSLContext | None:
    """Refuse (ConfigError, one line) or warn before the node is built; returns the client
    port's TLS context (None: plain text)."""
    node = config.node(node_id)
    secret = config.secret()
    problem = cluster_secret.problem(secret, (node.raft, *config.peers_of(node_id)))
    if problem:
        raise ConfigError(problem, file=config.path, key=_secret_key(config))
    if secret and cluster_secret.weakness(secret):
        log.warning(
            "the cluster secret %s: fine while every raft address is loopback, refused otherwise; %s",
            cluster_secret.weakness(secret), cluster_secret.HOW_TO_MAKE_ONE,
        )
    tls = config.server.tls()
    context = None
    if tls is not None:
        try:
            context = server_context(tls)
        except ConfigError as exc:
            raise ConfigError(exc.problem, file=config.path, key=exc.key) from None
    s = config.server
    _warn_about_users(config)
    # The default user with no password is what "no password" means (as Redis's protected mode).
    open_door = not Authenticator(s.requirepass, config.users).default_user_has_password
    if node.client and not is_loopback(node.client):
        if open_door and s.protected_mode:
            log.warning(
                "client address %s is not loopback and there is no requirepass: protected mode refuses "
                "clients not on loopback (-DENIED) until requirepass is set (or protected_mode = false)",
                node.client,
            )
        elif open_door:
            log.warning(
                "client address %s is not loopback, there is no requirepass and protected_mode = false: "
                "anyone who reaches it can read and write every key", node.client,
            )
        elif context is None:
            log.warning("client address %s is not loopback and not TLS: passwords and data cross the network in clear text", node.client)
    return context


def _warn_about_users(config: ClusterConfig) -> None:
    names = {user.name for user in config.users}
    if config.server.requirepass and "default" in names:
        log.warning("[server] requirepass is ignored: the [[users]] entry named default replaces it")
    for user in config.users:
        if user.cleartext:
            log.warning(
                "user %r has a clear-text >password rule in %s: prefer #<sha256 hex> "
                "(printf %%s 'the-password' | sha256sum) so the file does not hold the password", user.name, config.path,
            )


async def serve_node(config: ClusterConfig, node_id: str) -> int:
    node = config.node(node_id)
    if not node.client:
        raise ConfigError(f"node {node_id!r} has no client address", file=config.path, key="nodes.client")
    tls = check_security(config, node_id)  # before the replica touches the data directory
    options, _ = options_from_config(config, node_id, max_value_bytes=config.limits.max_value_bytes)
    replica = Replica(options, node_id=node_id)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    exit_code = EXIT_OK

    def fatal(exc: BaseException) -> None:
        nonlocal exit_code
        exit_code = EXIT_FATAL
        log.critical("node %s stops: %s", node_id, exc)
        loop.call_soon_threadsafe(stop.set)

    replica.on_fatal(fatal)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls_files = config.server.tls()
    if tls is not None and tls_files is not None:
        live, files = tls, tls_files

        def reload_tls() -> None:
            try:
                reload_server_context(live, files)
            except ConfigError as exc:
                log.error("SIGHUP: TLS files not reloaded (the old ones stay in use): %s", exc)
            else:
                log.info("SIGHUP: TLS certificate, key and CA files reloaded")

        loop.add_signal_handler(signal.SIGHUP, reload_tls)
    watch = watch_hub(config.watch)
    attach_hub(replica, watch, values=config.watch.history_values)  # before start: the log replay refills it
    replica.start()
    peers = {n.raft: Peer(n.id, n.raft, n.client) for n in config.nodes}
    server = RespServer(replica, server_settings(config), node_id=node_id, peers=peers, watch=watch)
    host, port = node.client.rsplit(":", 1)
    try:
        try:
            await server.start(host.strip("[]"), int(port), tls=tls)
        except OSError as exc:
            raise BindError(f"cannot listen on client address {node.client}: {exc.strerror or exc}") from None
        metrics = None
        if node.metrics:
            from .metrics import start_metrics_server

            try:
                metrics = start_metrics_server(node.metrics, server)
            except OSError as exc:
                raise BindError(f"cannot listen on metrics address {node.metrics}: {exc.strerror or exc}") from None
        log.info(
            "node %s up: raft %s, RESP %s%s, metrics %s, data %s",
            node_id, node.raft, node.client, " (TLS)" if tls else "", node.metrics or "off", node.data_dir or "memory only",
        )
        try:
            await stop.wait()
        finally:
            if metrics is not None:
                metrics.shutdown()
        log.info("node %s stopping", node_id)
    finally:
        await server.close()
        await loop.run_in_executor(None, replica.close)
    return exit_code


# Python's cyclic GC runs a full collection every 10 young-generation ones (once the
# long-lived objects grew by a quarter); a full collection walks every container the process
# holds, a million-key node's key lists and heaps included: 200-500 ms with the GIL held, a
# stall of every write, read and heartbeat on the node. Nothing the state machine keeps forms
# reference cycles (bytes, ints, tuples, flat collections: refcounting frees them), so full
# collections are made 100x rarer; the young generations still catch the networking layer's
# short-lived cycles. Only in `serve`'s own process: an embedding application owns its GC.
FULL_COLLECTION_EVERY = 1000  # young (gen1) collections per full one; Python's default is 10


def tune_gc() -> None:
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_COLLECTION_EVERY)
    GC_PAUSES.install()  # raftcache_gc_pause_seconds: what the collections still cost


def run_node(config: ClusterConfig, node_id: str) -> int:
    tune_gc()
    try:
        import uvloop  # a faster event loop, when installed
    except ImportError:
        return asyncio.run(serve_node(config, node_id))
    return uvloop.run(serve_node(config, node_id))
