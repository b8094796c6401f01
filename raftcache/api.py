"""The cache methods, written once for Cache, AsyncCache, Client and AsyncClient.

Each method validates and converts its arguments, builds one command from
``raftcache.commands`` and hands it to ``self._run(command, convert)``; only ``_run``
differs between the four classes (wait for a local replica, await it, or send it over RESP).
So the embedded library and the network client have the same semantics by construction.

Inputs: ``str`` (UTF-8), ``bytes``-like, ``int`` or ``float`` (decimal text, as redis-py).
Outputs: ``bytes`` values (``str`` with ``decode_responses=True``), ``int`` counts, ``bool``
for set/setnx/setex/psetex/msetnx/rename/renamenx/copy/cas/expire/persist, ``float`` for
incrbyfloat: the types redis-py returns for the same methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from . import commands as c
from .datatypes.blocking_api import BlockingMethods
from .datatypes.hashes_api import HashMethods
from .datatypes.lists_api import ListMethods
from .datatypes.sets_api import SetMethods
from .datatypes.zsets_api import ZSetMethods
from .errors import CommandError, InvalidExpireError, NoScriptError, SyntaxError_, ValueTooLargeError
from .script_shebang import DEFAULT_SCRIPT_MAX_INSTRUCTIONS, is_no_writes, sha1hex

DEFAULT_MAX_VALUE_BYTES = 1 << 20
DEFAULT_MAX_KEY_BYTES = 64 * 1024

Convert = Callable[[Any], Any]

# Read consistency levels (the `consistency=` argument of every read method): linearizable
# reads go through a Raft round; stale ones are answered from one replica's state at once,
# which may lag the leader but needs no leader or quorum.
LINEARIZABLE = "linearizable"
STALE = "stale"
CONSISTENCY_LEVELS = (LINEARIZABLE, STALE)


def consistency_level(consistency: str | None) -> str:
    """A `consistency=` argument checked (None means linearizable); ValueError otherwise."""
    if consistency is None:
        return LINEARIZABLE
    if consistency not in CONSISTENCY_LEVELS:
        raise ValueError(f"consistency must be one of {CONSISTENCY_LEVELS}, not {consistency!r}")
    return consistency


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


def _ms(seconds: float | timedelta, what: str) -> int:
    if isinstance(seconds, timedelta):  # redis-py accepts timedeltas for expiries
        return int(round(seconds.total_seconds() * 1000))
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds")
    return int(round(seconds * 1000))


class CacheCommands(HashMethods, ListMethods, SetMethods, ZSetMethods, BlockingMethods):
    """Every cache method, written once. Subclasses provide `_run`."""

    _decode: bool
    _max_value: int
    _max_key: int

    def _run(
        self,
        command: Any,
        convert: Convert | None = None,
        *,
        consistency: str | None = None,
        timeout: float | None = None,
    ) -> Any:
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

    # -- the data types' methods (datatypes/*_api.py) send their Redis arguments as they are
    def _data_write(self, name: bytes, *args: Any, convert: Convert | None = None) -> Any:
        return self._run(c.DataWrite((name, *(_to_bytes(a, "argument") for a in args))), convert)

    def _data_read(self, name: bytes, *args: Any, convert: Convert | None = None, consistency: str | None = None) -> Any:
        command = c.DataRead((name, *(_to_bytes(a, "argument") for a in args)))
        return self._run(command, convert, consistency=consistency)

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

    def scan(self, cursor: int = 0, match: Any = None, count: int = 100, _type: str | None = None, *,
             consistency: str | None = None) -> Any:
        """(next_cursor, keys); iterate until the cursor comes back as 0. `_type` (redis-py's
        name) keeps keys of one type: "string", "hash", "list", "set" or "zset"."""
        pattern = None if match is None else _to_bytes(match, "pattern")
        return self._run(
            c.Scan(int(cursor), pattern, int(count), None if _type is None else _type.lower()),
            lambda r: (r[0], self._out_list(r[1])),
            consistency=consistency,
        )

    def getrange(self, key: Any, start: int, end: int, *, consistency: str | None = None) -> Any:
        """Bytes start..end inclusive; negative indexes count from the end (Redis's GETRANGE)."""
        return self._run(c.GetRange(self._key(key), int(start), int(end)), self._out, consistency=consistency)

    def touch(self, *keys: Any) -> Any:
        """How many of the keys exist (no access times are kept, so nothing else changes)."""
        return self._run(c.Exists(tuple(self._key(k) for k in _flatten(keys))))

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

    def expire(
        self, key: Any, seconds: float, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False
    ) -> Any:
        """Set a time to live; returns True if set. A ttl <= 0 deletes the key."""
        return self._expire(key, _ms(seconds, "seconds"), False, nx, xx, gt, lt)

    def pexpire(
        self, key: Any, ms: int, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False
    ) -> Any:
        return self._expire(key, int(ms), False, nx, xx, gt, lt)

    def expireat(
        self, key: Any, when: float, *, nx: bool = False, xx: bool = False, gt: bool = False, lt: bool = False
    ) -> Any:
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

    def setnx(self, name: Any, value: Any) -> Any:
        """Set only if the key does not exist; True if it was set."""
        return self._run(c.Set(self._key(name), self._value(value), c.COND_NX), bool)

    def setex(self, name: Any, time: float | timedelta, value: Any) -> Any:
        """Set with a time to live in seconds (int, float or timedelta)."""
        return self._setex(name, _ms(time, "time"), value, "setex")

    def psetex(self, name: Any, time_ms: int | timedelta, value: Any) -> Any:
        """Set with a time to live in milliseconds (int or timedelta)."""
        ms = _ms(time_ms, "time_ms") if isinstance(time_ms, timedelta) else int(time_ms)
        return self._setex(name, ms, value, "psetex")

    def _setex(self, name: Any, ttl_ms: int, value: Any, command: str) -> Any:
        if ttl_ms <= 0:
            raise InvalidExpireError(f"invalid expire time in '{command}' command")
        return self._run(c.Set(self._key(name), self._value(value), ttl_ms=ttl_ms), bool)

    def getset(self, name: Any, value: Any) -> Any:
        """Set a value and return the old one (or None); drops the key's expiry, as Redis."""
        return self._run(c.Set(self._key(name), self._value(value), get=True), self._out)

    def getex(
        self,
        name: Any,
        ex: float | timedelta | None = None,
        px: int | timedelta | None = None,
        exat: float | None = None,
        pxat: int | None = None,
        persist: bool = False,
    ) -> Any:
        """The value (or None), and set (`ex`/`px` relative, `exat`/`pxat` Unix time) or
        drop (`persist`) its expiry."""
        options = [v for v in (ex, px, exat, pxat) if v is not None]
        if len(options) + bool(persist) > 1:
            raise SyntaxError_("getex: choose at most one of ex/px/exat/pxat/persist")
        key = self._key(name)
        if ex is not None:
            command = c.GetEx(key, b"%d" % _ms(ex, "ex"), 1)
        elif px is not None:
            command = c.GetEx(key, b"%d" % (_ms(px, "px") if isinstance(px, timedelta) else int(px)), 1)
        elif exat is not None:
            command = c.GetEx(key, b"%d" % _ms(exat, "exat"), 1, absolute=True)
        elif pxat is not None:
            command = c.GetEx(key, b"%d" % int(pxat), 1, absolute=True)
        else:
            command = c.GetEx(key, persist=persist)
        return self._run(command, self._out)

    def incrbyfloat(self, name: Any, amount: float = 1.0) -> Any:
        """Add a float (computed as Redis's long double); returns the new value as a float."""
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str, bytes)):
            raise TypeError("amount must be a number")
        return self._run(c.IncrByFloat(self._key(name), _to_bytes(amount, "amount")), float)

    def setrange(self, name: Any, offset: int, value: Any) -> Any:
        """Overwrite from `offset` (zero-padding a shorter value); returns the new length."""
        if int(offset) < 0:
            raise CommandError("offset is out of range")
        data = self._value(value)
        if data and int(offset) + len(data) > self._max_value:
            raise ValueTooLargeError(f"value of {int(offset) + len(data)} bytes exceeds the limit of {self._max_value} bytes")
        return self._run(c.SetRange(self._key(name), int(offset), data))

    def msetnx(self, mapping: Mapping[Any, Any]) -> Any:
        """Set every pair only if none of the keys exists; True if it did."""
        pairs: list[bytes] = []
        for k, v in mapping.items():
            pairs += (self._key(k), self._value(v))
        return self._run(c.MSetNx(tuple(pairs)), bool)

    def rename(self, src: Any, dst: Any) -> Any:
        """Move a key (value and expiry); raises CommandError('no such key') if src is missing."""
        return self._run(c.Rename(self._key(src), self._key(dst)), bool)

    def renamenx(self, src: Any, dst: Any) -> Any:
        """Rename only if dst does not exist; True if it did."""
        return self._run(c.Rename(self._key(src), self._key(dst), nx=True), bool)

    def copy(self, source: Any, destination: Any, destination_db: int | None = None, replace: bool = False) -> Any:
        """Copy a key (value and expiry); True if copied. Only database 0 exists."""
        if destination_db not in (None, 0):
            raise CommandError("DB index is out of range")
        return self._run(c.Copy(self._key(source), self._key(destination), replace), bool)

    def flushall(self) -> Any:
        return self._run(c.FlushAll())

    # -- scripting (redis-py's names and shapes)
    _script_max_instructions: int = DEFAULT_SCRIPT_MAX_INSTRUCTIONS

    def _script_command(self, sha: str, body: bytes | None, keys: Iterable[Any], args: Iterable[Any], read_only: bool) -> Any:
        cls = c.EvalRo if read_only or (body is not None and is_no_writes(body)) else c.Eval
        return cls(
            sha,
            body,
            tuple(self._key(k) for k in keys),
            tuple(_to_bytes(a, "script argument") for a in args),
            self._script_max_instructions,
            self._max_key,
            self._max_value,
        )

    def _script_out(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._script_out(v) for v in value]
        return self._out(value)

    def eval(self, script: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """Run a Lua script (EVAL); the first `numkeys` arguments are its KEYS, the rest ARGV."""
        body = _to_bytes(script, "script")
        keys, args = _split_keys(numkeys, keys_and_args)
        return self._run(self._script_command(sha1hex(body), body, keys, args, False), self._script_out)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """Run a cached script by its SHA1 (NoScriptError if the cluster does not hold it)."""
        keys, args = _split_keys(numkeys, keys_and_args)
        return self._run(self._script_command(_sha(sha), None, keys, args, False), self._script_out)

    def eval_ro(self, script: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """EVAL_RO: a read (no log entry); write commands inside it are refused."""
        body = _to_bytes(script, "script")
        keys, args = _split_keys(numkeys, keys_and_args)
        return self._run(self._script_command(sha1hex(body), body, keys, args, True), self._script_out)

    def evalsha_ro(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        keys, args = _split_keys(numkeys, keys_and_args)
        return self._run(self._script_command(_sha(sha), None, keys, args, True), self._script_out)

    def script_load(self, script: Any) -> Any:
        """Add a script to the replicated script cache; its SHA1 (str)."""
        return self._run(c.ScriptLoad(_to_bytes(script, "script")), lambda sha: sha.decode() if isinstance(sha, bytes) else sha)

    def script_exists(self, *shas: str) -> Any:
        """One bool per SHA1: is it in the script cache?"""
        return self._run(c.ScriptExists(tuple(_sha(s) for s in _flatten(shas))), lambda found: [bool(f) for f in found])

    def script_flush(self, sync_type: str | None = None) -> Any:
        if sync_type not in (None, "SYNC", "ASYNC"):
            raise ValueError("sync_type must be 'SYNC' or 'ASYNC'")
        return self._run(c.ScriptFlush(), lambda r: True)

    def register_script(self, script: Any) -> Script:
        """A callable ``Script``: ``script(keys=[...], args=[...])`` runs it by EVALSHA and
        falls back to EVAL (which also caches it) when the cluster answers NOSCRIPT."""
        return Script(self, script)

    def _call_script(self, script: Script, keys: Iterable[Any], args: Iterable[Any]) -> Any:
        keys, args = list(keys), list(args)
        by_sha = self._script_command(script.sha, None, keys, args, script.read_only)
        with_body = self._script_command(script.sha, script.script, keys, args, script.read_only)
        try:
            first = self._run(by_sha, self._script_out)
        except NoScriptError:
            return self._run(with_body, self._script_out)
        if inspect.isawaitable(first):

            async def with_fallback() -> Any:
                try:
                    return await first
                except NoScriptError:
                    return await self._run(with_body, self._script_out)

            return with_fallback()
        return first

    # -- node
    def wait_ready(self, timeout: float = 10.0) -> Any:
        """Wait until this replica can serve a linearizable read (a leader exists and this
        node has caught up). Raises NoLeaderError after `timeout` seconds."""
        return self._run(c.Barrier(), lambda r: True, timeout=timeout)


class Script:
    """A script registered with ``register_script`` (redis-py's shape): call it with
    ``keys=`` and ``args=`` (and ``client=`` to run it through another client); awaited
    on the async classes."""

    def __init__(self, registered_client: CacheCommands, script: Any) -> None:
        self.registered_client = registered_client
        self.script = _to_bytes(script, "script")
        self.sha = sha1hex(self.script)
        self.read_only = is_no_writes(self.script)

    def __call__(self, keys: Iterable[Any] = (), args: Iterable[Any] = (), client: CacheCommands | None = None) -> Any:
        return (client or self.registered_client)._call_script(self, keys or (), args or ())


def _split_keys(numkeys: int, keys_and_args: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    if isinstance(numkeys, bool) or not isinstance(numkeys, int):
        raise TypeError("numkeys must be an int")
    if numkeys > len(keys_and_args):
        raise CommandError("Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise CommandError("Number of keys can't be negative")
    return keys_and_args[:numkeys], keys_and_args[numkeys:]


def _sha(sha: Any) -> str:
    text = sha.decode("latin-1") if isinstance(sha, bytes) else str(sha)
    return text.lower()


def _flatten(keys: tuple[Any, ...]) -> Iterable[Any]:
    if len(keys) == 1 and isinstance(keys[0], (list, tuple)):
        return keys[0]
    return keys


def raise_or_convert(result: Any, convert: Convert | None) -> Any:
    if isinstance(result, BaseException):
        raise result
    return convert(result) if convert is not None else result
