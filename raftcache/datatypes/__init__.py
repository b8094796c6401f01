"""Hashes, lists, sets and sorted sets: one module per type, each with its collection class
and its command table; this package joins the tables for the state machine
(``statemachine``), the Redis command table (``redis_commands``) and the snapshot codec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import blocking, hashes, lists, sets, zsets
from .base import Collection, Handler, TypeCommand

_MODULES = (hashes, lists, sets, zsets, blocking)
_GROUPS = {hashes: "hash", lists: "list", sets: "set", zsets: "sorted_set", blocking: "list"}  # COMMAND's @group

COMMANDS: dict[bytes, TypeCommand] = {cmd.name.encode(): cmd for m in _MODULES for cmd in m.COMMANDS}
WRITE_HANDLERS: dict[bytes, Handler] = {name: cmd.handler for name, cmd in COMMANDS.items() if cmd.write}
GROUPS: dict[bytes, str] = {cmd.name.encode(): _GROUPS[m] for m in _MODULES for cmd in m.COMMANDS}
# Commands living in a module for their data but grouped elsewhere by Redis.
GROUPS.update({b"bzpopmin": "sorted_set", b"bzpopmax": "sorted_set", b"bzmpop": "sorted_set", b"randomkey": "generic"})
# Reply renderers beyond the identity (e.g. a null array for an unserved BLPOP), by name.
RENDERS: dict[bytes, Callable[[Any], Any]] = {name: r for m in _MODULES for name, r in getattr(m, "RENDERS", {}).items()}
READ_HANDLERS: dict[bytes, Handler] = {name: cmd.handler for name, cmd in COMMANDS.items() if not cmd.write}
# By TYPE name: how snapshots and backups name a collection's class.
COLLECTION_TYPES: dict[str, type[Collection]] = {cls.TYPE: cls for m in _MODULES for cls in m.COLLECTIONS}

__all__ = ["COLLECTION_TYPES", "COMMANDS", "GROUPS", "READ_HANDLERS", "RENDERS", "WRITE_HANDLERS", "Collection", "TypeCommand"]
