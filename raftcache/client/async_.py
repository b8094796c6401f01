"""``AsyncClient``: the asyncio driver of ``ClientCore`` (same methods as ``Client``, awaited)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .. import commands as c
from ..api import Convert, raise_or_convert
from ..errors import error_from_resp
from ..near_cache import NEAR_RESTART_ERRORS, NEAR_RESTART_S, NearCache
from ..resp import ErrorReply, ReplyParser, encode_command
from ..status import NodeStatus, from_info
from ..tls import first_close
from ..transaction import AsyncTransactions
from ..watch import WatchCursor, WatchEvent
from .base import ClientBase
from .core import Call, Plan, Sleep, as_requested


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.fresh = True  # no reply read yet
        self.parser = ReplyParser()

    @classmethod
    async def open(cls, endpoint: str, timeout: float, auth: tuple[str, ...] | None, tls: ssl.SSLContext | None = None) -> _Connection:
        host, port = endpoint.rsplit(":", 1)
        host = host.strip("[]")
        tls_options: dict[str, Any] = {"ssl": tls, "server_hostname": host} if tls is not None else {}
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), **tls_options), timeout)
        conn = cls(reader, writer)
        if auth:
            (reply,) = await conn.call(encode_command(b"AUTH", *auth), 1, timeout)
            if isinstance(reply, ErrorReply):
                conn.close()
                raise error_from_resp(reply.prefix, reply.message)
        return conn

    async def call(self, payload: bytes, count: int, timeout: float) -> list[Any]:
        return await asyncio.wait_for(self._call(payload, count), timeout)

    async def _call(self, payload: bytes, count: int) -> list[Any]:
        self.writer.write(payload)
        await self.writer.drain()
        try:
            replies = await self.parser.read_replies_async(count, lambda: self.reader.read(1 << 16))
        except ConnectionResetError:
            if self.fresh:  # closed before its first reply: a certificate refused, or TLS expected
                raise ConnectionResetError(first_close(self.writer.get_extra_info("ssl_object") is not None)) from None
            raise
        self.fresh = False
        return replies

    async def frames(self, timeout: float) -> list[Any]:
        """The replies already sent (at least one; waiting up to `timeout` for it)."""
        frames = await asyncio.wait_for(self.parser.read_replies_async(1, lambda: self.reader.read(1 << 16)), timeout)
        return frames + self.parser.take(1 << 30)

    def close(self) -> None:
        self.writer.close()


class AsyncClient(ClientBase, AsyncTransactions):
    """The asyncio twin of :class:`Client`: same constructor and methods, awaited
    (pipeline commands queue synchronously; ``await pipeline.execute()``)."""

    def __init__(self, endpoints: str | Iterable[str], **options: Any) -> None:
        super().__init__(endpoints, **options)
        self._idle: dict[str, list[_Connection]] = {}
        self._near_task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------------- watch
    def watch(self, pattern: Any, start_index: int | None = None, *, values: bool = False) -> AsyncIterator[WatchEvent]:
        """``Client.watch`` as an async iterator (``async for event in client.watch("cfg:*")``);
        with no `start_index`, from when the iteration starts."""
        return self._watch_events(self._watch_cursor(pattern, start_index, values))

    async def _watch_events(self, cursor: WatchCursor) -> AsyncIterator[WatchEvent]:
        async for event in self._stream(cursor):
            yield self._watch_out(event)

    async def _stream(self, cursor: WatchCursor, near: NearCache | None = None) -> AsyncIterator[WatchEvent]:
        """The stream's events, reconnecting as the cursor says; `near` hears the stream's
        state and events."""
        try:
            while True:
                try:
                    endpoint = cursor.next_endpoint()
                    with contextlib.closing(await _Connection.open(endpoint, self._connect_timeout, self._auth, self._ssl)) as conn:
                        conn.writer.write(encode_command(*cursor.command()))
                        while True:
                            for event in cursor.on_frames(await conn.frames(cursor.silence_s), near):
                                yield event
                except Exception as exc:  # noqa: BLE001 - the cursor decides: it re-raises what another node cannot cure
                    pause = cursor.on_failure(exc, near)
                    if pause:
                        await asyncio.sleep(pause)
        finally:
            if near is not None:
                near.down()

    # --------------------------------------------------------------- near-cache
    async def _near_get(self, key: bytes) -> Any:
        near = self._near
        if self._near_task is None:
            self._near_task = asyncio.get_running_loop().create_task(self._near_loop())
            await asyncio.get_running_loop().run_in_executor(None, near.wait_up, self._connect_timeout)
        return self._out(await near.through_async(key, lambda: self._run(c.Get(key))))

    async def _near_loop(self) -> None:
        while True:
            try:
                async for _ in self._stream(self._near_cursor(), self._near):  # the cursor feeds the near-cache
                    pass
            except NEAR_RESTART_ERRORS:
                await asyncio.sleep(NEAR_RESTART_S)

    # ------------------------------------------------------------------- driving
    async def _drive(self, plan: Plan) -> Any:
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = plan.send(reply) if error is None else plan.throw(error)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(op, Sleep):
                await asyncio.sleep(op.seconds)
                continue
            try:
                reply = await self._call(op)
            except Exception as exc:  # handed to the core, which decides
                error = exc

    async def _call(self, op: Call) -> list[Any]:
        idle = self._idle.get(op.endpoint)
        conn = idle.pop() if idle else None
        if conn is None:
            conn = await _Connection.open(op.endpoint, min(self._connect_timeout, op.timeout), self._auth, self._ssl)
        try:
            replies = await conn.call(op.payload, op.replies, op.timeout)
        except BaseException:
            conn.close()
            raise
        self._idle.setdefault(op.endpoint, []).append(conn)
        return replies

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        command = as_requested(command, consistency)  # a bad argument raises here, not when awaited
        return self._finish(self._drive(self._core.execute([command], timeout=timeout)), convert)

    @staticmethod
    async def _finish(results: Any, convert: Convert | None) -> Any:
        (result,) = await results
        return raise_or_convert(result, convert)

    def _run_many(self, commands: list[Any], timeout: float | None = None) -> Any:
        return self._drive(self._core.execute(commands, timeout=timeout))

    async def status(self, endpoint: str | None = None) -> NodeStatus:
        return from_info(await self._drive(self._status_plan(endpoint)))

    async def close(self) -> None:
        if self._near_task is not None:
            self._near_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._near_task
            self._near_task = None
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
