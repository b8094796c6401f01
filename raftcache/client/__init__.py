"""The Python client for a raftcache cluster over RESP: leader-following, failover, safe
retries (exactly-once writes), pipelines; ``Client`` (blocking, thread-safe) and
``AsyncClient`` share one I/O-free core (``core.ClientCore``)."""

from .async_ import AsyncClient
from .core import RetryPolicy
from .pipeline import Pipeline
from .sync import Client

__all__ = ["AsyncClient", "Client", "Pipeline", "RetryPolicy"]
