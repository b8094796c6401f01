"""Who may use a connection: password checks and the slow-down after repeated failures.

``Authenticator`` answers "is this user/password pair valid?". It knows the ACL users
(``acl.User``, from the config's ``[[users]]``) and ``default``, whose password is
``requirepass`` unless a ``[[users]]`` entry named ``default`` says otherwise (no password:
every connection is the default user, as in Redis). Passwords are compared as
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
from collections.abc import Iterable
from dataclasses import dataclass

from .acl import AclLog, User, default_user

DEFAULT_USER = "default"


def _digest(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()


class Authenticator:
    """The users a node knows (``acl.User``), their passwords, and the node's ACL LOG.

    Without configured users there is one, ``default``: ``on nopass ~* &* +@all``, or with
    ``requirepass`` that password instead of ``nopass``. A configured user named ``default``
    replaces it."""

    def __init__(self, requirepass: str = "", users: Iterable[User] = ()) -> None:
        self.users: dict[str, User] = {DEFAULT_USER: default_user(requirepass)}
        for user in users:
            self.users[user.name] = user
        # user name -> SHA-256 digests of its passwords (the rules hold them as hex)
        self._passwords: dict[str, tuple[bytes, ...]] = {
            name: tuple(bytes.fromhex(p) for p in user.passwords) for name, user in self.users.items()
        }
        self.log = AclLog()

    @property
    def default(self) -> User:
        return self.users[DEFAULT_USER]

    @property
    def default_user_has_password(self) -> bool:
        """False when connections are authenticated as ``default`` without AUTH (Redis's
        ``on nopass``): protected mode then refuses clients that are not on loopback."""
        default = self.default
        return not (default.enabled and default.nopass)

    @property
    def has_passwords(self) -> bool:
        """Whether AUTH <password> (the default user's) can mean anything: Redis refuses it
        while the default user is ``nopass``."""
        return not self.default.nopass

    def check(self, user: str, password: bytes) -> bool:
        """Whether `password` opens `user` (enabled; nopass or a matching hash), in constant
        time for the password."""
        candidate = _digest(password)
        account = self.users.get(user)
        expected = self._passwords.get(user, ())
        matched = False
        for digest in expected or (candidate,):  # same work for an unknown user: no timing hint
            matched |= hmac.compare_digest(candidate, digest)
        if account is None or not account.enabled:
            return False
        return account.nopass or (bool(expected) and matched)

    def authenticate(self, user: str, password: bytes) -> User | None:
        """The user `password` opens, or None."""
        return self.users[user] if self.check(user, password) else None


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
