"""One raw pysyncobj replica with a tiny RESP front end: the floor raftcache builds on.

    python benchmarks/pysyncobj_node.py --raft 127.0.0.1:P --peer 127.0.0.1:Q --peer ... --port R

A `SyncObj` (pysyncobj 0.3.17, the tuned config raftcache starts from: `password` set, so
peer traffic is Fernet-encrypted as in raftcache, and `appendEntriesUseBatch=False`, so each
command is sent at once instead of every 100 ms) replicates a `ReplDict`. Memory only: no
journal, no snapshots, no fsync. One Raft entry per command (no group commit).

The front end speaks RESP2 on 127.0.0.1:R, so the same load generator (`loadgen.py`) drives
it as it drives raftcache and redis:

* `SET key value` -> `ReplDict.set(key, value, callback=...)`, many in flight; `+OK` once
  committed and applied on this node, `-ERR <FAIL_REASON>` otherwise;
* `GET key` -> this node's local dict (pysyncobj has no read barrier: not linearizable);
* `ROLE` -> `+leader` / `+follower` / `+none`; `PING`; `DBSIZE`.

Replies on one connection keep request order. Prints `ready` on stdout once a leader exists.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
import time

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.batteries import ReplDict


class Completions:
    """Hands pysyncobj callbacks (its own thread) to the event loop, one wake-up per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.pending: list[tuple[asyncio.Future[bytes], bytes]] = []

    def deliver(self, fut: asyncio.Future[bytes], reply: bytes) -> None:
        with self.lock:
            self.pending.append((fut, reply))
            first = len(self.pending) == 1
        if first:
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        for fut, reply in batch:
            if not fut.done():
                fut.set_result(reply)


class FrontEnd(asyncio.Protocol):
    def __init__(self, node: Node) -> None:
        self.node = node
        self.buf = b""
        self.replies: collections.deque[asyncio.Future[bytes] | bytes] = collections.deque()
        self.waiting = False  # a done-callback is registered on the head reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            command = self._parse_one()
            if command is None:
                break
            self.replies.append(self.node.execute(command))
        self._flush()

    def _parse_one(self) -> list[bytes] | None:
        buf = self.buf
        if not buf.startswith(b"*"):
            if buf and b"\r\n" in buf:  # inline command (redis-cli / telnet style)
                line, self.buf = buf.split(b"\r\n", 1)
                return line.split()
            return None
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        argc, pos, args = int(buf[1:end]), end + 2, []
        for _ in range(argc):
            e = buf.find(b"\r\n", pos)
            if e < 0:
                return None
            n = int(buf[pos + 1:e])
            if len(buf) < e + 2 + n + 2:
                return None
            args.append(buf[e + 2:e + 2 + n])
            pos = e + 2 + n + 2
        self.buf = buf[pos:]
        return args

    def _head_done(self, _fut: object) -> None:
        self.waiting = False
        self._flush()

    def _flush(self) -> None:
        out = []
        while self.replies:
            head = self.replies[0]
            if isinstance(head, bytes):
                out.append(head)
            elif head.done():
                out.append(head.result())
            else:
                if not self.waiting:
                    self.waiting = True
                    head.add_done_callback(self._head_done)
                break
            self.replies.popleft()
        if out and not self.transport.is_closing():
            self.transport.write(b"".join(out))


class Node:
    def __init__(self, args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.data = ReplDict()
        conf = SyncObjConf(password=args.password, appendEntriesUseBatch=False, dynamicMembershipChange=False)
        self.sync = SyncObj(args.raft, args.peer, conf=conf, consumers=[self.data])
        self.completions = Completions(loop)

    def execute(self, command: list[bytes]) -> asyncio.Future[bytes] | bytes:
        if not command:
            return b"-ERR empty command\r\n"
        name = command[0].upper()
        if name == b"SET" and len(command) == 3:
            fut: asyncio.Future[bytes] = self.loop.create_future()

            def done(_result: object, error: int) -> None:
                reply = b"+OK\r\n" if error == FAIL_REASON.SUCCESS else b"-ERR pysyncobj FAIL_REASON %d\r\n" % error
                self.completions.deliver(fut, reply)

            self.data.set(command[1], command[2], callback=done)
            return fut
        if name == b"GET" and len(command) == 2:
            value = self.data.get(command[1])
            return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
        if name == b"ROLE":
            if self.sync._isLeader():
                return b"+leader\r\n"
            return b"+follower\r\n" if self.sync._getLeader() is not None else b"+none\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"DBSIZE":
            return b":%d\r\n" % len(self.data)
        return b"-ERR unknown command\r\n"


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    node = Node(args, loop)
    server = await loop.create_server(lambda: FrontEnd(node), "127.0.0.1", args.port, backlog=1024)
    deadline = time.monotonic() + 60
    while node.sync._getLeader() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raft", required=True, help="this replica's raft address (127.0.0.1:port)")
    parser.add_argument("--peer", action="append", required=True)
    parser.add_argument("--port", type=int, required=True, help="RESP front-end port")
    parser.add_argument("--password", default="bench-secret")
    args = parser.parse_args()
    for address in [args.raft, *args.peer]:
        if not address.startswith("127."):
            parser.error("this benchmark only runs on 127.0.0.0/8")
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        (uvloop.run if uvloop is not None else asyncio.run)(main_async(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
