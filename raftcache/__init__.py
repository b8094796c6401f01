"""raftcache: a Raft-replicated, strongly consistent key-value cache.

Embed a replica with :class:`Cache` / :class:`AsyncCache`, run servers with ``raftcache serve``
and talk to them with any Redis client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import AsyncClient, Client, RetryPolicy
from .errors import (
    ClusterError,
    CommandError,
    ConfigError,
    NodeClosedError,
    NoLeaderError,
    NotAppliedError,
    OutcomeUnknownError,
    RaftCacheError,
    StorageError,
    WatchError,
)
from .status import NodeStatus

if TYPE_CHECKING:
    from .cache import AsyncCache, Cache

__version__ = "0.1.0"

# Loaded on first use (PEP 562): the embedded replica brings in pysyncobj and the Raft
# machinery, which a program that only talks to servers through Client never needs.
_LAZY = {"Cache": "cache", "AsyncCache": "cache"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "AsyncCache",
    "AsyncClient",
    "Cache",
    "Client",
    "ClusterError",
    "CommandError",
    "ConfigError",
    "NoLeaderError",
    "NodeClosedError",
    "NodeStatus",
    "NotAppliedError",
    "OutcomeUnknownError",
    "RaftCacheError",
    "RetryPolicy",
    "StorageError",
    "WatchError",
    "__version__",
]
