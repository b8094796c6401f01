"""List commands (to be written): the list type and its command table."""

from __future__ import annotations

from .base import Collection, TypeCommand

COLLECTIONS: list[type[Collection]] = []
COMMANDS: list[TypeCommand] = []
