"""raftcache.connection: one connection's protocol state, fed bytes, checked by the bytes out.

No sockets and no event loop: a small driver plays the server's part (executes the commands
the connection hands out, here PING/ECHO/GET from a dict) and every conversation is fed
whole, one byte at a time and in random splits, which must not change a single byte out.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable

import pytest

from raftcache.connection import NEED_DATA, Command, Connection, ProtocolFailure
from raftcache.resp import PONG, encode_reply

PASSWORD = "s3cret"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(seed: int) -> Callable[[bytes], list[bytes]]:
    def split(data: bytes) -> list[bytes]:
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12)))) if len(data) > 1 else []
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    split.__name__ = f"random_splits_{seed}"
    return split


SPLITTERS = [whole, bytewise, *(random_splits(seed) for seed in range(5))]


class Driver:
    """Plays the server: feeds chunks, executes handed-out commands, collects bytes out."""

    def __init__(self, conn: Connection, *, hold: bool = False) -> None:
        self.conn = conn
        self.hold = hold  # leave commands uncompleted (the test completes them)
        self.data = {b"k": b"v"}
        self.handed: list[Command] = []
        self.failures: list[ProtocolFailure] = []
        self.out = b""

    def feed(self, chunks: list[bytes]) -> bytes:
        for chunk in chunks:
            self.conn.receive_data(chunk)
            while (event := self.conn.next_event()) is not NEED_DATA:
                if isinstance(event, ProtocolFailure):
                    self.failures.append(event)
                    break
                self.handed.append(event)
                if not self.hold:
                    self.execute(event)
            self.out += self.conn.data_to_send()
        return self.out

    def execute(self, event: Command) -> None:
        name, args = event.spec.name, event.args
        result = {"ping": lambda: PONG, "echo": lambda: args[1], "get": lambda: self.data.get(args[1])}[name]()
        self.conn.complete(event.slot, encode_reply(result, event.protocol))


def talk(data: bytes, split: Callable[[bytes], list[bytes]], **options: object) -> Driver:
    driver = Driver(Connection(**options))  # type: ignore[arg-type]
    driver.feed(split(data))
    return driver


@pytest.fixture(params=SPLITTERS, ids=lambda s: s.__name__)
def split(request: pytest.FixtureRequest) -> Callable[[bytes], list[bytes]]:
    return request.param


# --------------------------------------------------------------------------- AUTH
def test_commands_before_auth_get_noauth_and_are_not_executed(split):
    d = talk(b"GET k\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", split, requirepass=PASSWORD)
    assert d.out == NOAUTH * 3
    assert d.handed == []


def test_auth_wrong_then_right_opens_the_connection(split):
    data = b"AUTH nope\r\nGET k\r\nAUTH " + PASSWORD.encode() + b"\r\nGET k\r\n"
    d = talk(data, split, requirepass=PASSWORD)
    assert d.out == WRONGPASS + NOAUTH + b"+OK\r\n" + b"$1\r\nv\r\n"
    assert [c.spec.name for c in d.handed] == ["get"]


def test_auth_names_the_default_user_only(split):
    data = b"AUTH bob " + PASSWORD.encode() + b"\r\nAUTH default " + PASSWORD.encode() + b"\r\nPING\r\n"
    assert talk(data, split, requirepass=PASSWORD).out == WRONGPASS + b"+OK\r\n+PONG\r\n"


def test_auth_without_a_password_configured_is_an_error(split):
    out = talk(b"AUTH x\r\nPING\r\n", split).out
    assert out.startswith(b"-ERR AUTH <password> called without any password configured")
    assert out.endswith(b"\r\n+PONG\r\n")


def test_hello_auth_authenticates_and_hello_alone_is_refused_before_auth(split):
    data = b"HELLO 3\r\nHELLO 3 AUTH default " + PASSWORD.encode() + b"\r\nGET missing\r\n"
    d = talk(data, split, requirepass=PASSWORD)
    first, rest = d.out.split(b"\r\n", 1)
    assert first.startswith(b"-NOAUTH HELLO must be called with the client already authenticated")
    assert rest.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in rest
    assert rest.endswith(b"_\r\n")  # GET of a missing key in RESP3: null


# -------------------------------------------------------------------------- HELLO
def test_hello_3_switches_replies_to_resp3_and_hello_2_back(split):
    data = b"GET nothing\r\nHELLO 3\r\nGET nothing\r\nHELLO 2\r\nGET nothing\r\n"
    d = talk(data, split, conn_id=7, role=lambda: "follower")
    assert [c.protocol for c in d.handed] == [2, 3, 2]
    assert d.out.startswith(b"$-1\r\n%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
    assert b"$2\r\nid\r\n:7\r\n" in d.out and b"$4\r\nrole\r\n$7\r\nreplica\r\n" in d.out
    assert b"\r\n_\r\n*14\r\n" in d.out  # RESP3 null, then HELLO 2's reply as a flat array
    assert d.out.endswith(b"$-1\r\n")


def test_hello_refuses_unknown_versions_and_options(split):
    d = talk(b"HELLO 4\r\nHELLO x\r\nHELLO 3 BOGUS\r\nPING\r\n", split)
    assert d.out == (
        b"-NOPROTO sorry, this protocol version is not supported.\r\n"
        b"-ERR Protocol version is not an integer or out of range\r\n"
        b"-ERR Syntax error in HELLO option 'BOGUS'\r\n"
        b"+PONG\r\n"
    )
    assert d.conn.protocol == 2


def test_hello_setname_names_the_connection(split):
    d = talk(b"HELLO 2 SETNAME worker-1\r\n", split)
    assert d.conn.name == b"worker-1"


# ---------------------------------------------------------------- READONLY, QUIT
def test_readonly_and_readwrite_mark_the_commands_that_follow(split):
    d = talk(b"GET k\r\nREADONLY\r\nGET k\r\nREADWRITE\r\nGET k\r\n", split)
    assert [c.readonly for c in d.handed] == [False, True, False]
    assert d.out == b"$1\r\nv\r\n+OK\r\n$1\r\nv\r\n+OK\r\n$1\r\nv\r\n"


def test_quit_answers_ok_then_nothing_more_is_read(split):
    d = talk(b"PING\r\nQUIT\r\nPING\r\nGET k\r\n", split)
    assert d.out == b"+PONG\r\n+OK\r\n"
    assert [c.spec.name for c in d.handed] == ["ping"]
    assert d.conn.finished


def test_quit_waits_for_earlier_replies_before_finishing(split):
    conn = Connection()
    d = Driver(conn, hold=True)
    d.feed(split(b"GET k\r\nQUIT\r\n"))
    assert d.out == b"" and not conn.finished
    d.execute(d.handed[0])
    assert conn.data_to_send() == b"$1\r\nv\r\n+OK\r\n"
    assert conn.finished


# --------------------------------------------------------------------- ordering
def test_out_of_order_completion_leaves_in_request_order(split):
    conn = Connection()
    d = Driver(conn, hold=True)
    d.feed(split(b"ECHO a\r\nECHO b\r\nPING\r\nECHO c\r\n"))
    a, b, ping, c = d.handed
    assert conn.pending == 4 and d.out == b""
    d.execute(c)
    d.execute(b)
    assert conn.data_to_send() == b""  # 'a' is still pending: nothing may overtake it
    d.execute(a)
    assert conn.data_to_send() == b"$1\r\na\r\n$1\r\nb\r\n"
    d.execute(ping)
    assert conn.data_to_send() == b"+PONG\r\n$1\r\nc\r\n"
    assert conn.pending == 0


def test_replies_the_connection_gives_itself_wait_behind_pending_ones(split):
    conn = Connection()
    d = Driver(conn, hold=True)
    d.feed(split(b"GET k\r\nREADONLY\r\nNOSUCH\r\n"))
    assert d.out == b""
    d.execute(d.handed[0])
    out = conn.data_to_send()
    assert out.startswith(b"$1\r\nv\r\n+OK\r\n-ERR unknown command 'NOSUCH'")


def test_reading_pauses_with_too_many_in_flight_and_resumes_at_half():
    conn = Connection(max_pending=4)
    d = Driver(conn, hold=True)
    d.feed([b"ECHO 1\r\nECHO 2\r\nECHO 3\r\n"])
    assert not conn.reading_paused()
    d.feed([b"ECHO 4\r\n"])
    assert conn.reading_paused()
    d.execute(d.handed[0])
    assert conn.reading_paused()  # 3 in flight: above half the limit
    d.execute(d.handed[1])
    assert not conn.reading_paused()  # 2 in flight: half, resume
    assert conn.reading_paused(writing_paused=True)  # the client does not read its replies


# ---------------------------------------------------------------- bad input
def test_protocol_error_is_answered_then_the_connection_closes(split):
    d = talk(b"PING\r\n*1\r\n$x\r\nPING\r\n", split)
    assert d.out == b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert [f.message for f in d.failures] == ["Protocol error: invalid bulk length"]
    assert d.conn.finished and d.conn.bad_input
    d.feed([b"PING\r\n"])  # input after the error is ignored
    assert d.out.endswith(b"invalid bulk length\r\n")


def test_query_buffer_limit_closes_the_connection():
    d = Driver(Connection(max_query_buffer_bytes=64))
    d.feed([b"*1\r\n$1000\r\n" + b"x" * 100])
    assert d.out == b"-ERR Protocol error: query buffer limit exceeded (limits.max_query_buffer_bytes)\r\n"
    assert d.conn.finished and [f.over_limit for f in d.failures] == [True]


def test_unknown_commands_and_wrong_arity_are_counted_errors(split):
    errors: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    d = talk(b"NOSUCH x\r\nGET\r\nGET k\r\nREADONLY\r\n", split,
             on_error=lambda p: errors.update([p]), on_command=lambda n: commands.update([n]))
    assert d.out.startswith(b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n")
    assert b"-ERR wrong number of arguments for 'get' command\r\n" in d.out
    assert errors == {"ERR": 2}
    assert commands == {"get": 1, "readonly": 1}


def test_half_sent_command_is_in_frame():
    conn = Connection()
    conn.receive_data(b"*2\r\n$3\r\nGET\r\n")
    assert conn.next_event() is NEED_DATA
    assert conn.in_frame
    conn.receive_data(b"$1\r\nk\r\n")
    assert isinstance(conn.next_event(), Command)
    assert not conn.in_frame
