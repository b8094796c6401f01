"""Our load generator, for the targets redis-benchmark cannot drive, and its own ceiling.

    python benchmarks/loadgen.py run --protocol resp|etcd --port P --op set|get|multi4|lock
                                     [--value-size 16] [--concurrency 50] [--ops N]
                                     [--duration S] [--keyspace 100000] [--readonly]
    python benchmarks/loadgen.py stub --protocol resp|http          (prints its port)
    python benchmarks/loadgen.py fill --port P --keys 1000000       (sequential keys, pipelined)
    python benchmarks/loadgen.py trace --port P                     (until stdin closes)

`run` opens `--concurrency` keep-alive connections, each with one request outstanding at a
time (as redis-benchmark -c N without -P), and stops at `--ops` operations or `--duration`
seconds, whichever comes first; it prints `{"started": ...}` when the load starts, then one
JSON object (ops/s, p50/p99 in ms, errors, its own CPU time during the run).

Protocols, both on raw asyncio streams (uvloop when importable, as the raftcache server):

* `resp`: RESP2 `SET key value` / `GET key` (raftcache, redis, and the raw pysyncobj front
  end of `pysyncobj_node.py`); `--readonly` sends `READONLY` once per connection first.
  Two operations made of several commands (RESP only; one operation = one latency sample):
  `multi4`: `MULTI`, 4 x `SET key value` (4 random keys), `EXEC`, written at once as redis-py's
  `pipeline(transaction=True)` sends them, 6 replies read (EXEC's must be 4 x OK);
  `lock`: redis-py's `Lock` acquire then release, one after the other: `SET name token NX PX
  10000` (must answer OK), then `EVALSHA` of redis-py's release script (compare-and-delete,
  must answer 1; loaded by `SCRIPT LOAD` before the run). Each connection locks its own names,
  so no acquire waits for another client.
* `etcd`: etcd v3's JSON gRPC gateway over HTTP/1.1 keep-alive: `POST /v3/kv/put` and
  `POST /v3/kv/range` (linearizable, etcd's default) with base64 keys and values.

Keys are `key:%012d` (redis-benchmark's shape) drawn uniformly from `--keyspace`.

`stub` is a server that answers every request at once (RESP `+OK` / a bulk value; HTTP 200
with a small JSON body); `run` against it measures this load generator's own ceiling.
`fill` stores keys 0..N-1 with pipelined SETs (exact key count, unlike redis-benchmark -r).
`trace` writes one SET at a time until its stdin closes and prints each operation's
(start, end) on CLOCK_MONOTONIC, which is shared by every process of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a raftcache dependency on Linux
    uvloop = None  # type: ignore[assignment]

LOOP_NAME = "uvloop" if uvloop is not None else "asyncio"


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def key_name(i: int) -> bytes:
    return b"key:%012d" % i


# ------------------------------------------------------------------------------ RESP
def resp_command(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ReplyError(Exception):
    """A RESP error reply (`-ERR ...`)."""


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed by the server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return ReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else (await reader.readexactly(n + 2))[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [await read_reply(reader) for _ in range(n)]
    raise ConnectionError(f"unexpected RESP reply {line[:80]!r}")


def resp_call(port: int, *args: str | bytes, timeout: float = 10.0, host: str = "127.0.0.1") -> Any:
    """One command on a fresh blocking connection: for the harness's INFO / DIGEST / COMPACT."""
    encoded = [a.encode() if isinstance(a, str) else a for a in args]

    async def call() -> Any:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        try:
            writer.write(resp_command(*encoded))
            return await asyncio.wait_for(read_reply(reader), timeout)
        finally:
            writer.close()

    reply = asyncio.run(call())
    if isinstance(reply, ReplyError):
        raise reply
    return reply


def parse_info(text: bytes | str) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


class RespConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> Any:
        self.writer.write(request)
        reply = await read_reply(self.reader)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def call_many(self, request: bytes, replies: int) -> list[Any]:
        """`request` holds several commands written at once: read all their replies, then
        raise the first error reply among them (errors nested in an array are left in it)."""
        self.writer.write(request)
        out = [await read_reply(self.reader) for _ in range(replies)]
        for reply in out:
            if isinstance(reply, ReplyError):
                raise reply
        return out


# redis-py's Lock.LUA_RELEASE_SCRIPT (redis/lock.py), byte for byte: what `Lock.release` runs.
LOCK_RELEASE_SCRIPT = b"""
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    """
LOCK_RELEASE_SHA = hashlib.sha1(LOCK_RELEASE_SCRIPT).hexdigest().encode()


async def multi4(conn: RespConnection, request: bytes) -> None:
    replies = await conn.call_many(request, 6)
    if replies[-1] != [b"OK"] * 4:
        raise ReplyError(f"EXEC answered {replies[-1]!r}")


async def lock_pair(conn: RespConnection, requests: tuple[bytes, bytes]) -> None:
    acquire, release = requests
    if await conn.call(acquire) != b"OK":
        raise ReplyError("lock not acquired")
    if await conn.call(release) != 1:
        raise ReplyError("lock release answered 0 (not the owner)")


async def resp_connect(host: str, port: int, readonly: bool) -> RespConnection:
    reader, writer = await asyncio.open_connection(host, port)
    writer.transport.set_write_buffer_limits(high=1 << 20)
    conn = RespConnection(reader, writer)
    if readonly:
        await conn.call(resp_command(b"READONLY"))
    return conn


# ------------------------------------------------------------------------------ etcd
def etcd_request(host: str, port: int, path: str, body: dict[str, str]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def read_http_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(body)
            body.append(chunk[:-2])
    raise ConnectionError("HTTP response without a length")


class EtcdConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> bytes:
        self.writer.write(request)
        status, body = await read_http_response(self.reader)
        if status != 200:
            raise ReplyError(f"HTTP {status}: {body[:200]!r}")
        return body


def etcd_call(port: int, path: str, body: dict[str, str], timeout: float = 10.0, host: str = "127.0.0.1") -> dict[str, Any]:
    """One gateway request on a fresh connection (harness use: status, leader discovery)."""

    async def call() -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        try:
            return await asyncio.wait_for(EtcdConnection(reader, writer).call(etcd_request(host, port, path, body)), timeout)
        finally:
            writer.close()

    return json.loads(asyncio.run(call()))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------------------ run
async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    value = b"x" * args.value_size
    deadline_ops = args.ops
    samples: list[float] = []
    errors = 0
    first_error = ""
    issued = 0
    rng = random.Random(42)

    perform: Callable[[Any, Any], Awaitable[Any]] = lambda conn, item: conn.call(item)
    if args.protocol == "resp":
        def request(k: bytes) -> bytes:
            if args.op == "multi4":  # MULTI, 4 SETs (k and 3 more random keys), EXEC: one write
                keys = [k] + [key_name(rng.randrange(args.keyspace)) for _ in range(3)]
                return b"".join([resp_command(b"MULTI"), *(resp_command(b"SET", key, value) for key in keys),
                                 resp_command(b"EXEC")])
            return resp_command(b"SET", k, value) if args.op == "set" else resp_command(b"GET", k)

        async def connect() -> Any:
            return await resp_connect(args.host, args.port, args.readonly)

        perform = {"multi4": multi4, "lock": lock_pair}.get(args.op, perform)
    else:
        b64value = b64(value)
        path = "/v3/kv/put" if args.op == "set" else "/v3/kv/range"

        def request(k: bytes) -> bytes:
            body = {"key": b64(k), "value": b64value} if args.op == "set" else {"key": b64(k)}
            return etcd_request(args.host, args.port, path, body)

        async def connect() -> Any:
            reader, writer = await asyncio.open_connection(args.host, args.port)
            return EtcdConnection(reader, writer)

    conns = await asyncio.gather(*(connect() for _ in range(args.concurrency)))
    if args.op == "lock":
        loaded = await conns[0].call(resp_command(b"SCRIPT", b"LOAD", LOCK_RELEASE_SCRIPT))
        if loaded != LOCK_RELEASE_SHA:
            raise ReplyError(f"SCRIPT LOAD answered {loaded!r}, expected {LOCK_RELEASE_SHA!r}")
    # Prebuild requests: the generator's own per-op cost stays what it must send.
    if args.op == "lock":  # per connection: its own lock names (no contention) and token
        pools = [[(resp_command(b"SET", name, token, b"NX", b"PX", b"10000"),
                   resp_command(b"EVALSHA", LOCK_RELEASE_SHA, b"1", name, token))
                  for name in (b"lock:%d:%d" % (w, j) for j in range(64))]
                 for w, token in ((w, b"%032x" % rng.getrandbits(128)) for w in range(len(conns)))]
    else:
        shared = [request(key_name(rng.randrange(args.keyspace))) for _ in range(min(args.keyspace, 4096))]
        pools = [shared] * len(conns)
    print(json.dumps({"started": time.monotonic()}), flush=True)  # the harness measures CPU from here
    start = time.perf_counter()
    cpu0 = time.process_time()
    stop_at = start + args.duration

    async def worker(conn: Any, w: int) -> None:
        nonlocal issued, errors, first_error
        perf = time.perf_counter
        pool = pools[w]
        i = w
        while issued < deadline_ops:
            issued += 1
            t0 = perf()
            if t0 >= stop_at:
                break
            try:
                await perform(conn, pool[i % len(pool)])
            except ReplyError as e:
                errors += 1
                first_error = first_error or str(e)
            samples.append(perf() - t0)
            i += 7

    await asyncio.gather(*(worker(c, w) for w, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for c in conns:
        c.writer.close()
    return {
        "ops": len(samples),
        "errors": errors,
        "first_error": first_error,
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": len(samples) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "max_ms": max(samples) * 1000 if samples else float("nan"),
        "client_cpu_s": cpu,
        "loop": LOOP_NAME,
    }


# ------------------------------------------------------------------------------ fill
async def fill(args: argparse.Namespace) -> dict[str, Any]:
    """SET key 0..N-1 through `--concurrency` connections, `--batch` commands per write
    (with `--expire-at-ms T`: every key expires at the one instant T, PXAT)."""
    value = b"x" * args.value_size
    expiry = (b"PXAT", b"%d" % args.expire_at_ms) if args.expire_at_ms else ()
    next_key = 0
    errors = 0
    first_error = ""

    async def worker() -> None:
        nonlocal next_key, errors, first_error
        reader, writer = await asyncio.open_connection(args.host, args.port)
        try:
            while next_key < args.keys:
                lo, hi = next_key, min(args.keys, next_key + args.batch)
                next_key = hi
                writer.write(b"".join(resp_command(b"SET", key_name(i), value, *expiry) for i in range(lo, hi)))
                for _ in range(hi - lo):
                    reply = await read_reply(reader)
                    if isinstance(reply, ReplyError):
                        errors += 1
                        first_error = first_error or str(reply)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(args.concurrency))), args.duration)
    elapsed = time.perf_counter() - start
    return {"keys": args.keys, "errors": errors, "first_error": first_error, "elapsed_s": round(elapsed, 3),
            "ops_per_s": args.keys / elapsed}


# ------------------------------------------------------------------------------ trace
async def trace(args: argparse.Namespace) -> dict[str, Any]:
    """One SET at a time until stdin closes (or --duration): per-op (start, end) monotonic."""
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(lambda: stdin_closed.done() or stdin_closed.set_result(None))

    threading.Thread(target=watch_stdin, daemon=True).start()  # never joined: no hang at exit
    conn = await resp_connect(args.host, args.port, False)
    value = b"x" * args.value_size
    records: list[tuple[float, float]] = []
    errors = 0
    first_error = ""
    stop_at = time.monotonic() + args.duration
    print(json.dumps({"started": time.monotonic()}), flush=True)
    i = 0
    while not stdin_closed.done() and time.monotonic() < stop_at and i < args.ops:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(conn.call(resp_command(b"SET", b"trace:%d" % (i % 10000), value)), 30)
        except (TimeoutError, ReplyError) as e:
            errors += 1
            first_error = first_error or repr(e)
        records.append((t0, time.monotonic()))
        i += 1
    return {"records": records, "errors": errors, "first_error": first_error}


# ------------------------------------------------------------------------------ stubs
class _RespStub(asyncio.Protocol):
    """Answers each RESP command at once: GET -> a 16-byte bulk, anything else -> +OK."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            # A command is complete when its declared argument count of bulk strings is here.
            if not self.buf.startswith(b"*"):
                break
            end = self.buf.find(b"\r\n")
            if end < 0:
                break
            argc, pos, args = int(self.buf[1:end]), end + 2, []
            for _ in range(argc):
                e = self.buf.find(b"\r\n", pos)
                if e < 0:
                    break
                n = int(self.buf[pos + 1:e])
                if len(self.buf) < e + 2 + n + 2:
                    break
                args.append(self.buf[e + 2:e + 2 + n])
                pos = e + 2 + n + 2
            if len(args) < argc:
                break
            self.buf = self.buf[pos:]
            out.append(b"$16\r\nxxxxxxxxxxxxxxxx\r\n" if args[0].upper() == b"GET" else b"+OK\r\n")
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


class _HttpStub(asyncio.Protocol):
    """Answers each HTTP/1.1 request at once with 200 and a small JSON body (etcd-sized)."""

    BODY = b'{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"}}'
    REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                break
            self.buf = self.buf[end + 4 + length:]
            out.append(self.REPLY)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


async def stub(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    factory = _RespStub if args.protocol == "resp" else _HttpStub
    server = await loop.create_server(factory, args.host, args.port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ------------------------------------------------------------------------------ main
def run_async(main: Callable[[], Awaitable[Any]]) -> Any:
    if uvloop is not None:
        return uvloop.run(main())
    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--port", type=int, default=0)
    common.add_argument("--value-size", type=int, default=16)
    common.add_argument("--concurrency", type=int, default=50)
    common.add_argument("--duration", type=float, default=10.0, help="upper bound, seconds")
    common.add_argument("--ops", type=int, default=10_000_000, help="upper bound, operations")
    run = sub.add_parser("run", parents=[common])
    run.add_argument("--protocol", choices=["resp", "etcd"], default="resp")
    run.add_argument("--op", choices=["set", "get", "multi4", "lock"], default="set")
    run.add_argument("--keyspace", type=int, default=100_000)
    run.add_argument("--readonly", action="store_true")
    st = sub.add_parser("stub", parents=[common])
    st.add_argument("--protocol", choices=["resp", "http"], default="resp")
    fl = sub.add_parser("fill", parents=[common])
    fl.add_argument("--keys", type=int, default=1_000_000)
    fl.add_argument("--batch", type=int, default=500)
    fl.add_argument("--expire-at-ms", type=int, default=0, help="PXAT for every key (0: no expiry)")
    sub.add_parser("trace", parents=[common])
    args = parser.parse_args()
    if args.host.split(".")[0] != "127" and args.host != "localhost":
        parser.error("this benchmark only talks to 127.0.0.0/8")
    if args.mode == "run" and args.op in ("multi4", "lock") and args.protocol != "resp":
        parser.error(f"--op {args.op} is RESP only")
    if args.mode == "stub":
        run_async(lambda: stub(args))
        return
    fn = {"run": run_load, "fill": fill, "trace": trace}[args.mode]
    print(json.dumps(run_async(lambda: fn(args))), flush=True)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
