"""A script's identity and flags: SHA1 name and Redis 7's ``#!lua flags=...`` first line.

Kept apart from the Lua runtime so that the command table can route a ``no-writes`` EVAL to
the read path without importing lupa.
"""

from __future__ import annotations

import hashlib

from .errors import CommandError

# Redis 7's script flags (scripts_flags_def); only no-writes changes what raftcache does.
KNOWN_FLAGS = frozenset({"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"})
NO_WRITES = "no-writes"

# Lua VM instructions one script may run (plus a charge per redis.call, lua_runtime.py):
# measured 0.15-0.3 s on this project's (loaded, 2-core) test machine: inside a 1 s election timeout.
DEFAULT_SCRIPT_MAX_INSTRUCTIONS = 20_000_000


def sha1hex(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


def parse_shebang(body: bytes) -> tuple[frozenset[str] | None, int]:
    """(flags, length of the shebang line) -- (None, 0) for a script without one (Redis's
    compatibility mode). The newline is kept in the code, so line numbers do not move."""
    if not body.startswith(b"#!"):
        return None, 0
    end = body.find(b"\n")
    if end < 0:
        raise CommandError("Invalid script shebang")
    parts = body[:end].decode("utf-8", "replace").split()
    if not parts:
        raise CommandError("Invalid engine in script shebang")
    if parts[0] != "#!lua":
        raise CommandError(f"Unexpected engine in script shebang: {parts[0]}")
    flags: set[str] = set()
    for part in parts[1:]:
        if not part.startswith("flags="):
            raise CommandError(f"Unknown lua shebang option: {part}")
        for flag in part[6:].split(","):
            if flag not in KNOWN_FLAGS:
                raise CommandError(f"Unexpected flag in script shebang: {flag}")
            flags.add(flag)
    return frozenset(flags), end


def is_no_writes(body: bytes) -> bool:
    """True for a script that declares ``#!lua flags=no-writes`` (malformed: False; the state
    machine answers the error)."""
    try:
        flags, _ = parse_shebang(body)
    except CommandError:
        return False
    return flags is not None and NO_WRITES in flags
