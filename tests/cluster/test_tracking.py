"""CLIENT TRACKING against a 3-node `raftcache serve` cluster (real processes): invalidations
as RESP3 pushes on the leader and on followers for writes made through another node, BCAST
prefixes, OPTIN, NOLOOP (a connection's own write, forwarded to the leader, is not announced
to it; another client's is), REDIRECT (RESP3 target, broken target), FLUSHALL, MULTI/EXEC and
READONLY reads, the bounded table, cleanup on disconnect, bad input, the ordering guarantee
under pipelined reads racing writes (a reply holding an old value never follows the push that
invalidates it), a read tracked again when its reply leaves, and the null invalidation of a
follower that installs a snapshot."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import ServerCluster, ServerNode, Workers, wait_until

MAX_KEYS = 1000  # the table bound this cluster runs with ([server] tracking_table_max_keys)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerCluster]:
    cl = ServerCluster(
        tmp_path_factory.mktemp("tracking"), persistent=False,
        sections={"server": {"tracking_table_max_keys": MAX_KEYS}},
    ).start()
    try:
        yield cl
    finally:
        cl.close()


@pytest.fixture(scope="module")
def nodes(cluster: ServerCluster) -> dict[str, ServerNode]:
    leader = cluster.leader()
    followers = [n for n in cluster.nodes if n is not leader]
    return {"leader": leader, "follower": followers[0], "other": followers[1]}


class Push(list):  # type: ignore[type-arg]
    """A RESP3 push frame (``>``)."""


class Resp3:
    """A bare RESP3 client: every frame (reply or push) in arrival order, nothing hidden."""

    def __init__(self, node: ServerNode, protocol: int = 3) -> None:
        self.sock = socket.create_connection((node.host, node.port), timeout=10)
        self.buf = b""
        self.last_raw = b""  # the bytes of the last frame read
        self.pushes: list[Push] = []
        if protocol == 3:
            assert self.call("HELLO", "3")[b"proto"] == 3
        self.id = self.call("CLIENT", "ID")

    def close(self) -> None:
        self.sock.close()

    def send(self, *args: Any) -> None:
        self.sock.sendall(_command(args))

    def pipeline(self, *commands: tuple[Any, ...]) -> None:
        """Send `commands` in one write, so the node reads and dispatches them together."""
        self.sock.sendall(b"".join(_command(args) for args in commands))

    def frame(self, timeout: float = 10.0) -> Any:
        self.sock.settimeout(timeout)
        while True:
            parsed = _parse(self.buf, 0)
            if parsed is not None:
                value, end = parsed
                self.last_raw, self.buf = self.buf[:end], self.buf[end:]
                return value
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buf += data

    def reply(self) -> Any:
        """The next reply; pushes before it are kept in `pushes`."""
        while True:
            value = self.frame()
            if not isinstance(value, Push):
                return value
            self.pushes.append(value)

    def call(self, *args: Any) -> Any:
        self.send(*args)
        return self.reply()

    def wait_push(self, timeout: float = 10.0) -> Push:
        if self.pushes:
            return self.pushes.pop(0)
        value = self.frame(timeout)
        assert isinstance(value, Push), f"a reply without a request: {value!r}"
        return value

    def no_push(self, wait: float = 0.3) -> bool:
        """No push arrives within `wait` (a PING round trip flushes what was queued before)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            assert self.call("PING") == "PONG"
            if self.pushes:
                return False
        return not self.pushes


def _command(args: tuple[Any, ...]) -> bytes:
    parts = [str(a).encode() if not isinstance(a, bytes) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _line(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    end = buf.find(b"\r\n", pos)
    return None if end < 0 else (buf[pos:end], end + 2)


def _parse(buf: bytes, pos: int) -> tuple[Any, int] | None:
    got = _line(buf, pos)
    if got is None:
        return None
    line, pos = got
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode(), pos
    if kind == b"-":
        return RuntimeError(rest.decode()), pos
    if kind == b":":
        return int(rest), pos
    if kind == b"_":
        return None, pos
    if kind in (b"$", b"="):
        n = int(rest)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            return None
        skip = 4 if kind == b"=" else 0  # a verbatim string's "txt:"
        return buf[pos + skip:pos + n], pos + n + 2
    if kind in (b"*", b">", b"~", b"%"):
        n = int(rest)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n * 2 if kind == b"%" else n):
            got2 = _parse(buf, pos)
            if got2 is None:
                return None
            item, pos = got2
            items.append(item)
        if kind == b"%":
            return dict(zip(items[::2], items[1::2])), pos
        return (Push(items) if kind == b">" else items), pos
    raise AssertionError(f"unexpected frame {line!r}")


def _client_ids(client: Resp3) -> list[int]:
    return [int(line.split()[0][3:]) for line in client.call("CLIENT", "LIST").splitlines()]


def invalidated(push: Push) -> list[bytes] | None:
    assert push[0] == b"invalidate", push
    return push[1]


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_default_mode_invalidates_reads_on_any_node_for_writes_through_another(nodes, where):
    reader, writer = Resp3(nodes[where]), Resp3(nodes["other"])
    try:
        key = f"dm:{where}"
        assert reader.call("CLIENT", "TRACKING", "ON") == "OK"
        reader.call("GET", key)
        assert writer.call("SET", key, "v1") == "OK"
        assert invalidated(reader.wait_push()) == [key.encode()]
        assert writer.call("SET", key, "v2") == "OK"
        assert reader.no_push()  # not read again since: the entry went with the first push
        assert reader.call("MGET", key, f"{key}:b") == [b"v2", None]
        assert writer.call("MSET", f"{key}:b", "w", key, "v3") == "OK"
        got = sorted(invalidated(reader.wait_push())[0] for _ in range(2))  # one push per key, as Redis
        assert got == [key.encode(), f"{key}:b".encode()]
    finally:
        reader.close()
        writer.close()


def test_a_read_is_tracked_again_when_its_reply_leaves_after_a_write_consumed_it(nodes):
    """The key is remembered before the read runs and again when its reply is handed back.
    Pipelined `SET k` + `GET k` from the tracking client itself: the GET's key is in the table
    before the SET applies, so the SET's change consumes the entry (one push), and the GET
    then reads the SET's value. Only the re-registration at the reply keeps the key tracked:
    without it the client would cache that value and never hear of the next write."""
    reader, writer = Resp3(nodes["leader"]), Resp3(nodes["other"])
    conclusive = 0
    try:
        assert reader.call("CLIENT", "TRACKING", "ON") == "OK"
        for n in range(10):
            key = f"rr:{n}"
            reader.pipeline(("SET", key, "v1"), ("GET", key))
            assert reader.reply() == "OK"
            if reader.reply() != b"v1":
                continue  # the read was served before the SET applied: this round proves nothing
            conclusive += 1
            assert invalidated(reader.wait_push()) == [key.encode()]  # the SET consumed the first entry
            assert writer.call("SET", key, "v2") == "OK"
            assert invalidated(reader.wait_push(timeout=5)) == [key.encode()], f"{key}: not tracked after its reply"
    finally:
        reader.close()
        writer.close()
    assert conclusive >= 3, f"only {conclusive} of 10 rounds read the pipelined SET's value"


def test_expiry_and_hash_changes_invalidate_too(nodes):
    reader, writer = Resp3(nodes["follower"]), Resp3(nodes["leader"])
    try:
        reader.call("CLIENT", "TRACKING", "ON")
        writer.call("SET", "ex:k", "v", "PX", "1500")
        writer.call("HSET", "ex:h", "f", "1")
        assert reader.call("GET", "ex:k") == b"v"
        assert reader.call("HGET", "ex:h", "f") == b"1"
        writer.call("HINCRBY", "ex:h", "f", "1")
        # the write's push and the expiry sweep's (applied here), in whichever order they came
        pushes = [invalidated(reader.wait_push(timeout=10)) for _ in range(2)]
        assert sorted(pushes) == [[b"ex:h"], [b"ex:k"]]
    finally:
        reader.close()
        writer.close()


def test_bcast_prefixes_and_noloop_for_a_write_forwarded_to_the_leader(nodes):
    reader, writer = Resp3(nodes["follower"]), Resp3(nodes["other"])
    try:
        assert reader.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc:", "NOLOOP") == "OK"
        assert reader.call("SET", "bc:own", "1") == "OK"  # its own write, forwarded to the leader
        writer.call("MSET", "bc:1", "1", "zz", "2", "bc:2", "3")
        assert invalidated(reader.wait_push()) == [b"bc:1", b"bc:2"]
        assert reader.no_push()
        writer.call("SET", "bc:own", "2")  # the same key by someone else: announced
        assert invalidated(reader.wait_push()) == [b"bc:own"]
    finally:
        reader.close()
        writer.close()


def test_noloop_in_default_mode_and_optin(nodes):
    reader, writer = Resp3(nodes["follower"]), Resp3(nodes["leader"])
    try:
        reader.call("CLIENT", "TRACKING", "ON", "NOLOOP", "OPTIN")
        reader.call("GET", "oi:untracked")
        assert reader.call("CLIENT", "CACHING", "YES") == "OK"
        reader.call("GET", "oi:tracked")
        assert reader.call("CLIENT", "TRACKINGINFO")[b"flags"] == [b"on", b"optin", b"noloop"]
        writer.call("SET", "oi:untracked", "1")
        writer.call("SET", "oi:tracked", "1")
        assert invalidated(reader.wait_push()) == [b"oi:tracked"]
        reader.call("CLIENT", "CACHING", "YES")
        reader.call("GET", "oi:tracked")
        reader.call("SET", "oi:tracked", "mine")  # NOLOOP: not told of its own write
        assert reader.no_push()
    finally:
        reader.close()
        writer.close()


def test_redirect_to_a_resp3_connection_and_a_broken_redirect(nodes):
    target, tracker, writer = Resp3(nodes["follower"]), Resp3(nodes["follower"], protocol=2), Resp3(nodes["leader"])
    try:
        assert tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", target.id) == "OK"
        assert tracker.call("CLIENT", "GETREDIR") == target.id
        tracker.call("GET", "rd:k")
        writer.call("SET", "rd:k", "1")
        assert invalidated(target.wait_push()) == [b"rd:k"]
        target.close()
        tracker.call("GET", "rd:k")
        writer.call("SET", "rd:k", "2")
        # a RESP2 client cannot be told its target went; TRACKINGINFO says so
        wait_until(lambda: b"broken_redirect" in tracker.call("CLIENT", "TRACKINGINFO")[1], 10)
    finally:
        tracker.close()
        writer.close()


def test_redirect_to_a_resp2_connection_in_pub_sub_mode(nodes):
    """A RESP2 client hears invalidations as `__redis__:invalidate` messages on the connection
    it redirects to, once that one has subscribed to the channel."""
    node = nodes["follower"]
    target, tracker, writer = Resp3(node, protocol=2), Resp3(node, protocol=2), Resp3(nodes["leader"])
    try:
        assert target.call("SUBSCRIBE", "__redis__:invalidate") == [b"subscribe", b"__redis__:invalidate", 1]
        assert tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", target.id) == "OK"
        tracker.call("GET", "r2:k")
        writer.call("SET", "r2:k", "1")
        assert target.frame() == [b"message", b"__redis__:invalidate", [b"r2:k"]]
    finally:
        for client in (target, tracker, writer):
            client.close()


def test_broken_redirect_is_pushed_to_a_resp3_client(nodes):
    target, tracker, writer = Resp3(nodes["leader"]), Resp3(nodes["leader"]), Resp3(nodes["other"])
    try:
        tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", target.id)
        tracker.call("GET", "rb:k")
        target.close()
        wait_until(lambda: target.id not in _client_ids(tracker), 10, what="the target to be gone")
        writer.call("SET", "rb:k", "1")
        assert tracker.wait_push() == [b"tracking-redir-broken", target.id]
    finally:
        tracker.close()
        writer.close()


def test_flushall_invalidates_everything_with_null(nodes):
    reader, bcast, writer = Resp3(nodes["follower"]), Resp3(nodes["other"]), Resp3(nodes["leader"])
    try:
        reader.call("CLIENT", "TRACKING", "ON")
        bcast.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "nothing-matches:")
        reader.call("GET", "fl:k")
        writer.call("FLUSHALL")
        assert invalidated(reader.wait_push()) is None
        assert invalidated(bcast.wait_push()) is None
        assert int(nodes["follower"].info("stats")["tracking_total_keys"]) == 0
    finally:
        reader.close()
        bcast.close()
        writer.close()


def test_reads_in_multi_exec_and_readonly_reads_are_tracked(nodes):
    reader, writer = Resp3(nodes["follower"]), Resp3(nodes["leader"])
    try:
        reader.call("CLIENT", "TRACKING", "ON")
        reader.call("MULTI")
        reader.call("GET", "mx:a")
        reader.call("SET", "mx:w", "1")
        assert reader.call("EXEC") == [None, "OK"]
        reader.call("READONLY")
        reader.call("GET", "mx:b")
        writer.call("MSET", "mx:a", "1", "mx:b", "2", "mx:w", "3")
        got = sorted(invalidated(reader.wait_push())[0] for _ in range(2))
        assert got == [b"mx:a", b"mx:b"]
        assert reader.no_push()  # mx:w was written, not read
    finally:
        reader.close()
        writer.close()


def test_disconnect_frees_the_table_and_overflow_invalidates_the_oldest_keys(nodes):
    node = nodes["follower"]
    reader = Resp3(node)
    try:
        reader.call("CLIENT", "TRACKING", "ON")
        for start in range(0, MAX_KEYS + 100, 100):
            reader.call("MGET", *[f"ov:{i}" for i in range(start, start + 100)])
        dropped = set()
        while len(dropped) < 100:  # the 100 oldest keys, each invalidated
            dropped.update(invalidated(reader.wait_push()))
        assert dropped == {f"ov:{i}".encode() for i in range(100)}
        stats = node.info("stats")
        assert int(stats["tracking_total_keys"]) == MAX_KEYS
        assert int(node.info("clients")["tracking_clients"]) >= 1
    finally:
        reader.close()
    wait_until(lambda: int(node.info("stats")["tracking_total_items"]) == 0, 10, what="the table to empty")


def test_bad_input_gets_redis_errors(nodes):
    client = Resp3(nodes["follower"])
    try:
        cases = [
            (("CLIENT", "TRACKING", "ON", "PREFIX", "a"), "ERR PREFIX option requires BCAST mode to be enabled"),
            (("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a"),
             "ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap."),
            (("CLIENT", "TRACKING", "ON", "REDIRECT", "987654"), "ERR The client ID you want redirect to does not exist"),
            (("CLIENT", "TRACKING", "ON", "BCAST", "OPTOUT"), "ERR OPTIN and OPTOUT are not compatible with BCAST"),
            (("CLIENT", "TRACKING", "ON", "NOPE"), "ERR syntax error"),
            (("CLIENT", "TRACKING"), "ERR wrong number of arguments for 'client|tracking' command"),
            (("CLIENT", "CACHING", "YES"),
             "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"),
            (("CLIENT", "GETREDIR", "x"), "ERR wrong number of arguments for 'client|getredir' command"),
        ]
        for args, message in cases:
            got = client.call(*args)
            assert isinstance(got, RuntimeError) and str(got) == message, (args, got)
        assert client.call("CLIENT", "TRACKINGINFO") == {b"flags": [b"off"], b"redirect": -1, b"prefixes": []}
        assert client.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x:") == "OK"
        got = client.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x")
        assert str(got) == "ERR Prefix 'x' overlaps with an existing prefix 'x:'. Prefixes for a single client must not overlap."
        assert client.call("CLIENT", "GETREDIR") == 0
        assert client.call("CONFIG", "GET", "tracking-table-max-keys") == {b"tracking-table-max-keys": str(MAX_KEYS).encode()}
        refused = client.call("CONFIG", "SET", "tracking-table-max-keys", "5")
        assert "[server] tracking_table_max_keys in the cluster file" in str(refused)
    finally:
        client.close()


@pytest.mark.parametrize("readonly", [False, True], ids=["linearizable", "readonly"])
def test_no_reply_with_an_old_value_follows_its_invalidation(nodes, readonly):
    """Happens-before, on the wire: a tracking client on a follower pipelines GETs of a few
    keys, caching every reply and dropping a key on its push, while a client on the leader
    writes each key once per round. Once a round's writes are acknowledged, the pushes that
    follow must leave no key cached with an older value: a reply computed before a write but
    delivered after its push would stay cached, stale, with nothing left to drop it.
    READONLY: each pipeline starts with a write (forwarded to the leader, slow), so the GETs'
    replies, computed at once from local state, wait behind it while pushes arrive."""
    keys = [f"hb:{i}".encode() for i in range(8)]
    reader, writer = Resp3(nodes["follower"]), Resp3(nodes["leader"])
    reader.call("CLIENT", "TRACKING", "ON")
    if readonly:
        reader.call("READONLY")
    cache: dict[bytes, int] = {}
    replies = 0

    def take(frame: Any, key: bytes | None) -> None:
        if isinstance(frame, Push):
            for k in invalidated(frame) or keys:
                cache.pop(k, None)
        elif key is not None:
            cache[key] = int(frame)

    try:
        for key in keys:
            writer.call("SET", key, 0)
        for rnd in range(1, 41):
            workers = Workers()
            thread = workers.start(_write_round, writer, keys, rnd)
            while thread.is_alive():
                pending: list[bytes | None] = []
                if readonly:
                    reader.send("SET", "hb:scratch", rnd)
                    pending.append(None)
                for key in keys:
                    reader.send("GET", key)
                    pending.append(key)
                while pending:
                    frame = reader.frame()
                    if isinstance(frame, Push):
                        take(frame, None)
                    else:
                        take(frame, pending.pop(0))
                        replies += 1
            workers.join(10)
            deadline = time.monotonic() + 10
            while any(v != rnd for v in cache.values()):  # acknowledged: the pushes must come
                stale = {k: v for k, v in cache.items() if v != rnd}
                assert time.monotonic() < deadline, f"round {rnd}: still cached after the acknowledged writes: {stale}"
                take(reader.frame(timeout=max(0.01, deadline - time.monotonic())), None)
    finally:
        reader.close()
        writer.close()
    assert replies > 40 * len(keys)


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's number; CPython 3.11 does not name it


def _stamped_read(client: Resp3) -> int:
    """Read what `client`'s socket holds (at least one byte) into its buffer; the kernel's
    receive stamp (ns) of the last segment read, i.e. when the node's last write of it
    reached the socket."""
    client.sock.settimeout(10)
    data, ancillary, _flags, _addr = client.sock.recvmsg(1 << 20, socket.CMSG_SPACE(16))
    assert data, "closed by the server"
    client.buf += data
    stamps = [d for level, kind, d in ancillary if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS]
    assert stamps, "no receive stamp"
    sec, nsec = struct.unpack("qq", stamps[-1][:16])
    return sec * 1_000_000_000 + nsec


def test_invalidations_leave_before_the_reply_that_says_the_write_is_applied(nodes):
    """The README's promise, on the wire: once a write is acknowledged to its writer and the
    tracking connection's node has applied it, the invalidations are already on the cached
    connection's socket. A write through a follower is acknowledged once that follower has
    applied it, in the same delivery burst as its invalidations, so the writer's reply is
    such a moment. The kernel's receive stamps order the node's two writes (loopback
    delivers within the sender's send()): the pushes must reach the cached socket before the
    reply reaches the writer's. Until stop 15 pushes were written one loop callback after
    the burst's replies, and a client quick enough to look between the two could serve the
    old value from its cache (redis-py's did, once, in a full run)."""
    keys = [f"hb-wire:{i}".encode() for i in range(20)]
    node = nodes["follower"]
    cached, writer = Resp3(node), Resp3(node)
    for client in (cached, writer):
        client.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    late = []
    try:
        assert cached.call("CLIENT", "TRACKING", "ON") == "OK"
        for rnd in range(1, 21):
            cached.pipeline(*[("GET", key) for key in keys])  # tracked: the node remembers them
            for _ in keys:
                cached.reply()
            cached.pushes.clear()
            writer.send("MSET", *[part for key in keys for part in (key, rnd)])
            acknowledged_at = _stamped_read(writer)
            assert writer.reply() == "OK"
            pushed_at = _stamped_read(cached)
            seen: set[bytes] = set()
            while len(seen) < len(keys):
                frame = cached.frame()
                assert isinstance(frame, Push), f"a reply without a request: {frame!r}"
                seen.update(invalidated(frame) or keys)
            if pushed_at > acknowledged_at:
                late.append((rnd, round((pushed_at - acknowledged_at) / 1000)))
    finally:
        cached.close()
        writer.close()
    assert not late, f"(round, us by which the invalidations reached the socket after the writer's reply): {late}"


def _write_round(writer: Resp3, keys: list[bytes], n: int) -> None:
    for key in keys:
        assert writer.call("SET", key, n) == "OK"


def test_a_client_that_never_reads_its_invalidations_is_closed_not_buffered(nodes):
    """BCAST on every key, a socket never read: once more than the output-buffer limit (the
    pub/sub class's hard 32 MB) waits unsent, the node closes it; writers and other tracking
    clients are not held up."""
    node = nodes["follower"]
    slow = Resp3(node)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.call("CLIENT", "TRACKING", "ON", "BCAST")
    watcher, writer = Resp3(node), Resp3(nodes["leader"])
    try:
        watcher.call("CLIENT", "TRACKING", "ON")
        tracking_before = int(node.info("clients")["tracking_clients"])
        big = [b"sl:%02d:" % i + b"x" * 60_000 for i in range(16)]  # ~1 MB of key names per MSET
        for n in range(60):
            pairs = [part for key in big for part in (key, b"%d" % n)]
            assert writer.call("MSET", *pairs) == "OK"
            if int(node.info("clients")["tracking_clients"]) < tracking_before:
                break
        wait_until(lambda: int(node.info("clients")["tracking_clients"]) == tracking_before - 1, 20,
                   what="the slow client to be closed")
        watcher.call("GET", "sl:probe")
        writer.call("SET", "sl:probe", "1")
        assert invalidated(watcher.wait_push()) == [b"sl:probe"]
    finally:
        for client in (slow, watcher, writer):
            client.close()


# ------------------------------------------------------------------ against a real redis-server
_SCENARIO: list[tuple[str, tuple[Any, ...]]] = [  # (who, command); "{A}": the tracking client's id
    ("a", ("CLIENT", "TRACKINGINFO")), ("a", ("CLIENT", "GETREDIR")),
    ("a", ("CLIENT", "TRACKING", "ON", "PREFIX", "x")), ("a", ("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT")),
    ("a", ("CLIENT", "TRACKING", "ON", "REDIRECT", "0")), ("a", ("CLIENT", "TRACKING", "ON", "REDIRECT", "x")),
    ("a", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "d:ab", "PREFIX", "d:a")),
    ("a", ("CLIENT", "TRACKING", "ON")), ("a", ("CLIENT", "TRACKINGINFO")), ("a", ("CLIENT", "GETREDIR")),
    ("a", ("CLIENT", "CACHING", "YES")), ("a", ("CLIENT", "TRACKING", "ON", "BCAST")),
    ("a", ("MGET", "d:1", "d:2")), ("w", ("MSET", "d:1", "1", "d:2", "2")), ("w", ("SET", "d:1", "again")),
    ("a", ("HGET", "d:h", "f")), ("w", ("HSET", "d:h", "f", "v")),
    ("a", ("GET", "d:1")), ("w", ("FLUSHALL",)),
    ("a", ("CLIENT", "TRACKING", "OFF")), ("a", ("CLIENT", "TRACKING", "ON", "OPTIN", "NOLOOP")),
    ("a", ("GET", "d:skip")), ("a", ("CLIENT", "CACHING", "YES")), ("a", ("CLIENT", "TRACKINGINFO")),
    ("a", ("GET", "d:opt")), ("w", ("MSET", "d:skip", "1", "d:opt", "1")),
    ("a", ("CLIENT", "CACHING", "NO")), ("a", ("CLIENT", "TRACKING", "OFF")),
    ("a", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "d:p", "NOLOOP")), ("a", ("CLIENT", "TRACKINGINFO")),
    ("a", ("SET", "d:p1", "mine")), ("w", ("MSET", "d:p2", "1", "d:q", "1", "d:p3", "1")),
    ("a", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "d:")), ("a", ("CLIENT", "TRACKING", "OFF")),
    ("a", ("CLIENT", "TRACKING", "ON", "REDIRECT", "{W}")), ("a", ("CLIENT", "GETREDIR")), ("a", ("GET", "d:r")),
    ("w", ("SET", "d:r", "1")),
    ("a", ("GET", "d:r")), ("a", ("RESET",)), ("a", ("CLIENT", "TRACKINGINFO")), ("w", ("SET", "d:r", "2")),
]


class _Address:
    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port


def _transcript(port: int) -> list[Any]:
    """Every frame each step of _SCENARIO brings to either connection (client ids replaced;
    pushes a step causes are compared as a set: where a client's own write's push falls
    around its reply is not part of the contract)."""
    a, w = Resp3(_Address(port)), Resp3(_Address(port))
    w.call("FLUSHALL")
    out: list[Any] = []
    try:
        for who, command in _SCENARIO:
            client = a if who == "a" else w
            args = [str(w.id) if part == "{W}" else part for part in command]
            reply = client.call(*args)
            reply = "W" if reply == w.id else reply
            frames = []
            for name, conn in (("a", a), ("w", w)):  # pushes this step caused
                if who == "w":  # a PING round trip brings them in (only after writes: it spends CLIENT CACHING)
                    conn.call("PING")
                frames += [(name, _normal(p)) for p in conn.pushes]
                conn.pushes.clear()
            out.append((who, command, str(reply) if isinstance(reply, RuntimeError) else reply, sorted(frames, key=repr)))
    finally:
        a.close()
        w.close()
    return out


def _normal(push: Push) -> Any:
    return [push[0], sorted(push[1]) if isinstance(push[1], list) else push[1]]


def test_tracking_replies_and_pushes_match_a_real_redis(real_redis, raftcache):
    theirs = _transcript(real_redis.connection_pool.connection_kwargs["port"])
    ours = _transcript(raftcache.connection_pool.connection_kwargs["port"])
    for step, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        assert o == t, f"step {step}: redis {t!r}, raftcache {o!r}"


def test_a_follower_that_installs_a_snapshot_tells_its_tracking_clients_to_drop_everything(tmp_path):
    """A snapshot from the leader replaces a follower's state without naming the keys that
    changed: its tracking clients get the null invalidation (as after FLUSHALL). The follower
    is stopped (SIGSTOP) while the leader writes and compacts its log past the follower's
    position, until the leader drops the connection to it (what was sent before sits in its
    socket), so once resumed the follower can only catch up by installing a snapshot."""
    cl = ServerCluster(tmp_path, sections={"snapshot": {"min_entries": 50}}).start()
    try:
        leader = cl.leader()
        follower = next(n for n in cl.nodes if n is not leader)
        reader, writer = Resp3(follower), Resp3(leader)
        try:
            assert reader.call("CLIENT", "TRACKING", "ON") == "OK"
            assert reader.call("GET", "snap:k") is None
            cut_at = int(follower.info()["raft_applied_index"])
            follower.pause()
            try:
                filler = "x" * 4096

                def compacted_past_and_dropped() -> bool:
                    for i in range(20):  # one at a time: each its own log entry
                        assert writer.call("SET", f"snap:{i}", filler) == "OK"
                    assert writer.call("RAFTCACHE", "COMPACT") is not None
                    info = leader.info()
                    dropped = follower.id not in info["raft_connected_peers"].split(",")
                    return dropped and int(info["raft_last_snapshot_index"]) > cut_at + 50

                wait_until(compacted_past_and_dropped, 60, 0.1, "the leader to compact past the stopped follower and drop it")
                assert writer.call("SET", "snap:k", "new") == "OK"
                log_at = len(follower.log_text())
            finally:
                follower.resume()
            pushes = []  # the log entries already in the follower's socket may name keys first
            while not pushes or invalidated(pushes[-1]) is not None:
                pushes.append(reader.wait_push(timeout=30))
            assert all(invalidated(p) != [b"snap:k"] for p in pushes), pushes  # that write came in the snapshot
            # caught up by a snapshot, not the log: the Raft thread logs the restore just after
            # it announces the gap, so the line may land in the file after the push arrived
            wait_until(lambda: "from snapshot" in follower.log_text()[log_at:], 10, what="the follower to log its snapshot restore")
            assert reader.call("GET", "snap:k") == b"new"
        finally:
            reader.close()
            writer.close()
    finally:
        cl.close()


# ------------------------------------------- CLIENT TRACKINGINFO's bytes against a real redis-server
_TRACKINGINFO_STATES: list[list[tuple[str, ...]]] = [  # commands before CLIENT TRACKINGINFO; "{W}": a peer's id
    [],
    [("CLIENT", "TRACKING", "ON")],
    [("CLIENT", "TRACKING", "ON", "BCAST")],
    [("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ti:b", "PREFIX", "ti:a", "NOLOOP")],
    [("CLIENT", "TRACKING", "ON", "OPTIN")],
    [("CLIENT", "TRACKING", "ON", "OPTIN"), ("CLIENT", "CACHING", "YES")],
    [("CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP"), ("CLIENT", "CACHING", "NO")],
    [("CLIENT", "TRACKING", "ON", "REDIRECT", "{W}")],
    [("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ti:"), ("CLIENT", "TRACKING", "OFF")],
]


def _raw_reply(client: Resp3, *args: Any) -> bytes:
    """The bytes of the reply to `args`, as sent (the RESP3 types and the order unparsed)."""
    client.send(*args)
    client.reply()
    return client.last_raw


def _trackinginfo_bytes(port: int, protocol: int) -> list[bytes]:
    out = []
    for commands in _TRACKINGINFO_STATES:
        a, w = Resp3(_Address(port), protocol), Resp3(_Address(port), protocol)
        try:
            for command in commands:
                assert a.call(*[str(w.id) if part == "{W}" else part for part in command]) == "OK"
            out.append(_raw_reply(a, "CLIENT", "TRACKINGINFO").replace(b":%d\r\n" % w.id, b":{W}\r\n"))
        finally:
            a.close()
            w.close()
    # broken_redirect: the redirect target went away before an invalidation was due
    a, w, writer = (Resp3(_Address(port), protocol) for _ in range(3))
    try:
        assert a.call("CLIENT", "TRACKING", "ON", "REDIRECT", str(w.id)) == "OK"
        a.call("GET", "ti:gone")
        w.close()
        wait_until(lambda: w.id not in _client_ids(a), 10, what="the target to be gone")
        assert writer.call("SET", "ti:gone", "1") == "OK"
        wait_until(lambda: b"broken_redirect" in _raw_reply(a, "CLIENT", "TRACKINGINFO"), 10)
        out.append(_raw_reply(a, "CLIENT", "TRACKINGINFO").replace(b":%d\r\n" % w.id, b":{W}\r\n"))
    finally:
        a.close()
        writer.close()
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_trackinginfo_bytes_match_a_real_redis(real_redis, raftcache, protocol):
    """Flags (a RESP3 set), redirect and prefixes byte for byte, in both protocols."""
    theirs = _trackinginfo_bytes(real_redis.connection_pool.connection_kwargs["port"], protocol)
    ours = _trackinginfo_bytes(raftcache.connection_pool.connection_kwargs["port"], protocol)
    for state, t, o in zip(_TRACKINGINFO_STATES + [["broken redirect"]], theirs, ours, strict=True):
        assert o == t, f"after {state}: redis {t!r}, raftcache {o!r}"
