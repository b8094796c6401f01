"""Pipelines, shared by Client and AsyncClient."""

from __future__ import annotations

from typing import Any

from ..api import CacheCommands, Convert
from .core import as_requested


class Pipeline(CacheCommands):
    """Queues commands (the usual methods, which return the pipeline) and sends them together.

    ``execute()`` returns one result per command, in order; it is awaited on an AsyncClient.
    With ``raise_on_error=True`` (default) the first failed command's exception is raised
    after every command ran; otherwise exceptions are returned in place of results. Writes
    keep their exactly-once tags, so a pipeline retried after a connection loss applies each
    write once.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._queued: list[tuple[Any, Convert | None]] = []
        self._decode = client._decode
        self._max_value = client._max_value
        self._max_key = client._max_key

    def _run(self, command: Any, convert: Convert | None = None, *, consistency: str | None = None, timeout: float | None = None) -> Any:
        if timeout is not None:
            raise ValueError("a pipeline has one deadline for all its commands: pass timeout= to execute()")
        self._queued.append((as_requested(command, consistency), convert))
        return self

    def __len__(self) -> int:
        return len(self._queued)

    def execute(self, raise_on_error: bool = True, timeout: float | None = None) -> Any:
        """Send the queued commands; `timeout` (seconds) replaces the retry policy's deadline."""
        queued, self._queued = self._queued, []
        results = self._client._run_many([command for command, _ in queued], timeout=timeout)
        if hasattr(results, "__await__"):
            return _finish_async(results, queued, raise_on_error)
        return _finish(results, queued, raise_on_error)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queued = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._queued = []


def _finish(results: list[Any], queued: list[tuple[Any, Convert | None]], raise_on_error: bool) -> list[Any]:
    out = []
    for result, (_, convert) in zip(results, queued):
        if isinstance(result, BaseException):
            out.append(result)
        else:
            out.append(convert(result) if convert is not None else result)
    if raise_on_error:
        for result in out:
            if isinstance(result, BaseException):
                raise result
    return out


async def _finish_async(results: Any, queued: list[tuple[Any, Convert | None]], raise_on_error: bool) -> list[Any]:
    return _finish(await results, queued, raise_on_error)
