"""MULTI/EXEC/DISCARD/WATCH/UNWATCH in the I/O-free connection, byte for byte: queueing,
EXECABORT for commands refused while queuing, nesting, the errors without MULTI, the queue
limit, and what EXEC and WATCH hand out to the server. Fed whole, bytewise and in random
splits (the splitters of test_connection)."""

from __future__ import annotations

from raftcache.connection import Connection, Mode, WatchSet
from raftcache.resp import encode_command
from tests.unit.test_connection import SPLITTERS, Driver, split  # noqa: F401  (split is a fixture)

QUEUED = b"+QUEUED\r\n"
OK = b"+OK\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def cmds(*commands: tuple[bytes | str, ...]) -> bytes:
    return b"".join(encode_command(*(a.encode() if isinstance(a, str) else a for a in command)) for command in commands)


def talk(data: bytes, split, **options) -> Driver:
    driver = Driver(Connection(**options), hold=True)  # EXEC/WATCH stay for the test to inspect
    driver.feed(split(data))
    return driver


def test_queued_commands_reach_the_server_only_with_exec(split):
    d = talk(cmds(("MULTI",), ("SET", "a", "1"), ("get", "a"), ("PING",), ("EXEC",)), split)
    assert d.out == OK + QUEUED * 3  # EXEC's reply waits for the server
    (exec_,) = d.handed
    assert exec_.spec.name == "exec"
    assert [(spec.name, args) for spec, args in exec_.queued] == [("set", [b"SET", b"a", b"1"]), ("get", [b"get", b"a"]), ("ping", [b"PING"])]
    assert isinstance(exec_.watches, WatchSet)
    assert d.conn.mode is Mode.NORMAL


def test_unknown_command_or_wrong_arity_dooms_the_transaction(split):
    data = cmds(("MULTI",), ("SET", "a", "1"), ("NOPE", "x"), ("GET",), ("SET", "b", "2"), ("EXEC",), ("PING",))
    d = talk(data, split)
    assert d.out == (
        OK + QUEUED + b"-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n"
        + b"-ERR wrong number of arguments for 'get' command\r\n" + QUEUED + EXECABORT
    )
    assert [c.spec.name for c in d.handed] == ["ping"]  # nothing of the transaction ran


def test_commands_not_allowed_inside_multi_doom_it(split):
    d = talk(cmds(("MULTI",), ("CLIENT", "ID"), ("INFO",), ("EXEC",)), split)
    not_allowed = b"-ERR Command not allowed inside a transaction\r\n"
    assert d.out == OK + not_allowed * 2 + EXECABORT
    assert d.handed == []


def test_nested_multi_and_watch_inside_multi_answer_errors_but_keep_the_queue(split):
    d = talk(cmds(("MULTI",), ("MULTI",), ("WATCH", "a"), ("SET", "a", "1"), ("EXEC",)), split)
    assert d.out == OK + b"-ERR MULTI calls can not be nested\r\n" + b"-ERR WATCH inside MULTI is not allowed\r\n" + QUEUED
    (exec_,) = d.handed
    assert [spec.name for spec, _ in exec_.queued] == ["set"]


def test_exec_and_discard_without_multi(split):
    d = talk(cmds(("EXEC",), ("DISCARD",), ("RAFTCACHE", "ONCE", "1", "1", "1", "EXEC")), split)
    assert d.out == b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n-ERR EXEC without MULTI\r\n"
    assert d.handed == []


def test_discard_drops_the_queue_and_the_watches(split):
    d = talk(cmds(("WATCH", "a"), ("MULTI",), ("SET", "a", "1"), ("DISCARD",), ("PING",)), split)
    watch, ping = d.handed
    assert watch.spec.name == "watch" and watch.watches is not None and watch.watches.pending == 1
    assert d.conn.watches is not watch.watches  # a fresh, empty set
    assert d.out == b""  # replies leave in order: WATCH's is not back yet
    d.conn.complete(watch.slot, OK)
    d.execute(ping)
    assert d.conn.data_to_send() == OK + OK + QUEUED + OK + b"+PONG\r\n"


def test_exec_carries_the_watch_set_its_watch_reads_fill(split):
    d = talk(cmds(("WATCH", "a", "b"), ("MULTI",), ("INCR", "a"), ("EXEC",)), split)
    watch, exec_ = d.handed
    assert exec_.watches is watch.watches
    ran = []
    exec_.watches.when_ready(lambda: ran.append(dict(exec_.watches.indexes)))
    assert ran == []  # the WATCH read is still out
    exec_.watches.record([b"a", b"b"], [4, 7])
    assert ran == [{b"a": 4, b"b": 7}]


def test_a_failed_watch_read_guards_with_an_index_that_never_matches():
    watches = WatchSet()
    watches.pending = 2
    watches.record([b"a"], [10])
    watches.record([b"a", b"b"], None)
    assert watches.indexes == {b"a": 10, b"b": -1}  # a's first index stands


def test_unwatch_forgets_and_is_queueable(split):
    d = talk(cmds(("UNWATCH",), ("MULTI",), ("UNWATCH",), ("ECHO", "x"), ("SELECT", "0"), ("EXEC",)), split)
    assert d.out == OK + OK + QUEUED * 3
    (exec_,) = d.handed
    assert [spec.name for spec, _ in exec_.queued] == ["unwatch", "echo", "select"]


def test_tagged_exec_ends_the_transaction(split):
    d = talk(cmds(("MULTI",), ("SET", "a", "1"), ("RAFTCACHE", "ONCE", "5", "9", "9", "EXEC")), split)
    (exec_,) = d.handed
    assert exec_.args == [b"RAFTCACHE", b"ONCE", b"5", b"9", b"9", b"EXEC"] and len(exec_.queued) == 1
    assert d.conn.mode is Mode.NORMAL


def test_other_raftcache_commands_are_refused_inside_multi(split):
    d = talk(cmds(("MULTI",), ("RAFTCACHE", "ONCE", "5", "9", "9", "SET", "a", "1"), ("EXEC",)), split)
    assert d.out == OK + b"-ERR Command not allowed inside a transaction\r\n" + EXECABORT


def test_queue_limit_frees_the_queue_and_dooms_the_transaction():
    d = talk(cmds(("MULTI",), *[("SET", "k", "v" * 100)] * 10, ("EXEC",), ("PING",)), lambda b: [b], max_query_buffer_bytes=2000)
    replies = d.out.split(b"\r\n")
    assert replies[:6] == [b"+OK", *[b"+QUEUED"] * 5]
    assert all(r.startswith(b"-ERR transaction queue limit exceeded") for r in replies[6:11])
    assert d.out.endswith(EXECABORT)
    assert d.conn._queue == [] and d.handed[-1].spec.name == "ping"


def test_commands_past_the_queue_limit_are_answered_not_kept():
    data = cmds(("MULTI",)) + cmds(("INCR", "counter")) * 200_000 + cmds(("EXEC",))
    limit = 1 << 20
    d = talk(data, lambda b: [b[i : i + 65536] for i in range(0, len(b), 65536)], max_query_buffer_bytes=limit)
    queued = limit // (256 + 11)  # each queued command: its argument bytes plus 256
    assert d.out.count(QUEUED) == queued
    assert d.out.count(b"-ERR transaction queue limit exceeded") == 200_000 - queued
    assert d.out.endswith(EXECABORT)
    assert d.conn._queue == [] and d.conn.mode is Mode.NORMAL


def test_resp3_queued_replies_are_simple_strings(split):
    d = talk(cmds(("HELLO", "3"), ("MULTI",), ("GET", "a")), split)
    assert d.out.endswith(OK + QUEUED)


def test_commands_parsed_counts_queued_and_refused_commands_too(split):
    """The server restarts its half-sent deadline whenever this moves: a long transaction
    streamed in many chunks must not look like a slowloris."""
    d = talk(cmds(("MULTI",), ("SET", "a", "1"), ("NOPE",), ("PING",)) + b"*2\r\n$3\r\nGET", split)
    assert d.conn.commands_parsed == 4 and d.conn.in_frame
