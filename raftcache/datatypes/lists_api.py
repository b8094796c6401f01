"""The lists methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names and
argument conventions). Mixed into ``api.CacheCommands``; each method sends its Redis
arguments through ``self._data_write``/``self._data_read`` with a result converter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..resp import NullArray

if TYPE_CHECKING:
    from collections.abc import Callable


def _nil(reply: Any) -> bool:
    """Nil in either spelling: the state machine's null array, or None off the wire."""
    return reply is None or reply is NullArray


def _true(reply: Any) -> bool:
    return True  # +OK (LSET, LTRIM): errors raise before a converter runs


class ListMethods:
    """LPUSH ... LMPOP. Results as redis-py gives them: ints, bytes (str when decoding),
    lists, None for nil, True for +OK."""

    _data_write: Callable[..., Any]
    _data_read: Callable[..., Any]
    _out: Callable[[Any], Any]
    _out_list: Callable[[list[Any]], list[Any]]

    # -- pushes
    def lpush(self, name: Any, *values: Any) -> Any:
        """Prepend `values` (the last ends up first); the list's new length."""
        return self._data_write(b"lpush", name, *values)

    def rpush(self, name: Any, *values: Any) -> Any:
        """Append `values`; the list's new length."""
        return self._data_write(b"rpush", name, *values)

    def lpushx(self, name: Any, *values: Any) -> Any:
        """LPUSH only if the list exists; its new length, 0 if it does not exist."""
        return self._data_write(b"lpushx", name, *values)

    def rpushx(self, name: Any, *values: Any) -> Any:
        """RPUSH only if the list exists; its new length, 0 if it does not exist."""
        return self._data_write(b"rpushx", name, *values)

    # -- pops and moves
    def lpop(self, name: Any, count: int | None = None) -> Any:
        """The first element (None if no list); with `count`, a list of up to `count`."""
        return self._pop(b"lpop", name, count)

    def rpop(self, name: Any, count: int | None = None) -> Any:
        """The last element (None if no list); with `count`, a list of up to `count`."""
        return self._pop(b"rpop", name, count)

    def _pop(self, command: bytes, name: Any, count: int | None) -> Any:
        if count is None:
            return self._data_write(command, name, convert=self._out)
        return self._data_write(command, name, count, convert=self._elements_or_none)

    def lmove(self, first_list: Any, second_list: Any, src: str = "LEFT", dest: str = "RIGHT") -> Any:
        """Pop from `first_list`'s `src` end, push onto `second_list`'s `dest` end; the
        element, or None if `first_list` is empty."""
        return self._data_write(b"lmove", first_list, second_list, src, dest, convert=self._out)

    def rpoplpush(self, src: Any, dst: Any) -> Any:
        """LMOVE src dst RIGHT LEFT."""
        return self._data_write(b"rpoplpush", src, dst, convert=self._out)

    def lmpop(self, num_keys: int, *args: Any, direction: str | None = None, count: int | None = 1) -> Any:
        """Pop up to `count` elements from the `direction` end ("LEFT"/"RIGHT") of the first
        non-empty list of the `num_keys` keys in `args`: [key, [elements]] or None."""
        if direction is None:
            raise TypeError("lmpop() needs direction='LEFT' or 'RIGHT'")
        words: list[Any] = [num_keys, *args, direction]
        if count != 1:
            words += ["COUNT", count]
        return self._data_write(b"lmpop", *words, convert=self._key_and_elements)

    # -- reads
    def llen(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"llen", name, consistency=consistency)

    def lrange(self, name: Any, start: int, end: int, *, consistency: str | None = None) -> Any:
        """Elements `start` to `end`, both included; negative indexes count from the end."""
        return self._data_read(b"lrange", name, start, end, convert=self._out_list, consistency=consistency)

    def lindex(self, name: Any, index: int, *, consistency: str | None = None) -> Any:
        """The element at `index` (negative from the end), None if out of range."""
        return self._data_read(b"lindex", name, index, convert=self._out, consistency=consistency)

    def lpos(self, name: Any, value: Any, rank: int | None = None, count: int | None = None,
             maxlen: int | None = None, *, consistency: str | None = None) -> Any:
        """The index of `value` (None if absent); with `count`, a list of up to `count`
        indexes (0: all). `rank` n skips to the n-th match (negative: from the end);
        `maxlen` bounds how many elements are compared."""
        words: list[Any] = [name, value]
        for option, given in ((b"RANK", rank), (b"COUNT", count), (b"MAXLEN", maxlen)):
            if given is not None:
                words += [option, given]
        return self._data_read(b"lpos", *words, consistency=consistency)

    # -- in-place edits
    def lset(self, name: Any, index: int, value: Any) -> Any:
        return self._data_write(b"lset", name, index, value, convert=_true)

    def lrem(self, name: Any, count: int, value: Any) -> Any:
        """Remove up to |count| occurrences of `value` (from the tail if count < 0, all if
        0); how many were removed."""
        return self._data_write(b"lrem", name, count, value)

    def ltrim(self, name: Any, start: int, end: int) -> Any:
        """Keep only elements `start` to `end` (both included)."""
        return self._data_write(b"ltrim", name, start, end, convert=_true)

    def linsert(self, name: Any, where: str, refvalue: Any, value: Any) -> Any:
        """Insert `value` "BEFORE" or "AFTER" the first `refvalue`; the new length, -1 if
        `refvalue` is absent, 0 if there is no list."""
        return self._data_write(b"linsert", name, where, refvalue, value)

    # -- converters
    def _elements_or_none(self, reply: Any) -> Any:
        return None if _nil(reply) else self._out_list(reply)

    def _key_and_elements(self, reply: Any) -> Any:
        return None if _nil(reply) else [self._out(reply[0]), self._out_list(reply[1])]
