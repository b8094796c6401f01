"""Lua 5.1 for EVAL: everything that touches lupa lives here.

A script runs in a **fresh** ``LuaRuntime`` per call: nothing a script does (globals,
metatables of strings, garbage, interned strings, the RNG) can reach the next one, and the
memory counter and the garbage collector start from the same state on every replica, so
the memory cap trips at the same point everywhere, whatever ran on that node before
(EVAL_RO runs on one node only; a restored replica starts cold). Reusing a runtime would
need all of that reset; instead a fresh one is made cheap (``benchmarks/lua_call_bench.py``:
about 0.2-0.3 ms for ``return 1``, of which ~0.05-0.08 ms is lupa creating the runtime):
the bootstrap is loaded as bytecode compiled once per process, Lua gets four Python
callables rather than a table of them, and the runtime is freed as soon as the call ends.
Around the runtime:

* a sandbox built by a bootstrap chunk that keeps ``debug.sethook`` and ``loadstring`` as
  locals and then removes ``os``, ``io``, ``debug``, ``package``, ``require``, ``module``,
  ``dofile``, ``loadfile``, ``print``, ``coroutine`` (a count hook is per coroutine),
  ``collectgarbage``, ``gcinfo``, ``string.dump`` and lupa's ``python`` table; ``loadstring``
  and ``load`` refuse bytecode; globals are protected with Redis 7's errors;
* a deterministic budget: a count hook charges every ``HOOK_STEP`` VM instructions and each
  ``redis.call`` charges ``CALL_COST`` plus ``ELEMENT_COST`` per reply element; past the
  budget the hook raises at every instruction, so ``pcall`` cannot swallow it; memory is
  capped by lupa's allocator (``max_memory``);
* Redis's conversions both ways, and ``redis.*``, ``cjson``, ``bit`` and a seeded
  ``math.random`` (Python callables wrapped in Lua closures, so scripts never hold a Python
  object: lupa would let them walk its attributes).

The host (``scripting.py``) supplies ``call(argv) -> reply`` that runs a command against
the state machine; this module knows nothing about the cache.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from lupa import lua51 as _lupa

from .errors import CommandError, ConsensusBackendError
from .redis_semantics import REDIS_VERSION
from .resp import ErrorReply, Map, NullArray, SimpleString
from .script_shebang import sha1hex

__all__ = ["LuaRun", "ScriptAbort", "check_runtime", "compile_check", "sha1hex"]

log = logging.getLogger(__name__)

# Fixed, not configurable: every replica must stop a script at the same point.
# Bytes a script's Lua state may allocate. Kept modest because Lua 5.1 hashes only ~32
# characters of a long string: many long strings alike in those positions intern in
# quadratic time, inside C code the instruction count cannot see.
SCRIPT_MAX_MEMORY = 32 << 20
HOOK_STEP = 1000  # instructions between two budget checks
CALL_COST = 1000  # instructions charged per redis.call / redis.pcall (a Python round trip costs about as much)
ELEMENT_COST = 10  # and per element of its reply
MAX_REPLY_DEPTH = 200  # nesting of a returned table (a table containing itself stops here)
LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING}
INT64_MIN = -(2**63)

# lupa behaviours relied upon; checked once, as the consensus backend checks pysyncobj.
_RUNTIME_KWARGS = dict(encoding=None, register_eval=False, register_builtins=False, unpack_returned_tuples=True)


def check_runtime() -> None:
    """Fail loudly (ConsensusBackendError) if lupa's Lua 5.1 does not behave as relied upon:
    Lua 5.1, bytes strings, a memory cap, integral numbers as int, tuples unpacked."""
    try:
        lua = _lupa.LuaRuntime(max_memory=1 << 20, **_RUNTIME_KWARGS)
        if lua.lua_version != (5, 1):
            raise ConsensusBackendError(f"lupa.lua51 runs Lua {lua.lua_version}, not 5.1")
        probe = lua.execute("return function(f) local a, b = f() return a, b, 3, 'x', debug ~= nil end")
        got = probe(lambda: (1, 2))
        if got != (1, 2, 3, b"x", True):
            raise ConsensusBackendError(f"lupa conversions differ from what raftcache relies on: {got!r}")
        ok, err = lua.execute("return pcall(function() return ('x'):rep(4 * 1024 * 1024) end)")
        if ok or err != b"not enough memory":
            raise ConsensusBackendError("lupa's max_memory does not cap Lua allocations")
    except ConsensusBackendError:
        raise
    except Exception as exc:  # an API that moved: say what, at start-up
        raise ConsensusBackendError(f"lupa does not provide what raftcache's scripting relies on: {exc!r}") from exc


class ScriptAbort(CommandError):
    """The script ran out of its instruction or memory budget."""


# --------------------------------------------------------------------------- bootstrap
# Runs with the full standard library, keeps what the sandbox needs as upvalues (scripts
# have no debug library, so they cannot reach them), then strips the globals.
_BOOTSTRAP = r"""
local call, tick, per_run, shared, version, version_num, step = ...
-- Python helpers arrive as four callables, not a table of ~25: each Python object handed
-- to Lua costs a userdata and a crossing, on every script call. The rest dispatch by name.
local function via(fn, name) return function(...) return fn(name, ...) end end
local py = {call = call, tick = tick, version = version, version_num = version_num}
for _, name in ipairs({"budget_message", "setresp", "json_decode", "random", "randomseed"}) do
  py[name] = via(per_run, name)
end
for _, name in ipairs({"sha1hex", "log", "json_encode", "bit_tobit", "bit_bnot", "bit_band", "bit_bor", "bit_bxor",
                       "bit_lshift", "bit_rshift", "bit_arshift", "bit_rol", "bit_ror", "bit_bswap", "bit_tohex"}) do
  py[name] = via(shared, name)
end
local sethook, getinfo = debug.sethook, debug.getinfo
local raw_loadstring, setfenv, error, type, tostring, select = loadstring, setfenv, error, type, tostring, select
local G = _G
local env = G  -- where loadstring'd chunks live: the scripts' globals once built

local exhausted = false
local exempt = {}  -- run() and the error handler: the budget error must be able to leave
local function hook()
  if exhausted then
    if exempt[getinfo(2, "f").func] then return end
  elseif py.tick() then
    exhausted = true
    sethook(hook, "", 1)  -- from now on every instruction fails: pcall cannot keep it running
  else
    return
  end
  error({err = py.budget_message()}, 0)
end

local function safe_loadstring(s, name)
  if type(s) == "string" and s:byte(1) == 27 then return nil, "loading bytecode is not allowed" end
  local f, e = raw_loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
local function safe_load(fn, name)
  local parts = {}
  while true do
    local piece = fn()
    if piece == nil or piece == "" then break end
    if type(piece) ~= "string" then return nil, "reader function must return a string" end
    parts[#parts + 1] = piece
  end
  return safe_loadstring(table.concat(parts), name)
end

local function handler(err)
  -- Redis's __redis__err__handler: tables keep their fields, strings become ERR errors;
  -- the position is the innermost frame of the user's script.
  if type(err) ~= "table" then err = {err = "ERR " .. tostring(err)} end
  for level = 2, 40 do
    local i = getinfo(level, "Sl")
    if not i then break end
    if i.source == "@user_script" then
      err.source = i.source
      err.line = i.currentline
      break
    end
  end
  return err
end

local function wrap_call(protected)
  local call = py.call
  return function(...)
    local reply, failed = call(protected, ...)
    if failed then error(reply, 0) end
    return reply
  end
end

local redis = {
  call = wrap_call(false),
  pcall = wrap_call(true),
  sha1hex = function(...)
    if select('#', ...) ~= 1 then error({err = "ERR wrong number of arguments"}, 0) end
    return py.sha1hex(1, ...)
  end,
  error_reply = function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= "string" then error({err = "ERR wrong number or type of arguments"}, 0) end
    if s:sub(1, 1) ~= "-" then s = "-" .. s end
    local sp = s:find(" ", 1, true)
    if sp then return {err = s:sub(2, sp - 1) .. " " .. s:sub(sp + 1)} end
    return {err = "ERR " .. s:sub(2)}
  end,
  status_reply = function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= "string" then error({err = "ERR wrong number or type of arguments"}, 0) end
    return {ok = s}
  end,
  log = function(...)
    local failure = py.log(select('#', ...), ...)
    if failure then error({err = failure}, 0) end
  end,
  setresp = function(...)
    local failure = py.setresp(select('#', ...), ...)
    if failure then error({err = failure}, 0) end
  end,
  replicate_commands = function() return true end,
  set_repl = function() end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = py.version, REDIS_VERSION_NUM = py.version_num,
}

local null = newproxy(false)
local function lift(fn)  -- errors from Python helpers come back as (nil, message)
  return function(...)
    local value, failure = fn(...)
    if failure then error(failure, 2) end
    return value
  end
end
local cjson = {null = null}
local function is_null(v) return v == null end
cjson.encode = function(v) local s, failure = py.json_encode(v, is_null) if failure then error(failure, 2) end return s end
cjson.decode = function(s) local v, failure = py.json_decode(s, null) if failure then error(failure, 2) end return v end

local bit = {}
for _, name in ipairs({"tobit", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror", "bswap", "tohex"}) do
  bit[name] = lift(py["bit_" .. name])
end

math.random = lift(py.random)
math.randomseed = lift(py.randomseed)
string.dump = nil

for _, name in ipairs({"os", "io", "debug", "package", "require", "module", "dofile", "loadfile", "print",
                       "coroutine", "collectgarbage", "gcinfo", "python"}) do
  G[name] = nil
end
G.loadstring = safe_loadstring
G.load = safe_load
G.redis = redis
G.cjson = cjson
G.bit = bit

-- Scripts get their own globals table: the runtime's own (already stripped) stays free of
-- metamethods, because lupa reads it unprotected and an erroring __index would abort.
local E = {}
for k, v in pairs(G) do E[k] = v end
E._G = E
env = E

local function run(code, keys, argv)
  local f, err = raw_loadstring(code, "@user_script")
  if not f then return false, "compile", err end
  setfenv(f, E)
  E.KEYS, E.ARGV = keys, argv
  setmetatable(E, {
    __index = function(_, k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  sethook(hook, "", step)
  local ok, result = xpcall(f, handler)
  sethook()
  return ok, result
end

exempt[run] = true
exempt[handler] = true

local function compile(code)
  local f, err = raw_loadstring(code, "@user_script")
  return f ~= nil, err
end

return run, compile
"""


def _new_runtime() -> Any:
    return _lupa.LuaRuntime(
        max_memory=SCRIPT_MAX_MEMORY, attribute_filter=_no_attributes, **_RUNTIME_KWARGS
    )


_bootstrap_bytecode: bytes | None = None


def _bootstrap_chunk() -> bytes:
    """The bootstrap as Lua 5.1 bytecode, compiled once per process.

    Parsing the bootstrap source was most of a script call's cost (~0.45 ms); loading its
    bytecode into each fresh runtime builds the same functions for a fraction of that. The
    bytecode comes from this process's own Lua (a throw-away runtime), never from a
    script, and every call loads the same bytes, so each replica's runtimes start from an
    identical state. (Scripts still cannot load bytecode: their loadstring refuses it.)
    """
    global _bootstrap_bytecode
    if _bootstrap_bytecode is None:
        lua = _lupa.LuaRuntime(**_RUNTIME_KWARGS)
        chunk = lua.execute(b"return string.dump(assert(loadstring(..., '=bootstrap')))", _BOOTSTRAP.encode())
        if not isinstance(chunk, bytes) or not chunk.startswith(b"\x1bLua"):
            raise ConsensusBackendError("lupa's Lua 5.1 did not dump the scripting bootstrap as bytecode")
        _bootstrap_bytecode = chunk
    return _bootstrap_bytecode


def _no_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python attributes are not reachable from scripts")


def compile_check(code: bytes) -> str | None:
    """The Lua compiler's message for a script that does not compile, else None."""
    lua = _new_runtime()
    _, compile_ = lua.execute(_bootstrap_chunk(), None, None, None, None, b"", 0, HOOK_STEP)
    ok, err = compile_(code)
    return None if ok else _text(err)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -------------------------------------------------------------------------------- a run
class LuaRun:
    """One script execution: its runtime, budget, RNG and conversions."""

    def __init__(
        self,
        call: Callable[[list[bytes]], Any],
        *,
        max_instructions: int,
        seed: int,
        sha: str = "",
        version: str = REDIS_VERSION,
    ) -> None:
        self.sha = sha
        self._call = call
        self._budget = max_instructions
        self._spent = 0
        self._seed = seed
        self._rng: random.Random | None = None  # built on a script's first math.random: most never call it
        self._resp = 2
        self._version = version
        self.lua = _new_runtime()

    # ---- budget
    def _tick(self) -> bool:
        self._spent += HOOK_STEP
        return self._spent > self._budget

    def _budget_message(self) -> bytes:
        return b"ERR Script exceeded its instruction budget (limits.script_max_instructions = %d)" % self._budget

    # ---- running
    def run(self, code: bytes, keys: Sequence[bytes], argv: Sequence[bytes]) -> tuple[bool, Any]:
        """(True, reply value) or (False, error line without '-'). Compile errors raise.

        One call per LuaRun: afterwards the runtime is dropped. The Lua state holds this
        object's bound methods, so ``self.lua`` would make a reference cycle, and a runtime
        (up to SCRIPT_MAX_MEMORY) would live on until Python's cyclic collector found it;
        collecting those was about a third of a trivial script's cost."""
        try:
            return self._run(code, keys, argv)
        finally:
            self.lua = None

    def _run(self, code: bytes, keys: Sequence[bytes], argv: Sequence[bytes]) -> tuple[bool, Any]:
        lua = self.lua
        if lua is None:
            raise RuntimeError("a LuaRun runs one script")
        version_num = 0
        for part in self._version.split("."):
            version_num = version_num * 256 + int(part)
        run, _ = lua.execute(_bootstrap_chunk(), self._redis_call, self._tick, self._per_run, _shared, self._version.encode(), version_num, HOOK_STEP)
        try:
            result = run(code, lua.table_from(list(keys)), lua.table_from(list(argv)))
        except _lupa.LuaMemoryError:
            return False, "ERR Script exceeded its memory budget (%d bytes)" % SCRIPT_MAX_MEMORY
        ok = result[0]
        if ok is False and len(result) == 3 and result[1] == b"compile":
            raise CommandError(f"Error compiling script (new function): {_text(result[2])}")
        value = result[1]
        if ok and self._spent > self._budget:  # ran out, but a pcall in a tail call hid it
            return False, self._budget_message().decode()
        if ok:
            return True, self._to_reply(value, 0)
        return False, self._error_line(value)

    def _error_line(self, err: Any) -> str:
        if _lupa.lua_type(err) != "table":
            text = _text(err)
            if text == "not enough memory":
                return "ERR Script exceeded its memory budget (%d bytes)" % SCRIPT_MAX_MEMORY
            return f"ERR Error running script, {text[:100]}"
        fields = dict(err.items())  # raw, as in _to_reply
        msg = _text(fields[b"err"]) if isinstance(fields.get(b"err"), bytes) else "ERR unknown error"
        source, line = fields.get(b"source"), fields.get(b"line")
        if source is not None and line is not None:
            msg += f" script: {self.sha}, on {_text(source)}:{_text(line) if isinstance(line, bytes) else int(line)}."
        return _one_line(msg)

    # ---- redis.call from Lua
    def _redis_call(self, protected: bool, *args: Any) -> tuple[Any, bool]:
        if self._spent > self._budget:
            return self.lua.table_from({b"err": self._budget_message()}), True
        if not args:
            return self._error(b"ERR Please specify at least one argument for this redis lib call"), True
        argv: list[bytes] = []
        for arg in args:
            if isinstance(arg, bytes):
                argv.append(arg)
            elif isinstance(arg, bool) or not isinstance(arg, (int, float)):
                return self._error(b"ERR Lua redis lib command arguments must be strings or integers"), True
            else:
                argv.append(_number_text(arg))
        self._spent += CALL_COST
        reply = self._call(argv)
        if isinstance(reply, (list, tuple)):
            self._spent += ELEMENT_COST * len(reply)
        if isinstance(reply, ErrorReply):
            return self._error(reply.text.encode()), not protected
        return self._to_lua(reply), False

    def _error(self, line: bytes) -> Any:
        return self.lua.table_from({b"err": line})

    def _to_lua(self, reply: Any) -> Any:
        """A command's reply as Redis hands it to Lua (RESP2 rules, or RESP3 after setresp(3))."""
        if isinstance(reply, bool):
            return reply if self._resp == 3 else int(reply)
        if isinstance(reply, int):
            return reply
        if isinstance(reply, (bytes, bytearray)):
            return bytes(reply)
        if isinstance(reply, SimpleString):
            return self.lua.table_from({b"ok": reply.encode()})
        if isinstance(reply, str):
            return reply.encode()
        if reply is None or reply is NullArray:
            return None if self._resp == 3 else False
        if isinstance(reply, ErrorReply):
            return self._error(reply.text.encode())
        if isinstance(reply, Map):
            if self._resp == 3:
                inner = self.lua.table()
                for key, value in reply.items():
                    inner[self._to_lua(key)] = self._to_lua(value)
                return self.lua.table_from({b"map": inner})
            return self._to_lua([part for pair in reply.items() for part in pair])
        if isinstance(reply, (list, tuple)):
            table = self.lua.table()
            for i, item in enumerate(reply, 1):
                table[i] = self._to_lua(item)
            return table
        raise TypeError(f"cannot hand {type(reply).__name__} to Lua")

    def _to_reply(self, value: Any, depth: int) -> Any:
        """A Lua value as the reply Redis would send (luaReplyToRedisReply)."""
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if isinstance(value, bytes):
            return value
        if isinstance(value, (int, float)):
            return _truncate(value)
        if _lupa.lua_type(value) != "table":
            return None  # functions, userdata: Redis answers nil
        if depth >= MAX_REPLY_DEPTH:
            return ErrorReply("ERR reached lua stack limit")
        # Raw reads only (lua_next): indexing would run a script's __index metamethods
        # from Python, outside any protected call, where an error aborts the process.
        fields = dict(value.items())
        err = fields.get(b"err")
        if isinstance(err, bytes):
            return ErrorReply(_one_line(_text(err)))
        ok = fields.get(b"ok")
        if isinstance(ok, bytes):
            return SimpleString(_one_line(_text(ok)))
        double = fields.get(b"double")
        if isinstance(double, (int, float)):
            return _double_text(double)
        inner = fields.get(b"map")
        if _lupa.lua_type(inner) == "table":
            return Map((self._to_reply(k, depth + 1), self._to_reply(v, depth + 1)) for k, v in inner.items())
        inner = fields.get(b"set")
        if _lupa.lua_type(inner) == "table":
            return [self._to_reply(k, depth + 1) for k in inner.keys()]
        items = []
        i = 1
        while (item := fields.get(i)) is not None:
            items.append(self._to_reply(item, depth + 1))
            i += 1
        return items

    # ---- helpers exposed to Lua
    def _per_run(self, name: bytes, *args: Any) -> Any:
        return _PER_RUN[name](self, *args)

    def _json_decode(self, text: Any, null: Any) -> tuple[Any, Any]:
        return _json_decode(self.lua, text, null)

    def _setresp(self, argc: int, version: Any = None) -> bytes | None:
        if argc != 1:
            return b"ERR redis.setresp() requires one argument."
        if version not in (2, 3):
            return b"ERR RESP version must be 2 or 3."
        self._resp = int(version)
        return None

    def _math_random(self, *args: Any) -> tuple[Any, Any]:
        # Lua 5.1's math.random over a replicated seed (Python's Mersenne Twister is the same
        # on every platform for a given seed).
        r = self._random().random()
        if not args:
            return r, None
        if not all(isinstance(a, (int, float)) for a in args) or len(args) > 2:
            return None, b"wrong number of arguments"
        low, high = (1, int(args[0])) if len(args) == 1 else (int(args[0]), int(args[1]))
        if low > high:
            return None, b"bad argument #%d to 'random' (interval is empty)" % len(args)
        return math.floor(r * (high - low + 1)) + low, None

    def _math_randomseed(self, seed: Any = None) -> tuple[Any, Any]:
        if not isinstance(seed, (int, float)):
            return None, b"bad argument #1 to 'randomseed' (number expected)"
        self._random().seed(int(seed))
        return None, None

    def _random(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng


_PER_RUN: dict[bytes, Callable[..., Any]] = {
    b"budget_message": LuaRun._budget_message,
    b"setresp": LuaRun._setresp,
    b"json_decode": LuaRun._json_decode,
    b"random": LuaRun._math_random,
    b"randomseed": LuaRun._math_randomseed,
}


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _truncate(number: float | int) -> int:
    """Lua number -> RESP integer as Redis's C cast does on x86-64: toward zero; NaN and
    out-of-range values become INT64_MIN (cvttsd2si's "integer indefinite")."""
    if isinstance(number, int):
        return number if -(2**63) <= number < 2**63 else INT64_MIN
    if math.isnan(number) or math.isinf(number) or not -(2.0**63) <= number < 2.0**63:
        return INT64_MIN
    return int(number)


def _number_text(number: int | float) -> bytes:
    """A Lua number given to redis.call, as Redis formats it (integral values without '.0')."""
    if isinstance(number, int):
        return b"%d" % number
    if number.is_integer() and abs(number) < 2**63:
        return b"%d" % int(number)
    return ("%.17g" % number).encode()


def _double_text(number: float) -> bytes:
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer() and abs(number) < 2**53):
        return b"%d" % int(number)
    return repr(float(number)).encode()


def _lua_sha1hex(argc: int, value: Any = None) -> Any:
    if argc != 1:
        return None  # Redis pushes an error table; scripts see it returned
    if isinstance(value, (int, float)):
        value = _number_text(value)
    if not isinstance(value, bytes):
        value = b""
    return sha1hex(value).encode()


def _lua_log(argc: int, level: Any = None, *parts: Any) -> bytes | None:
    if argc < 2:
        return b"ERR redis.log() requires two arguments or more."
    if not isinstance(level, (int, float)):
        return b"ERR First argument must be a number (log level)."
    if int(level) not in LOG_LEVELS:
        return b"ERR Invalid log level."
    text = " ".join(_text(p) if isinstance(p, bytes) else str(p) for p in parts)
    log.log(LOG_LEVELS[int(level)], "script: %s", text)  # the node log only: no replicated effect
    return None


# ----------------------------------------------------------------------------- cjson
_JSON_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x2F: b"\\/", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
_MAX_JSON_DEPTH = 1000


def _json_string(data: bytes) -> bytes:
    out = bytearray(b'"')
    for byte in data:
        escaped = _JSON_ESCAPES.get(byte)
        if escaped is not None:
            out += escaped
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\u%04x" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _json_number(number: int | float) -> bytes:
    if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
        raise ValueError("Cannot serialise number: must not be NaN or Inf")
    return b"%.14g" % number  # lua-cjson's default precision


class _JsonError(Exception):
    pass


def _json_encode(value: Any, is_null: Callable[[Any], bool]) -> tuple[Any, Any]:
    try:
        return _json_value(value, is_null, 0), None
    except (_JsonError, ValueError) as exc:
        return None, str(exc).encode()


def _json_value(value: Any, is_null: Callable[[Any], bool], depth: int) -> bytes:
    null = is_null
    if value is None or (_lupa.lua_type(value) == "userdata" and is_null(value)):
        return b"null"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, bytes):
        return _json_string(value)
    if isinstance(value, (int, float)):
        return _json_number(value)
    if _lupa.lua_type(value) != "table":
        raise _JsonError(f"Cannot serialise {_lupa.lua_type(value)}: type not supported")
    if depth >= _MAX_JSON_DEPTH:
        raise _JsonError(f"Cannot serialise, excessive nesting ({depth + 1})")
    items = list(value.items())  # raw (lua_next): no metamethods run from Python
    if not items:
        return b"{}"
    if all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k, _ in items):
        biggest = max(k for k, _ in items)
        if biggest > 10 and biggest > 2 * len(items):  # lua-cjson's sparse-array rule
            raise _JsonError("Cannot serialise table: excessively sparse array")
        by_index = dict(items)
        return b"[" + b",".join(_json_value(by_index.get(i), null, depth + 1) for i in range(1, biggest + 1)) + b"]"
    parts = []
    for key, item in items:
        if isinstance(key, bytes):
            name = key
        elif isinstance(key, (int, float)) and not isinstance(key, bool):
            name = _json_number(key)
        else:
            raise _JsonError("Cannot serialise table: table key must be a number or string")
        parts.append(_json_string(name) + b":" + _json_value(item, null, depth + 1))
    return b"{" + b",".join(parts) + b"}"


def _json_decode(lua: Any, text: Any, null: Any) -> tuple[Any, Any]:
    if not isinstance(text, bytes):
        return None, b"bad argument #1 to 'decode' (string expected)"
    try:
        data = json.loads(text.decode("utf-8", "surrogateescape"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return None, f"Expected value but found invalid token ({exc})".encode()
    return _json_to_lua(lua, data, null), None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid token {name}")


def _json_to_lua(lua: Any, data: Any, null: Any) -> Any:
    if data is None:
        return null
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    if isinstance(data, bool):
        return data
    if isinstance(data, (int, float)):
        return float(data) if isinstance(data, int) and abs(data) >= 2**53 else data
    table = lua.table()
    if isinstance(data, list):
        for i, item in enumerate(data, 1):
            table[i] = _json_to_lua(lua, item, null)
    else:
        for key, item in data.items():
            table[key.encode("utf-8", "surrogateescape")] = _json_to_lua(lua, item, null)
    return table


# ------------------------------------------------------------------------------- bit
def _tobit(x: Any) -> int:
    """LuaBitOp's normalisation: round to nearest (ties to even), keep the low 32 bits, signed."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise _JsonError("bad argument #1 (number expected)")
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return 0
    v = round(x) & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _u32(x: Any) -> int:
    return _tobit(x) & 0xFFFFFFFF


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _fold(op: Callable[[int, int], int]) -> Callable[..., int]:
    def apply(*args: Any) -> int:
        acc = _u32(args[0])
        for arg in args[1:]:
            acc = op(acc, _u32(arg))
        return _signed(acc)

    return apply


def _rol(x: Any, n: Any) -> int:
    v, s = _u32(x), _u32(n) & 31
    return _signed((v << s) | (v >> (32 - s)))


def _ror(x: Any, n: Any) -> int:
    v, s = _u32(x), _u32(n) & 31
    return _signed((v >> s) | (v << (32 - s)))


def _tohex(x: Any, n: Any = 8) -> bytes:
    v, width = _u32(x), _tobit(n)
    digits = "0123456789ABCDEF" if width < 0 else "0123456789abcdef"
    width = min(abs(width), 8)
    out = "".join(digits[(v >> (4 * i)) & 15] for i in reversed(range(width)))
    return out.encode()


def _safe(fn: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    def call(*args: Any) -> tuple[Any, Any]:
        try:
            return fn(*args), None
        except (_JsonError, IndexError, TypeError) as exc:
            return None, str(exc).encode() or b"bad argument"

    return call


_BIT: dict[str, Callable[..., Any]] = {
    name: _safe(fn)
    for name, fn in {
        "tobit": _tobit,
        "bnot": lambda x: _signed(~_u32(x)),
        "band": _fold(lambda a, b: a & b),
        "bor": _fold(lambda a, b: a | b),
        "bxor": _fold(lambda a, b: a ^ b),
        "lshift": lambda x, n: _signed(_u32(x) << (_u32(n) & 31)),
        "rshift": lambda x, n: _signed(_u32(x) >> (_u32(n) & 31)),
        "arshift": lambda x, n: _signed(_tobit(x) >> (_u32(n) & 31)),
        "rol": _rol,
        "ror": _ror,
        "bswap": lambda x: _signed(int.from_bytes(_u32(x).to_bytes(4, "little"), "big")),
        "tohex": _tohex,
    }.items()
}

# Helpers that need no run: one Python callable handed to Lua dispatches them by name.
_SHARED: dict[bytes, Callable[..., Any]] = {
    b"sha1hex": _lua_sha1hex,
    b"log": _lua_log,
    b"json_encode": _json_encode,
    **{b"bit_" + name.encode(): fn for name, fn in _BIT.items()},
}


def _shared(name: bytes, *args: Any) -> Any:
    return _SHARED[name](*args)
