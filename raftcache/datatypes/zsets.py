"""Sorted sets: the zset type and its command table (Redis 7.0's ZADD ... ZSCAN, ZMPOP, ZUNION,
ZINTER, ZDIFF, ZINTERCARD, ZRANGESTORE).

A zset is a ``SortedList`` of ``(score, member)`` tuples (the order every reply uses:
score, then member bytes, as Redis's skiplist and listpack order them) and a dict
member -> score (the same float object as in the tuple). The dict's iteration order is
never observed: everything a client can see walks the sorted list, so replicas that reached
the same set by different histories (or by a snapshot restore) answer alike.

Scores are IEEE doubles, parsed with Redis's rules (``strtod``: decimal, hex, inf; NaN and
trailing garbage refused) and replied with Redis 7.0's ``%.17g``.

Lex ranges (ZRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX) are defined by Redis only when every
score is equal; then they bisect. With mixed scores Redis's listpack walks from the first
element in order, and so does this module, whatever the encoding (Redis's skiplist answer
depends on its random node levels there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, NamedTuple, Self

from sortedcontainers import SortedList

from ..errors import CommandError, SyntaxError_, WrongTypeError
from ..redis_semantics import parse_int64
from ..resp import Double, NullArray, Pairs
from . import base
from .base import Collection, Keyspace, TypeCommand, parse_scan_args, scan_reply

__all__ = ["COLLECTIONS", "COMMANDS", "ZSet", "format_score", "pop"]

# Redis 7.0's defaults: zset-max-listpack-entries / zset-max-listpack-value.
LISTPACK_MAX_ENTRIES = 128
LISTPACK_MAX_VALUE = 64
# A negative ZRANDMEMBER count repeats members: Redis allocates whatever is asked; here the
# reply is bounded (one command must not build a list of 2**62 references).
RANDMEMBER_MAX_REPEATS = 10_000_000

INF = math.inf
_NOT_FLOAT = "value is not a valid float"
_RANGE_NOT_FLOAT = "min or max is not a float"
_LEX_NOT_VALID = "min or max not valid string range item"
_NAN_SCORE = "resulting score is not a number (NaN)"


# ----------------------------------------------------------------------------- scores
# glibc strtod's grammar: leading white space, a sign, then hex (0x...[p exp]), decimal
# ([digits][.digits][e exp]) with at least one digit, inf/infinity or nan[(chars)].
_STRTOD = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?)(?:"
    rb"(0x(?=\.?[0-9a-f])[0-9a-f]*(?:\.[0-9a-f]*)?(?:p[+-]?[0-9]+)?)"
    rb"|((?=\.?[0-9])[0-9]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)"
    rb"|(inf(?:inity)?)"
    rb"|(nan(?:\([0-9a-z_]*\))?))",
    re.IGNORECASE,
)


def _strtod(text: bytes) -> tuple[float, int, bool]:
    """(value, characters consumed, ERANGE) as C's strtod; consumed 0 if nothing parsed."""
    m = _STRTOD.match(text)
    if m is None:
        return 0.0, 0, False
    sign, hexa, dec, inf, _nan = m.groups()
    negative = sign == b"-"
    if inf is not None:
        return (-INF if negative else INF), m.end(), False
    if hexa is None and dec is None:
        return math.nan, m.end(), False
    if hexa is not None:
        try:
            value = float.fromhex(hexa.decode())
        except OverflowError:
            value = INF
        nonzero = any(ch not in b"0.x" for ch in hexa.lower().split(b"p")[0])
    else:
        value = float(dec)
        nonzero = any(ch not in b"0." for ch in dec.lower().split(b"e")[0])
    erange = math.isinf(value) or (value == 0.0 and nonzero)
    return (-value if negative else value), m.end(), erange


# Most scores are plain decimals: for them Python's float() is strtod (both round correctly)
# and nothing can overflow or underflow, so the general grammar above is not needed.
_PLAIN_SCORE = re.compile(rb"-?[0-9]{1,15}(?:\.[0-9]{1,15})?\Z")


def parse_score(arg: bytes, message: str = _NOT_FLOAT) -> float:
    """Redis's string2d (ZADD, ZINCRBY, WEIGHTS): the whole argument, no leading space,
    no overflow or underflow to zero, no NaN."""
    if _PLAIN_SCORE.match(arg):
        return float(arg)
    value, used, erange = _strtod(arg)
    if not arg or arg[:1].isspace() or used != len(arg) or (erange and (math.isinf(value) or value == 0.0)):
        raise CommandError(message)
    if math.isnan(value):
        raise CommandError(message)
    return value


def format_score(score: float) -> Double:
    """Redis 7.0's addReplyDouble: "%.17g", and inf/-inf (a RESP3 double, a bulk in RESP2)."""
    if math.isinf(score):
        return Double(b"inf" if score > 0 else b"-inf")
    return Double(b"%.17g" % score)


# ----------------------------------------------------------------------------- ranges
class ScoreRange(NamedTuple):
    min: float
    max: float
    minex: bool
    maxex: bool


def _range_item(arg: bytes) -> tuple[float, bool]:
    """One bound of a score range (zslParseRange: strtod up to a NUL, "(" exclusive)."""
    exclusive = arg[:1] == b"("
    text = arg[1:] if exclusive else arg
    value, used, _ = _strtod(text)
    # strtod stops at the first NUL: Redis checks only that the next char is the end of the C string
    if (used < len(text) and text[used] != 0) or math.isnan(value):
        raise CommandError(_RANGE_NOT_FLOAT)
    return value, exclusive


def parse_score_range(lo: bytes, hi: bytes) -> ScoreRange:
    (mn, minex), (mx, maxex) = _range_item(lo), _range_item(hi)
    return ScoreRange(mn, mx, minex, maxex)


_MIN_STRING, _PLAIN, _MAX_STRING = -1, 0, 1  # "-", a member, "+"


class LexBound(NamedTuple):
    kind: int
    value: bytes
    exclusive: bool


def _lex_item(arg: bytes) -> LexBound:
    head = arg[:1]
    if head == b"+" and len(arg) == 1:
        return LexBound(_MAX_STRING, b"", True)
    if head == b"-" and len(arg) == 1:
        return LexBound(_MIN_STRING, b"", True)
    if head in (b"(", b"["):
        return LexBound(_PLAIN, arg[1:], head == b"(")
    raise CommandError(_LEX_NOT_VALID)


def parse_lex_range(lo: bytes, hi: bytes) -> tuple[LexBound, LexBound]:
    return _lex_item(lo), _lex_item(hi)


def _lex_cmp(a: LexBound, b: LexBound) -> int:
    """sdscmplex on two bounds (the minimum and maximum strings are special)."""
    if a.kind != _PLAIN or b.kind != _PLAIN:
        return (a.kind > b.kind) - (a.kind < b.kind)
    return (a.value > b.value) - (a.value < b.value)


def _gte_min(member: bytes, low: LexBound) -> bool:
    if low.kind != _PLAIN:
        return low.kind == _MIN_STRING
    return member > low.value if low.exclusive else member >= low.value


def _lte_max(member: bytes, high: LexBound) -> bool:
    if high.kind != _PLAIN:
        return high.kind == _MAX_STRING
    return member < high.value if high.exclusive else member <= high.value


def _lex_empty(low: LexBound, high: LexBound) -> bool:
    cmp = _lex_cmp(low, high)
    return cmp > 0 or (cmp == 0 and (low.exclusive or high.exclusive))


# ------------------------------------------------------------------------- the type
class ZSet(Collection):
    """Sorted (score, member) pairs plus member -> score; see the module docstring."""

    __slots__ = ("_order", "_scores", "_skiplist")
    TYPE = "zset"

    def __init__(self) -> None:
        super().__init__()
        self._order: SortedList = SortedList()
        self._scores: dict[bytes, float] = {}
        self._skiplist = False  # Redis converts to a skiplist once and never back

    # ------------------------------------------------------------------ elements
    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, member: bytes) -> bool:
        return member in self._scores

    def score(self, member: bytes) -> float | None:
        return self._scores.get(member)

    def add(self, member: bytes, score: float) -> None:
        """Insert a member that is not in the set."""
        if not self._skiplist and (len(self._scores) + 1 > LISTPACK_MAX_ENTRIES or len(member) > LISTPACK_MAX_VALUE):
            self._skiplist = True
        score = self._stored(score)
        self._scores[member] = score
        self._order.add((score, member))

    def update(self, member: bytes, score: float) -> None:
        """Move an existing member to a new score."""
        self._order.remove((self._scores[member], member))
        score = self._stored(score)
        self._scores[member] = score
        self._order.add((score, member))

    def _stored(self, score: float) -> float:
        # A listpack keeps scores as text that reads back -0 as 0; a skiplist keeps the double.
        return 0.0 if score == 0.0 and not self._skiplist else score

    def remove(self, member: bytes) -> bool:
        score = self._scores.pop(member, None)
        if score is None:
            return False
        self._order.remove((score, member))
        return True

    def at(self, index: int) -> tuple[float, bytes]:
        return self._order[index]

    def rank(self, member: bytes) -> int | None:
        score = self._scores.get(member)
        return None if score is None else self._order.index((score, member))

    def slice(self, start: int, stop: int, reverse: bool = False) -> Iterator[tuple[float, bytes]]:
        """Pairs with rank in [start, stop), descending if `reverse` (ranks count from the top then)."""
        n = len(self._order)
        if reverse:
            return self._order.islice(n - stop, n - start, reverse=True)
        return self._order.islice(start, stop)

    def delete_slice(self, start: int, stop: int) -> int:
        """Remove ranks [start, stop); how many went."""
        doomed = list(self._order.islice(start, stop))
        for _, member in doomed:
            del self._scores[member]
        del self._order[start:stop]
        return len(doomed)

    def members(self) -> list[bytes]:
        return [m for _, m in self._order]

    def pairs(self) -> Iterable[tuple[float, bytes]]:
        return self._order

    # ranges ---------------------------------------------------------------------
    def score_span(self, rng: ScoreRange) -> tuple[int, int]:
        """[start, stop) ranks of the members within the score range."""
        order = self._order
        if rng.minex:
            start = len(order) if rng.min == INF else order.bisect_left((math.nextafter(rng.min, INF), b""))
        else:
            start = order.bisect_left((rng.min, b""))
        if rng.maxex:
            stop = order.bisect_left((rng.max, b""))
        else:
            stop = len(order) if rng.max == INF else order.bisect_left((math.nextafter(rng.max, INF), b""))
        return start, max(start, stop)

    def lex_span(self, low: LexBound, high: LexBound, reverse: bool = False) -> tuple[int, int]:
        """[start, stop) ranks of a lex range, as Redis walks it (module docstring)."""
        order, n = self._order, len(self._order)
        if not n or _lex_empty(low, high):
            return 0, 0
        if order[0][0] == order[-1][0]:  # one score: members sorted, bisect
            score = order[0][0]
            start = self._lex_bisect(score, low, lower=True)
            stop = self._lex_bisect(score, high, lower=False)
            return start, max(start, stop)
        members = [m for _, m in order]
        if not _gte_min(members[-1], low) or not _lte_max(members[0], high):
            return 0, 0
        if reverse:  # from the end: the last member <= max, then back while >= min
            stop = next((i + 1 for i in range(n - 1, -1, -1) if _lte_max(members[i], high)), 0)
            if not stop or not _gte_min(members[stop - 1], low):
                return 0, 0
            start = stop - 1
            while start > 0 and _gte_min(members[start - 1], low):
                start -= 1
            return start, stop
        start = next((i for i in range(n) if _gte_min(members[i], low)), n)
        stop = start
        while stop < n and _lte_max(members[stop], high):
            stop += 1
        return start, stop

    def _lex_bisect(self, score: float, bound: LexBound, lower: bool) -> int:
        order = self._order
        if bound.kind == _MIN_STRING:
            return 0
        if bound.kind == _MAX_STRING:
            return len(order)
        # the first rank past the bound: members > value (lower & exclusive, or upper & inclusive)
        past = bound.exclusive == lower
        i = order.bisect_left((score, bound.value))
        if past and i < len(order) and order[i][1] == bound.value:
            i += 1
        return i

    # ------------------------------------------------------------------ Collection
    def encoding(self) -> str:
        return "skiplist" if self._skiplist else "listpack"

    def dump(self) -> list[Any]:
        # Flat [encoding, member, score, ...]: memory accounting (eviction.measure_collection)
        # reads a dump as a flat list of elements.
        order = self._order
        out: list[Any] = [int(self._skiplist)] * (2 * len(order) + 1)
        out[1::2] = [m for _, m in order]
        out[2::2] = [s for s, _ in order]
        return out

    @classmethod
    def load(cls, payload: list[Any]) -> Self:
        members, scores = payload[1::2], payload[2::2]
        value = cls()
        value._skiplist = bool(payload[0])
        value._scores = dict(zip(members, scores))
        value._order = SortedList(zip(scores, members))
        return value

    def copy(self) -> Self:
        value = type(self)()
        value._skiplist = self._skiplist
        value._scores = dict(self._scores)
        value._order = SortedList(self._order)
        return value

    def convert_if_small(self) -> None:
        """A STORE result is built as a skiplist and shrunk to a listpack if it fits."""
        self._skiplist = not (
            len(self._scores) <= LISTPACK_MAX_ENTRIES and all(len(m) <= LISTPACK_MAX_VALUE for m in self._scores)
        )
        if not self._skiplist and any(s == 0.0 and math.copysign(1.0, s) < 0 for s in self._scores.values()):
            self._order = SortedList((self._stored(s), m) for s, m in self._order)
            self._scores = {m: s for s, m in self._order}


COLLECTIONS: list[type[Collection]] = [ZSet]


# ------------------------------------------------------------------------- helpers
def _flat(pairs: Iterable[tuple[float, bytes]], withscores: bool) -> list[bytes]:
    if withscores:  # member, score, ...: nested pairs in RESP3
        return Pairs(x for score, member in pairs for x in (member, format_score(score)))
    return [member for _, member in pairs]


def _long(arg: bytes) -> int:
    return parse_int64(arg)


def _rank_bounds(start: int, end: int, n: int) -> tuple[int, int] | None:
    """Redis's index sanitising for ZRANGE/ZREMRANGEBYRANK: [start, stop) or None if empty."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    start = max(start, 0)
    if start > end or start >= n:
        return None
    return start, min(end, n - 1) + 1


def _limit_window(start: int, stop: int, offset: int, limit: int, n: int) -> tuple[int, int]:
    """LIMIT offset count applied to [start, stop) (Redis: a negative offset skips
    everything, a negative count means all; an offset past the set gives nothing)."""
    if (offset > 0 and offset >= n) or offset < 0:
        return start, start
    start = min(stop, start + offset)
    if limit >= 0:
        stop = min(stop, start + limit)
    return start, stop


def _get(ks: Keyspace, key: bytes) -> ZSet | None:
    return ks.get_collection(key, ZSet)


# ----------------------------------------------------------------------------- ZADD
_ZADD_FLAGS = {b"NX": "nx", b"XX": "xx", b"CH": "ch", b"INCR": "incr", b"GT": "gt", b"LT": "lt"}


def _zadd_generic(ks: Keyspace, key: bytes, flags: set[str], pairs: Sequence[bytes]) -> Any:
    nx, xx, gt, lt, incr = ("nx" in flags), ("xx" in flags), ("gt" in flags), ("lt" in flags), ("incr" in flags)
    if not pairs or len(pairs) % 2:
        raise SyntaxError_()
    if nx and xx:
        raise CommandError("XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError("GT, LT, and/or NX options at the same time are not compatible")
    if incr and len(pairs) > 2:
        raise CommandError("INCR option supports a single increment-element pair")
    scores = [parse_score(pairs[i]) for i in range(0, len(pairs), 2)]
    zset = _get(ks, key)
    if zset is None:
        if xx:
            return None if incr else 0
        zset = ZSet()
    # A NaN from INCR must leave no trace: check it before changing anything.
    if incr and not nx:
        current = zset.score(pairs[1])
        if current is not None and math.isnan(current + scores[0]):
            raise CommandError(_NAN_SCORE)
    added = updated = processed = 0
    result = 0.0
    for score, member in zip(scores, pairs[1::2]):
        current = zset.score(member)
        if current is None:
            if xx:
                continue
            zset.add(member, score)
            added += 1
        else:
            if nx:
                continue
            if incr:
                score += current
            if (gt and score <= current) or (lt and score >= current):
                continue
            if score != current:
                zset.update(member, score)
                updated += 1
        processed += 1
        result = score
    if added or updated:
        ks.changed(key, zset)
    if incr:
        return format_score(result) if processed else None
    return added + updated if "ch" in flags else added


def zadd(ks: Keyspace, args: Sequence[bytes]) -> Any:
    i, flags = 2, set()
    while i < len(args) and (flag := _ZADD_FLAGS.get(args[i].upper())) is not None:
        flags.add(flag)
        i += 1
    return _zadd_generic(ks, args[1], flags, args[i:])


def zincrby(ks: Keyspace, args: Sequence[bytes]) -> Any:
    return _zadd_generic(ks, args[1], {"incr"}, args[2:4])


# ----------------------------------------------------------------- simple lookups
def zrem(ks: Keyspace, args: Sequence[bytes]) -> int:
    zset = _get(ks, args[1])
    if zset is None:
        return 0
    removed = sum(zset.remove(m) for m in args[2:])
    if removed:
        ks.changed(args[1], zset)
    return removed


def zscore(ks: Keyspace, args: Sequence[bytes]) -> bytes | None:
    zset = _get(ks, args[1])
    score = None if zset is None else zset.score(args[2])
    return None if score is None else format_score(score)


def zmscore(ks: Keyspace, args: Sequence[bytes]) -> list[bytes | None]:
    zset = _get(ks, args[1])
    scores = [None if zset is None else zset.score(m) for m in args[2:]]
    return [None if s is None else format_score(s) for s in scores]


def zcard(ks: Keyspace, args: Sequence[bytes]) -> int:
    zset = _get(ks, args[1])
    return 0 if zset is None else len(zset)


def zcount(ks: Keyspace, args: Sequence[bytes]) -> int:
    rng = parse_score_range(args[2], args[3])
    zset = _get(ks, args[1])
    if zset is None:
        return 0
    start, stop = zset.score_span(rng)
    return stop - start


def zlexcount(ks: Keyspace, args: Sequence[bytes]) -> int:
    low, high = parse_lex_range(args[2], args[3])
    zset = _get(ks, args[1])
    if zset is None:
        return 0
    start, stop = zset.lex_span(low, high)
    return stop - start


def _rank_generic(ks: Keyspace, args: Sequence[bytes], reverse: bool) -> Any:
    withscore = False
    if len(args) > 3:  # WITHSCORE: Redis 7.2
        if len(args) > 4 or args[3].upper() != b"WITHSCORE":
            raise SyntaxError_()
        withscore = True
    zset = _get(ks, args[1])
    rank = None if zset is None else zset.rank(args[2])
    if rank is None:
        return NullArray if withscore else None
    if reverse:
        rank = len(zset) - 1 - rank  # type: ignore[arg-type]
    if withscore:
        return [rank, format_score(zset.score(args[2]))]  # type: ignore[union-attr, arg-type]
    return rank


def zrank(ks: Keyspace, args: Sequence[bytes]) -> Any:
    return _rank_generic(ks, args, reverse=False)


def zrevrank(ks: Keyspace, args: Sequence[bytes]) -> Any:
    return _rank_generic(ks, args, reverse=True)


# ----------------------------------------------------------------------------- ZRANGE
_RANK, _SCORE, _LEX = "rank", "score", "lex"


class _Range(NamedTuple):
    """What zrangeGenericCommand found: the pairs in walk order, and how they were asked for."""

    pairs: Iterable[tuple[float, bytes]]
    withscores: bool
    rangetype: str


def _zrange_generic(ks: Keyspace, args: Sequence[bytes], rangetype: str | None, reverse: bool | None,
                    store: bool = False) -> _Range:
    """zrangeGenericCommand: ZRANGE, its older forms (fixed type/direction where given) and
    ZRANGESTORE (``store``: the source key follows the destination, WITHSCORES is refused)."""
    at = 2 if store else 1  # the source key
    withscores, offset, limit = False, 0, -1
    j = at + 3
    while j < len(args):
        opt = args[j].upper()
        if not store and opt == b"WITHSCORES":
            withscores = True
        elif opt == b"LIMIT" and len(args) - j - 1 >= 2:
            offset, limit = _long(args[j + 1]), _long(args[j + 2])
            j += 2
        elif reverse is None and opt == b"REV":
            reverse = True
        elif rangetype is None and opt == b"BYLEX":
            rangetype = _LEX
        elif rangetype is None and opt == b"BYSCORE":
            rangetype = _SCORE
        else:
            raise SyntaxError_()
        j += 1
    reverse = bool(reverse)
    rangetype = rangetype or _RANK
    if limit != -1 and rangetype == _RANK:
        raise CommandError("syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    if withscores and rangetype == _LEX:
        raise CommandError("syntax error, WITHSCORES not supported in combination with BYLEX")
    lo, hi = (args[at + 2], args[at + 1]) if reverse and rangetype != _RANK else (args[at + 1], args[at + 2])
    if rangetype == _RANK:
        bounds = (_long(lo), _long(hi))
    elif rangetype == _SCORE:
        score_range = parse_score_range(lo, hi)
    else:
        lex_range = parse_lex_range(lo, hi)
    zset = _get(ks, args[at])
    if zset is None:
        return _Range((), withscores, rangetype)
    n = len(zset)
    if rangetype == _RANK:
        span = _rank_bounds(bounds[0], bounds[1], n)
        if span is None:
            return _Range((), withscores, rangetype)
        return _Range(zset.slice(span[0], span[1], reverse), withscores, rangetype)
    if rangetype == _SCORE:
        start, stop = zset.score_span(score_range)
    else:
        start, stop = zset.lex_span(*lex_range, reverse=reverse)
    # LIMIT counts from the end the walk starts at
    if reverse:
        start, stop = n - stop, n - start
    start, stop = _limit_window(start, stop, offset, limit, n)
    return _Range(zset.slice(start, stop, reverse), withscores, rangetype)


def _zrange_reply(ks: Keyspace, args: Sequence[bytes], rangetype: str | None, reverse: bool | None) -> list[bytes]:
    found = _zrange_generic(ks, args, rangetype, reverse)
    return _flat(found.pairs, found.withscores)


def zrange(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, None, None)


def zrevrange(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, _RANK, True)


def zrangebyscore(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, _SCORE, False)


def zrevrangebyscore(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, _SCORE, True)


def zrangebylex(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, _LEX, False)


def zrevrangebylex(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zrange_reply(ks, args, _LEX, True)


def zrangestore(ks: Keyspace, args: Sequence[bytes]) -> int:
    """ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: the range,
    stored whole at dst (no expiry; nothing found deletes dst)."""
    found = _zrange_generic(ks, args, None, None, store=True)
    pairs = list(found.pairs)  # taken before dst is replaced: dst may be the source
    result = ZSet()
    # Redis sizes a rank range's destination up front (a skiplist past 128 members, keeping
    # -0 scores); score and lex ranges start as a listpack and convert as members arrive.
    result._skiplist = found.rangetype == _RANK and len(pairs) > LISTPACK_MAX_ENTRIES
    for score, member in pairs:
        result.add(member, score)
    ks.replace(args[1], result)
    return len(result)


# --------------------------------------------------------------------- ZREMRANGEBY*
def _remove_span(ks: Keyspace, key: bytes, zset: ZSet, start: int, stop: int) -> int:
    removed = zset.delete_slice(start, stop) if stop > start else 0
    if removed:
        ks.changed(key, zset)
    return removed


def zremrangebyrank(ks: Keyspace, args: Sequence[bytes]) -> int:
    start, end = _long(args[2]), _long(args[3])
    zset = _get(ks, args[1])
    if zset is None:
        return 0
    span = _rank_bounds(start, end, len(zset))
    return 0 if span is None else _remove_span(ks, args[1], zset, *span)


def zremrangebyscore(ks: Keyspace, args: Sequence[bytes]) -> int:
    rng = parse_score_range(args[2], args[3])
    zset = _get(ks, args[1])
    return 0 if zset is None else _remove_span(ks, args[1], zset, *zset.score_span(rng))


def zremrangebylex(ks: Keyspace, args: Sequence[bytes]) -> int:
    low, high = parse_lex_range(args[2], args[3])
    zset = _get(ks, args[1])
    return 0 if zset is None else _remove_span(ks, args[1], zset, *zset.lex_span(low, high))


# ------------------------------------------------------------------------------ pops
def _pop_pairs(ks: Keyspace, key: bytes, zset: ZSet, highest: bool, count: int) -> list[tuple[float, bytes]]:
    n = len(zset)
    count = min(count, n)
    popped = list(zset.slice(0, count, reverse=highest))
    zset.delete_slice(*((n - count, n) if highest else (0, count)))
    if popped:
        ks.changed(key, zset)
    return popped


def pop(ks: Keyspace, key: bytes, highest: bool, count: int | None) -> list[bytes]:
    """ZPOPMIN (highest=False) / ZPOPMAX: ``count`` members (one if None) with their scores,
    as the flat RESP2 reply [member, score, ...]; [] if the key is missing. WRONGTYPE if the
    key holds another type. (BZPOPMIN/BZPOPMAX reuse this.)"""
    zset = _get(ks, key)
    if zset is None or count == 0:
        return []
    popped = _flat(_pop_pairs(ks, key, zset, highest, 1 if count is None else count), True)
    return popped if count is not None else list(popped)  # without COUNT: flat in RESP3 too


def _zpop(ks: Keyspace, args: Sequence[bytes], highest: bool) -> list[bytes]:
    if len(args) > 3:
        raise SyntaxError_()
    count = _range_long(args[2], 0, "value is out of range, must be positive") if len(args) == 3 else None
    return pop(ks, args[1], highest, count)


def zpopmin(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zpop(ks, args, highest=False)


def zpopmax(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _zpop(ks, args, highest=True)


_range_long = base.ranged_int


def parse_mpop(args: Sequence[bytes], numkeys_at: int) -> tuple[list[bytes], bool, int]:
    """(keys, highest, count) of ZMPOP/BZMPOP's ``numkeys key... MIN|MAX [COUNT n]``."""
    keys, lowest, count = base.parse_mpop(args, numkeys_at, base.MIN_MAX)
    return keys, not lowest, count


def mpop(ks: Keyspace, keys: Sequence[bytes], highest: bool, count: int) -> Any:
    """ZMPOP's reply: [key, [[member, score], ...]] from the first non-empty key, or a nil
    array; WRONGTYPE stops at the first key of another type."""
    for key in keys:
        zset = _get(ks, key)
        if zset is not None:
            popped = _pop_pairs(ks, key, zset, highest, count)
            return [key, [[member, format_score(score)] for score, member in popped]]
    return NullArray


def zmpop(ks: Keyspace, args: Sequence[bytes]) -> Any:
    keys, highest, count = parse_mpop(args, 1)
    return mpop(ks, keys, highest, count)


# ----------------------------------------------------------------------- ZRANDMEMBER
def zrandmember(ks: Keyspace, args: Sequence[bytes]) -> Any:
    if len(args) == 2:
        zset = _get(ks, args[1])
        return None if zset is None else zset.at(ks.draw(len(zset)))[1]
    count = parse_int64(args[2])
    if count < -(2**63 - 1):
        raise CommandError("value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHSCORES"):
        raise SyntaxError_()
    withscores = len(args) == 4
    if withscores and (count < -(2**62 - 1) or count > 2**62 - 1):
        raise CommandError("value is out of range")
    zset = _get(ks, args[1])
    if zset is None or count == 0:
        return []
    n = len(zset)
    if count < 0:
        if -count > RANDMEMBER_MAX_REPEATS:
            raise CommandError("value is out of range")
        return _flat((zset.at(ks.draw(n)) for _ in range(-count)), withscores)
    if count >= n:
        return _flat(zset.pairs(), withscores)
    # Floyd's sampling: `count` distinct ranks with exactly `count` draws, in draw order.
    chosen: dict[int, None] = {}
    for j in range(n - count, n):
        t = ks.draw(j + 1)
        chosen[j if t in chosen else t] = None
    return _flat((zset.at(i) for i in chosen), withscores)


# ------------------------------------------- ZUNION/ZINTER/ZDIFF[STORE], ZINTERCARD
class _Source(NamedTuple):
    """One input of a union, intersection or difference: a zset, or a set whose members score 1."""

    length: int
    pairs: Callable[[], Iterable[tuple[float, bytes]]]
    find: Callable[[bytes], float | None]
    weight: float


def _set_class() -> type[Collection] | None:
    from . import sets  # the sets module fills its table independently of this one

    return next((cls for cls in sets.COLLECTIONS if cls.TYPE == "set"), None)


def _source(ks: Keyspace, key: bytes) -> _Source:
    try:
        zset = _get(ks, key)
    except WrongTypeError:
        set_cls = _set_class()
        if set_cls is None:
            raise
        members = ks.get_collection(key, set_cls)
        return _Source(len(members), lambda: ((1.0, m) for m in members.members()),  # type: ignore[union-attr]
                       lambda m: 1.0 if m in members else None, 1.0)  # type: ignore[operator]
    if zset is None:
        return _Source(0, lambda: (), lambda m: None, 1.0)
    return _Source(len(zset), zset.pairs, zset.score, 1.0)


def _aggregate_sum(a: float, b: float) -> float:
    total = a + b
    return 0.0 if math.isnan(total) else total  # inf + -inf: Redis's convention is 0


_AGGREGATES: dict[bytes, Callable[[float, float], float]] = {
    b"SUM": _aggregate_sum,
    b"MIN": min,  # min(a, b) keeps a unless b < a: a NaN never wins, as in Redis
    b"MAX": max,
}


def _weighted(weight: float, score: float) -> float:
    value = weight * score
    return 0.0 if math.isnan(value) else value


# The forms zunionInterDiffGenericCommand serves: STORE into a key, a READ reply, ZINTERCARD.
_STORE, _READ, _CARD = "store", "read", "card"


class _SetOp(NamedTuple):
    sources: list[_Source]
    aggregate: Callable[[float, float], float]
    withscores: bool
    limit: int  # ZINTERCARD's LIMIT (0: none)


def _parse_setop(ks: Keyspace, args: Sequence[bytes], op: str, form: str) -> _SetOp:
    """The arguments of every form, checked in Redis's order: numkeys, the keys (WRONGTYPE
    before any option), then the options the form takes: WEIGHTS and AGGREGATE (not DIFF,
    not ZINTERCARD), WITHSCORES (the read forms), LIMIT (ZINTERCARD)."""
    numkeys_at = 2 if form == _STORE else 1
    setnum = parse_int64(args[numkeys_at])
    if setnum < 1:
        raise CommandError(f"at least 1 input key is needed for '{args[0].decode()}' command")
    first = numkeys_at + 1
    if setnum > len(args) - first:
        raise SyntaxError_()
    sources = [_source(ks, key) for key in args[first : first + setnum]]
    aggregate, withscores, limit = _AGGREGATES[b"SUM"], False, 0
    combines = op != "diff" and form != _CARD
    j = first + setnum
    while j < len(args):
        remaining = len(args) - j
        opt = args[j].upper()
        if combines and remaining >= setnum + 1 and opt == b"WEIGHTS":
            weights = [parse_score(w, "weight value is not a float") for w in args[j + 1 : j + 1 + setnum]]
            sources = [s._replace(weight=w) for s, w in zip(sources, weights)]
            j += setnum + 1
        elif combines and remaining >= 2 and opt == b"AGGREGATE":
            found = _AGGREGATES.get(args[j + 1].upper())
            if found is None:
                raise SyntaxError_()
            aggregate = found
            j += 2
        elif form == _READ and opt == b"WITHSCORES":
            withscores = True
            j += 1
        elif form == _CARD and remaining >= 2 and opt == b"LIMIT":
            limit = _range_long(args[j + 1], 0, "LIMIT can't be negative")
            j += 2
        else:
            raise SyntaxError_()
    return _SetOp(sources, aggregate, withscores, limit)


def _union(sources: list[_Source], aggregate: Callable[[float, float], float]) -> dict[bytes, float]:
    acc: dict[bytes, float] = {}
    for src in sorted(sources, key=lambda s: s.length):  # Redis's order: smallest first (sums are not associative)
        for score, member in src.pairs():
            value = _weighted(src.weight, score)
            current = acc.get(member)
            acc[member] = value if current is None else aggregate(current, value)
    return acc


def _inter_members(sources: list[_Source], aggregate: Callable[[float, float], float]) -> Iterator[tuple[bytes, float]]:
    """(member, score) of the intersection, one at a time (ZINTERCARD's LIMIT stops early)."""
    ordered = sorted(sources, key=lambda s: s.length)
    first, rest = ordered[0], ordered[1:]
    if not first.length:
        return
    for score, member in first.pairs():
        value = _weighted(first.weight, score)
        for src in rest:
            other = src.find(member)
            if other is None:
                break
            value = aggregate(value, other * src.weight)
        else:
            yield member, value


def _inter(sources: list[_Source], aggregate: Callable[[float, float], float]) -> dict[bytes, float]:
    return dict(_inter_members(sources, aggregate))


def _diff(sources: list[_Source], _aggregate: Callable[[float, float], float]) -> dict[bytes, float]:
    first, rest = sources[0], sources[1:]
    return {m: s for s, m in first.pairs() if all(src.find(m) is None for src in rest)}


_OPERATIONS = {"union": _union, "inter": _inter, "diff": _diff}


def _combined(ks: Keyspace, args: Sequence[bytes], op: str, form: str) -> tuple[dict[bytes, float], _SetOp]:
    parsed = _parse_setop(ks, args, op, form)
    return _OPERATIONS[op](parsed.sources, parsed.aggregate), parsed


def _store_generic(ks: Keyspace, args: Sequence[bytes], op: str) -> int:
    acc, _ = _combined(ks, args, op, _STORE)
    result = ZSet()
    result._scores = acc
    result._order = SortedList((score, member) for member, score in acc.items())
    result.convert_if_small()
    ks.replace(args[1], result)
    return len(result)


def _read_generic(ks: Keyspace, args: Sequence[bytes], op: str) -> list[bytes]:
    # Redis replies from the skiplist it built: scores as computed (-0 included), in order
    acc, parsed = _combined(ks, args, op, _READ)
    return _flat(sorted((score, member) for member, score in acc.items()), parsed.withscores)


def zunionstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store_generic(ks, args, "union")


def zinterstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store_generic(ks, args, "inter")


def zdiffstore(ks: Keyspace, args: Sequence[bytes]) -> int:
    return _store_generic(ks, args, "diff")


def zunion(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _read_generic(ks, args, "union")


def zinter(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _read_generic(ks, args, "inter")


def zdiff(ks: Keyspace, args: Sequence[bytes]) -> list[bytes]:
    return _read_generic(ks, args, "diff")


def zintercard(ks: Keyspace, args: Sequence[bytes]) -> int:
    parsed = _parse_setop(ks, args, "inter", _CARD)
    found = _inter_members(parsed.sources, parsed.aggregate)
    return sum(1 for _ in islice(found, parsed.limit or None))


# ----------------------------------------------------------------------------- ZSCAN
def zscan(ks: Keyspace, args: Sequence[bytes]) -> list[Any]:
    parse_scan_args(args[:3], 3)  # the cursor is checked before the key, the options after
    zset = _get(ks, args[1])
    if zset is None:
        return scan_reply(0, [])
    cursor, match, count = parse_scan_args(args, 3)
    if not zset._skiplist:  # a listpack is returned whole, in order, as Redis does
        cursor, pairs = 0, list(zset.pairs())
    else:
        cursor, members = ks.scan_order.page(zset, zset.members, lambda m: m, cursor, count)
        pairs = [(zset._scores[m], m) for m in members]
    if match is not None:
        pairs = [p for p in pairs if match(p[1])]
    # ZSCAN stays flat bulk strings in RESP3 too (Redis replies scans alike in both)
    return scan_reply(cursor, [x for score, member in pairs for x in (member, bytes(format_score(score)))])


# ----------------------------------------------------------------------------- table
_W, _R = True, False
# numkeys-counted inputs: COMMAND says movablekeys, and acl.key_positions finds them
_MOVABLE = ("movablekeys",)
_NONE = (0, 0, 0)
COMMANDS: list[TypeCommand] = [
    TypeCommand("zadd", -4, _W, zadd, "Add members to a sorted set, or update their scores", ("fast",)),
    TypeCommand("zincrby", 4, _W, zincrby, "Increment the score of a member of a sorted set", ("fast",)),
    TypeCommand("zrem", -3, _W, zrem, "Remove members from a sorted set", ("fast",)),
    TypeCommand("zscore", 3, _R, zscore, "Get the score of a member", ("fast",)),
    TypeCommand("zmscore", -3, _R, zmscore, "Get the scores of members", ("fast",)),
    TypeCommand("zcard", 2, _R, zcard, "Get the number of members", ("fast",)),
    TypeCommand("zcount", 4, _R, zcount, "Count the members within a score range", ("fast",)),
    TypeCommand("zlexcount", 4, _R, zlexcount, "Count the members within a lexicographical range", ("fast",)),
    TypeCommand("zrange", -4, _R, zrange, "Return a range of members by rank, score or lex"),
    TypeCommand("zrevrange", -4, _R, zrevrange, "Return a range of members by rank, high to low"),
    TypeCommand("zrangestore", -5, _W, zrangestore, "Store a range of members by rank, score or lex", keys=(1, 2, 1)),
    TypeCommand("zrangebyscore", -4, _R, zrangebyscore, "Return a range of members by score"),
    TypeCommand("zrevrangebyscore", -4, _R, zrevrangebyscore, "Return a range of members by score, high to low"),
    TypeCommand("zrangebylex", -4, _R, zrangebylex, "Return a range of members by lex order"),
    TypeCommand("zrevrangebylex", -4, _R, zrevrangebylex, "Return a range of members by lex order, reversed"),
    TypeCommand("zrank", -3, _R, zrank, "Get the rank of a member, low to high", ("fast",)),
    TypeCommand("zrevrank", -3, _R, zrevrank, "Get the rank of a member, high to low", ("fast",)),
    TypeCommand("zremrangebyrank", 4, _W, zremrangebyrank, "Remove members within a rank range"),
    TypeCommand("zremrangebyscore", 4, _W, zremrangebyscore, "Remove members within a score range"),
    TypeCommand("zremrangebylex", 4, _W, zremrangebylex, "Remove members within a lex range"),
    TypeCommand("zpopmin", -2, _W, zpopmin, "Remove and return the members with the lowest scores", ("fast",)),
    TypeCommand("zpopmax", -2, _W, zpopmax, "Remove and return the members with the highest scores", ("fast",)),
    TypeCommand("zmpop", -4, _W, zmpop, "Pop members from the first non-empty sorted set", _MOVABLE, _NONE),
    TypeCommand("zrandmember", -2, _R, zrandmember, "Get random members of a sorted set"),
    TypeCommand("zunionstore", -4, _W, zunionstore, "Store the union of sorted sets", _MOVABLE),
    TypeCommand("zinterstore", -4, _W, zinterstore, "Store the intersection of sorted sets", _MOVABLE),
    TypeCommand("zdiffstore", -4, _W, zdiffstore, "Store the difference of sorted sets", _MOVABLE),
    TypeCommand("zunion", -3, _R, zunion, "Add sorted sets", _MOVABLE, _NONE),
    TypeCommand("zinter", -3, _R, zinter, "Intersect sorted sets", _MOVABLE, _NONE),
    TypeCommand("zdiff", -3, _R, zdiff, "Subtract sorted sets", _MOVABLE, _NONE),
    TypeCommand("zintercard", -3, _R, zintercard, "Count the members of an intersection (LIMIT)", _MOVABLE, _NONE),
    TypeCommand("zscan", -3, _R, zscan, "Iterate the members and scores of a sorted set"),
]
