"""The cluster secret: what counts as too weak to leave this host, and how to make a good one.

The secret keys the AES-GCM sealing of every peer (raft) message (consensus/wire.py): whoever
knows the secret and reaches a raft port can act as a member of the cluster. So a node whose
raft traffic leaves the host (any raft address, its own or a peer's, not
loopback) refuses to start with a secret that is weak by these rules, kept simple on purpose:

* a known placeholder (``KNOWN_PLACEHOLDERS``: the example file's ``change-me``, the README's
  samples, the built-in development key), or anything containing ``change-me``/``changeme``;
* shorter than ``MIN_LENGTH`` (32) characters;
* fewer than ``MIN_DISTINCT`` (10) distinct characters (``aaaa...``, ``0101...``);
* a shorter string repeated (``abcdefgh`` four times).

``secrets.token_urlsafe(32)`` (43 characters from a 64-letter alphabet, what ``raftcache init``
writes) and ``openssl rand -hex 32`` always pass. Loopback-only clusters only get a warning:
on one host the secret guards against other local users, not the network.
"""

from __future__ import annotations

import secrets

from .addresses import is_loopback

MIN_LENGTH = 32
MIN_DISTINCT = 10
KNOWN_PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "password",
        "test-secret",
        "fault-secret",
        "a long random string",
        "...",
        "raftcache-insecure-loopback-development-secret",  # consensus.types.DEV_SECRET
    }
)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me")

HOW_TO_MAKE_ONE = (
    "make one with `raftcache init` or "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


def generate() -> str:
    """A fresh random secret (256 bits, URL-safe base64: 43 characters)."""
    return secrets.token_urlsafe(32)


def weakness(secret: str) -> str | None:
    """Why `secret` is too weak for traffic that leaves the host, or None if it is fine."""
    lowered = secret.strip().lower()
    if lowered in KNOWN_PLACEHOLDERS or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return "is a known placeholder"
    if len(secret) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    if len(set(secret)) < MIN_DISTINCT:
        return f"has fewer than {MIN_DISTINCT} distinct characters"
    n = len(secret)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and secret == secret[:period] * (n // period):
            return "is a short string repeated"
    return None


def public_addresses(addresses: list[str] | tuple[str, ...]) -> list[str]:
    """The raft addresses whose traffic leaves this host."""
    return [a for a in addresses if not is_loopback(a)]


def problem(secret: str, raft_addresses: list[str] | tuple[str, ...]) -> str | None:
    """Why a node with these raft addresses (its own and its peers') must not start with
    `secret` (empty: none configured), as one line ending with how to make one; None if fine."""
    public = public_addresses(raft_addresses)
    if not public:
        return None
    if not secret:
        why = "is not set"
    else:
        why = weakness(secret)  # type: ignore[assignment]
        if why is None:
            return None
    return (
        f"the cluster secret {why}, and raft address {public[0]!r} is not loopback "
        f"(peer traffic is pickled: the secret is all that keeps others from running code on the nodes); "
        f"{HOW_TO_MAKE_ONE}"
    )
