"""The blocking-pop methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names,
arguments and result types). Mixed into ``api.CacheCommands``.

Each method sends its Redis arguments as one ``DataWrite`` through ``self._run_blocking``:
the network clients (and pipelines) just run it, since the server does the waiting and the
client stretches its socket timeout and deadline by the blocking timeout
(``client.core``); the embedded caches wait on their own replica (``cache.py``). A timeout
of 0 waits forever, as in Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import commands as c

Number = int | float


def _timeout(timeout: Number | None) -> Any:
    if timeout is None:
        return 0  # redis-py's spelling of "forever"
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    return timeout


def _keys(keys: Any) -> list[Any]:
    """redis-py's list_or_args: one key or an iterable of keys."""
    if isinstance(keys, (str, bytes, bytearray, memoryview)) or not isinstance(keys, Iterable):
        return [keys]
    return list(keys)


class BlockingMethods:
    """BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP."""

    _decode: bool

    def _run_blocking(self, command: c.DataWrite, convert: Any) -> Any:
        """Run a blocking pop to its answer (None at the timeout). The network clients and
        pipelines send it like any write; the embedded caches override this."""
        return self._run(command, convert)  # type: ignore[attr-defined]

    def _blocking(self, name: bytes, args: list[Any], convert: Any) -> Any:
        from ..api import _to_bytes

        return self._run_blocking(c.DataWrite((name, *(_to_bytes(a, "argument") for a in args))), convert)

    # -- conversions (redis-py's RESP2 results)
    def _pair(self, result: Any) -> Any:
        return None if result is None else (self._out(result[0]), self._out(result[1]))  # type: ignore[attr-defined]

    def _scored(self, result: Any) -> Any:
        return None if result is None else (self._out(result[0]), self._out(result[1]), float(result[2]))  # type: ignore[attr-defined]

    def _mpopped(self, result: Any) -> Any:
        return None if result is None else [self._out(result[0]), self._out_list(result[1])]  # type: ignore[attr-defined]

    def _zmpopped(self, result: Any) -> Any:
        # redis-py leaves BZMPOP's scores as bytes, even with decode_responses
        if result is None:
            return None
        return [self._out(result[0]), [[self._out(member), score] for member, score in result[1]]]  # type: ignore[attr-defined]

    # -- lists
    def blpop(self, keys: Any, timeout: Number | None = 0) -> Any:
        """(key, element) from the first non-empty list, waiting up to `timeout` seconds
        (0: forever) for one; None at the timeout."""
        return self._blocking(b"blpop", [*_keys(keys), _timeout(timeout)], self._pair)

    def brpop(self, keys: Any, timeout: Number | None = 0) -> Any:
        return self._blocking(b"brpop", [*_keys(keys), _timeout(timeout)], self._pair)

    def blmove(self, first_list: Any, second_list: Any, timeout: Number, src: str = "LEFT", dest: str = "RIGHT") -> Any:
        """Move an element from `first_list` to `second_list` (waiting for one); the element,
        or None at the timeout. The reliable-queue step: see README."""
        return self._blocking(b"blmove", [first_list, second_list, src, dest, _timeout(timeout)], self._out)  # type: ignore[attr-defined]

    def brpoplpush(self, src: Any, dst: Any, timeout: Number | None = 0) -> Any:
        return self._blocking(b"brpoplpush", [src, dst, _timeout(timeout)], self._out)  # type: ignore[attr-defined]

    def blmpop(self, timeout: float, numkeys: int, *args: Any, direction: str, count: int | None = 1) -> Any:
        """[key, [elements]] popped from the first non-empty of the `numkeys` lists."""
        return self._blocking(b"blmpop", [_timeout(timeout), numkeys, *args, direction, "COUNT", count], self._mpopped)

    # -- sorted sets
    def bzpopmin(self, keys: Any, timeout: Number | None = 0) -> Any:
        """(key, member, score) of the lowest score of the first non-empty sorted set."""
        return self._blocking(b"bzpopmin", [*_keys(keys), _timeout(timeout)], self._scored)

    def bzpopmax(self, keys: Any, timeout: Number | None = 0) -> Any:
        return self._blocking(b"bzpopmax", [*_keys(keys), _timeout(timeout)], self._scored)

    def bzmpop(self, timeout: float, numkeys: int, keys: list[Any], min: bool = False, max: bool = False, count: int | None = 1) -> Any:
        """[key, [[member, score], ...]] from the first non-empty of the sorted sets."""
        if min == max:
            raise ValueError("Either min or max, but not both must be set")
        return self._blocking(b"bzmpop", [_timeout(timeout), numkeys, *keys, "MIN" if min else "MAX", "COUNT", count], self._zmpopped)
