"""EVAL inside the state machine, without sockets: the sandbox, Redis's conversions and
errors, cjson/bit, the deterministic budget, the replicated script cache (snapshots,
digests) and determinism across two state machines fed the same entries."""

from __future__ import annotations

import time

import pytest

from raftcache import commands as c
from raftcache.errors import CommandError, NoScriptError, ScriptError, resp_prefix
from raftcache.lua_runtime import SCRIPT_MAX_MEMORY, check_runtime
from raftcache.redis_commands import Limits, build_command, lookup
from raftcache.redis_semantics import REDIS_VERSION
from raftcache.resp import OK, ErrorReply, SimpleString, encode_reply
from raftcache.script_shebang import sha1hex
from raftcache.statemachine import CacheStateMachine

BUDGET = 2_000_000


class Node:
    """A state machine driven as the server drives it: parse, apply or read, render."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.sm = CacheStateMachine()
        self.limits = Limits(script_max_instructions=budget)
        self.time_ms = 1_700_000_000_000

    def __call__(self, *words: str | bytes | int) -> object:
        args = [w if isinstance(w, bytes) else str(w).encode() for w in words]
        spec = lookup(args[0].lower())
        assert spec is not None
        try:
            command = build_command(spec, args, self.limits)
        except CommandError as err:
            return err
        if c.is_write(command):
            result = self.sm.apply(c.Batch(self.time_ms, [(None, command)]))[0]
        else:
            try:
                result = self.sm.read(command)
            except CommandError as err:
                result = err
        return result if isinstance(result, CommandError) else spec.render(result)


def line(err: object) -> str:
    """An error as the client reads it: '-PREFIX message' without the dash."""
    assert isinstance(err, CommandError), err
    return f"{resp_prefix(err)} {err.message}"


@pytest.fixture
def node() -> Node:
    return Node()


def test_runtime_check_passes():
    check_runtime()


# ----------------------------------------------------------------------- redis.call
def test_eval_reads_and_writes_through_the_command_table(node):
    assert node("EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v") == OK
    assert node("GET", "k") == b"v"
    assert node("EVAL", "return redis.call('get', KEYS[1])", 1, "k") == b"v"
    assert node("EVAL", "return redis.call('setex', 'e', 100, 'x')", 0) == OK
    assert node("TTL", "e") == 100
    assert node("EVAL", "return redis.call('incrby', 'n', 2.0)", 0) == 2  # 2.0 is passed as "2"


def test_conversions_lua_to_redis(node):
    assert node("EVAL", "return 3.99", 0) == 3  # truncated toward zero
    assert node("EVAL", "return -3.99", 0) == -3
    assert node("EVAL", "return true", 0) == 1
    assert node("EVAL", "return false", 0) is None
    assert node("EVAL", "return nil", 0) is None
    assert node("EVAL", "return {1, 'a', {2, 'b'}, nil, 5}", 0) == [1, b"a", [2, b"b"]]  # stops at nil
    assert node("EVAL", "return {1, false, 3}", 0) == [1, None, 3]
    assert node("EVAL", "return {ok='FINE'}", 0) == SimpleString("FINE")
    assert node("EVAL", "return redis.status_reply('PONG')", 0) == SimpleString("PONG")
    assert node("EVAL", "return {1, {err='ERR inner'}}", 0) == [1, ErrorReply("ERR inner")]
    assert node("EVAL", "return {double=3.5}", 0) == b"3.5"
    assert node("EVAL", "local t = {} t[1] = t return t", 0) is not None  # a cycle ends, no crash


def test_conversions_redis_to_lua(node):
    node("SET", "k", "v")
    script = """
    local out = {}
    out[1] = type(redis.call('get', 'missing'))            -- nil bulk -> false
    out[2] = type(redis.call('exists', 'k'))               -- integer -> number
    out[3] = redis.call('set', 'k', 'w').ok                -- status -> {ok=...}
    out[4] = type(redis.call('mget', 'k', 'missing'))      -- array -> table
    out[5] = tostring(redis.call('mget', 'k', 'missing')[2])
    out[6] = redis.pcall('incr', 'k').err                  -- error -> {err=...}
    return out
    """
    assert node("EVAL", script, 0) == [b"boolean", b"number", b"OK", b"table", b"false",
                                       b"ERR value is not an integer or out of range"]
    assert node("EVAL", "redis.setresp(3) return type(redis.call('get', 'missing'))", 0) == b"nil"


def test_errors_are_redis_errors(node):
    body = "local n = redis.call('incr', 'k')\nreturn n"
    node("SET", "k", "text")
    err = node("EVAL", body, 0)
    assert line(err) == f"ERR value is not an integer or out of range script: {sha1hex(body.encode())}, on @user_script:1."
    # `return redis.call(...)` is a Lua tail call: the script's frame is gone, so no position
    assert line(node("EVAL", "return redis.call('incr', 'k')", 0)) == "ERR value is not an integer or out of range"
    assert line(node("EVAL", "error('boom')", 0)).startswith("ERR user_script:1: boom script: ")
    assert line(node("EVAL", "return redis.error_reply('MY failure')", 0)) == "MY failure"
    assert line(node("EVAL", "return redis.error_reply('-OOPS')", 0)) == "ERR OOPS"
    assert line(node("EVAL", "return redis.call('nosuch')", 0)).startswith("ERR Unknown Redis command called from script")
    assert line(node("EVAL", "return redis.call('get')", 0)).startswith("ERR Wrong number of args calling Redis command from script")
    assert line(node("EVAL", "return redis.call('eval', 'return 1', 0)", 0)).startswith("ERR This Redis command is not allowed from script")
    assert line(node("EVAL", "return redis.call('get', {})", 0)).startswith(
        "ERR Lua redis lib command arguments must be strings or integers")
    assert line(node("EVAL", "return 1", 2, "a")) == "ERR Number of keys can't be greater than number of args"
    assert line(node("EVAL", "return 1", -1)) == "ERR Number of keys can't be negative"
    assert line(node("EVAL", "return 1", "x")) == "ERR value is not an integer or out of range"


def test_syntax_error_is_not_cached(node):
    err = node("EVAL", "return +", 0)
    assert line(err) == "ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'"
    assert node("SCRIPT", "EXISTS", sha1hex(b"return +")) == [0]
    assert line(node("SCRIPT", "LOAD", "return +")).startswith("ERR Error compiling script")


def test_runtime_error_midway_keeps_earlier_writes(node):
    err = node("EVAL", "redis.call('set', 'a', '1') error('stop') redis.call('set', 'b', '2')", 0)
    assert isinstance(err, ScriptError)
    assert node("GET", "a") == b"1"  # as in Redis: what ran before the error stays
    assert node("GET", "b") is None


def test_time_and_random_come_from_replicated_state(node):
    assert node("EVAL", "return redis.call('time')", 0) == [b"1700000000", b"0"]
    first = node("EVAL", "return {math.random(1000000), math.random(1000000)}", 0)
    again = Node()
    assert again("EVAL", "return {math.random(1000000), math.random(1000000)}", 0) == first
    assert node("EVAL", "math.randomseed(7) local a = math.random() math.randomseed(7) return tostring(a == math.random())", 0) == b"true"


def test_redis_helpers(node):
    assert node("EVAL", "return redis.sha1hex('')", 0) == b"da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert node("EVAL", "redis.log(redis.LOG_WARNING, 'hello', 'log') return 1", 0) == 1
    assert line(node("EVAL", "redis.log(99, 'x')", 0)).startswith("ERR Invalid log level.")
    assert line(node("EVAL", "redis.setresp(4)", 0)).startswith("ERR RESP version must be 2 or 3.")
    assert node("EVAL", "return redis.REDIS_VERSION", 0) == REDIS_VERSION.encode() == b"7.4.0"


def test_cjson_and_bit(node):
    assert node("EVAL", "return cjson.encode({a={1,2,3}, b='x/y', c=cjson.null})", 0) in (
        b'{"a":[1,2,3],"b":"x\\/y","c":null}', b'{"b":"x\\/y","a":[1,2,3],"c":null}',
        b'{"c":null,"a":[1,2,3],"b":"x\\/y"}', b'{"a":[1,2,3],"c":null,"b":"x\\/y"}',
        b'{"b":"x\\/y","c":null,"a":[1,2,3]}', b'{"c":null,"b":"x\\/y","a":[1,2,3]}')
    assert node("EVAL", "return cjson.encode({})", 0) == b"{}"
    assert node("EVAL", "local t = cjson.decode(ARGV[1]) return {t.n, t.s, t.l[2], tostring(t.z == cjson.null)}", 0,
                '{"n": 42, "s": "str", "l": [1, 7], "z": null}') == [42, b"str", 7, b"true"]
    assert line(node("EVAL", "local v = cjson.decode('{bad') return v", 0)).startswith("ERR user_script:1: Expected value")
    assert node("EVAL", "return {bit.band(0xff, 0x0f), bit.bor(1, 2), bit.bxor(3, 1), bit.lshift(1, 4), "
                        "bit.rshift(-1, 28), bit.arshift(-16, 2), bit.tohex(255), bit.tohex(255, -4), bit.bnot(0), "
                        "bit.tobit(2^32 + 5)}", 0) == [15, 3, 2, 16, 15, -4, b"000000ff", b"00FF", -1, 5]


# --------------------------------------------------------------------------- sandbox
@pytest.mark.parametrize("expr", ["os", "io", "debug", "package", "require", "dofile", "loadfile", "print", "python",
                                  "coroutine", "collectgarbage"])
def test_dangerous_globals_are_absent(node, expr):
    err = node("EVAL", f"return {expr}", 0)
    assert f"Script attempted to access nonexistent global variable '{expr}'" in line(err)


def test_escape_attempts_fail(node):
    assert "nonexistent global variable 'os'" in line(node("EVAL", "return os.execute('true')", 0))
    assert "nonexistent global variable 'io'" in line(node("EVAL", "return io.open('/etc/passwd')", 0))
    assert node("EVAL", "return loadstring(string.char(27) .. 'LuaQ')", 0) is None  # bytecode refused
    assert node("EVAL", "return select(2, loadstring(string.char(27) .. 'LuaQ'))", 0) == b"loading bytecode is not allowed"
    assert node("EVAL", "return tostring(string.dump)", 0) == b"nil"
    # getfenv reaches the runtime's own globals: stripped too
    assert node("EVAL", "return {tostring(getfenv(0).os), tostring(getfenv(0).debug), tostring(getfenv(0).python)}", 0) == [
        b"nil", b"nil", b"nil"]
    # Python objects never reach a script (redis.call is a Lua closure)
    assert node("EVAL", "return type(redis.call)", 0) == b"function"
    assert node("EVAL", "return tostring(pcall(string.dump, redis.call))", 0) == b"false"


def test_no_leaks_between_scripts(node):
    assert "Attempt to modify a readonly table" in line(node("EVAL", "x = 1", 0))
    node("EVAL", "rawset(_G, 'leak', 1) string.leak = 2 getmetatable('').__index.upper = nil return 1", 0)
    assert "nonexistent global variable 'leak'" in line(node("EVAL", "return leak", 0))
    assert node("EVAL", "return tostring(string.leak)", 0) == b"nil"
    assert node("EVAL", "return ('a'):upper()", 0) == b"A"


def test_global_loadstring_runs_in_the_sandbox(node):
    assert node("EVAL", "return loadstring('return 1 + 1')()", 0) == 2
    assert "nonexistent global variable 'os'" in line(node("EVAL", "return loadstring('return os')()", 0))


# ---------------------------------------------------------------------------- budget
def test_infinite_loop_is_stopped_deterministically():
    node = Node(budget=1_000_000)
    started = time.perf_counter()
    err = node("EVAL", "redis.call('set', 'before', '1') while true do end", 0)
    assert "Script exceeded its instruction budget (limits.script_max_instructions = 1000000)" in line(err)
    assert time.perf_counter() - started < 5
    assert node("GET", "before") == b"1"  # kept, as Redis keeps a killed script's writes


def test_pcall_cannot_swallow_the_budget():
    node = Node(budget=1_000_000)
    err = node("EVAL", "while true do pcall(function() while true do end end) end", 0)
    assert "instruction budget" in line(err)
    err = node("EVAL", "local ok = pcall(function() while true do end end) return 'survived'", 0)
    assert "instruction budget" in line(err)


def test_redis_calls_are_charged_to_the_budget():
    node = Node(budget=100_000)
    err = node("EVAL", "for i = 1, 100000 do redis.call('exists', 'k') end return 1", 0)
    assert "instruction budget" in line(err)


def test_huge_allocation_is_stopped(node):
    err = node("EVAL", "local s = 'x' while true do s = s .. s end", 0)
    assert line(err) == f"ERR Script exceeded its memory budget ({SCRIPT_MAX_MEMORY} bytes)" or "memory" in line(err)
    assert node("EVAL", "return 1", 0) == 1  # the next script is unaffected


def test_deep_recursion_is_an_error(node):
    err = node("EVAL", "local function f(n) return 1 + f(n + 1) end return f(1)", 0)
    assert "stack overflow" in line(err)


# ----------------------------------------------------------------------- script cache
def test_script_cache_commands(node):
    sha = node("SCRIPT", "LOAD", "return ARGV[1]")
    assert sha == sha1hex(b"return ARGV[1]").encode()
    assert node("EVALSHA", sha, 0, "x") == b"x"
    assert node("EVALSHA", sha.upper(), 0, "x") == b"x"  # case-insensitive, as Redis
    assert node("SCRIPT", "EXISTS", sha, "0" * 40) == [1, 0]
    assert line(node("EVALSHA", "0" * 40, 0)) == "NOSCRIPT No matching script. Please use EVAL."
    assert line(node("EVALSHA", "short", 0)) == "NOSCRIPT No matching script. Please use EVAL."
    assert node("EVAL", "return 2", 0) == 2
    assert node("SCRIPT", "EXISTS", sha1hex(b"return 2")) == [1]  # EVAL caches its script
    assert node("SCRIPT", "FLUSH") == OK
    assert node("SCRIPT", "EXISTS", sha) == [0]
    assert isinstance(node("EVALSHA", sha, 0), NoScriptError)
    assert line(node("SCRIPT", "FLUSH", "LAZY")) == "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
    assert line(node("SCRIPT", "KILL")) == "NOTBUSY No scripts in execution right now."
    assert line(node("SCRIPT", "NOPE")) == "ERR unknown subcommand 'NOPE'. Try SCRIPT HELP."


def test_read_only_scripts(node):
    node("SET", "k", "v")
    assert node("EVAL_RO", "return redis.call('get', 'k')", 0) == b"v"
    err = node("EVAL_RO", "return redis.call('set', 'k', 'w')", 0)
    assert line(err).startswith("ERR Write commands are not allowed from read-only scripts.")
    no_writes = "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])"
    command = build_command(lookup(b"eval"), [b"EVAL", no_writes.encode(), b"1", b"k"], node.limits)
    assert type(command) is c.EvalRo  # takes the read path: no log entry
    assert node("EVAL", no_writes, 1, "k") == b"v"
    assert "Write commands are not allowed" in line(node("EVAL", "#!lua flags=no-writes\nreturn redis.call('del', 'k')", 0))
    assert line(node("EVAL_RO", "#!lua\nreturn 1", 0)) == "ERR Can not execute a script with write flag using *_ro command."
    assert line(node("EVAL", "#!lua flags=bogus\nreturn 1", 0)) == "ERR Unexpected flag in script shebang: bogus"
    assert line(node("EVAL", "#!python\nreturn 1", 0)) == "ERR Unexpected engine in script shebang: #!python"
    assert node("GET", "k") == b"v"


def test_script_cache_survives_snapshot_and_digest_covers_it(node):
    sha = node("SCRIPT", "LOAD", "return 'cached'")
    sections = list(node.sm.snapshot_sections())
    restored = CacheStateMachine()
    restored.restore(sections)
    assert restored.digest() == node.sm.digest()
    assert restored.read(c.ScriptExists((sha.decode(),))) == [1]
    before = node.sm.digest()
    node("SCRIPT", "FLUSH")
    assert node.sm.digest() != before


def test_old_snapshot_without_scripts_loads():
    sm = CacheStateMachine()
    sm.restore([("state", {"now": 5, "revision": 0, "keys": 0})])
    assert sm.script_count == 0


def test_stored_script_replies_survive_snapshots():
    sm = CacheStateMachine()
    tag = c.SessionTag(7, 1, 0)
    eval_cmd = c.Eval(sha1hex(b"return {{ok='OK'}, {err='ERR x'}, 1}"), b"return {{ok='OK'}, {err='ERR x'}, 1}", (), (),
                      BUDGET, 1024, 1024)
    result = sm.apply(c.Batch(1, [(tag, eval_cmd)]))[0]
    import io

    buf = io.BytesIO()
    packer = c.packer()
    for section in sm.snapshot_sections():
        buf.write(packer.pack(section))
    buf.seek(0)
    restored = CacheStateMachine()
    restored.restore((name, payload) for name, payload in c.unpacker(buf))
    assert restored.digest() == sm.digest()
    again = restored.apply(c.Batch(2, [(tag, eval_cmd)]))[0]  # answered from the session table
    assert encode_reply(again) == encode_reply(result) == b"*3\r\n+OK\r\n-ERR x\r\n:1\r\n"


def test_two_replicas_fed_the_same_entries_agree():
    scripts = [
        ("EVAL", "for i = 1, 50 do redis.call('incrby', 'n', math.random(10)) end return redis.call('get', 'n')", 0),
        ("SCRIPT", "LOAD", "redis.call('set', KEYS[1], cjson.encode({t = redis.call('time')})) return 1"),
        ("EVAL", "redis.call('set', 'loop', 'x') while true do end", 0),
        ("EVAL", "local s = 'x' while true do s = s .. s end", 0),
        ("EVAL", "redis.call('append', 'a', 'b') error('midway')", 0),
        ("EVALSHA", sha1hex(b"redis.call('set', KEYS[1], cjson.encode({t = redis.call('time')})) return 1"), 1, "j"),
    ]
    a, b = Node(budget=500_000), Node(budget=500_000)
    for step, words in enumerate(scripts):
        a.time_ms = b.time_ms = 1_700_000_000_000 + step * 1000
        ra, rb = a(*words), b(*words)
        assert type(ra) is type(rb) and (line(ra) == line(rb) if isinstance(ra, CommandError) else ra == rb)
    assert a.sm.digest() == b.sm.digest()
    assert a("GET", "loop") == b"x" and a("GET", "a") == b"b"


# A write script that fills its Lua state until the memory cap stops it, and says how far
# it got: the exact trip point, which every replica must reach at the same allocation.
_FILL_TO_CAP = """
redis.call('SET', KEYS[1], 'filling')
local n = 0
pcall(function()
  local t = {}
  -- n all along each string: Lua 5.1 hashes a sample of a long string's characters,
  -- and strings alike in those would intern in quadratic time
  while true do n = n + 1; t[n] = (n .. ARGV[1]):rep(50) end
end)
return n
"""

# What may have run on a node before: garbage, interned strings, a runtime that itself
# hit the cap, cjson/bit/math.random, attempted globals, a read-only script (one node only).
_HISTORY = [
    ("EVAL", "local t = {} for i = 1, 20000 do t[i] = ('y'):rep(64) .. i end return #t", 0),
    ("EVAL", "local s = 'x' while true do s = s .. s end", 0),
    ("EVAL", "return cjson.encode({a = {1, 2, 3}, b = bit.band(7, 3), c = math.random(1, 10)})", 0),
    ("EVAL", "x = 1 return 1", 0),
    ("EVAL", "string.rep = nil return 1", 0),
    ("EVAL_RO", "local t = {} for i = 1, 50000 do t[i] = tostring(i):rep(8) end return redis.call('GET', KEYS[1])", 1, "k"),
    ("EVAL", _FILL_TO_CAP, 1, "other", "zz"),
]


def test_outcome_at_the_memory_cap_does_not_depend_on_what_ran_before():
    fresh = Node()
    expected = fresh("EVAL", _FILL_TO_CAP, 1, "k", "v")
    assert isinstance(expected, int) and expected > 1000  # it ran into the cap, not an error
    assert fresh("GET", "k") == b"filling"

    busy = Node()
    for words in _HISTORY:
        busy(*words)  # outcomes do not matter here, only that they ran on this node
    assert busy("EVAL", _FILL_TO_CAP, 1, "k", "v") == expected
    assert busy("GET", "k") == b"filling"
    assert busy("EVAL", _FILL_TO_CAP, 1, "k", "v") == expected  # and again, right after itself
