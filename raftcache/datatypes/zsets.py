"""ZSet commands (to be written): the zset type and its command table."""

from __future__ import annotations

from .base import Collection, TypeCommand

COLLECTIONS: list[type[Collection]] = []
COMMANDS: list[TypeCommand] = []
