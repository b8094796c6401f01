"""The sets methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names and
argument conventions). Mixed into ``api.CacheCommands``; each method sends its Redis
arguments through ``self._data_write``/``self._data_read`` with a result converter.

Results as redis-py returns them: ``set`` for smembers/sinter/sunion/sdiff, ``bool`` for
sismember and smove, a list of ``bool`` for smismember (redis-py 8 leaves those two as 0/1
integers, which compare equal), ``(cursor, list)`` for sscan, counts as ``int``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _list_or_args(keys: Any, args: tuple[Any, ...]) -> list[Any]:
    """redis-py's convention: a list of keys, or one key followed by more."""
    if isinstance(keys, (bytes, str, bytearray, memoryview, int, float)):
        return [keys, *args]
    return [*keys, *args]


class SetMethods:
    """SADD ... SSCAN and RANDOMKEY."""

    # Provided by api.CacheCommands (declared here for type checkers).
    _key: Any
    _value: Any
    _out: Any
    _out_list: Any
    _data_write: Any
    _data_read: Any

    def _set_keys(self, keys: Iterable[Any]) -> list[bytes]:
        return [self._key(k) for k in keys]

    def _set_members(self, values: Iterable[Any]) -> list[bytes]:
        return [self._value(v) for v in values]

    def _set_reply(self, reply: list[bytes]) -> set[Any]:
        return set(self._out_list(reply))

    def _set_member_or_list(self, reply: Any) -> Any:
        return self._out_list(reply) if isinstance(reply, list) else self._out(reply)

    # -- writes
    def sadd(self, name: Any, *values: Any) -> Any:
        """How many of `values` were new members."""
        return self._data_write(b"sadd", self._key(name), *self._set_members(values))

    def srem(self, name: Any, *values: Any) -> Any:
        return self._data_write(b"srem", self._key(name), *self._set_members(values))

    def spop(self, name: Any, count: int | None = None) -> Any:
        """One random member (None if the set is empty), or a list of up to `count`."""
        args = () if count is None else (int(count),)
        return self._data_write(b"spop", self._key(name), *args, convert=self._set_member_or_list)

    def smove(self, src: Any, dst: Any, value: Any) -> Any:
        return self._data_write(b"smove", self._key(src), self._key(dst), self._value(value), convert=bool)

    def sinterstore(self, dest: Any, keys: Any, *args: Any) -> Any:
        return self._data_write(b"sinterstore", self._key(dest), *self._set_keys(_list_or_args(keys, args)))

    def sunionstore(self, dest: Any, keys: Any, *args: Any) -> Any:
        return self._data_write(b"sunionstore", self._key(dest), *self._set_keys(_list_or_args(keys, args)))

    def sdiffstore(self, dest: Any, keys: Any, *args: Any) -> Any:
        return self._data_write(b"sdiffstore", self._key(dest), *self._set_keys(_list_or_args(keys, args)))

    # -- reads
    def smembers(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"smembers", self._key(name), convert=self._set_reply, consistency=consistency)

    def sismember(self, name: Any, value: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"sismember", self._key(name), self._value(value), convert=bool,
                               consistency=consistency)

    def smismember(self, name: Any, values: Any, *args: Any, consistency: str | None = None) -> Any:
        members = self._set_members(_list_or_args(values, args))
        return self._data_read(b"smismember", self._key(name), *members, convert=lambda r: [bool(x) for x in r],
                               consistency=consistency)

    def scard(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"scard", self._key(name), consistency=consistency)

    def srandmember(self, name: Any, number: int | None = None, *, consistency: str | None = None) -> Any:
        """One random member (None if the set is empty), or a list: `number` distinct
        members, or with a negative `number`, that many draws (repeats allowed)."""
        args = () if number is None else (int(number),)
        return self._data_read(b"srandmember", self._key(name), *args, convert=self._set_member_or_list,
                               consistency=consistency)

    def sinter(self, keys: Any, *args: Any, consistency: str | None = None) -> Any:
        return self._data_read(b"sinter", *self._set_keys(_list_or_args(keys, args)), convert=self._set_reply,
                               consistency=consistency)

    def sunion(self, keys: Any, *args: Any, consistency: str | None = None) -> Any:
        return self._data_read(b"sunion", *self._set_keys(_list_or_args(keys, args)), convert=self._set_reply,
                               consistency=consistency)

    def sdiff(self, keys: Any, *args: Any, consistency: str | None = None) -> Any:
        return self._data_read(b"sdiff", *self._set_keys(_list_or_args(keys, args)), convert=self._set_reply,
                               consistency=consistency)

    def sintercard(self, numkeys: int, keys: list[Any], limit: int = 0, *, consistency: str | None = None) -> Any:
        """The intersection's size, counting no further than `limit` (0: no limit)."""
        return self._data_read(b"sintercard", int(numkeys), *self._set_keys(keys), b"LIMIT", int(limit),
                               consistency=consistency)

    def sscan(self, name: Any, cursor: int = 0, match: Any = None, count: int | None = None, *,
              consistency: str | None = None) -> Any:
        """(next_cursor, members); iterate until the cursor comes back as 0."""
        args: list[Any] = [self._key(name), int(cursor)]
        if match is not None:
            args += [b"MATCH", match]
        if count is not None:
            args += [b"COUNT", int(count)]
        return self._data_read(b"sscan", *args, convert=lambda r: (int(r[0]), self._out_list(r[1])),
                               consistency=consistency)

    def randomkey(self, *, consistency: str | None = None) -> Any:
        """A random key (bytes/str), None if the cache is empty."""
        return self._data_read(b"randomkey", convert=self._out, consistency=consistency)
