"""Cost of one script call in ``raftcache.lua_runtime.LuaRun`` alone (no server, no Raft).

What a replica's apply thread spends per EVAL, minus command parsing: runtime set-up,
sandbox, the script, conversions. ``redis.call`` goes to a dict, so the numbers are the
scripting overhead, not the cache's. Prints µs per call, min and median over repeats.

    python benchmarks/lua_call_bench.py [--calls N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from raftcache.lua_runtime import LuaRun

SCRIPTS: dict[str, bytes] = {
    "return 1": b"return 1",
    # redis-py Lock's release script (LUA_RELEASE_SCRIPT)
    "lock release": b"""
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    """,
    "10 calls": b"""
        for i = 1, 5 do
            redis.call('SET', KEYS[1], ARGV[1])
            redis.call('GET', KEYS[1])
        end
        return 1
    """,
}


def _fake_call(store: dict[bytes, bytes]) -> Any:
    def call(argv: list[bytes]) -> Any:
        name = argv[0].lower()
        if name == b"get":
            return store.get(argv[1])
        if name == b"set":
            store[argv[1]] = argv[2]
            return "OK"
        if name == b"del":
            return int(store.pop(argv[1], None) is not None)
        raise ValueError(name)

    return call


def bench(code: bytes, calls: int, repeats: int) -> list[float]:
    store: dict[bytes, bytes] = {}
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            store[b"k"] = b"tok"
            run = LuaRun(_fake_call(store), max_instructions=1_000_000, seed=i, sha="0" * 40)
            ok, _ = run.run(code, [b"k"], [b"tok"])
            assert ok
        per_call.append((time.perf_counter() - start) / calls * 1e6)
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'script':<14} {'min µs':>9} {'median µs':>10}   ({args.calls} calls x {args.repeats} repeats)")
    for name, code in SCRIPTS.items():
        times = bench(code, args.calls, args.repeats)
        print(f"{name:<14} {min(times):9.1f} {statistics.median(times):10.1f}")


if __name__ == "__main__":
    main()
