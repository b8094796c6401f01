"""raftcache: a Raft-replicated, strongly consistent key-value cache.

Embed a replica with :class:`Cache` / :class:`AsyncCache`, run servers with ``raftcache serve``
and talk to them with any Redis client.
"""

from .cache import AsyncCache, Cache
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
)
from .replica import NodeStatus

__version__ = "0.1.0"

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
    "__version__",
]
