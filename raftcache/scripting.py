"""EVAL inside the replicated state machine: the script cache's rules and ``redis.call``.

A script runs while its log entry is applied, on every replica, so everything it can see
is replicated state: keys, the replicated clock (``TIME``), and a ``math.random`` seeded
from the log position. ``redis.call`` parses its arguments through the same command table
as the server (``redis_commands``) and applies them through the state machine's own
handlers, so every command the server supports works inside scripts, with the same
replies and errors. Writes a script made before it failed or ran out of budget stay
applied, as in Redis; every replica stops at the same instruction, so they agree.

The Lua side (sandbox, budget, conversions) is ``lua_runtime``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import commands as c
from .acl import SCRIPT_DENIALS, User, user_from_script_acl
from .errors import CommandError, NoScriptError, ScriptError, resp_prefix
from .lua_runtime import LuaRun, compile_check
from .redis_commands import Immediate, Kind, Limits, build_command, lookup
from .resp import PONG, ErrorReply
from .script_shebang import NO_WRITES, parse_shebang, sha1hex

__all__ = ["ScriptHost"]

log = logging.getLogger(__name__)

# Connection-level commands a script may call (the rest are Redis's `noscript` or only
# make sense on a connection).
_SCRIPT_LOCAL: dict[str, Callable[[list[bytes]], Any]] = {
    "ping": lambda argv: PONG if len(argv) == 1 else argv[1],
    "echo": lambda argv: argv[1],
}
# (MULTI/EXEC/WATCH are listed ahead of the transactions branch being merged: noscript in Redis.)
_NOSCRIPT = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "script", "multi", "exec", "discard", "watch", "unwatch"})

_RO_WITH_WRITE_FLAG = "Can not execute a script with write flag using *_ro command."


class ScriptHost:
    """Runs EVAL-family commands for a state machine (its handler tables and clock)."""

    def __init__(
        self,
        scripts: dict[str, bytes],
        writers: Mapping[type, Callable[[Any], Any]],
        readers: Mapping[type, Callable[[Any], Any]],
        clock: Callable[[], tuple[int, int]],
    ) -> None:
        self.scripts = scripts
        self._writers = writers
        self._readers = readers
        self._clock = clock  # (replicated time ms, revision)

    # ------------------------------------------------------------------ commands
    def load(self, cmd: c.ScriptLoad) -> bytes:
        sha = sha1hex(cmd.body)
        if sha not in self.scripts:
            _, offset = parse_shebang(cmd.body)
            error = compile_check(_code(cmd.body, offset))
            if error is not None:
                raise CommandError(f"Error compiling script (new function): {error}")
            self.scripts[sha] = cmd.body
        return sha.encode()

    def flush(self, cmd: c.ScriptFlush) -> bool:
        self.scripts.clear()
        return True

    def exists(self, cmd: c.ScriptExists) -> list[int]:
        return [int(sha in self.scripts) for sha in cmd.shas]

    def eval(self, cmd: c.Eval | c.EvalRo) -> Any:
        read_only = type(cmd) is c.EvalRo
        body = cmd.body if cmd.body is not None else self.scripts.get(cmd.sha)
        if body is None:
            raise NoScriptError()
        flags, offset = parse_shebang(body)
        if read_only and flags is not None and NO_WRITES not in flags:
            raise CommandError(_RO_WITH_WRITE_FLAG)
        no_writes = read_only or (flags is not None and NO_WRITES in flags)
        now_ms, revision = self._clock()
        seed = int.from_bytes(hashlib.blake2b(b"%s:%d:%d" % (cmd.sha.encode(), revision, now_ms), digest_size=8).digest(), "big")
        limits = Limits(cmd.max_key_bytes, cmd.max_value_bytes, cmd.max_instructions)
        # The caller's permissions travel in the entry, so every replica denies alike.
        caller = None if cmd.acl is None else user_from_script_acl(cmd.acl)
        run = LuaRun(
            lambda argv: self._call(argv, no_writes, limits, caller),
            max_instructions=cmd.max_instructions,
            seed=seed,
            sha=cmd.sha,
        )
        ok, value = run.run(_code(body, offset), cmd.keys, cmd.args)  # raises on a compile error
        if cmd.body is not None and not read_only:
            self.scripts.setdefault(cmd.sha, cmd.body)  # EVAL caches what compiled, as Redis
        if not ok:
            raise ScriptError(value)
        if isinstance(value, ErrorReply):  # return redis.error_reply(...) / {err=...}
            raise ScriptError(value.text)
        return value

    # ------------------------------------------------------------- redis.call
    def _call(self, argv: list[bytes], read_only: bool, limits: Limits, caller: User | None = None) -> Any:
        spec = lookup(argv[0])
        if spec is None:
            return ErrorReply("ERR Unknown Redis command called from script")
        if not spec.arity_ok(len(argv)):
            return ErrorReply("ERR Wrong number of args calling Redis command from script")
        if caller is not None:
            denial = caller.check(spec, argv)
            if denial is not None:
                return ErrorReply("ERR " + SCRIPT_DENIALS[denial.reason])
        local = _SCRIPT_LOCAL.get(spec.name)
        if local is not None:
            return local(argv)
        if spec.kind is Kind.LOCAL or spec.name in _NOSCRIPT or "noscript" in spec.flags:
            return ErrorReply("ERR This Redis command is not allowed from script")
        if spec.kind is Kind.WRITE and read_only:
            return ErrorReply("ERR Write commands are not allowed from read-only scripts.")
        if spec.name == "time":  # the replicated clock, not this node's
            now_ms, _ = self._clock()
            return [b"%d" % (now_ms // 1000), b"%d" % (now_ms % 1000 * 1000)]
        try:
            command = build_command(spec, argv, limits)
            if isinstance(command, Immediate):
                return spec.render(command.reply)
            handlers = self._writers if c.is_write(command) else self._readers
            return spec.render(handlers[type(command)](command))
        except CommandError as err:
            return ErrorReply(f"{resp_prefix(err)} {err.message}")
        except Exception as exc:  # a handler bug: the same on every replica; answer, don't crash
            log.exception("command %r failed inside a script", argv[0])
            return ErrorReply(f"ERR internal error applying command: {type(exc).__name__}")


def _code(body: bytes, shebang_len: int) -> bytes:
    return body[shebang_len:] if shebang_len else body
