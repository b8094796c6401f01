"""raftcache.resp: RESP parsing and encoding, tested the h11 way.

Every wire example is fed whole, one byte at a time and in random splits, and followed by
a partial next frame or by garbage; the results must be identical in every case. Error
messages are compared with Redis's exact text.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcache.errors import ProtocolError
from raftcache.resp import (
    NEED_DATA,
    OK,
    PONG,
    ErrorReply,
    NullArray,
    ReplyParser,
    RequestParser,
    SetReply,
    SimpleString,
    encode_command,
    encode_error,
    encode_reply,
    split_args,
)

SETTINGS = settings(max_examples=300, deadline=None)


# ------------------------------------------------------------------------------ helpers
def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


SPLITTERS = [whole, bytewise]


def random_chunks(data: bytes, draw: st.DrawFn) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=24))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def run_requests(chunks: Iterable[bytes], parser: RequestParser | None = None) -> tuple[list[list[bytes]], str | None]:
    """Feed chunks, draining after each as a server does; (commands, error message)."""
    parser = parser or RequestParser()
    commands: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (command := parser.next()) is not None:
                commands.append(command)
    except ProtocolError as error:
        return commands, str(error)
    return commands, None


def run_replies(chunks: Iterable[bytes], parser: ReplyParser | None = None) -> tuple[list[Any], str | None]:
    parser = parser or ReplyParser()
    replies: list[Any] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.next()) is not NEED_DATA:
                replies.append(reply)
    except ProtocolError as error:
        return replies, str(error)
    return replies, None


def inline(*args: bytes) -> bytes:
    """An inline command line that can carry any bytes: each argument double-quoted, hex-escaped."""
    return b" ".join(b'"' + b"".join(b"\\x%02x" % c for c in arg) + b'"' for arg in args) + b"\r\n"


# ------------------------------------------------------------------------------ requests
REQUEST_EXAMPLES: list[tuple[bytes, list[list[bytes]]]] = [
    (b"*1\r\n$4\r\nPING\r\n", [[b"PING"]]),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", [[b"SET", b"k", b"hello"]]),
    (b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", [[b"GET", b""]]),
    (b"*2\r\n$3\r\nSET\r\n$6\r\na\r\nb\x00c\r\n", [[b"SET", b"a\r\nb\x00c"]]),
    (b"*1\r\n$5000\r\n" + b"v" * 5000 + b"\r\n", [[b"v" * 5000]]),  # beyond the fast tables
    (b"*0\r\n*-1\r\n*-10\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]]),  # counts <= 0 are skipped
    (b"PING\r\n", [[b"PING"]]),
    (b"PING\n", [[b"PING"]]),  # a lone \n ends an inline line, as in Redis
    (b"\r\n\n   \r\nPING\r\n", [[b"PING"]]),  # blank lines are skipped
    (b'SET k "a b"\r\n', [[b"SET", b"k", b"a b"]]),
    (b"SET k 'it\\'s'\r\n", [[b"SET", b"k", b"it's"]]),
    (b'SET k ""\r\n', [[b"SET", b"k", b""]]),  # Redis 7 keeps empty inline arguments
    (b"  GET\t k  \r\n", [[b"GET", b"k"]]),
    (b"a\rb\r\n", [[b"a", b"b"]]),  # an inner \r separates like a blank
    (b"$3\r\n", [[b"$3"]]),  # anything not starting with '*' is inline
    (
        b"*2\r\n$4\r\nECHO\r\n$1\r\nx\r\nECHO y\n*1\r\n$4\r\nPING\r\n",
        [[b"ECHO", b"x"], [b"ECHO", b"y"], [b"PING"]],
    ),
]

PARTIAL_NEXT = b"*2\r\n$3\r\nGET\r\n$3\r\nke"


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("wire", "expected"), REQUEST_EXAMPLES)
def test_request_examples(wire: bytes, expected: list[list[bytes]], splitter) -> None:
    parser = RequestParser()
    assert run_requests(splitter(wire), parser) == (expected, None)
    assert parser.buffered == 0
    assert parser.in_frame is False


@pytest.mark.parametrize(("wire", "expected"), REQUEST_EXAMPLES)
def test_request_examples_then_partial_frame(wire: bytes, expected: list[list[bytes]]) -> None:
    parser = RequestParser()
    assert run_requests(bytewise(wire + PARTIAL_NEXT), parser) == (expected, None)
    assert parser.in_frame is True
    parser.feed(b"y\r\n")
    assert parser.next() == [b"GET", b"key"]
    assert parser.next() is None
    assert parser.in_frame is False


@pytest.mark.parametrize(("wire", "expected"), REQUEST_EXAMPLES)
def test_request_examples_then_garbage(wire: bytes, expected: list[list[bytes]]) -> None:
    # Every complete command before the garbage comes out first, then the error.
    assert run_requests(whole(wire + b"*x\r\n")) == (expected, "Protocol error: invalid multibulk length")
    assert run_requests(bytewise(wire + b"*x\r\n")) == (expected, "Protocol error: invalid multibulk length")


@SETTINGS
@given(st.data())
def test_request_examples_in_random_splits(data: st.DataObject) -> None:
    wire = b"".join(w for w, _ in REQUEST_EXAMPLES) + PARTIAL_NEXT
    expected = [cmd for _, cmds in REQUEST_EXAMPLES for cmd in cmds]
    parser = RequestParser()
    assert run_requests(random_chunks(wire, data.draw), parser) == (expected, None)
    assert parser.in_frame is True


def every_three_way_split(data: bytes) -> Iterable[list[bytes]]:
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1):
            yield [data[:a], data[a:b], data[b:]]


def test_request_every_three_way_split() -> None:
    # Deterministic complement to the random splits: every pair of cut points, over a
    # stream that walks every waiting state (headers, payloads, inline lines, CR/LF halves).
    wire = encode_command(b"SET", b"k", b"\x00" * 9) + b"PING\r\nECHO a\n" + encode_command(b"GET", b"k")
    expected = [[b"SET", b"k", b"\x00" * 9], [b"PING"], [b"ECHO", b"a"], [b"GET", b"k"]]
    for chunks in every_three_way_split(wire):
        assert run_requests(chunks) == (expected, None), chunks


def test_pipelined_commands_come_out_in_order() -> None:
    commands = [[b"SET", b"key:%d" % i, b"value:%d" % i] for i in range(3000)]
    commands[1500] = [b"SET", b"big", b"x" * 10_000]  # one command off the fast path
    wire = b"".join(encode_command(*cmd) for cmd in commands)
    assert run_requests([wire]) == (commands, None)
    chunks = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    assert run_requests(chunks) == (commands, None)


ARG = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"\r\n", b"\r", b"\n", b"\x00", b"$3\r\n", b"*1\r\n", b'"', b"'", b"\\"]),
    # Around the fast-table boundary (4096); a repeated pattern is cheap to generate.
    st.tuples(st.integers(4090, 4100), st.binary(min_size=1, max_size=3)).map(lambda t: (t[1] * t[0])[: t[0]]),
)
COMMAND = st.lists(ARG, min_size=1, max_size=6)


@SETTINGS
@given(st.lists(COMMAND, min_size=1, max_size=8), st.data())
def test_binary_args_round_trip_through_encode_command(commands: list[list[bytes]], data: st.DataObject) -> None:
    wire = b"".join(encode_command(*cmd) for cmd in commands)
    assert run_requests(random_chunks(wire, data.draw)) == (commands, None)


@SETTINGS
@given(st.lists(st.tuples(COMMAND, st.booleans()), min_size=1, max_size=8), st.data())
def test_mixed_inline_and_multibulk_stream(commands: list[tuple[list[bytes], bool]], data: st.DataObject) -> None:
    # Inline only for small commands: the quoted inline path is a per-byte loop.
    wire = b"".join(
        inline(*cmd) if as_inline and sum(map(len, cmd)) < 200 else encode_command(*cmd) for cmd, as_inline in commands
    )
    expected = [cmd for cmd, _ in commands]
    assert run_requests(random_chunks(wire, data.draw)) == (expected, None)


def test_many_arguments_beyond_the_fast_tables() -> None:
    command = [b"MSET"] + [b"%d" % i for i in range(2000)]
    assert run_requests(bytewise(encode_command(*command))) == ([command], None)


# ------------------------------------------------------------------------------ request errors
BIG = 64 * 1024
REQUEST_ERRORS: list[tuple[bytes, str]] = [
    (b"*abc\r\n", "Protocol error: invalid multibulk length"),
    (b"*-0\r\n", "Protocol error: invalid multibulk length"),  # string2ll rejects -0
    (b"*1048577\r\n", "Protocol error: invalid multibulk length"),
    (b"*9999999999\r\n", "Protocol error: invalid multibulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "Protocol error: expected '$', got 'f'"),
    (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
    (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$03\r\nabc\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$+3\r\nabc\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$99999999999\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
    (b"A" * (BIG + 1), "Protocol error: too big inline request"),
    (b"*" + b"1" * BIG, "Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * BIG, "Protocol error: too big bulk count string"),
    (b'SET k "abc\r\n', "Protocol error: unbalanced quotes in request"),
    (b"SET k 'abc\r\n", "Protocol error: unbalanced quotes in request"),
    (b'SET k "a"b\r\n', "Protocol error: unbalanced quotes in request"),
    (b"SET k 'a'b\r\n", "Protocol error: unbalanced quotes in request"),
    (b'SET k "abc\\"\r\n', "Protocol error: unbalanced quotes in request"),
    (b'SET k "abc\\\r\n', "Protocol error: unbalanced quotes in request"),
]


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("wire", "message"), REQUEST_ERRORS)
def test_request_errors_match_redis(wire: bytes, message: str, splitter) -> None:
    parser = RequestParser()
    assert run_requests(splitter(wire), parser) == ([], message)
    # The parser is dead: the server answers the error and closes the connection.
    with pytest.raises(ProtocolError, match="^" + message.replace("$", r"\$") + "$"):
        parser.next()
    with pytest.raises(ProtocolError):
        parser.feed(b"*1\r\n$4\r\nPING\r\n")


def test_expected_dollar_names_the_offending_byte() -> None:
    assert run_requests([b"*2\r\n$3\r\nGET\r\n*1\r\n"]) == ([], "Protocol error: expected '$', got '*'")


@pytest.mark.parametrize(
    "header",
    [b"*1\r\n$99999999999\r\n", b"*9999999999\r\n", b"*1\r\n$536870913\r\n", b"*2\r\n$1\r\na\r\n$-5\r\n"],
)
def test_absurd_lengths_fail_right_after_the_header(header: bytes) -> None:
    parser = RequestParser()
    parser.feed(header)  # no payload at all
    with pytest.raises(ProtocolError):
        parser.next()


def test_declared_length_is_not_allocated_or_awaited_up_front() -> None:
    parser = RequestParser()
    tracemalloc.start()
    try:
        parser.feed(b"*2\r\n$3\r\nSET\r\n$536870912\r\n")  # exactly the limit: accepted
        assert parser.next() is None
        for _ in range(100):
            parser.feed(b"x" * 1000)
            assert parser.next() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert parser.buffered == len(b"SET") + 100_000
    assert parser.in_frame is True


def test_lengths_just_at_the_limits_pass() -> None:
    parser = RequestParser(max_bulk_len=10, max_array_len=3)
    parser.feed(b"*3\r\n$10\r\n0123456789\r\n$0\r\n\r\n$1\r\nx\r\n")
    assert parser.next() == [b"0123456789", b"", b"x"]
    assert run_requests([b"*4\r\n"], RequestParser(max_bulk_len=10, max_array_len=3)) == (
        [],
        "Protocol error: invalid multibulk length",
    )
    assert run_requests([b"*1\r\n$11\r\n"], RequestParser(max_bulk_len=10, max_array_len=3)) == (
        [],
        "Protocol error: invalid bulk length",
    )


def test_default_limits_accept_their_maximum() -> None:
    parser = RequestParser()
    parser.feed(b"*1048576\r\n$536870912\r\n")
    assert parser.next() is None
    assert parser.in_frame is True


def test_inline_line_just_at_the_limit_waits() -> None:
    parser = RequestParser(max_inline_len=100)
    parser.feed(b"A" * 100)
    assert parser.next() is None
    parser.feed(b"\r\n")
    assert parser.next() == [b"A" * 100]
    parser.feed(b"B" * 101)
    with pytest.raises(ProtocolError, match="^Protocol error: too big inline request$"):
        parser.next()


def test_unauthenticated_limits() -> None:
    assert run_requests([b"*11\r\n"], RequestParser(authenticated=False)) == (
        [],
        "Protocol error: unauthenticated multibulk length",
    )
    assert run_requests([b"*1\r\n$16385\r\n"], RequestParser(authenticated=False)) == (
        [],
        "Protocol error: unauthenticated bulk length",
    )
    # A bad length is still "invalid", whatever the authentication state.
    assert run_requests([b"*1\r\n$-2\r\n"], RequestParser(authenticated=False)) == (
        [],
        "Protocol error: invalid bulk length",
    )
    ten = [b"x" * 16384] * 10
    assert run_requests([encode_command(*ten)], RequestParser(authenticated=False)) == ([ten], None)


def test_authenticating_lifts_the_limits_for_later_commands() -> None:
    parser = RequestParser(authenticated=False)
    big = [b"MSET"] + [b"k"] * 20
    parser.feed(encode_command(b"AUTH", b"pw") + encode_command(*big))
    assert parser.next() == [b"AUTH", b"pw"]
    parser.authenticated = True
    assert parser.next() == big


def test_deauthenticating_applies_to_commands_already_buffered() -> None:
    parser = RequestParser()
    parser.feed(encode_command(b"RESET") + encode_command(b"PING") + encode_command(*[b"k"] * 11))
    assert parser.next() == [b"RESET"]
    parser.authenticated = False
    assert parser.next() == [b"PING"]
    with pytest.raises(ProtocolError, match="^Protocol error: unauthenticated multibulk length$"):
        parser.next()


# ------------------------------------------------------------------------------ inline splitting
SPLIT_EXAMPLES: list[tuple[bytes, list[bytes]]] = [
    (b"", []),
    (b"   \t ", []),
    (b"PING", [b"PING"]),
    (b'"a b" c', [b"a b", b"c"]),
    (b'"\\n\\r\\t\\b\\a\\\\\\"\\q"', [b"\n\r\t\b\x07\\\"q"]),
    (b'"\\x41\\x4a\\x00\\xff"', [b"AJ\x00\xff"]),
    (b'"\\xZZ" "\\x4"', [b"xZZ", b"x4"]),  # not two hex digits: \x is just x
    (b"'a\\'b' 'c\\nd' 'e\"f'", [b"a'b", b"c\\nd", b'e"f']),  # only \' is special in '...'
    (b'a"b c"', [b"ab c"]),  # a quote inside a word opens a quoted part
    (b'"" \'\'', [b"", b""]),
    (b'"a"\t"b"', [b"a", b"b"]),
    (b'"a"\x0b"b"', [b"a", b"b"]),  # isspace() after a closing quote includes \v
    (b"a\x0bb \x0cc", [b"a\x0bb", b"c"]),  # \v, \f do not end a word but are skipped before one
    (b'"a\rb" c', [b"a\rb", b"c"]),
    (b"PING\x00 junk", [b"PING"]),  # sdssplitargs reads a C string: NUL ends the line
]


@pytest.mark.parametrize(("line", "expected"), SPLIT_EXAMPLES)
def test_split_args_follows_sdssplitargs(line: bytes, expected: list[bytes]) -> None:
    assert split_args(line) == expected
    assert run_requests(bytewise(line + b"\r\nPING\r\n")) == (([expected] if expected else []) + [[b"PING"]], None)


@pytest.mark.parametrize("line", [b'"abc', b"'abc", b'"a"b', b"'a'b", b'"a\\"', b'"\\', b'"a\x00"'])
def test_split_args_rejects_unbalanced_quotes(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="^Protocol error: unbalanced quotes in request$"):
        split_args(line)


@SETTINGS
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=6))
def test_split_args_reads_back_hex_quoted_arguments(args: list[bytes]) -> None:
    assert split_args(inline(*args)[:-2]) == args


# ------------------------------------------------------------------------------ buffered / in_frame
def test_buffered_and_in_frame_track_a_partial_command() -> None:
    parser = RequestParser()
    assert (parser.buffered, parser.in_frame) == (0, False)
    parser.feed(b"*2\r\n$3\r\nGET\r\n$3\r\nk")
    assert parser.next() is None
    assert parser.in_frame is True
    assert parser.buffered == 4  # "GET" parsed and held, "k" waiting for the rest
    parser.feed(b"ey\r\n*1\r\n$4\r\nPI")
    assert parser.next() == [b"GET", b"key"]
    assert parser.next() is None
    assert (parser.buffered, parser.in_frame) == (2, True)
    parser.feed(b"NG\r\n")
    assert parser.next() == [b"PING"]
    assert parser.next() is None
    assert (parser.buffered, parser.in_frame) == (0, False)


def test_buffered_counts_pipelined_commands_not_yet_returned() -> None:
    parser = RequestParser()
    wire = encode_command(b"PING") * 10
    parser.feed(wire)
    assert parser.buffered == len(wire)
    assert parser.next() == [b"PING"]
    assert 0 < parser.buffered <= len(wire)
    for _ in range(9):
        assert parser.next() == [b"PING"]
    assert (parser.buffered, parser.in_frame) == (0, False)  # before the draining next()
    assert parser.next() is None


def test_command_is_complete_only_with_the_bytes_after_its_last_payload() -> None:
    parser = RequestParser()
    parser.feed(b"*1\r\n$4\r\nPING")
    assert parser.next() is None
    assert (parser.buffered, parser.in_frame) == (4, True)
    parser.feed(b"\r")
    assert parser.next() is None
    parser.feed(b"\n")
    assert parser.next() == [b"PING"]
    assert (parser.buffered, parser.in_frame) == (0, False)


def test_two_bytes_after_a_payload_are_skipped_unchecked_like_redis() -> None:
    assert run_requests([b"*1\r\n$4\r\nPINGXY*1\r\n$4\r\nPING\r\n"]) == ([[b"PING"], [b"PING"]], None)


def test_feeding_before_draining_loses_nothing() -> None:
    # A server may feed new data while complete commands are still buffered.
    parser = RequestParser()
    parser.feed(b"*1\r\n")
    assert parser.next() is None
    parser.feed(encode_command(b"PING")[4:] + encode_command(b"ECHO", b"x"))
    assert parser.next() == [b"PING"]
    parser.feed(b"X")
    assert parser.next() == [b"ECHO", b"x"]
    assert parser.next() is None
    assert parser.buffered == 1


def test_partial_inline_line_is_in_frame() -> None:
    parser = RequestParser()
    parser.feed(b"PIN")
    assert parser.next() is None
    assert (parser.buffered, parser.in_frame) == (3, True)


# ------------------------------------------------------------------------------ replies
REPLY_EXAMPLES: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", SimpleString("OK")),
    (b"-ERR unknown command 'foo'\r\n", ErrorReply("ERR unknown command 'foo'")),
    (b":0\r\n", 0),
    (b":-9223372036854775808\r\n", -(2**63)),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*0\r\n", [1, None, [SimpleString("a"), []]]),
    (b"*1\r\n*1\r\n*1\r\n$1\r\nx\r\n", [[[b"x"]]]),
]


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("wire", "expected"), REPLY_EXAMPLES)
def test_reply_examples(wire: bytes, expected: Any, splitter) -> None:
    parser = ReplyParser()
    replies, error = run_replies(splitter(wire + b"*2\r\n:1\r\n"), parser)
    assert (replies, error) == ([expected], None)
    assert type(replies[0]) is type(expected)
    assert parser.in_frame is True
    parser.feed(b":2\r\n")
    assert parser.next() == [1, 2]
    assert parser.next() is NEED_DATA
    assert parser.in_frame is False


@SETTINGS
@given(st.data())
def test_reply_examples_in_random_splits(data: st.DataObject) -> None:
    wire = b"".join(w for w, _ in REPLY_EXAMPLES)
    assert run_replies(random_chunks(wire, data.draw)) == ([v for _, v in REPLY_EXAMPLES], None)


def test_reply_every_three_way_split() -> None:
    wire = b"*2\r\n$5\r\nhel\r\n\r\n:7\r\n+OK\r\n$-1\r\n"
    expected = [[b"hel\r\n", 7], SimpleString("OK"), None]
    for chunks in every_three_way_split(wire):
        assert run_replies(chunks) == (expected, None), chunks


def test_null_reply_is_not_need_data() -> None:
    parser = ReplyParser()
    parser.feed(b"$-1\r\n")
    assert parser.next() is None
    assert parser.next() is NEED_DATA


LINE_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)
REPLY_VALUE = st.recursive(
    st.one_of(
        LINE_TEXT.map(SimpleString),
        LINE_TEXT.filter(lambda t: t != "").map(ErrorReply),
        st.integers(-(2**63), 2**63 - 1),
        st.binary(max_size=30),
        st.none(),
        st.just(NullArray),
    ),
    lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple),
    max_leaves=20,
)


def as_parsed(value: Any) -> Any:
    """What a reply looks like after a trip through the wire."""
    if value is NullArray:
        return None
    if isinstance(value, (list, tuple)):
        return [as_parsed(v) for v in value]
    return value


@SETTINGS
@given(st.lists(REPLY_VALUE, min_size=1, max_size=5), st.data())
def test_encode_reply_round_trips_through_reply_parser(values: list[Any], data: st.DataObject) -> None:
    wire = b"".join(encode_reply(v) for v in values)
    assert run_replies(random_chunks(wire, data.draw)) == ([as_parsed(v) for v in values], None)


REPLY_ERRORS: list[tuple[bytes, str]] = [
    (b"?x\r\n", "Protocol error: got '?' as reply type byte"),
    (b"\r\n", "Protocol error: got '\\r' as reply type byte"),
    (b":12a\r\n", "Protocol error: invalid integer reply"),
    (b":\r\n", "Protocol error: invalid integer reply"),
    (b"$-2\r\n", "Protocol error: invalid bulk length"),
    (b"$x\r\n", "Protocol error: invalid bulk length"),
    (b"$99999999999\r\n", "Protocol error: invalid bulk length"),
    (b"$3\r\nabcd\r\n", "Protocol error: bulk string not terminated by CRLF"),
    (b"*-2\r\n", "Protocol error: invalid multibulk length"),
    (b"*99999999999\r\n", "Protocol error: invalid multibulk length"),
    (b"*2\r\n:1\r\n!\r\n", "Protocol error: got '!' as reply type byte"),
    (b"*1\r\n" * 65, "Protocol error: too deeply nested reply"),
]


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("wire", "message"), REPLY_ERRORS)
def test_reply_errors(wire: bytes, message: str, splitter) -> None:
    parser = ReplyParser()
    assert run_replies(splitter(wire), parser) == ([], message)
    with pytest.raises(ProtocolError):
        parser.next()


def test_reply_limits() -> None:
    deepest: Any = 1
    for _ in range(64):
        deepest = [deepest]
    assert run_replies([b"*1\r\n" * 64 + b":1\r\n"]) == ([deepest], None)
    assert run_replies([b"$10\r\n0123456789\r\n"], ReplyParser(max_bulk_len=10)) == ([b"0123456789"], None)
    assert run_replies([b"$11\r\n"], ReplyParser(max_bulk_len=10)) == ([], "Protocol error: invalid bulk length")
    assert run_replies([b"*2\r\n:1\r\n:2\r\n"], ReplyParser(max_array_len=2)) == ([[1, 2]], None)
    assert run_replies([b"*3\r\n"], ReplyParser(max_array_len=2)) == ([], "Protocol error: invalid multibulk length")


def test_error_reply_parts() -> None:
    error = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert (error.prefix, error.message) == ("WRONGTYPE", "Operation against a key holding the wrong kind of value")
    assert (ErrorReply("ERR").prefix, ErrorReply("ERR").message) == ("ERR", "")
    assert ErrorReply.from_parts("ERR", "x y") == ErrorReply("ERR x y")
    assert ErrorReply("ERR a") != ErrorReply("ERR b")
    assert str(ErrorReply("ERR a")) == "ERR a"


# ------------------------------------------------------------------------------ encoders
def test_encode_command() -> None:
    assert encode_command("SET", b"k\r\n", 42, -1.5, "é") == (
        b"*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n42\r\n$4\r\n-1.5\r\n$2\r\n\xc3\xa9\r\n"
    )
    assert encode_command(bytearray(b"GET"), memoryview(b"k")) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


@pytest.mark.parametrize("bad", [True, None, object(), [b"x"]])
def test_encode_command_rejects_other_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        encode_command(b"SET", b"k", bad)


def test_encode_command_needs_an_argument() -> None:
    with pytest.raises(ValueError):
        encode_command()


REPLY_ENCODINGS: list[tuple[Any, bytes]] = [
    (OK, b"+OK\r\n"),
    (PONG, b"+PONG\r\n"),
    (ErrorReply("ERR bad"), b"-ERR bad\r\n"),
    (ErrorReply("ERR two\r\nlines"), b"-ERR two  lines\r\n"),
    (0, b":0\r\n"),
    (-5, b":-5\r\n"),
    (b"", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n"),
    (bytearray(b"xy"), b"$2\r\nxy\r\n"),
    (b"z" * 2000, b"$2000\r\n" + b"z" * 2000 + b"\r\n"),
    (None, b"$-1\r\n"),
    (NullArray, b"*-1\r\n"),
    ([], b"*0\r\n"),
    ((b"a", None, 1, [OK, NullArray]), b"*4\r\n$1\r\na\r\n$-1\r\n:1\r\n*2\r\n+OK\r\n*-1\r\n"),
]


@pytest.mark.parametrize(("value", "wire"), REPLY_ENCODINGS)
def test_encode_reply(value: Any, wire: bytes) -> None:
    assert encode_reply(value) == wire


@pytest.mark.parametrize("bad", [True, False, "text", 1.5, object(), {b"a": 1}, [b"ok", True], NEED_DATA])
def test_encode_reply_rejects_other_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        encode_reply(bad)


def test_simple_string_cannot_hold_a_newline() -> None:
    with pytest.raises(ValueError):
        encode_reply(SimpleString("a\nb"))


def test_encode_error() -> None:
    assert encode_error("ERR", "Protocol error: invalid bulk length") == b"-ERR Protocol error: invalid bulk length\r\n"
    assert encode_error("WRONGTYPE", "line1\r\nline2\n") == b"-WRONGTYPE line1  line2 \r\n"
    assert encode_error("NOAUTH", "") == b"-NOAUTH\r\n"
    with pytest.raises(ValueError):
        encode_error("TWO WORDS", "x")
    with pytest.raises(ValueError):
        encode_error("", "x")


def test_protocol_error_reply_round_trip() -> None:
    # What the server sends back on a protocol error is what a client reads.
    _, message = run_requests([b"*1\r\n$x\r\n"])
    assert message is not None
    parser = ReplyParser()
    parser.feed(encode_error("ERR", message))
    assert parser.next() == ErrorReply("ERR Protocol error: invalid bulk length")


# ------------------------------------------------------------------ reading N replies
_THREE_REPLIES = b"+OK\r\n$5\r\nhello\r\n*2\r\n:1\r\n-ERR no\r\n"
_THREE_VALUES = ["OK", b"hello", [1, ErrorReply("ERR no")]]


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, len(_THREE_REPLIES)])
def test_read_replies_reads_until_it_has_n(size):
    pieces = _chunks(_THREE_REPLIES + b":7\r\n", size)
    reads = iter(pieces)
    parser = ReplyParser()
    assert parser.read_replies(3, lambda: next(reads)) == _THREE_VALUES
    # what arrived past the third reply stays buffered for the next call, nothing more is read
    rest = list(reads)
    assert parser.read_replies(1, lambda: rest.pop(0)) == [7]


def test_read_replies_takes_buffered_replies_without_reading():
    parser = ReplyParser()
    parser.feed(_THREE_REPLIES)
    assert parser.take(2) == ["OK", b"hello"]
    assert parser.read_replies(1, lambda: pytest.fail("read although a reply was buffered")) == [[1, ErrorReply("ERR no")]]
    assert parser.take(1) == []


def test_read_replies_when_the_peer_closes():
    reads = iter([b"+OK\r\n$5\r\nhel", b""])
    with pytest.raises(ConnectionResetError, match="connection closed by the server"):
        ReplyParser().read_replies(2, lambda: next(reads))


def test_read_replies_async_is_the_same_loop():
    import asyncio

    pieces = _chunks(_THREE_REPLIES, 2)

    async def read() -> bytes:
        return pieces.pop(0) if pieces else b""

    assert asyncio.run(ReplyParser().read_replies_async(3, read)) == _THREE_VALUES
    with pytest.raises(ConnectionResetError):
        asyncio.run(ReplyParser().read_replies_async(1, read))


def test_a_set_reply_is_an_array_in_resp2_and_a_set_in_resp3():
    """Redis's addReplySetLen (CLIENT TRACKINGINFO's flags): ``*`` in RESP2, ``~`` in RESP3."""
    value = SetReply([b"on", b"bcast"])
    assert encode_reply(value) == b"*2\r\n$2\r\non\r\n$5\r\nbcast\r\n"
    assert encode_reply(value, 3) == b"~2\r\n$2\r\non\r\n$5\r\nbcast\r\n"
    assert encode_reply([SetReply([])], 3) == b"*1\r\n~0\r\n"
