"""The hashes methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names and
argument conventions). Mixed into ``api.CacheCommands``; each method sends its Redis
arguments through ``self._data_write``/``self._data_read`` with a result converter.

Results are redis-py's (RESP2, default ``legacy_responses``): ``hgetall`` a dict, ``hexists``
a bool, ``hmset`` True, ``hincrbyfloat`` a float, ``hscan`` (cursor, dict), ``hrandfield``
a field, a list of fields, or with ``withvalues`` a flat [field, value, ...] list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CommandError


class HashMethods:
    """HSET ... HSCAN as methods."""

    if TYPE_CHECKING:  # provided by api.CacheCommands
        _decode: bool

        def _key(self, key: Any) -> bytes: ...
        def _value(self, value: Any) -> bytes: ...
        def _out(self, value: Any) -> Any: ...
        def _out_list(self, values: list[Any]) -> list[Any]: ...
        def _data_write(self, name: bytes, *args: Any, convert: Callable[[Any], Any] | None = None) -> Any: ...
        def _data_read(self, name: bytes, *args: Any, convert: Callable[[Any], Any] | None = None,
                       consistency: str | None = None) -> Any: ...

    # -- converters
    def _hash_dict(self, reply: Any) -> dict[Any, Any]:
        """A dict from a map reply (embedded, RESP3) or a flat field, value, ... array (RESP2)."""
        if isinstance(reply, dict):
            pairs: Iterable[tuple[Any, Any]] = reply.items()
        else:
            items = iter(reply)
            pairs = zip(items, items)
        if self._decode:
            return {self._out(f): self._out(v) for f, v in pairs}
        return dict(pairs)

    def _hash_scan(self, reply: Any) -> tuple[int, dict[Any, Any]]:
        return int(reply[0]), self._hash_dict(reply[1])

    def _hash_random(self, reply: Any) -> Any:
        return self._out_list(reply) if isinstance(reply, list) else self._out(reply)

    def _field_values(self, pieces: Sequence[Any]) -> list[bytes]:
        return [self._value(p) for p in pieces]

    # -- writes
    def hset(self, name: Any, key: Any = None, value: Any = None, mapping: Mapping[Any, Any] | None = None,
             items: Sequence[Any] | None = None) -> Any:
        """Set `key` to `value`, and/or every pair of `mapping` and of the flat `items` list;
        returns how many fields were new."""
        if key is None and not mapping and not items:
            raise CommandError("wrong number of arguments for 'hset' command")
        pieces: list[Any] = list(items) if items else []
        if key is not None:
            pieces += (key, value)
        if mapping:
            for pair in mapping.items():
                pieces += pair
        return self._data_write(b"hset", self._key(name), *self._field_values(pieces))

    def hmset(self, name: Any, mapping: Mapping[Any, Any]) -> Any:
        """Set every pair of `mapping` (HSET's old form); returns True."""
        if not mapping:
            raise CommandError("wrong number of arguments for 'hmset' command")
        pieces = [part for pair in mapping.items() for part in pair]
        return self._data_write(b"hmset", self._key(name), *self._field_values(pieces), convert=lambda _: True)

    def hsetnx(self, name: Any, key: Any, value: Any) -> Any:
        """Set a field only if it does not exist; 1 if it was set, 0 otherwise."""
        return self._data_write(b"hsetnx", self._key(name), self._value(key), self._value(value))

    def hdel(self, name: Any, *keys: Any) -> Any:
        """Delete fields; returns how many existed (the key goes with its last field)."""
        return self._data_write(b"hdel", self._key(name), *self._field_values(keys))

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        """Add `amount` (64-bit signed) to an integer field; returns the new value."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount must be an int")
        return self._data_write(b"hincrby", self._key(name), self._value(key), amount)

    def hincrbyfloat(self, name: Any, key: Any, amount: float = 1.0) -> Any:
        """Add a float (computed as Redis's long double); returns the new value as a float."""
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str, bytes)):
            raise TypeError("amount must be a number")
        return self._data_write(b"hincrbyfloat", self._key(name), self._value(key), amount, convert=float)

    # -- reads
    def hget(self, name: Any, key: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hget", self._key(name), self._value(key), convert=self._out, consistency=consistency)

    def hmget(self, name: Any, keys: Any, *args: Any, consistency: str | None = None) -> Any:
        """The values of the fields (None for a missing one), in the order asked."""
        fields = [keys, *args] if isinstance(keys, (str, bytes, bytearray, memoryview, int, float)) else [*keys, *args]
        return self._data_read(b"hmget", self._key(name), *self._field_values(fields), convert=self._out_list,
                               consistency=consistency)

    def hgetall(self, name: Any, *, consistency: str | None = None) -> Any:
        """Every field and value, as a dict ({} for a missing key)."""
        return self._data_read(b"hgetall", self._key(name), convert=self._hash_dict, consistency=consistency)

    def hkeys(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hkeys", self._key(name), convert=self._out_list, consistency=consistency)

    def hvals(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hvals", self._key(name), convert=self._out_list, consistency=consistency)

    def hlen(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hlen", self._key(name), consistency=consistency)

    def hexists(self, name: Any, key: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hexists", self._key(name), self._value(key), convert=bool, consistency=consistency)

    def hstrlen(self, name: Any, key: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"hstrlen", self._key(name), self._value(key), consistency=consistency)

    def hrandfield(self, key: Any, count: int | None = None, withvalues: bool = False, *,
                   consistency: str | None = None) -> Any:
        """A random field (None if the hash is missing); with `count`, a list: distinct
        fields if positive, possibly repeated ones if negative; `withvalues` interleaves
        each field's value (a flat list, as redis-py's RESP2 reply)."""
        params: list[Any] = []
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError("count must be an int")
            params.append(count)
        if withvalues:
            params.append(b"WITHVALUES")
        return self._data_read(b"hrandfield", self._key(key), *params, convert=self._hash_random, consistency=consistency)

    def hscan(self, name: Any, cursor: int = 0, match: Any = None, count: int | None = None, *,
              consistency: str | None = None) -> Any:
        """(next cursor, {field: value}); iterate until the cursor comes back as 0. A small
        (listpack) hash comes whole in one call."""
        pieces: list[Any] = [self._key(name), int(cursor)]
        if match is not None:
            pieces += (b"MATCH", match)
        if count is not None:
            pieces += (b"COUNT", int(count))
        return self._data_read(b"hscan", *pieces, convert=self._hash_scan, consistency=consistency)
