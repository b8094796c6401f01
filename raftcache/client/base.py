"""What Client and AsyncClient share besides the core: construction, from_config, pipelines,
and the status plan. The two differ only in how they perform I/O."""

from __future__ import annotations

import ssl as _ssl
import time
from collections.abc import Iterable
from typing import Any

from ..api import DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, CacheCommands
from ..config import load_config
from ..near_cache import NearCache, near_cache_config
from ..tls import client_context
from ..transaction import TransactionPipeline
from ..watch import WatchCursor, WatchEvent
from .core import ClientCore, Plan, RetryPolicy
from .pipeline import Pipeline


class ClientBase(CacheCommands):
    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        password: str | None = None,
        username: str | None = None,
        decode_responses: bool = False,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 2.0,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_context: _ssl.SSLContext | None = None,
        near_cache: Any = None,
    ) -> None:
        """TLS, with redis-py's names: ``ssl=True`` verifies the nodes' certificates against
        ``ssl_ca_certs`` (the system CAs when None) and presents ``ssl_certfile``/``ssl_keyfile``
        when the nodes ask for a client certificate; ``ssl_context`` replaces all of that."""
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
        self._core = ClientCore(list(endpoints), retry or RetryPolicy())
        if not self._core.endpoints:
            raise ValueError("at least one endpoint (host:port) is required")
        # AUTH's arguments on every new connection: `AUTH password` (the default user) or
        # `AUTH username password` (an ACL user), as redis-py's username/password.
        self._auth: tuple[str, ...] | None = (username, password or "") if username else ((password,) if password else None)
        self._connect_timeout = connect_timeout
        self._decode = decode_responses
        self._max_value = max_value_bytes
        self._max_key = max_key_bytes
        if ssl_context is None and (ssl or ssl_ca_certs or ssl_certfile):
            ssl_context = client_context(ssl_ca_certs, ssl_certfile, ssl_keyfile)
        self._ssl: _ssl.SSLContext | None = ssl_context
        # near_cache=True / a key count / NearCacheConfig: GET from memory (near_cache.py)
        config = near_cache_config(near_cache)
        self._near: NearCache | None = NearCache(config) if config is not None else None

    # ------------------------------------------------------------ watch, near-cache
    def get(self, key: Any, *, consistency: str | None = None) -> Any:
        """The value (bytes/str) or None. With a near-cache and no `consistency`, answered from
        memory when it holds the key (see raftcache.near_cache for how stale it may be);
        ``consistency="linearizable"`` always asks the cluster."""
        if self._near is None or consistency is not None:
            return super().get(key, consistency=consistency)
        return self._near_get(self._key(key))

    def _near_get(self, key: bytes) -> Any:
        raise NotImplementedError

    @property
    def near_cache(self) -> NearCache | None:
        return self._near

    def _watch_cursor(self, pattern: Any, start_index: int | None, values: bool) -> WatchCursor:
        if start_index is not None and (isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0):
            raise ValueError("start_index must be a seq (an int >= 0) or None")
        retry = self._core.retry
        return WatchCursor(self._key(pattern), self._core.endpoints, start_index, values,
                           deadline=retry.deadline, silence_s=3.0)

    def _near_cursor(self) -> WatchCursor:
        assert self._near is not None
        return WatchCursor(b"*", self._core.endpoints, None, False, deadline=self._core.retry.deadline,
                           silence_s=self._near.config.max_silence_s)

    def _watch_out(self, event: WatchEvent) -> WatchEvent:
        if not self._decode:
            return event
        value = event.value.decode("utf-8", "replace") if event.value is not None else None
        return event._replace(key=event.key.decode("utf-8", "replace"), value=value)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, path: str, **kwargs: Any) -> Any:
        """A client for the cluster of a TOML file (client addresses, requirepass, limits, and
        TLS: the file's CA and client certificate when the nodes speak TLS)."""
        config = load_config(path)
        kwargs.setdefault("password", config.server.requirepass or None)
        if config.server.tls_cert_file and "ssl_context" not in kwargs:
            cert, key = config.server.client_cert()
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", config.server.tls_ca_cert_file or None)
            kwargs.setdefault("ssl_certfile", cert)
            kwargs.setdefault("ssl_keyfile", key)
        kwargs.setdefault("max_value_bytes", config.limits.max_value_bytes)
        return cls([n.client for n in config.nodes if n.client], **kwargs)

    def pipeline(self, transaction: bool = False) -> Pipeline | TransactionPipeline:
        """Queue commands and send them in one round trip with ``execute()``; with
        ``transaction=True`` as MULTI/EXEC, applied atomically (raftcache.transaction)."""
        return TransactionPipeline(self) if transaction else Pipeline(self)

    def _status_plan(self, endpoint: str | None) -> Plan:
        target = endpoint or (yield from self._core._target(time.monotonic() + 5))
        if target is None:
            raise ConnectionError("no endpoint reachable: " + ", ".join(self._core.endpoints))
        return (yield from self._core.node_info(target))

    @property
    def endpoints(self) -> list[str]:
        return list(self._core.endpoints)

    @property
    def leader(self) -> str | None:
        """The client address of the leader, as last learned."""
        return self._core.leader
