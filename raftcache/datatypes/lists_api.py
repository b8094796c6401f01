"""The lists methods of Cache, AsyncCache, Client and AsyncClient (redis-py's names and
argument conventions). Mixed into ``api.CacheCommands``; each method sends its Redis
arguments through ``self._data_write``/``self._data_read`` with a result converter."""

from __future__ import annotations


class ListMethods:
    """(to be written)"""
