"""Our commands as RESP requests, and RESP replies back as state-machine-shaped results.

The inverse of ``raftcache.redis_commands``: a ``commands.Set`` becomes ``SET k v PX ...``,
and the reply ``+OK`` becomes ``True``, exactly what the embedded ``Cache`` would have got
from the state machine, so ``api.CacheCommands`` converts results identically for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import commands as c
from ..errors import RaftCacheError, WatchError, error_from_resp
from ..resp import ErrorReply, encode_command

ToArgs = Callable[[Any], list[Any]]


def _set_args(cmd: c.Set) -> list[Any]:
    args: list[Any] = [b"SET", cmd.key, cmd.value]
    if cmd.cond:
        args.append(cmd.cond.upper().encode())
    if cmd.get:
        args.append(b"GET")
    if cmd.ttl_ms is not None:
        args += (b"PX", cmd.ttl_ms)
    elif cmd.at_ms is not None:
        args += (b"PXAT", cmd.at_ms)
    elif cmd.keepttl:
        args.append(b"KEEPTTL")
    return args


def _expire_args(cmd: c.Expire) -> list[Any]:
    args: list[Any] = [b"PEXPIREAT" if cmd.absolute else b"PEXPIRE", cmd.key, cmd.when_ms]
    for flag in (c.COND_NX, c.COND_XX, c.COND_GT, c.COND_LT):
        if flag in cmd.cond:
            args.append(flag.upper().encode())
    return args


def _cas_args(cmd: c.Cas) -> list[Any]:
    args: list[Any] = [b"CAS", cmd.key, cmd.expected, cmd.new]
    if cmd.ttl_ms is not None:
        args += (b"PX", cmd.ttl_ms)
    return args


# GETEX option words by (unit in ms, absolute), the inverse of redis_commands' table.
_GETEX_OPTION = {(1000, False): b"EX", (1, False): b"PX", (1000, True): b"EXAT", (1, True): b"PXAT"}


def _getex_args(cmd: c.GetEx) -> list[Any]:
    args: list[Any] = [b"GETEX", cmd.key]
    if cmd.amount is not None:
        args += (_GETEX_OPTION[(cmd.unit_ms, cmd.absolute)], cmd.amount)
    elif cmd.persist:
        args.append(b"PERSIST")
    return args


def _copy_args(cmd: c.Copy) -> list[Any]:
    return [b"COPY", cmd.src, cmd.dst, *((b"REPLACE",) if cmd.replace else ())]


def _scan_args(cmd: c.Scan) -> list[Any]:
    args: list[Any] = [b"SCAN", cmd.cursor]
    if cmd.match is not None:
        args += (b"MATCH", cmd.match)
    if cmd.only_type is not None:
        args += (b"TYPE", cmd.only_type.encode())
    return args + [b"COUNT", cmd.count]


def _eval_args(cmd: c.Eval | c.EvalRo) -> list[Any]:
    ro = type(cmd) is c.EvalRo
    if cmd.body is None:
        head = [b"EVALSHA_RO" if ro else b"EVALSHA", cmd.sha.encode()]
    else:
        head = [b"EVAL_RO" if ro else b"EVAL", cmd.body]
    return [*head, len(cmd.keys), *cmd.keys, *cmd.args]


_TO_ARGS: dict[type, ToArgs] = {
    c.Eval: _eval_args,
    c.EvalRo: _eval_args,
    c.ScriptLoad: lambda cmd: [b"SCRIPT", b"LOAD", cmd.body],
    c.ScriptFlush: lambda cmd: [b"SCRIPT", b"FLUSH"],
    c.ScriptExists: lambda cmd: [b"SCRIPT", b"EXISTS", *(s.encode() for s in cmd.shas)],
    c.Set: _set_args,
    c.Delete: lambda cmd: [b"DEL", *cmd.keys],
    c.GetDel: lambda cmd: [b"GETDEL", cmd.key],
    c.MSet: lambda cmd: [b"MSET", *cmd.pairs],
    c.IncrBy: lambda cmd: [b"INCRBY", cmd.key, cmd.delta],
    c.Append: lambda cmd: [b"APPEND", cmd.key, cmd.value],
    c.Expire: _expire_args,
    c.Persist: lambda cmd: [b"PERSIST", cmd.key],
    c.Cas: _cas_args,
    c.FlushAll: lambda cmd: [b"FLUSHALL"],
    c.GetEx: _getex_args,
    c.IncrByFloat: lambda cmd: [b"INCRBYFLOAT", cmd.key, cmd.increment],
    c.SetRange: lambda cmd: [b"SETRANGE", cmd.key, cmd.offset, cmd.value],
    c.MSetNx: lambda cmd: [b"MSETNX", *cmd.pairs],
    c.Rename: lambda cmd: [b"RENAMENX" if cmd.nx else b"RENAME", cmd.src, cmd.dst],
    c.Copy: _copy_args,
    c.GetRange: lambda cmd: [b"GETRANGE", cmd.key, cmd.start, cmd.end],
    c.ObjectEncoding: lambda cmd: [b"OBJECT", b"ENCODING", cmd.key],
    c.Get: lambda cmd: [b"GET", cmd.key],
    c.MGet: lambda cmd: [b"MGET", *cmd.keys],
    c.Exists: lambda cmd: [b"EXISTS", *cmd.keys],
    c.Strlen: lambda cmd: [b"STRLEN", cmd.key],
    c.Ttl: lambda cmd: [b"PTTL" if cmd.ms else b"TTL", cmd.key],
    c.Keys: lambda cmd: [b"KEYS", cmd.pattern],
    c.Scan: _scan_args,
    c.DbSize: lambda cmd: [b"DBSIZE"],
    c.Type: lambda cmd: [b"TYPE", cmd.key],
    c.Barrier: lambda cmd: [b"DBSIZE"],  # any linearizable read is a barrier
    c.WatchIndex: lambda cmd: [b"RAFTCACHE", b"INDEX", *cmd.keys],
    c.DataWrite: lambda cmd: list(cmd.args),
    c.DataRead: lambda cmd: list(cmd.args),
}


def encode(command: Any, tag: c.SessionTag | None) -> bytes:
    """The RESP request for a command; writes carry their exactly-once tag."""
    if type(command) is c.Exec:
        return _encode_exec(command, tag)
    args = _TO_ARGS[type(command)](command)
    if tag is not None:
        args = [b"RAFTCACHE", b"ONCE", tag.client_id, tag.seq, tag.ack, *args]
    return encode_command(*args)


# --------------------------------------------------------------------- transactions
# A transaction is one command to the client core (one exactly-once tag, one result) but
# several requests on the wire: [RAFTCACHE WATCHED key index ...] MULTI op... EXEC, where EXEC
# carries the tag. Sent whole on one connection, and whole again on a retry: the tag makes
# a retried EXEC answer the first one's result instead of applying twice.
def _encode_exec(command: c.Exec, tag: c.SessionTag | None) -> bytes:
    parts = []
    if command.watches:
        parts.append(encode_command(b"RAFTCACHE", b"WATCHED", *(part for pair in command.watches for part in pair)))
    parts.append(encode_command(b"MULTI"))
    parts += (encode(op, None) for op in command.ops)
    exec_args: list[Any] = [b"EXEC"] if tag is None else [b"RAFTCACHE", b"ONCE", tag.client_id, tag.seq, tag.ack, b"EXEC"]
    parts.append(encode_command(*exec_args))
    return b"".join(parts)


def reply_count(command: Any) -> int:
    """How many replies the request for `command` gets."""
    if type(command) is c.Exec:
        return len(command.ops) + 2 + (1 if command.watches else 0)
    return 1


def combine(command: Any, replies: list[Any]) -> Any:
    """The one reply that stands for a command's replies (EXEC's, or the first refusal)."""
    for reply in replies[:-1]:
        if isinstance(reply, ErrorReply):
            return reply
    return replies[-1]


def _exec_result(command: c.Exec, reply: Any) -> Any:
    if reply is None:
        return WatchError()
    return [decode(op, item) for op, item in zip(command.ops, reply)]


def _set_result(command: c.Set, reply: Any) -> Any:
    if command.get:
        return reply
    return reply is not None  # +OK, or nil when NX/XX prevented it


_FROM_REPLY: dict[type, Callable[[Any, Any], Any]] = {
    c.ScriptFlush: lambda cmd, reply: True,
    c.Set: _set_result,
    c.MSet: lambda cmd, reply: True,
    c.FlushAll: lambda cmd, reply: True,
    c.MSetNx: lambda cmd, reply: bool(reply),
    c.Rename: lambda cmd, reply: bool(reply),  # +OK, or RENAMENX's 1/0
    c.Copy: lambda cmd, reply: bool(reply),
    c.ObjectEncoding: lambda cmd, reply: None if reply is None else reply.decode(),
    c.Type: lambda cmd, reply: str(reply),
    c.Scan: lambda cmd, reply: (int(reply[0]), reply[1]),
    c.Barrier: lambda cmd, reply: None,
    c.Exec: _exec_result,
}


def decode(command: Any, reply: Any) -> Any:
    """The result the state machine would have returned, or the exception it stands for."""
    if isinstance(reply, ErrorReply):
        return error_from_resp(reply.prefix, reply.message)
    convert = _FROM_REPLY.get(type(command))
    return convert(command, reply) if convert is not None else reply


def is_error(result: Any) -> bool:
    return isinstance(result, RaftCacheError)
