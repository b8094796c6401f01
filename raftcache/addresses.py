"""host:port addresses: the checks shared by raft peers and client listeners.

Neutral ground: the RESP server validates client addresses with the same rules the
consensus layer applies to raft addresses, without importing any of consensus.
"""

from __future__ import annotations

import ipaddress

from .errors import ConfigError


def is_loopback(address: str) -> bool:
    """Whether `address` (host:port) names this host only (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_address(address: str, what: str = "raft address") -> None:
    """Raise ConfigError unless `address` is host:port with a port in 1-65535 and a host
    others can reach (a wildcard bind address is not one)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {address!r} must be host:port")
    if host.strip("[]") in ("0.0.0.0", "::"):
        raise ConfigError(f"{what} {address!r} must be an address peers can reach, not a wildcard")
