"""Embedding API: ``Cache`` (blocking, thread-safe) and ``AsyncCache`` (asyncio).

The process that creates a Cache *is* a replica: it runs Raft with its partners and holds a
full copy of the data. Every method is written once in ``api.CacheCommands``; the classes
here differ only in ``_run``, which either waits for the result or returns an awaitable.

Inputs: keys and values may be ``str`` (UTF-8 encoded), ``bytes``-like, ``int`` or ``float``
(encoded as their decimal text, as redis-py does). Outputs: values come back as ``bytes``,
or ``str`` with ``decode_responses=True``. Errors are raised as ``raftcache.errors``
exceptions (``CommandError`` subclasses for rejected commands, ``NoLeaderError`` /
``OutcomeUnknownError`` when the cluster cannot settle a command in time).

Membership (``members``, ``add_member``, ``remove_member``, ``transfer_leader``) follows the
same rules as ``raftcache members`` (one change at a time, unsafe changes refused unless
``force=True``), through ``operations.ClusterOperations``; changes must be asked of the
leader's Cache (a follower refuses and names the leader).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

from . import commands as c
from .aio import LoopDelivery
from .api import DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, CacheCommands, Convert, consistency_level, raise_or_convert
from .clock import Clock
from .config import ClusterConfig, WatchSection, load_config
from .consensus import RaftSettings
from .datatypes.blocking import parse_blocking
from .errors import ConfigError, OutcomeUnknownError
from .near_cache import NearCache, near_cache_config
from .operations import ClusterOperations, Member
from .replica import OnDone, Replica, ReplicaOptions, wait_for
from .status import NodeStatus
from .transaction import AsyncTransactions, TransactionPipeline, Transactions
from .watch import WatchEvent, WatchHub, WatchRequest, WatchStream, attach_hub, watch_hub


def options_from_config(config: ClusterConfig, node_id: str, **overrides: Any) -> tuple[ReplicaOptions, str]:
    """Replica options for one node of a cluster file (shared by Cache and the server)."""
    node = config.node(node_id)
    cl, raft, snap = config.cluster, config.raft, config.snapshot
    max_value = overrides.pop("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
    settings = RaftSettings(
        address=node.raft,
        peers=config.peers_of(node_id),
        secret=config.secret() or None,  # from the file, secret_file or secret_env
        data_dir=node.data_dir,
        fsync=cl.fsync == "always",
        heartbeat_s=raft.heartbeat_ms / 1000,
        election_timeout_s=(raft.election_timeout_min_ms / 1000, raft.election_timeout_max_ms / 1000),
        leader_lease_s=raft.leader_lease_ms / 1000,
        snapshot_min_entries=snap.min_entries,
        snapshot_min_interval_s=snap.min_interval_s,
        snapshot_max_log_bytes=snap.max_log_mb * 1024 * 1024,
        max_entry_bytes=max(2 << 20, raft.max_batch_bytes, max_value + DEFAULT_MAX_KEY_BYTES + 4096),
        peer_compression_level=raft.peer_compression_level,
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
        initial_settings=config.memory.initial_settings() + config.pubsub.initial_settings(),
        **overrides,
    )
    return options, node.id


class _Replicated(CacheCommands):
    """Construction and node methods shared by Cache and AsyncCache (they differ in `_run`)."""

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
        watch: WatchSection | None = None,
        near_cache: Any = None,
    ) -> None:
        """`watch`: the watch history's size ([watch] of the cluster file; defaults there);
        `near_cache`: True, a key count or a NearCacheConfig serves GET from memory (see
        raftcache.near_cache)."""
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
        self._max_entry_bytes = options.raft.max_entry_bytes  # one transaction is one Raft entry
        self._replica = Replica(options, node_id=node_id, clock=clock)
        self._ops = ClusterOperations(self._replica)
        w = watch or WatchSection()
        self._watch = watch_hub(w)
        attach_hub(self._replica, self._watch, values=w.history_values)  # before start: the log replay refills it
        config = near_cache_config(near_cache)
        self._near: NearCache | None = None
        if config is not None:
            self._near = NearCache(config)
            self._watch.add_listener(self._near_events)
        self._replica.start()
        if self._near is not None:
            threading.Thread(target=self._near_heartbeat, name="raftcache-near-cache", daemon=True).start()

    # ------------------------------------------------------------ watch, near-cache
    def _watch_stream(self, pattern: Any, start_index: int | None, values: bool) -> WatchStream:
        if start_index is not None and (isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0):
            raise ValueError("start_index must be a seq (an int >= 0) or None")
        hub = self._watch
        if values and not hub.values_kept:
            raise ConfigError("this cache's watch history keeps no values (watch.history_values = false)")
        request = WatchRequest(self._key(pattern), start_index, values)
        return WatchStream.open(request, hub.history, now=time.monotonic(), future_wait_s=hub.future_wait_s)

    def _watch_step(self, stream: WatchStream) -> tuple[list[WatchEvent], bool]:
        """What the stream has not delivered yet (raises on compaction / a future seq not
        reached), and whether its iterator should then wait for the next change."""
        if stream.expired(time.monotonic()):
            raise stream.future_error(self._watch.history)
        out = []
        for frame in stream.pull(self._watch.history, self._watch.batch):
            value = frame[4] if len(frame) > 4 else None
            event = WatchEvent(frame[1], frame[2].decode(), frame[3], value)
            if self._decode:
                event = event._replace(key=self._out(event.key), value=self._out(value))
            out.append(event)
        return out, not out and stream.position >= self._watch.history.applied

    def _near_events(self, events: list[WatchEvent]) -> None:
        near = self._near
        assert near is not None
        for event in events:
            near.event(event)

    def _near_heartbeat(self) -> None:
        """The embedded near-cache trusts this replica while it knows a leader (a replica cut
        off from the cluster stops applying; its cache stops serving after max_silence_s)."""
        near = self._near
        assert near is not None
        period = min(self._watch.progress_s, near.config.max_silence_s / 4)
        while not self._replica.closed:
            if self._replica.status().leader is not None:
                if not near.serving:
                    near.up()
                near.heard()
            time.sleep(period)
        near.down()

    @property
    def near_cache(self) -> NearCache | None:
        return self._near

    @property
    def watch_hub(self) -> WatchHub:
        return self._watch

    def pipeline(self, transaction: bool = True) -> TransactionPipeline:
        """A MULTI/EXEC transaction (raftcache.transaction), applied atomically. Embedded
        calls have no round trips to save, so only ``transaction=True`` is offered."""
        if not transaction:
            raise ValueError("an embedded cache has no round trips to save: call the methods directly")
        return TransactionPipeline(self)

    @classmethod
    def from_config(cls, path: str, node_id: str, **kwargs: Any) -> Any:
        """A replica for node `node_id` of a cluster TOML file (the same file the server reads)."""
        config = load_config(path)
        options, node_id = options_from_config(config, node_id)
        kwargs.setdefault("watch", config.watch)
        return cls(options.raft.address, options.raft.peers, node_id=node_id, options=options, **kwargs)

    def status(self) -> NodeStatus:
        """This node's Raft and cache status (local, immediate)."""
        return self._replica.status()

    def digest(self) -> tuple[int, str]:
        """(applied index, state digest): equal on replicas at the same applied index."""
        return self._replica.digest()

    @property
    def replica(self) -> Replica:
        return self._replica

    # ----------------------------------------------------------------- membership
    def members(self) -> list[Member]:
        """The Raft members as this node sees them (local, immediate, like `status()`):
        id ("" when unknown), raft and client address, whether it leads, whether this node
        is connected to it."""
        return self._ops.members()

    def add_member(self, node_id: str, raft: str, client: str, *, force: bool = False) -> Any:
        """Add a member (True). Refused while a member is unreachable unless `force`; start
        the new node (its partners: every member) before or right after."""
        return self._operate(lambda done: self._ops.add_member(node_id, raft, client, done, force=force), _true)

    def remove_member(self, node: str, *, force: bool = False) -> Any:
        """Remove the member named by id or raft address (True). Refused when the remaining
        members would have no reachable majority, unless `force`; refused for this node
        while it leads (`transfer_leader` first)."""
        return self._operate(lambda done: self._ops.remove_member(node, done, force=force), _true)

    def transfer_leader(self, node: str | None = None) -> Any:
        """Hand leadership to the member named `node` (default: the most caught-up one);
        returns the new leader's name (its id, or its raft address when no id is known)."""
        return self._operate(lambda done: self._ops.transfer_leader(node, done), _peer_name)

    def _operate(self, start: Callable[[OnDone], None], convert: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _check_consistency(self, consistency: str | None) -> str:
        return consistency_level(consistency)


class Cache(_Replicated, Transactions):
    """A replica embedded in this process, with a blocking, thread-safe API.

    ::

        cache = Cache("127.0.0.1:7101", ["127.0.0.1:7102", "127.0.0.1:7103"],
                      data_dir="data/n1", secret="...")
        cache.wait_ready(timeout=10)
        cache.set("k", "v", ttl=30)
    """

    def _run(
        self,
        command: Any,
        convert: Convert | None = None,
        *,
        consistency: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        budget = timeout if timeout is not None else self._timeout
        consistency = self._check_consistency(consistency)
        result = wait_for(  # the replica answers by the deadline; the extra 5 s is a backstop
            lambda on_done: self._replica.submit(command, on_done, consistency=consistency, timeout=budget),
            budget + 5.0,
            "no answer from the local replica",
        )
        return raise_or_convert(result, convert)

    def _run_blocking(self, command: c.DataWrite, convert: Convert | None) -> Any:
        """BLPOP & co.: wait on this replica's blocking pops (woken by its state machine)."""
        parsed = parse_blocking(command.args)  # a bad timeout raises here
        blocking = self._replica.blocking
        done = threading.Event()
        box: list[Any] = []
        waiter = blocking.block(command, parsed.keys, lambda result: (box.append(result), done.set()))
        if not done.wait(parsed.timeout_ms / 1000 if parsed.timeout_ms else None):
            blocking.expire(waiter)  # nil, unless an attempt is in flight: then its answer
            if not done.wait(self._timeout + 5.0):
                blocking.cancel(waiter)
                raise OutcomeUnknownError("no answer from the local replica")
        return raise_or_convert(box[0], convert)

    def get(self, key: Any, *, consistency: str | None = None) -> Any:
        """The value or None; with a near-cache and no `consistency`, from memory when held."""
        near = self._near
        if near is None or consistency is not None:
            return super().get(key, consistency=consistency)
        k = self._key(key)
        return self._out(near.through(k, lambda: self._run(c.Get(k))))

    def watch(self, pattern: Any, start_index: int | None = None, *, values: bool = False) -> Iterator[WatchEvent]:
        """Changes of the keys matching the glob `pattern` applied by this replica, after seq
        `start_index` (None: from now), in log order, each once. Raises WatchCompactedError
        if `start_index` is older than the history (or a snapshot from the leader replaced
        the state while this iterator lagged)."""
        return self._watch_iter(self._watch_stream(pattern, start_index, values))  # opened now: "from now" is this call

    def _watch_iter(self, stream: WatchStream) -> Iterator[WatchEvent]:
        wake = threading.Event()
        self._watch.add_waker(wake.set)
        try:
            while not self._replica.closed:
                wake.clear()
                events, idle = self._watch_step(stream)
                yield from events
                if idle:
                    wake.wait(self._watch.progress_s)
        finally:
            self._watch.remove_waker(wake.set)

    def _operate(self, start: Callable[[OnDone], None], convert: Callable[[Any], Any]) -> Any:
        result = wait_for(start, _OPERATION_TIMEOUT_S, "no answer from the local replica")
        if isinstance(result, BaseException):
            raise result
        return convert(result)

    def close(self) -> None:
        self._ops.close()
        self._replica.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCache(_Replicated, AsyncTransactions):
    """The asyncio twin of :class:`Cache`: same constructor, same methods, awaited.

    ``status()`` is local and immediate and ``digest()`` local (it may hash a large state in
    a forked child, blocking until done), so neither is a coroutine.
    """

    def __init__(self, address: str, partners: Iterable[str] = (), **options: Any) -> None:
        super().__init__(address, partners, **options)
        self._deliveries: dict[asyncio.AbstractEventLoop, LoopDelivery] = {}

    def _run(
        self,
        command: Any,
        convert: Convert | None = None,
        *,
        consistency: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        future, resolve = self._future()
        budget = timeout if timeout is not None else self._timeout
        self._replica.submit(command, resolve, consistency=self._check_consistency(consistency), timeout=budget)
        return _finish(future, convert)

    async def _run_blocking(self, command: c.DataWrite, convert: Convert | None) -> Any:
        """BLPOP & co.: wait on this replica's blocking pops (woken by its state machine)."""
        parsed = parse_blocking(command.args)  # a bad timeout raises here
        blocking = self._replica.blocking
        future, resolve = self._future()
        waiter = blocking.block(command, parsed.keys, resolve)
        try:
            if parsed.timeout_ms:
                try:
                    await asyncio.wait_for(asyncio.shield(future), parsed.timeout_ms / 1000)
                except TimeoutError:
                    blocking.expire(waiter)  # nil, unless an attempt is in flight: then its answer
            result = await future
        except asyncio.CancelledError:
            blocking.cancel(waiter)
            raise
        return raise_or_convert(result, convert)

    async def get(self, key: Any, *, consistency: str | None = None) -> Any:
        """The value or None; with a near-cache and no `consistency`, from memory when held."""
        near = self._near
        if near is None or consistency is not None:
            return await super().get(key, consistency=consistency)
        k = self._key(key)
        return self._out(await near.through_async(k, lambda: self._run(c.Get(k))))

    def watch(self, pattern: Any, start_index: int | None = None, *, values: bool = False) -> AsyncIterator[WatchEvent]:
        """``Cache.watch`` as an async iterator (opened now: "from now" is this call)."""
        return self._watch_iter(self._watch_stream(pattern, start_index, values))

    async def _watch_iter(self, stream: WatchStream) -> AsyncIterator[WatchEvent]:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def waker() -> None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: the iterator is gone with it
                pass

        self._watch.add_waker(waker)
        try:
            while not self._replica.closed:
                wake.clear()
                events, idle = self._watch_step(stream)
                for event in events:
                    yield event
                if idle:
                    try:
                        await asyncio.wait_for(wake.wait(), self._watch.progress_s)
                    except TimeoutError:
                        pass
        finally:
            self._watch.remove_waker(waker)

    async def _operate(self, start: Callable[[OnDone], None], convert: Callable[[Any], Any]) -> Any:
        future, resolve = self._future()
        start(resolve)  # a refusal raises here, i.e. when awaited
        result = await future
        if isinstance(result, BaseException):
            raise result
        return convert(result)

    def _future(self) -> tuple[asyncio.Future[Any], OnDone]:
        """A future on the running loop and a callable, safe from any thread, resolving it."""
        loop = asyncio.get_running_loop()
        delivery = self._deliveries.get(loop)
        if delivery is None:
            delivery = self._deliveries[loop] = LoopDelivery(loop)
        future: asyncio.Future[Any] = loop.create_future()
        return future, delivery.resolver(future)

    async def close(self) -> None:
        self._ops.close()
        await asyncio.get_running_loop().run_in_executor(None, self._replica.close)

    async def __aenter__(self) -> AsyncCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_OPERATION_TIMEOUT_S = 60.0  # backstop: every operation reports by its own deadline first


def _true(result: Any) -> bool:
    return True


def _peer_name(peer: Any) -> str:
    return peer.name


async def _finish(future: asyncio.Future[Any], convert: Convert | None) -> Any:
    return raise_or_convert(await future, convert)
