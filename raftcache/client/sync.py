"""``Client``: the blocking, thread-safe driver of ``ClientCore``, with a connection pool."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import Any

from .. import commands as c
from ..api import Convert, raise_or_convert
from ..errors import error_from_resp
from ..near_cache import NEAR_RESTART_ERRORS, NEAR_RESTART_S, NearCache
from ..resp import ErrorReply, ReplyParser, encode_command
from ..status import NodeStatus, from_info
from ..tls import first_close
from ..transaction import Transactions
from ..watch import WatchCursor, WatchEvent
from .base import ClientBase
from .core import Call, Plan, Sleep, as_requested


class _Connection:
    def __init__(self, endpoint: str, timeout: float, auth: tuple[str, ...] | None, tls: ssl.SSLContext | None = None) -> None:
        self.sock = connect(endpoint, timeout, tls)
        self.fresh = True  # no reply read yet
        self.parser = ReplyParser()
        if auth:
            (reply,) = self.call(encode_command(b"AUTH", *auth), 1, timeout)
            if isinstance(reply, ErrorReply):
                self.close()
                raise error_from_resp(reply.prefix, reply.message)

    def call(self, payload: bytes, count: int, timeout: float) -> list[Any]:
        self.sock.settimeout(timeout)
        self.sock.sendall(payload)
        try:
            replies = self.parser.read_replies(count, lambda: self.sock.recv(1 << 16))
        except ConnectionResetError:
            if self.fresh:  # closed before its first reply: a certificate refused, or TLS expected
                raise ConnectionResetError(first_close(isinstance(self.sock, ssl.SSLSocket))) from None
            raise
        self.fresh = False
        return replies

    def frames(self, timeout: float) -> list[Any]:
        """The replies already sent (at least one; waiting up to `timeout` for it)."""
        self.sock.settimeout(timeout)
        frames = self.parser.read_replies(1, lambda: self.sock.recv(1 << 16))
        return frames + self.parser.take(1 << 30)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def connect(endpoint: str, timeout: float, tls: ssl.SSLContext | None = None) -> socket.socket:
    """A connected socket to host:port (TLS-wrapped and handshaken when `tls` is given;
    the node's certificate must name `host`)."""
    host, port = endpoint.rsplit(":", 1)
    host = host.strip("[]")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class _Pool:
    """Idle connections per endpoint; a connection is used by one thread at a time."""

    def __init__(self, auth: tuple[str, ...] | None, connect_timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self._auth = auth
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._idle: dict[str, list[_Connection]] = {}
        self._lock = threading.Lock()

    def call(self, op: Call) -> list[Any]:
        with self._lock:
            idle = self._idle.get(op.endpoint)
            conn = idle.pop() if idle else None
        if conn is None:
            conn = _Connection(op.endpoint, min(self._connect_timeout, op.timeout), self._auth, self._tls)
        try:
            replies = conn.call(op.payload, op.replies, op.timeout)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle.setdefault(op.endpoint, []).append(conn)
        return replies

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class Client(ClientBase, Transactions):
    """A leader-following client for a raftcache cluster (blocking, thread-safe).

    ::

        client = Client(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"])
        client.set("k", "v", ttl=30)
        with client.pipeline() as p:
            p.incr("hits"); p.get("k")
            hits, value = p.execute()
    """

    def __init__(self, endpoints: str | Iterable[str], **options: Any) -> None:
        super().__init__(endpoints, **options)
        self._pool = _Pool(self._auth, self._connect_timeout, self._ssl)
        self._lock = threading.Lock()  # the core's state (session, leader) is shared by threads
        self._closed = threading.Event()
        self._near_thread: threading.Thread | None = None

    # -------------------------------------------------------------------- watch
    def watch(self, pattern: Any, start_index: int | None = None, *, values: bool = False) -> Iterator[WatchEvent]:
        """Changes of the keys matching the glob `pattern`, after seq `start_index` (None:
        after this call), as ``WatchEvent(seq, event, key, value)``; resumes through another
        node by itself when its node fails (from the last seq seen: nothing missed, nothing
        twice). Raises WatchCompactedError when the resume point has left every history."""
        cursor = self._watch_cursor(pattern, start_index, values)
        if start_index is None:
            self._start_now(cursor)
        return self._watch_events(cursor)

    def _watch_events(self, cursor: WatchCursor) -> Iterator[WatchEvent]:
        for event in self._stream(cursor):
            if event is not None:
                yield self._watch_out(event)

    def _start_now(self, cursor: WatchCursor) -> None:
        """Pin "from now" to this moment: the seq a node reports for a stream opened now."""
        while cursor.last is None:
            conn = None
            try:
                conn = self._open_stream(cursor)
                cursor.on_frame(conn.frames(cursor.silence_s)[0])  # the greeting
            except Exception as exc:  # noqa: BLE001 - the cursor decides: it re-raises what another node cannot cure
                pause = cursor.on_failure(exc)
                if pause:
                    time.sleep(pause)
            finally:
                if conn is not None:
                    conn.close()
        cursor.rewind()

    def _open_stream(self, cursor: WatchCursor) -> _Connection:
        conn = _Connection(cursor.next_endpoint(), self._connect_timeout, self._auth, self._ssl)
        try:
            conn.sock.sendall(encode_command(*cursor.command()))
        except BaseException:
            conn.close()
            raise
        return conn

    def _stream(self, cursor: WatchCursor, near: NearCache | None = None) -> Iterator[WatchEvent | None]:
        """The stream's events (None after each batch of frames, so a caller can stop),
        reconnecting as the cursor says; `near` hears the stream's state and events."""
        try:
            while not self._closed.is_set():
                try:
                    with closing(self._open_stream(cursor)) as conn:
                        while not self._closed.is_set():
                            yield from cursor.on_frames(conn.frames(cursor.silence_s), near)
                            yield None
                except Exception as exc:  # noqa: BLE001 - the cursor decides: it re-raises what another node cannot cure
                    pause = cursor.on_failure(exc, near)
                    if pause:
                        self._closed.wait(pause)
        finally:
            if near is not None:
                near.down()

    # --------------------------------------------------------------- near-cache
    def _near_get(self, key: bytes) -> Any:
        if self._near_thread is None:
            self._start_near()
        return self._out(self._near.through(key, lambda: self._run(c.Get(key))))

    def _start_near(self) -> None:
        with self._lock:
            if self._near_thread is not None:
                return
            self._near_thread = threading.Thread(target=self._near_loop, name="raftcache-near-cache", daemon=True)
        self._near_thread.start()
        self._near.wait_up(self._connect_timeout)

    def _near_loop(self) -> None:
        while not self._closed.is_set():
            try:
                for _ in self._stream(self._near_cursor(), self._near):  # the cursor feeds the near-cache
                    pass
            except NEAR_RESTART_ERRORS:
                self._closed.wait(NEAR_RESTART_S)

    # ------------------------------------------------------------------- driving
    def _drive(self, plan: Plan) -> Any:
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                with self._lock:
                    op = plan.send(reply) if error is None else plan.throw(error)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(op, Sleep):
                time.sleep(op.seconds)
                continue
            try:
                reply = self._pool.call(op)
            except Exception as exc:  # handed to the core, which decides
                error = exc

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        (result,) = self._drive(self._core.execute([as_requested(command, consistency)], timeout=timeout))
        return raise_or_convert(result, convert)

    def _run_many(self, commands: list[Any], timeout: float | None = None) -> list[Any]:
        return self._drive(self._core.execute(commands, timeout=timeout))

    def status(self, endpoint: str | None = None) -> NodeStatus:
        """Status of one node (default: the leader, or whichever node answers)."""
        return from_info(self._drive(self._status_plan(endpoint)))

    def close(self) -> None:
        self._closed.set()
        self._pool.close()
        if self._near_thread is not None:
            self._near_thread.join(timeout=self._connect_timeout + 5)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
