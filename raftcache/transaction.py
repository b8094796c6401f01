"""Transactions for every API class (Client, AsyncClient, Cache, AsyncCache), in redis-py's shape.

``pipeline(transaction=True)`` returns a :class:`TransactionPipeline`: the usual methods queue
commands and ``execute()`` sends them as ONE ``commands.Exec``, i.e. MULTI ... EXEC: applied
atomically on every replica, in one Raft entry, with one exactly-once tag (a retried EXEC
answers the first one's result). ``watch(*keys)`` first reads the keys' modification indexes
(a linearizable read) and puts the pipeline in immediate mode, where methods run at once
(read what the transaction depends on), until ``multi()``; ``execute()`` then raises
:class:`~raftcache.errors.WatchError`, having applied nothing, if any watched key changed.

``transaction(func, *keys)`` is the retry loop around that (redis-py's ``Redis.transaction``):
``func(pipe)`` runs with the keys watched, calls ``pipe.multi()`` and queues the writes; on a
conflict the whole function runs again, at most ``max_attempts`` times.

Everything goes through the owner's ``_run``, so the four classes share this code: an
embedded ``Cache`` submits the index read and the ``Exec`` to its replica directly, a
``Client`` sends them over RESP (``RAFTCACHE INDEX``, then ``RAFTCACHE WATCHED`` + MULTI +
... + tagged EXEC on one connection).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import commands as c
from .api import CacheCommands, Convert, consistency_level
from .errors import CommandError, ExecAbortError, WatchError

DEFAULT_MAX_ATTEMPTS = 64


class TransactionPipeline(CacheCommands):
    """MULTI/EXEC with optional WATCH (see the module docstring)."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._decode = owner._decode
        self._max_value = owner._max_value
        self._max_key = owner._max_key
        self.reset()

    def reset(self) -> None:
        """Forget queued commands and watched keys (back to a fresh pipeline)."""
        self._queued: list[tuple[Any, Convert | None]] = []
        self._watches: dict[bytes, int] = {}
        self.watching = False  # immediate mode: between watch() and multi()
        self.explicit_transaction = False  # multi() was called

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        if self.watching:
            return self._owner._run(command, convert, consistency=consistency, timeout=timeout)
        if timeout is not None:
            raise ValueError("a transaction has one deadline: pass timeout= to execute()")
        if consistency_level(consistency) != "linearizable":
            raise ValueError("commands inside a transaction are applied with it; consistency= does not apply")
        if type(command) not in c.EXEC_OP_TYPES:
            raise CommandError("Command not allowed inside a transaction")
        self._queued.append((command, convert))
        return self

    def __len__(self) -> int:
        return len(self._queued)

    def watch(self, *keys: Any) -> Any:
        """Watch keys (reads their indexes now; awaitable on the async classes)."""
        if self.explicit_transaction:
            raise CommandError("WATCH inside MULTI is not allowed")
        wanted = tuple(self._key(k) for k in keys)
        self.watching = True
        result = self._owner._run(c.WatchIndex(wanted))
        if inspect.isawaitable(result):
            return self._record_later(wanted, result)
        self._record(wanted, result)
        return True

    async def _record_later(self, keys: tuple[bytes, ...], result: Any) -> bool:
        self._record(keys, await result)
        return True

    def _record(self, keys: tuple[bytes, ...], indexes: list[int]) -> None:
        for key, index in zip(keys, indexes):
            self._watches.setdefault(key, index)  # the first read is the one EXEC must match

    def unwatch(self) -> bool:
        self._watches = {}
        self.watching = False
        return True

    def multi(self) -> None:
        """End immediate mode: commands from here on are queued for execute()."""
        if self.explicit_transaction:
            raise CommandError("MULTI calls can not be nested")
        if self._queued:
            raise CommandError("commands without an initial MULTI are already buffered")
        self.explicit_transaction = True
        self.watching = False

    def execute(self, raise_on_error: bool = True, timeout: float | None = None) -> Any:
        """Apply the queued commands atomically; one result per command (awaitable on the
        async classes). Raises WatchError, nothing applied, if a watched key changed."""
        queued, watches = self._queued, tuple(self._watches.items())
        self.reset()
        exec_cmd = c.Exec(tuple(command for command, _ in queued), watches)
        limit = getattr(self._owner, "_max_entry_bytes", None)  # known where the replica is local
        if limit is not None and c.size_hint(exec_cmd) > limit:  # the server checks it for clients
            raise ExecAbortError(f"Transaction discarded because of: it exceeds one Raft entry (raft max_entry_bytes {limit})")
        return self._owner._run(exec_cmd, partial(_results, queued, raise_on_error), timeout=timeout)

    def __enter__(self) -> TransactionPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    async def __aenter__(self) -> TransactionPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reset()


def _results(queued: list[tuple[Any, Convert | None]], raise_on_error: bool, results: Any) -> list[Any]:
    if results is None:  # the embedded replica's answer for an aborted EXEC
        raise WatchError()
    out = []
    for result, (_, convert) in zip(results, queued):
        out.append(result if isinstance(result, BaseException) or convert is None else convert(result))
    if raise_on_error:
        for result in out:
            if isinstance(result, BaseException):
                raise result
    return out


class Transactions:
    """``pipeline(transaction=True)`` and ``transaction()`` for the blocking classes."""

    def transaction(
        self,
        func: Callable[[TransactionPipeline], Any],
        *watches: Any,
        value_from_callable: bool = False,
        watch_delay: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> Any:
        """Run ``func(pipe)`` with `watches` watched and execute it; again on a WATCH
        conflict, at most `max_attempts` times (then WatchError). Returns execute()'s
        results, or func's return value with ``value_from_callable=True``."""
        for _ in range(max_attempts):
            pipe = TransactionPipeline(self)
            try:
                if watches:
                    pipe.watch(*watches)
                value = func(pipe)
                results = pipe.execute()
                return value if value_from_callable else results
            except WatchError:
                if watch_delay:
                    time.sleep(watch_delay)
        raise WatchError(f"Watched variable changed {max_attempts} times in a row; gave up")


class AsyncTransactions:
    """``pipeline(transaction=True)`` and ``transaction()`` for the asyncio classes: ``func``
    may be a coroutine function; ``await pipe.watch(...)`` and ``await pipe.execute()``."""

    async def transaction(
        self,
        func: Callable[[TransactionPipeline], Any],
        *watches: Any,
        value_from_callable: bool = False,
        watch_delay: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> Any:
        for _ in range(max_attempts):
            pipe = TransactionPipeline(self)
            try:
                if watches:
                    await pipe.watch(*watches)
                value = func(pipe)
                if inspect.isawaitable(value):
                    value = await value
                results = await pipe.execute()
                return value if value_from_callable else results
            except WatchError:
                if watch_delay:
                    await asyncio.sleep(watch_delay)
        raise WatchError(f"Watched variable changed {max_attempts} times in a row; gave up")
