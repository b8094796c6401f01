"""``Client``: the blocking, thread-safe driver of ``ClientCore``, with a connection pool."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..api import Convert, raise_or_convert
from ..errors import error_from_resp
from ..resp import ErrorReply, ReplyParser, encode_command
from ..status import NodeStatus, from_info
from ..transaction import Transactions
from .base import ClientBase
from ..tls import TLS_FIRST_CLOSE
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
            if self.fresh and isinstance(self.sock, ssl.SSLSocket):
                raise ConnectionResetError(TLS_FIRST_CLOSE) from None
            raise
        self.fresh = False
        return replies

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
        self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
