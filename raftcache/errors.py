"""One exception tree for raftcache, and the RESP error prefix of each class.

::

    RaftCacheError
    ├── ConfigError                bad config file or option (names the file, key and problem)
    ├── CommandError               the command was rejected; nothing was applied
    │   ├── SyntaxError_           malformed arguments ("syntax error")
    │   ├── NotIntegerError        "value is not an integer or out of range"
    │   ├── IntegerOverflowError   "increment or decrement would overflow"
    │   ├── InvalidExpireError     "invalid expire time in '<cmd>' command"
    │   ├── ValueTooLargeError     value or key above the configured limit
    │   ├── SessionExpiredError    a retried write whose client session was forgotten
    │   ├── WatchError             a transaction aborted: a WATCHed key changed (EXEC's nil)
    │   ├── ExecAbortError         EXECABORT: a command was refused while queuing
    │   ├── WatchCompactedError    RAFTCACHE WATCH FROM a seq older than the node's history
    │   │                          ("COMPACTED ..."): re-read, then watch from a newer seq
    │   ├── NoScriptError          EVALSHA of a script the cluster does not hold ("NOSCRIPT ...")
    │   ├── ScriptError            a script's error reply, with the prefix the script chose
    │   └── WrongPassError, NoAuthError, NoProtoError   connection handshake refusals
    ├── ClusterError               the cluster could not settle the command
    │   ├── NotAppliedError        definitely NOT applied: safe to retry
    │   │   ├── NoLeaderError      no leader / no quorum reachable in time
    │   │   ├── OverloadedError    proposal queue full
    │   │   └── NodeClosedError    this node is closed or stopping
    │   └── OutcomeUnknownError    may or may not have been applied (timeout, leader change)
    ├── StorageError               local disk failure (disk full, fsync error): the node stops
    ├── BindError                  an address this node must listen on is unavailable
    ├── ConsensusBackendError      the installed Raft library lacks what raftcache relies on
    └── ProtocolError              malformed RESP from a peer ("Protocol error: ..."); the
                                   server answers it and closes the connection

`CommandError`s come out of the deterministic state machine (or input validation before
proposing), so every replica produces the same one; they are stored in the exactly-once
session table and therefore have a stable ``code`` that survives snapshots.
"""

from __future__ import annotations

import re

__all__ = [
    "BindError",
    "ClusterError",
    "CommandError",
    "ConfigError",
    "ConsensusBackendError",
    "IntegerOverflowError",
    "InvalidExpireError",
    "NoAuthError",
    "NoLeaderError",
    "NoProtoError",
    "NoScriptError",
    "NodeClosedError",
    "NotAppliedError",
    "NotIntegerError",
    "OutcomeUnknownError",
    "OverloadedError",
    "ProtocolError",
    "RaftCacheError",
    "ScriptError",
    "SessionExpiredError",
    "StorageError",
    "SyntaxError_",
    "ValueTooLargeError",
    "WatchCompactedError",
    "WatchError",
    "ExecAbortError",
    "WrongPassError",
    "command_error_from_code",
    "error_from_resp",
    "resp_prefix",
]


class RaftCacheError(Exception):
    """Base class of every error raftcache raises on purpose."""


class ConfigError(RaftCacheError):
    """A configuration file or option is invalid."""

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class CommandError(RaftCacheError):
    """The command was rejected by validation or by the state machine; nothing changed."""

    code = "ERR"
    default_message = "error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.message == self.message  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.message))

    def __reduce__(self):  # keep pickling (e.g. multiprocessing in tests) working with the kw-less init
        return (type(self), (self.message,))


class SyntaxError_(CommandError):  # noqa: N801 - avoid shadowing the builtin
    code = "SYNTAX"
    default_message = "syntax error"


class NotIntegerError(CommandError):
    code = "NOTINT"
    default_message = "value is not an integer or out of range"


class IntegerOverflowError(CommandError):
    code = "OVERFLOW"
    default_message = "increment or decrement would overflow"


class InvalidExpireError(CommandError):
    code = "BADEXPIRE"
    default_message = "invalid expire time"


class ValueTooLargeError(CommandError):
    code = "TOOBIG"
    default_message = "string exceeds maximum allowed size"


class WrongTypeError(CommandError):
    code = "WRONGTYPE"
    default_message = "Operation against a key holding the wrong kind of value"


class OutOfMemoryError(CommandError):
    """maxmemory is reached and the policy could not free enough (noeviction, or nothing to evict)."""

    code = "OOM"
    default_message = "command not allowed when used memory > 'maxmemory'."


class NoPermissionError(CommandError):
    """An ACL user may not run this command or touch these keys (``-NOPERM``)."""

    code = "NOPERM"
    default_message = "this user has no permissions to run this command"


class SessionExpiredError(CommandError):
    code = "SESSION"
    default_message = "client session expired; the outcome of the retried write is unknown"


class WatchError(CommandError):
    """A transaction was not applied because a watched key changed (retry it)."""

    code = "WATCH"
    default_message = "Watched variable changed."


class WatchCompactedError(CommandError):
    """A watch cannot resume without a gap: the events after the requested seq have left the
    node's bounded history (etcd's "required revision has been compacted"). Re-read the
    keys, then watch from ``oldest`` or later (or from now)."""

    code = "COMPACTED"
    default_message = "required seq has been compacted"

    def __init__(self, message: str | None = None, *, oldest: int | None = None) -> None:
        super().__init__(message)
        if oldest is None and message:  # rebuilt from a server's reply: the number is in the text
            found = re.search(r"oldest available (\d+)", message)
            oldest = int(found.group(1)) if found else None
        self.oldest = oldest


class ExecAbortError(CommandError):
    """EXEC refused the whole transaction: a command was rejected while queuing."""

    code = "EXECABORT"
    default_message = "Transaction discarded because of previous errors."


class NoScriptError(CommandError):
    code = "NOSCRIPT"
    default_message = "No matching script. Please use EVAL."


class ScriptError(CommandError):
    """An error a script answered (``redis.error_reply``, a failed ``redis.call``, a Lua
    error): ``text`` is the whole line after ``-``, its first word the RESP prefix."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text or "ERR error"
        prefix, _, rest = self.text.partition(" ")
        self.prefix = prefix or "ERR"
        self.code = "SCRIPT:" + self.prefix  # stored results keep the prefix (command_error_from_code)
        super().__init__(rest)

    def __reduce__(self):
        return (type(self), (self.text,))


class WrongPassError(CommandError):
    code = "WRONGPASS"
    default_message = "invalid username-password pair or user is disabled."


class NoAuthError(CommandError):
    code = "NOAUTH"
    default_message = "Authentication required."


class NoProtoError(CommandError):
    code = "NOPROTO"
    default_message = "sorry, this protocol version is not supported."


class ClusterError(RaftCacheError):
    """The cluster could not settle the command."""


class NotAppliedError(ClusterError):
    """The command was definitely not applied; retrying it is safe."""


class NoLeaderError(NotAppliedError):
    """No leader (or no quorum) could be reached before the deadline."""


class OverloadedError(NotAppliedError):
    """The node's proposal queue is full."""


class NodeClosedError(NotAppliedError):
    """The node is closed or stopping."""


class OutcomeUnknownError(ClusterError):
    """The command may or may not have been applied (timeout after proposing, leader change)."""


class StorageError(RaftCacheError):
    """The node's disk failed it (disk full, fsync error); the node stops to stay safe."""


class BindError(RaftCacheError):
    """An address this node must listen on is unavailable (in use, not local)."""


class ConsensusBackendError(RaftCacheError):
    """The installed Raft library (pysyncobj) lacks an attribute, method or message type the
    adapter relies on: another version than the pinned one. Raised when a node is built."""


class ProtocolError(RaftCacheError):
    """Malformed RESP input; ``str(error)`` is the full Redis-style message
    (``Protocol error: invalid bulk length``)."""


_COMMAND_ERRORS: dict[str, type[CommandError]] = {
    cls.code: cls
    for cls in (
        CommandError,
        SyntaxError_,
        NotIntegerError,
        IntegerOverflowError,
        InvalidExpireError,
        ValueTooLargeError,
        SessionExpiredError,
        NoScriptError,
        WrongTypeError,
        OutOfMemoryError,
    )
}


def command_error_from_code(code: str, message: str) -> CommandError:
    """Rebuild a stored state-machine error (e.g. from a snapshot's session table)."""
    if code.startswith("SCRIPT:"):
        return ScriptError(f"{code[7:]} {message}" if message else code[7:])
    return _COMMAND_ERRORS.get(code, CommandError)(message)


# RESP error prefix per class (first match along the MRO wins). Clients such as redis-py map
# CLUSTERDOWN / TRYAGAIN to their own exception classes, so we reuse those words.
_RESP_PREFIXES: dict[type[BaseException], str] = {
    CommandError: "ERR",
    WrongPassError: "WRONGPASS",
    NoAuthError: "NOAUTH",
    NoProtoError: "NOPROTO",
    ExecAbortError: "EXECABORT",
    NoScriptError: "NOSCRIPT",
    WrongTypeError: "WRONGTYPE",
    OutOfMemoryError: "OOM",
    NoPermissionError: "NOPERM",
    WatchCompactedError: "COMPACTED",
    NoLeaderError: "CLUSTERDOWN",
    OverloadedError: "TRYAGAIN",
    NodeClosedError: "CLUSTERDOWN",
    OutcomeUnknownError: "UNKNOWN",
    StorageError: "MISCONF",
    ConfigError: "ERR",
    ProtocolError: "ERR",
}


def resp_prefix(error: BaseException) -> str:
    """The RESP error word (``ERR``, ``CLUSTERDOWN``, ...) for an exception."""
    if isinstance(error, ScriptError):
        return error.prefix
    for cls in type(error).__mro__:
        prefix = _RESP_PREFIXES.get(cls)
        if prefix is not None:
            return prefix
    return "ERR"


# The reverse direction, for clients: a RESP error line back to our exception classes.
_FROM_RESP_PREFIX: dict[str, type[RaftCacheError]] = {
    "CLUSTERDOWN": NoLeaderError,
    "TRYAGAIN": OverloadedError,
    "UNKNOWN": OutcomeUnknownError,
    "MISCONF": StorageError,
    "WRONGPASS": WrongPassError,
    "NOAUTH": NoAuthError,
    "NOPROTO": NoProtoError,
    "EXECABORT": ExecAbortError,
    "NOSCRIPT": NoScriptError,
    "WRONGTYPE": WrongTypeError,
    "OOM": OutOfMemoryError,
    "NOPERM": NoPermissionError,
    "COMPACTED": WatchCompactedError,
}
_FROM_ERR_MESSAGE: tuple[tuple[str, type[CommandError]], ...] = (
    (NotIntegerError.default_message, NotIntegerError),
    (IntegerOverflowError.default_message, IntegerOverflowError),
    (SyntaxError_.default_message, SyntaxError_),
    ("invalid expire time", InvalidExpireError),
    ("string exceeds maximum allowed size", ValueTooLargeError),
    ("key of ", ValueTooLargeError),
    ("client session expired", SessionExpiredError),
    ("duplicate of an already answered request", SessionExpiredError),
)


def error_from_resp(prefix: str, message: str) -> RaftCacheError:
    """Rebuild the exception a server error reply stands for (``-CLUSTERDOWN ...`` ->
    NoLeaderError, ``-ERR value is not an integer ...`` -> NotIntegerError, ...)."""
    cls = _FROM_RESP_PREFIX.get(prefix)
    if cls is not None:
        return cls(message) if issubclass(cls, CommandError) or message else cls()
    if prefix == "ERR":
        for start, command_cls in _FROM_ERR_MESSAGE:
            if message.startswith(start):
                return command_cls(message)
        return CommandError(message)
    return CommandError(f"{prefix} {message}".strip())
