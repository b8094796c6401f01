"""Sans-I/O RESP: parse client requests and server replies, encode both directions.

Requests are RESP2 (RESP3 did not change them). Replies encode for RESP2 by default or for
RESP3 (``encode_reply(value, protocol=3)``), which a connection selects with ``HELLO 3``:
nulls become ``_`` and ``Map`` values become RESP3 maps (flat arrays in RESP2).

Nothing here touches a socket or a clock. A parser is fed bytes and hands back complete
messages, in order, or says it needs more data; the caller owns the I/O (after h11)::

    parser = RequestParser()
    parser.feed(data)                       # whatever the socket produced
    while (command := parser.next()) is not None:
        ...                                 # command is a list of bytes arguments

* ``RequestParser`` (server side) reads what Redis's ``processMultibulkBuffer`` and
  ``processInlineBuffer`` read, with the same limits and the same error messages, so clients
  see the errors they would get from Redis. Limits are checked the moment a length header
  arrives: a declared length is never allocated or waited for before it has been accepted.
* ``ReplyParser`` (client side) turns replies into Python values; ``next()`` returns the
  ``NEED_DATA`` sentinel when it needs more bytes, since ``None`` is a legitimate reply.
* ``encode_command`` / ``encode_reply`` / ``encode_error`` produce wire bytes.

Every malformed input raises ``ProtocolError`` whose ``str()`` is the full Redis-style message
(``Protocol error: invalid bulk length``). A parser that raised is dead: every later
``feed()``/``next()`` raises the same error, because the server answers it and closes the
connection (resynchronising inside a corrupt stream is guesswork).

Buffering: fed chunks are kept as they come and joined only when the parser can make
progress with them (enough bytes for the awaited payload, or a line terminator), so a large
value trickling in small reads costs linear, not quadratic, time. Consumed bytes are
dropped at that join, not after every command. Pipelined small commands are parsed a
window at a time, mostly in C (``RequestParser._batch``); everything else takes an exact
byte-offset path that mirrors Redis's checks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, Final

from .errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_ARRAY_LEN",
    "DEFAULT_MAX_BULK_LEN",
    "DEFAULT_MAX_INLINE_LEN",
    "NEED_DATA",
    "OK",
    "PONG",
    "UNAUTHENTICATED_MAX_ARRAY_LEN",
    "UNAUTHENTICATED_MAX_BULK_LEN",
    "ErrorReply",
    "Map",
    "NullArray",
    "ReplyParser",
    "RequestParser",
    "SetReply",
    "SimpleString",
    "encode_command",
    "encode_error",
    "encode_reply",
    "split_args",
]

# Redis's defaults: proto-max-bulk-len, the pre-7.0 multibulk cap, PROTO_INLINE_MAX_SIZE.
DEFAULT_MAX_BULK_LEN: Final = 512 * 1024 * 1024
DEFAULT_MAX_ARRAY_LEN: Final = 1024 * 1024
DEFAULT_MAX_INLINE_LEN: Final = 64 * 1024
# Redis 7 caps what a client may declare before it has authenticated (authRequired()).
UNAUTHENTICATED_MAX_ARRAY_LEN: Final = 10
UNAUTHENTICATED_MAX_BULK_LEN: Final = 16 * 1024

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_CRLF: Final = b"\r\n"
_STAR: Final = 42  # b"*"


class _Sentinel:
    """A named singleton (``NEED_DATA``, ``NullArray``); compare with ``is``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:  # pickling/copying keeps the identity
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")
"""Returned by ``ReplyParser.next()`` when no complete reply is buffered yet."""

NullArray: Final = _Sentinel("NullArray")
"""Reply value encoded as the null array ``*-1`` (``None`` encodes as the null bulk ``$-1``)."""


class SimpleString(str):
    """A RESP simple string (``+OK``), kept apart from ``str`` so a reply says what it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SimpleString({str.__repr__(self)})"


OK: Final = SimpleString("OK")
PONG: Final = SimpleString("PONG")


class ErrorReply:
    """A RESP error reply (``-ERR unknown command``) as a value, not an exception.

    ``text`` is the whole line after ``-``; ``prefix`` is its first word (the error code,
    e.g. ``ERR``, ``WRONGTYPE``) and ``message`` the rest.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def from_parts(cls, prefix: str, message: str) -> ErrorReply:
        return cls(f"{prefix} {message}" if message else prefix)

    @property
    def prefix(self) -> str:
        return self.text.partition(" ")[0]

    @property
    def message(self) -> str:
        return self.text.partition(" ")[2]

    def __eq__(self, other: object) -> bool:
        return type(other) is ErrorReply and other.text == self.text

    def __hash__(self) -> int:
        return hash((ErrorReply, self.text))

    def __repr__(self) -> str:
        return f"ErrorReply({self.text!r})"

    def __str__(self) -> str:
        return self.text


def _protocol_error(what: str) -> ProtocolError:
    return ProtocolError(f"Protocol error: {what}")


# --------------------------------------------------------------------------- integers
_LL_RE: Final = re.compile(rb"0|-?[1-9][0-9]*")


def _string2ll(raw: bytes) -> int | None:
    """Redis's ``string2ll``: optional ``-``, digits, no ``+``/spaces/leading zeros, int64."""
    if len(raw) >= 21 or _LL_RE.fullmatch(raw) is None:  # 21 = LONG_STR_SIZE
        return None
    value = int(raw)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# Header line -> length for the canonical small headers: one dict lookup both validates the
# header and converts it, which is what keeps the pipelined path fast. Anything else (big,
# odd or invalid) takes the exact, slower path that mirrors Redis's checks and errors.
_FAST_BULK_MAX: Final = 4096
_FAST_COUNT_MAX: Final = 1024
# Bounds of the input window one batch of pipelined commands is split from.
_MIN_WINDOW: Final = 2048
_MAX_WINDOW: Final = 64 * 1024


@cache
def _bulk_headers(limit: int) -> dict[bytes, int]:
    return {b"$%d" % n: n for n in range(min(limit, _FAST_BULK_MAX) + 1)}


@cache
def _count_headers(limit: int) -> dict[bytes, int]:
    return {b"*%d" % n: n for n in range(1, min(limit, _FAST_COUNT_MAX) + 1)}


# --------------------------------------------------------------------------- buffering
class _Buffered:
    """Input buffering shared by both parsers.

    ``_buf[_pos:]`` is unparsed input; ``_more`` holds chunks fed since, not yet joined.
    A waiting parser records what would let it progress: ``_want`` unparsed bytes, and for
    an unterminated line ``_wait_byte``, the terminator (cleared when a chunk carries it).
    """

    __slots__ = ("_buf", "_error", "_max_line", "_more", "_more_len", "_pos", "_wait_byte", "_want")

    def __init__(self, max_line: int) -> None:
        self._buf = b""
        self._pos = 0
        self._more: list[bytes] = []
        self._more_len = 0
        self._want = 0
        self._wait_byte: bytes | None = None
        self._max_line = max_line
        self._error: ProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. Raises the parser's ``ProtocolError`` if it is dead."""
        if self._error is not None:
            raise self._error
        if not data:
            return
        data = bytes(data)
        if self._pos >= len(self._buf) and not self._more:
            self._buf = data  # everything before was consumed: nothing to copy
            self._pos = 0
            self._want = 0
            self._wait_byte = None
            return
        self._more.append(data)
        self._more_len += len(data)
        if self._wait_byte is not None and self._wait_byte in data:
            self._wait_byte = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a message (for buffer limits)."""
        return len(self._buf) - self._pos + self._more_len

    def _join(self) -> bool:
        """Merge ``_more`` into the buffer if that lets parsing progress; False to keep waiting."""
        unparsed = len(self._buf) - self._pos + self._more_len
        if unparsed < self._want or (self._wait_byte is not None and unparsed <= self._max_line):
            return False
        self._buf = b"".join([self._buf[self._pos :], *self._more])
        self._pos = 0
        self._more = []
        self._more_len = 0
        self._want = 0
        self._wait_byte = None
        return True

    def _await_line(self, end: int, start: int, found: int, terminator: bytes, too_long: str) -> None:
        """Wait for the rest of a line starting at ``start``; fail if it is already too long."""
        if found < 0 and end - start > self._max_line:
            raise self._fail(too_long)
        self._pos = start
        self._want = end - start + 1
        self._wait_byte = terminator if found < 0 else None

    def _await_bytes(self, start: int, needed: int) -> None:
        self._pos = start
        self._want = needed
        self._wait_byte = None

    def _fail(self, what: str) -> ProtocolError:
        self._error = _protocol_error(what)
        return self._error


# --------------------------------------------------------------------------- requests
class RequestParser(_Buffered):
    """Server side: bytes from a client -> commands (lists of bytes arguments).

    ``next()`` returns the next complete command, or ``None`` when more data is needed;
    drain with ``while (cmd := parser.next()) is not None``. Both RESP multibulk
    (``*N\\r\\n$len\\r\\n...``) and inline commands (``SET k "a b"\\n``) are accepted, exactly
    as Redis accepts them; empty inline lines and ``*0``/``*-1`` (any count <= 0) produce no
    command. Like Redis, the two bytes after a header's ``\\r`` and after a bulk payload are
    skipped without being checked.

    Limits (checked as soon as a header line is complete, before any payload is read):
    ``max_bulk_len`` per argument, ``max_array_len`` arguments per command,
    ``max_inline_len`` bytes for an inline line or a header line still lacking its ``\\r``.
    While ``authenticated`` is False the Redis 7 pre-AUTH caps apply on top (10 arguments,
    16 KiB per argument). A ``ProtocolError`` leaves the parser dead; close the connection.

    Deliberate differences from Redis 7: its multibulk cap is INT_MAX, ours is
    ``max_array_len`` (default 1Mi, the cap of Redis <= 6); and Redis's ``strchr`` stops at
    a NUL byte, so an inline line holding one never completes there, while here the line
    ends at its newline and the NUL ends its arguments (as ``sdssplitargs`` reads them).
    """

    __slots__ = (
        "_args",
        "_authenticated",
        "_batch_end",
        "_bulk_table",
        "_bulklen",
        "_count_table",
        "_held",
        "_left",
        "_max_array_len",
        "_max_bulk_len",
        "_ready",
        "_window",
    )

    def __init__(
        self,
        *,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        max_array_len: int = DEFAULT_MAX_ARRAY_LEN,
        max_inline_len: int = DEFAULT_MAX_INLINE_LEN,
        authenticated: bool = True,
    ) -> None:
        super().__init__(max_inline_len)
        self._max_bulk_len = max_bulk_len
        self._max_array_len = max_array_len
        self._args: list[bytes] | None = None  # arguments of the multibulk being received
        self._left = 0  # arguments still to come in it
        self._bulklen = -1  # length of the argument being received, -1 before its header
        self._held = 0  # payload bytes of the arguments received so far
        self._ready: list[list[bytes]] = []  # batch-parsed commands not yet returned, reversed
        self._batch_end = 0  # where the input continues after them
        self._window = _MAX_WINDOW  # bytes the next batch may split
        self._authenticated = True
        self.authenticated = authenticated

    max_bulk_len = property(lambda self: self._max_bulk_len, doc="Largest accepted argument.")
    max_array_len = property(lambda self: self._max_array_len, doc="Most arguments per command.")
    max_inline_len = property(lambda self: self._max_line, doc="Longest unterminated line.")

    @property
    def authenticated(self) -> bool:
        """False applies Redis's pre-AUTH limits; set it True once the client authenticates."""
        return self._authenticated

    @authenticated.setter
    def authenticated(self, value: bool) -> None:
        self._authenticated = bool(value)
        self._bulk_table = _bulk_headers(self._bulk_limit())
        self._count_table = _count_headers(self._count_limit())
        if self._ready:
            # Queued commands were checked against the old limits (a client de-authenticated
            # by RESET must not slip a 20-argument command through): parse them again.
            self._pos = self._batch_end - sum(len(encode_command(*cmd)) for cmd in self._ready)
            self._ready = []

    def _bulk_limit(self) -> int:
        if self._authenticated:
            return self._max_bulk_len
        return min(self._max_bulk_len, UNAUTHENTICATED_MAX_BULK_LEN)

    def _count_limit(self) -> int:
        if self._authenticated:
            return self._max_array_len
        return min(self._max_array_len, UNAUTHENTICATED_MAX_ARRAY_LEN)

    @property
    def buffered(self) -> int:
        """Bytes held for commands not yet returned: unparsed input plus the arguments
        already parsed of a command still arriving (for a query-buffer limit)."""
        return len(self._buf) - self._pos + self._more_len + self._held

    @property
    def in_frame(self) -> bool:
        """True while part of a command has arrived but not all of it (after draining)."""
        return self._args is not None or self.buffered > 0

    def next(self) -> list[bytes] | None:
        """The next complete command, or ``None`` until more data is fed."""
        ready = self._ready
        if ready:
            command = ready.pop()
            if not ready:
                self._pos = self._batch_end
            return command
        if self._error is not None:
            raise self._error
        if self._more and not self._join():
            return None
        buf = self._buf
        pos = self._pos
        end = len(buf)
        args = self._args
        while args is None:  # between commands
            if pos >= end:
                self._buf = b""  # all consumed: let the chunk go
                self._pos = 0
                return None
            if buf[pos] != _STAR:
                command = self._inline(buf, pos, end)
                if command:
                    return command
                if command is None:
                    return None
                pos = self._pos  # an empty line: skip it like Redis
                continue
            command = self._batch(buf, pos)
            if command is not None:
                return command
            newline = buf.find(b"\r", pos)
            if newline < 0 or newline + 1 >= end:
                self._await_line(end, pos, newline, b"\r", "too big mbulk count string")
                return None
            count = self._count_table.get(buf[pos:newline])
            if count is None:
                count = self._count_header(buf[pos + 1 : newline])
            pos = newline + 2
            if count > 0:
                args = []
                self._left = count
        return self._arguments(buf, pos, end, args)

    def _batch(self, buf: bytes, pos: int) -> list[bytes] | None:
        """Parse the run of small canonical multibulk commands starting at ``pos`` at once.

        Splitting a window of input at CRLF and checking each command with ``map`` keeps
        the per-argument work in C, which makes pipelined traffic about 1.5 times as fast
        as the byte-offset parser below. A command is taken only if its header lines are in
        the canonical tables (so within every limit) and each payload line is exactly its
        declared length: then the byte-offset parser would read the very same arguments.
        The first other command (odd, big, incomplete or malformed) ends the batch and is
        left to the exact parser, so errors still surface in stream order.
        """
        lines = buf[pos : pos + self._window].split(_CRLF)
        last = len(lines) - 1  # lines[last] has no CRLF after it (yet): never consumed
        counts = self._count_table
        bulk_len = self._bulk_table.get
        commands = []
        at = 0
        odd = False
        while at < last:
            count = counts.get(lines[at])
            if count is None:
                odd = True
                break
            stop = at + 1 + 2 * count
            if stop > last:
                break  # the command goes on past the window or the input
            args = lines[at + 2 : stop : 2]
            if list(map(bulk_len, lines[at + 1 : stop : 2])) != list(map(len, args)):
                odd = True
                break
            commands.append(args)
            at = stop
        consumed = sum(map(len, lines[:at])) + 2 * at
        if odd:
            # Size the next window after what this one yielded, so that a client alternating
            # odd and plain commands cannot make us split much more input than we consume.
            self._window = min(max(2 * consumed, _MIN_WINDOW), _MAX_WINDOW)
        else:
            self._window = min(2 * self._window, _MAX_WINDOW)
        if not commands:
            return None
        commands.reverse()
        first = commands.pop()
        if commands:
            self._ready = commands
            self._batch_end = pos + consumed
            self._pos = pos  # the queued commands still count as buffered
        else:
            self._pos = pos + consumed
        return first

    def _arguments(self, buf: bytes, pos: int, end: int, args: list[bytes]) -> list[bytes] | None:
        # Byte-offset parsing, resumable between feeds: per argument one find, two slices
        # and one dict lookup; headers outside the tables get Redis's exact checks.
        left = self._left
        bulklen = self._bulklen
        held = self._held
        table = self._bulk_table
        append = args.append
        find = buf.find
        while left:
            if bulklen < 0:
                newline = find(b"\r", pos)
                if newline < 0 or newline + 1 >= end:
                    self._args, self._left, self._bulklen, self._held = args, left, -1, held
                    self._await_line(end, pos, newline, b"\r", "too big bulk count string")
                    return None
                bulklen = table.get(buf[pos:newline])
                if bulklen is None:
                    bulklen = self._bulk_header(buf, pos, newline)
                pos = newline + 2
            stop = pos + bulklen
            if stop + 2 > end:
                self._args, self._left, self._bulklen, self._held = args, left, bulklen, held
                self._await_bytes(pos, stop + 2 - pos)
                return None
            append(buf[pos:stop])
            held += bulklen
            pos = stop + 2
            bulklen = -1
            left -= 1
        self._args, self._left, self._bulklen, self._held = None, 0, -1, 0
        self._pos = pos
        return args

    def _count_header(self, digits: bytes) -> int:
        count = _string2ll(digits)
        if count is None or count > self._max_array_len:
            raise self._fail("invalid multibulk length")
        if count > UNAUTHENTICATED_MAX_ARRAY_LEN and not self._authenticated:
            raise self._fail("unauthenticated multibulk length")
        return count

    def _bulk_header(self, buf: bytes, start: int, newline: int) -> int:
        if buf[start] != 36:  # b"$"
            raise self._fail(f"expected '$', got '{chr(buf[start])}'")
        length = _string2ll(buf[start + 1 : newline])
        if length is None or length < 0 or length > self._max_bulk_len:
            raise self._fail("invalid bulk length")
        if length > UNAUTHENTICATED_MAX_BULK_LEN and not self._authenticated:
            raise self._fail("unauthenticated bulk length")
        return length

    def _inline(self, buf: bytes, pos: int, end: int) -> list[bytes] | None:
        """One inline line -> its arguments ([] for a blank line), or None to wait."""
        newline = buf.find(b"\n", pos)
        if newline < 0:
            self._await_line(end, pos, newline, b"\n", "too big inline request")
            return None
        stop = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline  # "\r\n" or "\n"
        line = buf[pos:stop]
        self._pos = newline + 1
        try:
            return split_args(line)
        except ProtocolError as error:
            self._error = error
            raise


# --------------------------------------------------------------------------- inline
_SPACE: Final = frozenset(b" \t\n\r\x0b\x0c")  # C isspace()
_TOKEN_END: Final = frozenset(b" \t\n\r")  # what ends an unquoted token in sdssplitargs
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
# Lines free of these split exactly like bytes.split() (which also splits on \v and \f).
_NEEDS_SLOW_SPLIT: Final = re.compile(rb"[\"'\x00\x0b\x0c]")


def split_args(line: bytes) -> list[bytes]:
    """Split an inline command line like Redis's ``sdssplitargs``.

    Blanks separate arguments; ``"..."`` understands ``\\n \\r \\t \\b \\a \\xHH`` and
    ``\\<any>``; ``'...'`` only ``\\'``; a closing quote must be followed by a blank or the
    end; a NUL byte ends the line (C string). Raises ``ProtocolError`` on unbalanced quotes.
    """
    if _NEEDS_SLOW_SPLIT.search(line) is None:
        return line.split()
    line = line.split(b"\x00", 1)[0]
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        token = bytearray()
        while i < n and line[i] not in _TOKEN_END:
            read_quoted = _QUOTED_READERS.get(line[i])
            if read_quoted is not None:
                i = read_quoted(line, i + 1, token)
                break  # a quoted part always ends its token
            token.append(line[i])
            i += 1
        args.append(bytes(token))


def _unbalanced() -> ProtocolError:
    return _protocol_error("unbalanced quotes in request")


def _closing_quote(line: bytes, i: int) -> int:
    """Index after a closing quote at ``i``, which must be followed by a blank or the end."""
    if i + 1 < len(line) and line[i + 1] not in _SPACE:
        raise _unbalanced()
    return i + 1


def _read_double_quoted(line: bytes, i: int, token: bytearray) -> int:
    n = len(line)
    while i < n:
        c = line[i]
        if c == 92 and i + 1 < n:  # backslash escape
            nxt = line[i + 1]
            if nxt == 120 and i + 3 < n and line[i + 2] in _HEX and line[i + 3] in _HEX:  # \xHH
                token.append(int(line[i + 2 : i + 4], 16))
                i += 4
            else:
                token.append(_ESCAPES.get(nxt, nxt))
                i += 2
        elif c == 34:
            return _closing_quote(line, i)
        else:
            token.append(c)
            i += 1
    raise _unbalanced()


def _read_single_quoted(line: bytes, i: int, token: bytearray) -> int:
    n = len(line)
    while i < n:
        c = line[i]
        if c == 92 and i + 1 < n and line[i + 1] == 39:  # \'
            token.append(39)
            i += 2
        elif c == 39:
            return _closing_quote(line, i)
        else:
            token.append(c)
            i += 1
    raise _unbalanced()


# Opening quote -> reader of the quoted part (returns the index after the closing quote).
_QUOTED_READERS: Final[dict[int, Callable[[bytes, int, bytearray], int]]] = {
    ord('"'): _read_double_quoted,
    ord("'"): _read_single_quoted,
}


# --------------------------------------------------------------------------- replies
def _decode(line: bytes) -> str:
    # surrogateescape: any byte sequence survives decode -> encode unchanged.
    return line.decode("utf-8", "surrogateescape")


def _integer(line: bytes) -> int:
    value = _string2ll(line)
    if value is None:
        raise _protocol_error("invalid integer reply")
    return value


# Real replies nest a few levels (XRANGE, COMMAND INFO); a bound keeps a hostile server
# from making ``*1\r\n`` * N cost far more memory than it sent.
_MAX_REPLY_DEPTH: Final = 64

# Type byte -> decoder of a one-line reply ($ and * need more than their line).
_LINE_REPLIES: Final[dict[int, Callable[[bytes], Any]]] = {
    ord("+"): lambda line: SimpleString(_decode(line)),
    ord("-"): lambda line: ErrorReply(_decode(line)),
    ord(":"): _integer,
}


class ReplyParser(_Buffered):
    """Client side: bytes from a server -> reply values.

    ``+`` -> ``SimpleString``, ``-`` -> ``ErrorReply`` (returned, not raised), ``:`` -> int,
    ``$`` -> bytes (``$-1`` -> None), ``*`` -> list, nested (``*-1`` -> None). ``next()``
    returns ``NEED_DATA`` until a whole reply is buffered. Limits: ``max_bulk_len`` per bulk
    string (and per ``+``/``-`` line), ``max_array_len`` elements per array, arrays nested
    at most 64 deep. A declared length is never pre-allocated. ``ProtocolError`` leaves the
    parser dead.
    """

    __slots__ = ("_bulklen", "_max_array_len", "_max_bulk_len", "_stack")

    def __init__(
        self,
        *,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        max_array_len: int = 2**31 - 1,  # Redis's own ceiling on an array's length
    ) -> None:
        super().__init__(max_bulk_len)
        self._max_bulk_len = max_bulk_len
        self._max_array_len = max_array_len
        self._stack: list[tuple[list[Any], int]] = []  # arrays being filled, innermost last
        self._bulklen = -1  # payload length of a bulk whose header is consumed

    def next(self) -> Any:
        """The next complete reply, or ``NEED_DATA``."""
        if self._error is not None:
            raise self._error
        if self._more and not self._join():
            return NEED_DATA
        buf = self._buf
        pos = self._pos
        end = len(buf)
        stack = self._stack
        while True:
            if self._bulklen >= 0:
                stop = pos + self._bulklen
                if stop + 2 > end:
                    self._await_bytes(pos, stop + 2 - pos)
                    return NEED_DATA
                if buf[stop : stop + 2] != _CRLF:
                    raise self._fail("bulk string not terminated by CRLF")
                value: Any = buf[pos:stop]
                pos = stop + 2
                self._bulklen = -1
            else:
                newline = buf.find(_CRLF, pos)
                if newline < 0:
                    self._await_line(end, pos, newline, b"\n", "too big reply line")
                    return NEED_DATA
                kind = buf[pos]
                line = buf[pos + 1 : newline]
                pos = newline + 2
                if kind == 36:  # $
                    self._bulklen = self._length(line, self._max_bulk_len, "invalid bulk length")
                    if self._bulklen >= 0:
                        continue
                    value = None
                elif kind == 42:  # *
                    count = self._length(line, self._max_array_len, "invalid multibulk length")
                    if count > 0:
                        if len(stack) >= _MAX_REPLY_DEPTH:
                            raise self._fail("too deeply nested reply")
                        stack.append(([], count))
                        continue
                    value = None if count < 0 else []
                else:
                    decode = _LINE_REPLIES.get(kind)
                    if decode is None:
                        raise self._fail(f"got {chr(kind)!r} as reply type byte")
                    try:
                        value = decode(line)
                    except ProtocolError as error:
                        self._error = error
                        raise
            # Hand the value to the innermost open array; close the arrays it completes.
            while stack:
                items, count = stack[-1]
                items.append(value)
                if len(items) < count:
                    break
                stack.pop()
                value = items
            else:
                self._pos = pos
                return value

    def _length(self, line: bytes, limit: int, error: str) -> int:
        length = _string2ll(line)
        if length is None or length < -1 or length > limit:
            raise self._fail(error)
        return length

    @property
    def in_frame(self) -> bool:
        """True while part of a reply has arrived but not all of it (after draining)."""
        return bool(self._stack) or self._bulklen >= 0 or self.buffered > 0

    # The "send N requests, read N replies" loop, written once for every caller (client,
    # CLI, tests, benchmarks). The caller supplies the I/O as `read`, which returns the next
    # chunk of bytes (b"" when the peer closed); nothing here touches a socket.
    def take(self, count: int) -> list[Any]:
        """Up to `count` replies that are already complete (fewer if the rest has not arrived)."""
        replies: list[Any] = []
        while len(replies) < count and (reply := self.next()) is not NEED_DATA:
            replies.append(reply)
        return replies

    def read_replies(self, count: int, read: Callable[[], bytes]) -> list[Any]:
        """The next `count` replies, calling `read()` for bytes while they are incomplete.
        Raises ``ConnectionResetError`` if `read()` returns b"" (the peer closed)."""
        replies = self.take(count)
        while len(replies) < count:
            self._feed_read(read())
            replies += self.take(count - len(replies))
        return replies

    async def read_replies_async(self, count: int, read: Callable[[], Awaitable[bytes]]) -> list[Any]:
        """`read_replies` with an awaitable `read` (e.g. ``lambda: reader.read(65536)``)."""
        replies = self.take(count)
        while len(replies) < count:
            self._feed_read(await read())
            replies += self.take(count - len(replies))
        return replies

    def _feed_read(self, data: bytes) -> None:
        if not data:
            raise ConnectionResetError("connection closed by the server")
        self.feed(data)


# --------------------------------------------------------------------------- encoders
_BULK_HEADERS: Final = [b"$%d\r\n" % n for n in range(1024)]
_NULL_BULK: Final = b"$-1\r\n"
_NULL_ARRAY: Final = b"*-1\r\n"


def _bulk_header(length: int) -> bytes:
    return _BULK_HEADERS[length] if length < 1024 else b"$%d\r\n" % length


def _reject(value: Any) -> bytes:
    raise TypeError(f"cannot encode {type(value).__name__} {value!r} as a RESP value")


# Command argument type -> its bytes (as redis-py does: numbers as decimal text).
_ARG_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    bytes: lambda v: v,
    str: lambda v: v.encode(),
    int: lambda v: b"%d" % v,
    float: lambda v: repr(v).encode(),
    bytearray: bytes,
    memoryview: bytes,
    bool: _reject,  # True/False are ambiguous (1 or "True"?): say which
}


def _lookup(table: dict[type, Any], value: Any) -> Any:
    """The table entry for ``type(value)``, or for its nearest listed base class."""
    for cls in type(value).__mro__:
        entry = table.get(cls)
        if entry is not None:
            return entry
    return None


def encode_command(*args: bytes | str | float) -> bytes:
    """A client command as a RESP array of bulk strings (str as UTF-8, numbers as text)."""
    if not args:
        raise ValueError("a command needs at least one argument")
    pieces = [b"*%d\r\n" % len(args)]
    for arg in args:
        encode = _ARG_ENCODERS.get(type(arg)) or _lookup(_ARG_ENCODERS, arg) or _reject
        data = encode(arg)
        pieces += (_bulk_header(len(data)), data, _CRLF)
    return b"".join(pieces)


def _line(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _no_newlines(text: str) -> str:
    # Like Redis's addReplyErrorFormat: a reply line must stay one line.
    return text.replace("\r", " ").replace("\n", " ")


def _encode_simple(value: SimpleString, out: list[bytes]) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a simple string cannot contain CR or LF: {value!r}")
    out += (b"+", _line(value), _CRLF)


def _encode_error(value: ErrorReply, out: list[bytes]) -> None:
    out += (b"-", _line(_no_newlines(value.text)), _CRLF)


def _encode_int(value: int, out: list[bytes]) -> None:
    out.append(b":%d\r\n" % value)


def _encode_bulk(value: bytes | bytearray, out: list[bytes]) -> None:
    out += (_bulk_header(len(value)), value, _CRLF)


def _encode_array(value: list[Any] | tuple[Any, ...], out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(value))
    for item in value:
        if type(item) is bytes:  # the common case (MGET, KEYS) without a table lookup
            out += (_bulk_header(len(item)), item, _CRLF)
        else:
            _encoder(item)(item, out)


def _encode_null(value: None, out: list[bytes]) -> None:
    out.append(_NULL_BULK)


def _encode_sentinel(value: _Sentinel, out: list[bytes]) -> None:
    if value is not NullArray:  # NEED_DATA is a parser result, not a reply
        _reject(value)
    out.append(_NULL_ARRAY)


def _encode_rejected(value: Any, out: list[bytes]) -> None:
    if type(value) is bool:
        raise TypeError("cannot encode bool as a RESP reply: send OK or an int explicitly")
    _reject(value)


class Map(dict):  # type: ignore[type-arg]
    """A map reply (HELLO, CONFIG GET, COMMAND DOCS): RESP3 ``%``, RESP2 a flat array."""


class Double(bytes):
    """A floating-point reply already formatted (a sorted-set score): a bulk string in RESP2,
    RESP3's double (``,1.5``) in RESP3, as Redis's addReplyDouble."""


class Pairs(list):  # type: ignore[type-arg]
    """A flat ``[a1, b1, a2, b2, ...]`` reply of pairs (``WITHSCORES``, ``WITHVALUES``, a
    counted ZPOPMIN): that flat array in RESP2, an array of 2-element arrays in RESP3."""


class SetReply(list):  # type: ignore[type-arg]
    """A set reply (CLIENT TRACKINGINFO's flags): RESP3 ``~``, RESP2 an array, as Redis's
    addReplySetLen."""


def _encode_double3(value: Double, out: list[bytes]) -> None:
    out += (b",", bytes(value), _CRLF)


def _encode_pairs3(value: Pairs, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % (len(value) // 2))
    for i in range(0, len(value) - 1, 2):
        _encode_array3(value[i : i + 2], out)


def _encode_map2(value: Map, out: list[bytes]) -> None:
    _encode_array([part for pair in value.items() for part in pair], out)


def _aggregate3(marker: bytes) -> Callable[[Any, list[bytes]], None]:
    """The encoder of a RESP3 array (``*``) or set (``~``): a count, then each element."""
    header = marker + b"%d\r\n"

    def encode(value: Any, out: list[bytes]) -> None:
        out.append(header % len(value))
        for item in value:
            if type(item) is bytes:
                out += (_bulk_header(len(item)), item, _CRLF)
            else:
                _encoder3(item)(item, out)  # (a Double is a bytes subclass: looked up by type)

    return encode


_encode_array3 = _aggregate3(b"*")
_encode_set3 = _aggregate3(b"~")


def _encode_map3(value: Map, out: list[bytes]) -> None:
    out.append(b"%%%d\r\n" % len(value))
    for key, item in value.items():
        _encoder3(key)(key, out)
        _encoder3(item)(item, out)


def _encode_null3(value: Any, out: list[bytes]) -> None:
    if value is not None and value is not NullArray:
        _reject(value)
    out.append(b"_\r\n")


# Reply type -> encoder. Plain str is deliberately absent: say SimpleString or bytes.
_REPLY_ENCODERS: Final[dict[type, Callable[[Any, list[bytes]], None]]] = {
    bytes: _encode_bulk,
    bytearray: _encode_bulk,
    int: _encode_int,
    bool: _encode_rejected,
    SimpleString: _encode_simple,
    ErrorReply: _encode_error,
    list: _encode_array,
    tuple: _encode_array,
    type(None): _encode_null,
    _Sentinel: _encode_sentinel,
    Map: _encode_map2,
}
# RESP3 differs only where RESP3 has its own types.
_REPLY_ENCODERS3: Final[dict[type, Callable[[Any, list[bytes]], None]]] = {
    **_REPLY_ENCODERS,
    list: _encode_array3,
    tuple: _encode_array3,
    type(None): _encode_null3,
    _Sentinel: _encode_null3,
    Map: _encode_map3,
    Double: _encode_double3,
    Pairs: _encode_pairs3,
    SetReply: _encode_set3,
}


def _encoder(value: Any) -> Callable[[Any, list[bytes]], None]:
    return _REPLY_ENCODERS.get(type(value)) or _lookup(_REPLY_ENCODERS, value) or _encode_rejected


def _encoder3(value: Any) -> Callable[[Any, list[bytes]], None]:
    return _REPLY_ENCODERS3.get(type(value)) or _lookup(_REPLY_ENCODERS3, value) or _encode_rejected


def encode_reply(value: Any, protocol: int = 2) -> bytes:
    """A server reply: ``SimpleString`` -> ``+``, ``ErrorReply`` -> ``-``, int -> ``:``,
    bytes -> bulk, None -> ``$-1`` (RESP3 ``_``), list/tuple -> array (recursively),
    ``Map`` -> flat array (RESP3 ``%``), ``NullArray`` -> ``*-1`` (RESP3 ``_``). Anything else
    (bool, str, float, ...) raises TypeError."""
    if type(value) is bytes:
        return _bulk_header(len(value)) + value + _CRLF
    out: list[bytes] = []
    (_encoder3 if protocol == 3 else _encoder)(value)(value, out)
    return b"".join(out)


def encode_error(prefix: str, message: str) -> bytes:
    """An error reply line ``-PREFIX message``; CR/LF in the message become spaces."""
    if not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"an error prefix is one word, got {prefix!r}")
    out: list[bytes] = []
    _encode_error(ErrorReply.from_parts(prefix, message), out)
    return b"".join(out)
