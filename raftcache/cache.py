"""Embedding API: ``Cache`` (blocking, thread-safe) and ``AsyncCache`` (asyncio).

The process that creates a Cache *is* a replica: it runs Raft with its partners and holds a
full copy of the data. Every method is written once in ``_CacheCommands``; the two classes
differ only in ``_run``, which either waits for the result or returns an awaitable.

Inputs: keys and values may be ``str`` (UTF-8 encoded), ``bytes``-like, ``int`` or ``float``
(encoded as their decimal text, as redis-py does). Outputs: values come back as ``bytes``,
or ``str`` with ``decode_responses=True``. Errors are raised as ``raftcache.errors``
exceptions (``CommandError`` subclasses for rejected commands, ``NoLeaderError`` /
``OutcomeUnknownError`` when the cluster cannot settle a command in time).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Iterable, Mapping

from . import commands as c
from .clock import Clock
from .config import ClusterConfig, load_config
from .errors import ConfigError, OutcomeUnknownError, SyntaxError_, ValueTooLargeError
from .replica import CONSISTENCY_LEVELS, LINEARIZABLE, NodeStatus, Replica, ReplicaOptions
from .replication import RaftSettings

DEFAULT_MAX_VALUE_BYTES = 1 << 20
DEFAULT_MAX_KEY_BYTES = 64 * 1024

Convert = Callable[[Any], Any]


def _to_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):  # a bool is an int, but "True" is almost always a bug
        raise TypeError(f"invalid {what} of type bool; use a str, bytes, int or float")
    if isinstance(value, (int, float)):
        return repr(value).encode()
    raise TypeError(f"invalid {what} of type {type(value).__name__}; use a str, bytes, int or float")


def _ms(seconds: float | int, what: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds")
    return int(round(seconds * 1000))


def options_from_config(config: ClusterConfig, node_id: str, **overrides: Any) -> tuple[ReplicaOptions, str]:
    """Replica options for one node of a cluster file (shared by Cache and the server)."""
    node = config.node(node_id)
    cl, raft, snap = config.cluster, config.raft, config.snapshot
    max_value = overrides.pop("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
    settings = RaftSettings(
        address=node.raft,
        peers=config.peers_of(node_id),
        secret=cl.secret or None,
        data_dir=node.data_dir,
        fsync=cl.fsync == "always",
        heartbeat_s=raft.heartbeat_ms / 1000,
        election_timeout_s=(raft.election_timeout_min_ms / 1000, raft.election_timeout_max_ms / 1000),
        leader_lease_s=raft.leader_lease_ms / 1000,
        snapshot_min_entries=snap.min_entries,
        snapshot_min_interval_s=snap.min_interval_s,
        snapshot_max_log_bytes=snap.max_log_mb * 1024 * 1024,
        max_entry_bytes=max(2 << 20, raft.max_batch_bytes, max_value + DEFAULT_MAX_KEY_BYTES + 4096),
        **overrides.pop("raft", {}),
    )
    options = ReplicaOptions(
        raft=settings,
        request_timeout_s=cl.request_timeout_ms / 1000,
        entry_timeout_s=raft.entry_timeout_ms / 1000,
        max_inflight=raft.max_inflight_batches,
        max_batch_commands=raft.max_batch_commands,
        max_batch_bytes=raft.max_batch_bytes,
        clock_interval_s=raft.clock_interval_ms / 1000,
        **overrides,
    )
    return options, node.id


class _CacheCommands:
    """Every cache method, written once. Subclasses provide `_run`."""

    _replica: Replica
    _decode: bool
    _max_value: int
    _max_key: int

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        raise NotImplementedError

    # -- argument helpers
    def _key(self, key: Any) -> bytes:
        data = _to_bytes(key, "key")
        if len(data) > self._max_key:
            raise ValueTooLargeError(f"key of {len(data)} bytes exceeds the limit of {self._max_key} bytes")
        return data

    def _value(self, value: Any) -> bytes:
        data = _to_bytes(value, "value")
        if len(data) > self._max_value:
            raise ValueTooLargeError(f"value of {len(data)} bytes exceeds the limit of {self._max_value} bytes")
        return data

    def _out(self, value: Any) -> Any:
        if self._decode and isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value

    def _out_list(self, values: list[Any]) -> list[Any]:
        return [self._out(v) for v in values] if self._decode else values

    # -- reads
    def get(self, key: Any, *, consistency: str | None = None) -> Any:
        """The value (bytes/str) or None. `consistency="stale"` reads this replica's state."""
        return self._run(c.Get(self._key(key)), self._out, consistency=consistency)

    def mget(self, *keys: Any, consistency: str | None = None) -> Any:
        return self._run(c.MGet(tuple(self._key(k) for k in _flatten(keys))), self._out_list, consistency=consistency)

    def exists(self, *keys: Any, consistency: str | None = None) -> Any:
        """How many of the keys exist (a key named twice counts twice, as in Redis)."""
        return self._run(c.Exists(tuple(self._key(k) for k in _flatten(keys))), consistency=consistency)

    def strlen(self, key: Any, *, consistency: str | None = None) -> Any:
        return self._run(c.Strlen(self._key(key)), consistency=consistency)

    def ttl(self, key: Any, *, consistency: str | None = None) -> Any:
        """Seconds to live; -1 without expiry, -2 if missing (Redis's TTL)."""
        return self._run(c.Ttl(self._key(key)), consistency=consistency)

    def pttl(self, key: Any, *, consistency: str | None = None) -> Any:
        return self._run(c.Ttl(self._key(key), ms=True), consistency=consistency)

    def keys(self, pattern: Any = "*", *, consistency: str | None = None) -> Any:
        """Keys matching a Redis glob pattern."""
        return self._run(c.Keys(_to_bytes(pattern, "pattern")), self._out_list, consistency=consistency)

    def scan(self, cursor: int = 0, *, match: Any = None, count: int = 100, consistency: str | None = None) -> Any:
        """(next_cursor, keys); iterate until the cursor comes back as 0."""
        pattern = None if match is None else _to_bytes(match, "pattern")
        return self._run(
            c.Scan(int(cursor), pattern, int(count)),
            lambda r: (r[0], self._out_list(r[1])),
            consistency=consistency,
        )

    def dbsize(self, *, consistency: str | None = None) -> Any:
        return self._run(c.DbSize(), consistency=consistency)

    def type(self, key: Any, *, consistency: str | None = None) -> Any:
        return self._run(c.Type(self._key(key)), consistency=consistency)

    # -- writes
    def set(
        self,
        key: Any,
        value: Any,
        *,
        ttl: float | None = None,
        ex: float | None = None,
        px: int | None = None,
        exat: float | None = None,
        pxat: int | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
    ) -> Any:
        """Set a value. `ttl`/`ex` seconds, `px` ms, `exat`/`pxat` absolute (Unix time).

        Returns True, or False when `nx`/`xx` prevented it; with `get=True` returns the old
        value (or None) instead.
        """
        expiries = [v for v in (ttl, ex, px, exat, pxat) if v is not None]
        if len(expiries) > 1 or (expiries and keepttl) or (nx and xx):
            raise SyntaxError_("set: choose at most one of ttl/ex/px/exat/pxat/keepttl, and not both nx and xx")
        ttl_ms = at_ms = None
        if ttl is not None or ex is not None:
            ttl_ms = _ms(ttl if ttl is not None else ex, "ttl")  # type: ignore[arg-type]
        elif px is not None:
            ttl_ms = int(px)
        elif exat is not None:
            at_ms = _ms(exat, "exat")
        elif pxat is not None:
            at_ms = int(pxat)
        if (ttl_ms is not None and ttl_ms <= 0) or (at_ms is not None and at_ms <= 0):
            raise SyntaxError_("invalid expire time in 'set' command")
        cond = c.COND_NX if nx else c.COND_XX if xx else c.COND_NONE
        command = c.Set(self._key(key), self._value(value), cond, get, ttl_ms, at_ms, keepttl)
        return self._run(command, self._out if get else None)

    def delete(self, *keys: Any) -> Any:
        """Delete keys; returns how many existed."""
        return self._run(c.Delete(tuple(self._key(k) for k in _flatten(keys))))

    def getdel(self, key: Any) -> Any:
        return self._run(c.GetDel(self._key(key)), self._out)

    def mset(self, mapping: Mapping[Any, Any]) -> Any:
        pairs: list[bytes] = []
        for k, v in mapping.items():
            pairs += (self._key(k), self._value(v))
        return self._run(c.MSet(tuple(pairs)))

    def incr(self, key: Any, amount: int = 1) -> Any:
        """Add `amount` (64-bit signed) to an integer value; returns the new value."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount must be an int")
        return self._run(c.IncrBy(self._key(key), amount))

    def decr(self, key: Any, amount: int = 1) -> Any:
        return self.incr(key, -amount)

    def append(self, key: Any, value: Any) -> Any:
        """Append to a value (creating it); returns the new length."""
        return self._run(c.Append(self._key(key), self._value(value)))

    def expire(self, key: Any, seconds: float, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False) -> Any:
        """Set a time to live; returns True if set. A ttl <= 0 deletes the key."""
        return self._expire(key, _ms(seconds, "seconds"), False, nx, xx, gt, lt)

    def pexpire(self, key: Any, ms: int, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False) -> Any:
        return self._expire(key, int(ms), False, nx, xx, gt, lt)

    def expireat(self, key: Any, when: float, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False) -> Any:
        return self._expire(key, _ms(when, "when"), True, nx, xx, gt, lt)

    def _expire(self, key: Any, when_ms: int, absolute: bool, nx: bool, xx: bool, gt: bool, lt: bool) -> Any:
        flags = [name for name, on in ((c.COND_NX, nx), (c.COND_XX, xx), (c.COND_GT, gt), (c.COND_LT, lt)) if on]
        if len(flags) > 1:
            raise SyntaxError_("NX and XX, GT or LT options at the same time are not compatible")
        return self._run(c.Expire(self._key(key), when_ms, absolute, flags[0] if flags else c.COND_NONE), bool)

    def persist(self, key: Any) -> Any:
        return self._run(c.Persist(self._key(key)), bool)

    def cas(self, key: Any, expected: Any, new: Any, *, ttl: float | None = None) -> Any:
        """Compare-and-set: store `new` if the current value equals `expected`; True if it did.
        The key's expiry is kept unless `ttl` (seconds) is given."""
        ttl_ms = None if ttl is None else _ms(ttl, "ttl")
        if ttl_ms is not None and ttl_ms <= 0:
            raise SyntaxError_("invalid expire time in 'cas' command")
        return self._run(c.Cas(self._key(key), self._value(expected), self._value(new), ttl_ms), bool)

    def flushall(self) -> Any:
        return self._run(c.FlushAll())

    # -- node
    def wait_ready(self, timeout: float = 10.0) -> Any:
        """Wait until this replica can serve a linearizable read (a leader exists and this
        node has caught up). Raises NoLeaderError after `timeout` seconds."""
        return self._run(c.Barrier(), lambda r: True, timeout=timeout)

    def status(self) -> NodeStatus:
        """This node's Raft and cache status (local, immediate)."""
        return self._replica.status()

    def digest(self) -> tuple[int, str]:
        """(applied index, state digest): equal on replicas at the same applied index."""
        return self._replica.digest()

    @property
    def replica(self) -> Replica:
        return self._replica


def _flatten(keys: tuple[Any, ...]) -> Iterable[Any]:
    if len(keys) == 1 and isinstance(keys[0], (list, tuple)):
        return keys[0]
    return keys


def _raise_or_convert(result: Any, convert: Convert | None) -> Any:
    if isinstance(result, BaseException):
        raise result
    return convert(result) if convert is not None else result


class _Setup:
    """Constructor logic shared by Cache and AsyncCache."""

    def _setup(
        self,
        address: str,
        partners: Iterable[str],
        *,
        data_dir: str | None,
        secret: str | None,
        node_id: str | None,
        fsync: str,
        decode_responses: bool,
        request_timeout: float,
        max_value_bytes: int,
        clock: Clock | None,
        options: ReplicaOptions | None,
        raft: Mapping[str, Any] | None,
    ) -> None:
        if fsync not in ("always", "no"):
            raise ConfigError("fsync must be 'always' or 'no'")
        if options is None:
            settings = RaftSettings(
                address=address,
                peers=tuple(partners),
                secret=secret,
                data_dir=data_dir,
                fsync=fsync == "always",
                max_entry_bytes=max(2 << 20, max_value_bytes + DEFAULT_MAX_KEY_BYTES + 4096),
                **(raft or {}),
            )
            options = ReplicaOptions(raft=settings, request_timeout_s=request_timeout)
        self._decode = decode_responses
        self._max_value = max_value_bytes
        self._max_key = DEFAULT_MAX_KEY_BYTES
        self._timeout = options.request_timeout_s
        self._replica = Replica(options, node_id=node_id, clock=clock)
        self._replica.start()

    def _check_consistency(self, consistency: str | None) -> str:
        if consistency is None:
            return LINEARIZABLE
        if consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"consistency must be one of {CONSISTENCY_LEVELS}")
        return consistency


class Cache(_Setup, _CacheCommands):
    """A replica embedded in this process, with a blocking, thread-safe API.

    ::

        cache = Cache("127.0.0.1:7101", ["127.0.0.1:7102", "127.0.0.1:7103"],
                      data_dir="data/n1", secret="...")
        cache.wait_ready(timeout=10)
        cache.set("k", "v", ttl=30)
    """

    def __init__(
        self,
        address: str,
        partners: Iterable[str] = (),
        *,
        data_dir: str | None = None,
        secret: str | None = None,
        node_id: str | None = None,
        fsync: str = "always",
        decode_responses: bool = False,
        request_timeout: float = 5.0,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        clock: Clock | None = None,
        options: ReplicaOptions | None = None,
        raft: Mapping[str, Any] | None = None,
    ) -> None:
        self._setup(
            address, partners, data_dir=data_dir, secret=secret, node_id=node_id, fsync=fsync,
            decode_responses=decode_responses, request_timeout=request_timeout,
            max_value_bytes=max_value_bytes, clock=clock, options=options, raft=raft,
        )

    @classmethod
    def from_config(cls, path: str, node_id: str, **kwargs: Any) -> "Cache":
        """A replica for node `node_id` of a cluster TOML file (the same file the server reads)."""
        options, node_id = options_from_config(load_config(path), node_id)
        return cls(options.raft.address, options.raft.peers, node_id=node_id, options=options, **kwargs)

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        done = threading.Event()
        box: list[Any] = []

        def on_done(result: Any) -> None:
            box.append(result)
            done.set()

        budget = timeout if timeout is not None else self._timeout
        self._replica.submit(command, on_done, consistency=self._check_consistency(consistency), timeout=budget)
        if not done.wait(budget + 5.0):  # the replica answers by the deadline; this is a backstop
            raise OutcomeUnknownError("no answer from the local replica")
        return _raise_or_convert(box[0], convert)

    def close(self) -> None:
        self._replica.close()

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCache(_Setup, _CacheCommands):
    """The asyncio twin of :class:`Cache`: same constructor, same methods, awaited.

    ``status()`` and ``digest()`` are local and immediate, so they are not coroutines.
    """

    def __init__(
        self,
        address: str,
        partners: Iterable[str] = (),
        *,
        data_dir: str | None = None,
        secret: str | None = None,
        node_id: str | None = None,
        fsync: str = "always",
        decode_responses: bool = False,
        request_timeout: float = 5.0,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        clock: Clock | None = None,
        options: ReplicaOptions | None = None,
        raft: Mapping[str, Any] | None = None,
    ) -> None:
        self._setup(
            address, partners, data_dir=data_dir, secret=secret, node_id=node_id, fsync=fsync,
            decode_responses=decode_responses, request_timeout=request_timeout,
            max_value_bytes=max_value_bytes, clock=clock, options=options, raft=raft,
        )
        self._deliveries: dict[asyncio.AbstractEventLoop, LoopDelivery] = {}

    @classmethod
    def from_config(cls, path: str, node_id: str, **kwargs: Any) -> "AsyncCache":
        options, node_id = options_from_config(load_config(path), node_id)
        return cls(options.raft.address, options.raft.peers, node_id=node_id, options=options, **kwargs)

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        delivery = self._deliveries.get(loop)
        if delivery is None:
            delivery = self._deliveries[loop] = LoopDelivery(loop)
        future: asyncio.Future[Any] = loop.create_future()
        budget = timeout if timeout is not None else self._timeout
        self._replica.submit(
            command, delivery.resolver(future), consistency=self._check_consistency(consistency), timeout=budget
        )
        return _finish(future, convert)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._replica.close)

    async def __aenter__(self) -> "AsyncCache":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _finish(future: "asyncio.Future[Any]", convert: Convert | None) -> Any:
    return _raise_or_convert(await future, convert)


class LoopDelivery:
    """Hands results from the Raft thread to one event loop, one wake-up per burst.

    ``call_soon_threadsafe`` writes to the loop's self-pipe on every call; under load many
    results complete together, so they are queued and set in a single loop callback.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[tuple[asyncio.Future[Any], Any]] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def resolver(self, future: "asyncio.Future[Any]") -> Callable[[Any], None]:
        def resolve(result: Any) -> None:
            with self._lock:
                self._pending.append((future, result))
                if self._scheduled:
                    return
                self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed: nobody is waiting any more
                pass

        return resolve

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        for future, result in pending:
            if not future.done():
                future.set_result(result)
