"""Hash commands (to be written): the hash type and its command table."""

from __future__ import annotations

from .base import Collection, TypeCommand

COLLECTIONS: list[type[Collection]] = []
COMMANDS: list[TypeCommand] = []
