"""``AsyncClient``: the asyncio driver of ``ClientCore`` (same methods as ``Client``, awaited)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable

from ..api import DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, CacheCommands, Convert, raise_or_convert
from ..config import load_config
from ..errors import error_from_resp
from ..replica import NodeStatus
from ..resp import NEED_DATA, ErrorReply, ReplyParser, encode_command
from .core import Call, ClientCore, Plan, RetryPolicy, Sleep
from .pipeline import Pipeline, status_from_info


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = ReplyParser()

    @classmethod
    async def open(cls, endpoint: str, timeout: float, password: str | None) -> "_Connection":
        host, port = endpoint.rsplit(":", 1)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
        conn = cls(reader, writer)
        if password:
            (reply,) = await conn.call(encode_command(b"AUTH", password), 1, timeout)
            if isinstance(reply, ErrorReply):
                conn.close()
                raise error_from_resp(reply.prefix, reply.message)
        return conn

    async def call(self, payload: bytes, count: int, timeout: float) -> list[Any]:
        return await asyncio.wait_for(self._call(payload, count), timeout)

    async def _call(self, payload: bytes, count: int) -> list[Any]:
        self.writer.write(payload)
        await self.writer.drain()
        replies: list[Any] = []
        while len(replies) < count:
            reply = self.parser.next()
            if reply is NEED_DATA:
                data = await self.reader.read(1 << 16)
                if not data:
                    raise ConnectionResetError("connection closed by the server")
                self.parser.feed(data)
                continue
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.writer.close()


class AsyncClient(CacheCommands):
    """The asyncio twin of :class:`Client`: same constructor and methods, awaited
    (pipeline commands queue synchronously; ``await pipeline.execute()``)."""

    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        password: str | None = None,
        decode_responses: bool = False,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 2.0,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
        self._core = ClientCore(list(endpoints), retry or RetryPolicy())
        if not self._core.endpoints:
            raise ValueError("at least one endpoint (host:port) is required")
        self._password = password
        self._connect_timeout = connect_timeout
        self._idle: dict[str, list[_Connection]] = {}
        self._decode = decode_responses
        self._max_value = max_value_bytes
        self._max_key = max_key_bytes

    @classmethod
    def from_config(cls, path: str, **kwargs: Any) -> "AsyncClient":
        config = load_config(path)
        kwargs.setdefault("password", config.server.requirepass or None)
        kwargs.setdefault("max_value_bytes", config.limits.max_value_bytes)
        return cls([n.client for n in config.nodes if n.client], **kwargs)

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
            conn = await _Connection.open(op.endpoint, min(self._connect_timeout, op.timeout), self._password)
        try:
            replies = await conn.call(op.payload, op.replies, op.timeout)
        except BaseException:
            conn.close()
            raise
        self._idle.setdefault(op.endpoint, []).append(conn)
        return replies

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        return self._finish(self._drive(self._core.execute([command])), convert)

    @staticmethod
    async def _finish(results: Any, convert: Convert | None) -> Any:
        (result,) = await results
        return raise_or_convert(result, convert)

    def _run_many(self, commands: list[Any]) -> Any:
        return self._drive(self._core.execute(commands))

    def pipeline(self) -> Pipeline:
        return Pipeline(self)

    async def status(self, endpoint: str | None = None) -> NodeStatus:
        def plan() -> Plan:
            target = endpoint or (yield from self._core._target(time.monotonic() + 5))
            if target is None:
                raise ConnectionError("no endpoint reachable: " + ", ".join(self._core.endpoints))
            return (yield from self._core.node_info(target))

        return status_from_info(await self._drive(plan()))

    @property
    def endpoints(self) -> list[str]:
        return list(self._core.endpoints)

    @property
    def leader(self) -> str | None:
        return self._core.leader

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
