"""What every operator command shares: how to name the cluster (``--config`` or
``--endpoints``, ``--user``/``--password``), talking to nodes, and printing (table or JSON)."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import click

from ..client import Client, RetryPolicy
from ..client.core import parse_info
from ..client.sync import connect
from ..config import ClusterConfig, load_config
from ..errors import RaftCacheError, error_from_resp
from ..resp import ErrorReply, ReplyParser, encode_command
from ..status import from_info
from ..tls import client_context, first_close


@dataclass
class Target:
    """The cluster a command talks to."""

    endpoints: list[str]
    password: str | None
    config: ClusterConfig | None = None
    names: dict[str, str] = field(default_factory=dict)  # client address -> node id (from config)
    tls: ssl.SSLContext | None = None
    user: str | None = None  # an ACL user; None: the default user

    @property
    def auth(self) -> tuple[str, ...]:
        """AUTH's arguments: ``user password`` for an ACL user, ``password`` for the default
        user, none without a password (as the client's username=/password=)."""
        if self.user:
            return (self.user, self.password or "")
        return (self.password,) if self.password else ()

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("retry", RetryPolicy(deadline=5))
        return Client(self.endpoints, username=self.user, password=self.password, ssl_context=self.tls, **kwargs)

    def call(self, endpoint: str, *args: Any, timeout: float = 5.0) -> Any:
        """One command to one node; raises OSError if unreachable, our errors on -ERR."""
        return call_node(endpoint, self.auth, *args, timeout=timeout, tls=self.tls)

    def info(self, endpoint: str, timeout: float = 2.0) -> dict[str, str]:
        return parse_info(self.call(endpoint, "INFO", "all", timeout=timeout))

    def info_all(self, timeout: float = 2.0) -> dict[str, dict[str, str] | Exception]:
        """INFO of every endpoint, in parallel; an exception for the unreachable ones."""

        def fetch(endpoint: str) -> dict[str, str] | Exception:
            try:
                return self.info(endpoint, timeout)
            except (OSError, RaftCacheError) as exc:
                return exc

        with ThreadPoolExecutor(max(1, len(self.endpoints))) as pool:
            return dict(zip(self.endpoints, pool.map(fetch, self.endpoints)))

    def leader(self) -> str:
        """The leader's client address (asking the nodes); a ClickException if none."""
        seen = []
        for endpoint, info in self.info_all().items():
            if isinstance(info, Exception):
                seen.append(f"{endpoint}: {info}")
                continue
            status = from_info(info)
            if status.role == "leader":
                return endpoint
            if status.leader_client:
                return status.leader_client
            seen.append(f"{endpoint}: {status.role} without a known leader")
        raise click.ClickException("no leader: " + "; ".join(seen))


def call_node(endpoint: str, auth: tuple[str, ...], *args: Any, timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> Any:
    """`args` on one node, after AUTH `auth` (Target.auth) when there is one."""
    with connect(endpoint, timeout, tls) as sock:
        requests = ([encode_command(b"AUTH", *auth)] if auth else []) + [encode_command(*args)]
        sock.sendall(b"".join(requests))
        try:
            replies = ReplyParser().read_replies(len(requests), lambda: sock.recv(1 << 20))
        except ConnectionResetError:  # before any reply: the client's own wording (TLS or not)
            raise ConnectionResetError(f"{endpoint}: {first_close(tls is not None)}") from None
    for reply in replies:
        if isinstance(reply, ErrorReply):
            raise error_from_resp(reply.prefix, reply.message)
    return replies[-1]


@dataclass(frozen=True)
class TlsOptions:
    """--tls, --cacert, --cert, --key (redis-cli's names)."""

    tls: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def given(self) -> bool:
        return self.tls or bool(self.cacert or self.cert or self.key)

    def context(self, config: ClusterConfig | None = None) -> ssl.SSLContext | None:
        """The TLS context to dial with: from the flags, else from the config file's [server]
        TLS settings (its CA and client certificate), else None (plain text)."""
        try:
            if self.given:
                return client_context(self.cacert, self.cert, self.key)
            if config is not None and config.server.tls_cert_file:
                cert, key = config.server.client_cert()
                return client_context(config.server.tls_ca_cert_file or None, cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise click.ClickException(f"cannot load TLS files: {exc}") from None
        return None


def resolve_target(config_path: str | None, endpoints: str | None, password: str | None, tls: TlsOptions = TlsOptions(),
                   user: str | None = None) -> Target:
    if config_path and endpoints:
        raise click.UsageError("give --config or --endpoints, not both")
    if config_path:
        config = load_config(config_path)
        nodes = [n for n in config.nodes if n.client]
        if not nodes:
            raise click.ClickException(f"{config_path}: no node has a client address")
        if password is None and user in (None, "default"):  # requirepass is the default user's password
            password = config.server.requirepass or None
        return Target(
            endpoints=[n.client for n in nodes],
            password=password,
            config=config,
            names={n.client: n.id for n in nodes},
            tls=tls.context(config),
            user=user,
        )
    if endpoints:
        listed = [e.strip() for e in endpoints.split(",") if e.strip()]
        for endpoint in listed:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise click.UsageError(f"--endpoints: {endpoint!r} is not host:port")
        return Target(endpoints=listed, password=password, tls=tls.context(), user=user)
    raise click.UsageError(
        "say which cluster: --config FILE or --endpoints host:port,... (or RAFTCACHE_CONFIG / RAFTCACHE_ENDPOINTS)"
    )


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --config/--endpoints/--user/--password and the TLS flags; passes a resolved `target`."""

    @click.option("--config", "config_path", envvar="RAFTCACHE_CONFIG", metavar="FILE", help="cluster TOML file")
    @click.option("--endpoints", envvar="RAFTCACHE_ENDPOINTS", metavar="HOST:PORT,...", help="client addresses of nodes")
    @click.option("--user", envvar="RAFTCACHE_USER", default=None, help="ACL user to log in as (AUTH user password)")
    @click.option("--password", envvar="RAFTCACHE_PASSWORD", default=None, help="the --user's password, else requirepass")
    @click.option("--tls", is_flag=True, envvar="RAFTCACHE_TLS", help="connect with TLS (implied by --cacert/--cert, or by a --config whose nodes use TLS)")
    @click.option("--cacert", envvar="RAFTCACHE_CACERT", metavar="FILE", help="CA certificates to verify the nodes with (default: the system's)")
    @click.option("--cert", envvar="RAFTCACHE_CERT", metavar="FILE", help="client certificate (for tls_auth_clients = yes)")
    @click.option("--key", "key_file", envvar="RAFTCACHE_KEY", metavar="FILE", help="private key of --cert")
    @functools.wraps(fn)
    def wrapper(config_path: str | None, endpoints: str | None, user: str | None, password: str | None, tls: bool,
                cacert: str | None, cert: str | None, key_file: str | None, **kwargs: Any) -> Any:
        if config_path and endpoints:  # a flag on the command line beats the environment
            ctx = click.get_current_context()
            from_env = click.core.ParameterSource.ENVIRONMENT
            if ctx.get_parameter_source("config_path") is from_env:
                config_path = None
            elif ctx.get_parameter_source("endpoints") is from_env:
                endpoints = None
        target = resolve_target(config_path, endpoints, password, TlsOptions(tls, cacert, cert, key_file), user)
        try:
            return fn(target=target, **kwargs)
        except OSError as exc:
            raise click.ClickException(f"cannot reach the cluster ({', '.join(target.endpoints)}): {exc}") from None

    return wrapper


# -------------------------------------------------------------------------- printing
def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Rows as an aligned table; `columns` are (key, heading)."""
    cells = [[heading for _, heading in columns]] + [["" if row.get(key) is None else str(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def human_bytes(n: int | None) -> str | None:
    if n is None:
        return None
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return None


def human_seconds(s: int | None) -> str | None:
    if s is None:
        return None
    days, rest = divmod(int(s), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"
