"""The zsets methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names and
argument conventions). Mixed into ``api.CacheCommands``; each method sends its Redis
arguments through ``self._data_write``/``self._data_read`` with a result converter.

Results are redis-py's (RESP2) conversions: scores as floats (``score_cast_func`` on the
methods that return ranges), WITHSCORES ranges, unions, intersections, differences and pops
as lists of ``(member, score)`` tuples, ZSCAN as ``(cursor, [(member, score), ...])``;
ZRANDMEMBER and ZMPOP as on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import CommandError

ScoreCast = Callable[[Any], Any]


class ZSetMethods:
    """ZADD ... ZSCAN, ZMPOP, ZUNION/ZINTER/ZDIFF, ZINTERCARD, ZRANGESTORE; see the module
    docstring for the result conventions."""

    # provided by api.CacheCommands
    _key: Callable[[Any], bytes]
    _value: Callable[[Any], bytes]
    _out: Callable[[Any], Any]
    _out_list: Callable[[list[Any]], list[Any]]
    _data_write: Callable[..., Any]
    _data_read: Callable[..., Any]

    # -- conversions
    def _score_or_none(self, value: Any) -> float | None:
        return None if value is None else float(value)

    def _pairs(self, flat: list[Any], cast: ScoreCast = float) -> list[tuple[Any, Any]]:
        return [(self._out(flat[i]), cast(self._out(flat[i + 1]))) for i in range(0, len(flat), 2)]

    def _members_or_pairs(self, withscores: bool, cast: ScoreCast) -> Callable[[list[Any]], list[Any]]:
        return (lambda r: self._pairs(r, cast)) if withscores else self._out_list

    # -- writes
    def zadd(self, name: Any, mapping: Mapping[Any, Any], nx: bool = False, xx: bool = False, ch: bool = False,
             incr: bool = False, gt: bool = False, lt: bool = False) -> Any:
        """Add or update members (`mapping` member -> score): the number added (changed with
        `ch`), or with `incr` the member's new score (None if a condition stopped it)."""
        if not mapping:
            raise CommandError("ZADD requires at least one element/score pair")
        if incr and len(mapping) != 1:
            raise CommandError("ZADD option 'incr' only works when passing a single element/score pair")
        flags = [f for f, on in ((b"NX", nx), (b"XX", xx), (b"CH", ch), (b"INCR", incr), (b"GT", gt), (b"LT", lt)) if on]
        pieces = [x for member, score in mapping.items() for x in (score, self._value(member))]
        return self._data_write(b"zadd", self._key(name), *flags, *pieces,
                                convert=self._score_or_none if incr else None)

    def zincrby(self, name: Any, amount: float, value: Any) -> Any:
        """Add `amount` to a member's score (creating it); the new score."""
        return self._data_write(b"zincrby", self._key(name), amount, self._value(value), convert=float)

    def zrem(self, name: Any, *values: Any) -> Any:
        return self._data_write(b"zrem", self._key(name), *(self._value(v) for v in values))

    def zremrangebyrank(self, name: Any, min: int, max: int) -> Any:
        return self._data_write(b"zremrangebyrank", self._key(name), int(min), int(max))

    def zremrangebyscore(self, name: Any, min: Any, max: Any) -> Any:
        return self._data_write(b"zremrangebyscore", self._key(name), min, max)

    def zremrangebylex(self, name: Any, min: Any, max: Any) -> Any:
        return self._data_write(b"zremrangebylex", self._key(name), min, max)

    def zpopmin(self, name: Any, count: int | None = None) -> Any:
        """The `count` (default 1) lowest members, removed: [(member, score), ...]."""
        extra = () if count is None else (int(count),)
        return self._data_write(b"zpopmin", self._key(name), *extra, convert=self._pairs)

    def zpopmax(self, name: Any, count: int | None = None) -> Any:
        extra = () if count is None else (int(count),)
        return self._data_write(b"zpopmax", self._key(name), *extra, convert=self._pairs)

    def zmpop(self, num_keys: int, keys: list[Any], min: bool = False, max: bool = False,
              count: int = 1) -> Any:
        """Pop from the first non-empty key: [key, [[member, score], ...]] or None."""
        if min == max:
            raise CommandError("Either min or max should be True")
        return self._data_write(b"zmpop", int(num_keys), *(self._key(k) for k in keys), b"MIN" if min else b"MAX",
                                b"COUNT", int(count), convert=self._mpop_reply)

    def _mpop_reply(self, reply: Any) -> Any:
        if not isinstance(reply, list):
            return None  # the nil array
        return [self._out(reply[0]), [[self._out(m), self._out(s)] for m, s in reply[1]]]

    def zunionstore(self, dest: Any, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None = None) -> Any:
        """Store the union; `keys` may map key -> weight. The size of the result."""
        return self._store(b"zunionstore", dest, keys, aggregate)

    def zinterstore(self, dest: Any, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None = None) -> Any:
        return self._store(b"zinterstore", dest, keys, aggregate)

    def zdiffstore(self, dest: Any, keys: Iterable[Any]) -> Any:
        keys = [self._key(k) for k in keys]
        return self._data_write(b"zdiffstore", self._key(dest), len(keys), *keys)

    def zrangestore(self, dest: Any, name: Any, start: Any, end: Any, byscore: bool = False, bylex: bool = False,
                    desc: bool = False, offset: int | None = None, num: int | None = None) -> Any:
        """Store zrange's answer (same arguments, no scores asked) at `dest`; its size."""
        return self._data_write(b"zrangestore", self._key(dest),
                                *self._range_pieces(name, start, end, desc, byscore, bylex, offset, num))

    def _store(self, command: bytes, dest: Any, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None) -> Any:
        return self._data_write(command, self._key(dest), *self._combine_pieces(keys, aggregate))

    def _combine_pieces(self, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None) -> list[Any]:
        """numkeys key... [WEIGHTS w...] [AGGREGATE a] of the union and intersection commands."""
        weights: list[Any] = []
        if isinstance(keys, Mapping):
            weights = [b"WEIGHTS", *keys.values()]
        names = [self._key(k) for k in keys]
        options: list[Any] = []
        if aggregate:
            if aggregate.upper() not in ("SUM", "MIN", "MAX"):
                raise CommandError("aggregate can be sum, min or max.")
            options = [b"AGGREGATE", aggregate]
        return [len(names), *names, *weights, *options]

    # -- reads
    def zscore(self, name: Any, value: Any, *, consistency: str | None = None) -> Any:
        """The member's score as a float, or None."""
        return self._data_read(b"zscore", self._key(name), self._value(value), convert=self._score_or_none,
                               consistency=consistency)

    def zmscore(self, key: Any, members: list[Any], *, consistency: str | None = None) -> Any:
        """The scores (float or None) of several members."""
        if not members:
            raise CommandError("ZMSCORE members must be a non-empty list")
        return self._data_read(b"zmscore", self._key(key), *(self._value(m) for m in members),
                               convert=lambda r: [self._score_or_none(s) for s in r], consistency=consistency)

    def zcard(self, name: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"zcard", self._key(name), consistency=consistency)

    def zcount(self, name: Any, min: Any, max: Any, *, consistency: str | None = None) -> Any:
        """Members with min <= score <= max ("(x" exclusive, "-inf"/"+inf")."""
        return self._data_read(b"zcount", self._key(name), min, max, consistency=consistency)

    def zlexcount(self, name: Any, min: Any, max: Any, *, consistency: str | None = None) -> Any:
        return self._data_read(b"zlexcount", self._key(name), min, max, consistency=consistency)

    def zrange(self, name: Any, start: Any, end: Any, desc: bool = False, withscores: bool = False,
               score_cast_func: ScoreCast = float, byscore: bool = False, bylex: bool = False,
               offset: int | None = None, num: int | None = None, *, consistency: str | None = None) -> Any:
        """Members by rank (default), score (`byscore`) or lex (`bylex`); `desc` reverses
        (then `start`/`end` are the high and low bounds); `offset`/`num` page BYSCORE/BYLEX."""
        if bylex and withscores:
            raise CommandError("``withscores`` not supported in combination with ``bylex``.")
        pieces = self._range_pieces(name, start, end, desc, byscore, bylex, offset, num)
        pieces += [b"WITHSCORES"] * withscores
        return self._data_read(b"zrange", *pieces, convert=self._members_or_pairs(withscores, score_cast_func),
                               consistency=consistency)

    def _range_pieces(self, name: Any, start: Any, end: Any, desc: bool, byscore: bool, bylex: bool,
                      offset: int | None, num: int | None) -> list[Any]:
        """key start end [BYSCORE|BYLEX] [REV] [LIMIT offset num] of ZRANGE and ZRANGESTORE."""
        if byscore and bylex:
            raise CommandError("``byscore`` and ``bylex`` can not be specified together.")
        if (offset is None) != (num is None):
            raise CommandError("``offset`` and ``num`` must both be specified.")
        pieces: list[Any] = [self._key(name), start, end]
        pieces += [b"BYSCORE"] * byscore + [b"BYLEX"] * bylex + [b"REV"] * desc
        if offset is not None:
            pieces += [b"LIMIT", int(offset), int(num)]  # type: ignore[arg-type]
        return pieces

    def zrevrange(self, name: Any, start: int, end: int, withscores: bool = False, score_cast_func: ScoreCast = float,
                  *, consistency: str | None = None) -> Any:
        return self.zrange(name, start, end, desc=True, withscores=withscores, score_cast_func=score_cast_func,
                           consistency=consistency)

    def _by(self, command: bytes, name: Any, low: Any, high: Any, start: int | None, num: int | None,
            withscores: bool, cast: ScoreCast, consistency: str | None) -> Any:
        if (start is None) != (num is None):
            raise CommandError("``start`` and ``num`` must both be specified")
        pieces: list[Any] = [self._key(name), low, high]
        if start is not None:
            pieces += [b"LIMIT", int(start), int(num)]  # type: ignore[arg-type]
        pieces += [b"WITHSCORES"] * withscores
        return self._data_read(command, *pieces, convert=self._members_or_pairs(withscores, cast),
                               consistency=consistency)

    def zrangebyscore(self, name: Any, min: Any, max: Any, start: int | None = None,
                      num: int | None = None, withscores: bool = False, score_cast_func: ScoreCast = float,
                      *, consistency: str | None = None) -> Any:
        return self._by(b"zrangebyscore", name, min, max, start, num, withscores, score_cast_func, consistency)

    def zrevrangebyscore(self, name: Any, max: Any, min: Any, start: int | None = None,
                         num: int | None = None, withscores: bool = False, score_cast_func: ScoreCast = float,
                         *, consistency: str | None = None) -> Any:
        return self._by(b"zrevrangebyscore", name, max, min, start, num, withscores, score_cast_func, consistency)

    def zrangebylex(self, name: Any, min: Any, max: Any, start: int | None = None,
                    num: int | None = None, *, consistency: str | None = None) -> Any:
        return self._by(b"zrangebylex", name, min, max, start, num, False, float, consistency)

    def zrevrangebylex(self, name: Any, max: Any, min: Any, start: int | None = None,
                       num: int | None = None, *, consistency: str | None = None) -> Any:
        return self._by(b"zrevrangebylex", name, max, min, start, num, False, float, consistency)

    def zrank(self, name: Any, value: Any, withscore: bool = False, score_cast_func: ScoreCast = float,
              *, consistency: str | None = None) -> Any:
        """The member's rank from the lowest score (None if absent); with `withscore`,
        [rank, score]."""
        return self._rank(b"zrank", name, value, withscore, score_cast_func, consistency)

    def zrevrank(self, name: Any, value: Any, withscore: bool = False, score_cast_func: ScoreCast = float,
                 *, consistency: str | None = None) -> Any:
        return self._rank(b"zrevrank", name, value, withscore, score_cast_func, consistency)

    def _rank(self, command: bytes, name: Any, value: Any, withscore: bool, cast: ScoreCast,
              consistency: str | None) -> Any:
        if not withscore:
            return self._data_read(command, self._key(name), self._value(value), consistency=consistency)
        return self._data_read(command, self._key(name), self._value(value), b"WITHSCORE",
                               convert=lambda r: [r[0], cast(self._out(r[1]))] if isinstance(r, list) else None,
                               consistency=consistency)

    def zrandmember(self, key: Any, count: int | None = None, withscores: bool = False,
                    *, consistency: str | None = None) -> Any:
        """A random member (None if the key is missing), or with `count` a list (distinct
        members if count > 0, repeats allowed if < 0); `withscores` interleaves scores."""
        pieces: list[Any] = [self._key(key)]
        if count is not None:
            pieces.append(int(count))
            pieces += [b"WITHSCORES"] * withscores
        return self._data_read(b"zrandmember", *pieces, convert=self._out_list if count is not None else self._out,
                               consistency=consistency)

    def zunion(self, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None = None, withscores: bool = False,
               score_cast_func: ScoreCast = float, *, consistency: str | None = None) -> Any:
        """The union's members by score (`keys` may map key -> weight); with `withscores`,
        [(member, score), ...]."""
        return self._data_read(b"zunion", *self._combine_pieces(keys, aggregate), *[b"WITHSCORES"] * withscores,
                               convert=self._members_or_pairs(withscores, score_cast_func), consistency=consistency)

    def zinter(self, keys: Iterable[Any] | Mapping[Any, float], aggregate: str | None = None, withscores: bool = False,
               score_cast_func: ScoreCast = float, *, consistency: str | None = None) -> Any:
        return self._data_read(b"zinter", *self._combine_pieces(keys, aggregate), *[b"WITHSCORES"] * withscores,
                               convert=self._members_or_pairs(withscores, score_cast_func), consistency=consistency)

    def zdiff(self, keys: Iterable[Any], withscores: bool = False, score_cast_func: ScoreCast = float,
              *, consistency: str | None = None) -> Any:
        """The first set's members found in none of the others, with its scores."""
        names = [self._key(k) for k in keys]
        return self._data_read(b"zdiff", len(names), *names, *[b"WITHSCORES"] * withscores,
                               convert=self._members_or_pairs(withscores, score_cast_func), consistency=consistency)

    def zintercard(self, numkeys: int, keys: list[Any], limit: int = 0, *, consistency: str | None = None) -> Any:
        """The intersection's size, counting no further than `limit` (0: no limit)."""
        return self._data_read(b"zintercard", int(numkeys), *(self._key(k) for k in keys), b"LIMIT", int(limit),
                               consistency=consistency)

    def zscan(self, name: Any, cursor: int = 0, match: Any = None, count: int | None = None,
              score_cast_func: ScoreCast = float, *, consistency: str | None = None) -> Any:
        """(next cursor, [(member, score), ...]); iterate until the cursor comes back as 0."""
        pieces: list[Any] = [self._key(name), int(cursor)]
        if match is not None:
            pieces += [b"MATCH", match]
        if count is not None:
            pieces += [b"COUNT", int(count)]
        return self._data_read(b"zscan", *pieces, convert=lambda r: (int(r[0]), self._pairs(r[1], score_cast_func)),
                               consistency=consistency)
