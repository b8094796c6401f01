"""Who may use a connection: password checks and the slow-down after repeated failures.

``Authenticator`` answers "is this user/password pair valid?". Today it knows one user,
``default``, whose password is ``requirepass`` (none: every connection is the default user,
as in Redis); ACL users (issue 16 item 4) plug in here as more entries of ``_passwords``
(and rules per user), without the connection code changing. Passwords are compared as
SHA-256 digests with ``hmac.compare_digest``: constant time, and the same length whatever
was sent, so neither timing nor length leaks the password.

``AuthThrottle`` is the per-connection policy after failed attempts: the first
``free_failures`` are answered at once; each further one holds the connection (its next
command is not read) for ``base_s * 2**k`` seconds, up to ``max_s``. Only that connection
waits; the server's event loop and every other client carry on. A successful AUTH resets it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

DEFAULT_USER = "default"


def _digest(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()


class Authenticator:
    """The users a node knows and their passwords (today: only ``default``)."""

    def __init__(self, requirepass: str = "") -> None:
        # user name -> SHA-256 of the password; a user absent from it needs no password
        self._passwords: dict[str, bytes] = {DEFAULT_USER: _digest(requirepass.encode())} if requirepass else {}

    @property
    def default_user_has_password(self) -> bool:
        """False when connections are authenticated as ``default`` without AUTH (Redis's
        ``nopass``): protected mode then refuses clients that are not on loopback."""
        return DEFAULT_USER in self._passwords

    @property
    def has_passwords(self) -> bool:
        """Whether any password is configured (AUTH is refused as pointless otherwise)."""
        return bool(self._passwords)

    def check(self, user: str, password: bytes) -> bool:
        """Whether `password` is `user`'s, in constant time."""
        expected = self._passwords.get(user)
        candidate = _digest(password)
        if expected is None:  # same work for an unknown user: no timing hint either way
            hmac.compare_digest(candidate, candidate)
            return False
        return hmac.compare_digest(candidate, expected)


@dataclass(frozen=True, slots=True)
class AuthThrottle:
    """How a connection slows down after failed AUTH attempts (see the module docstring)."""

    free_failures: int = 3
    base_s: float = 0.1
    max_s: float = 5.0

    def delay_after(self, failures: int) -> float:
        """Seconds to hold the connection after its `failures`-th consecutive failure."""
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(extra - 1, 32))
