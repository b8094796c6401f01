"""The client's I/O-free core, driven with scripted fake I/O: failover, safe retries, deadlines."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest

from raftcache import commands as c
from raftcache.client.core import Call, ClientCore, RetryPolicy, Sleep, StaleRead, as_requested
from raftcache.errors import NoLeaderError, NotIntegerError, OutcomeUnknownError
from raftcache.resp import OK, ErrorReply, RequestParser

FAST = RetryPolicy(deadline=2.0, backoff_base=0.0, jitter=0.0, leader_recheck_s=1000)


def leader_info(state: str, leader_client: str = "") -> bytes:
    return f"# Raft\r\nraft_state:{state}\r\nraft_leader_client:{leader_client}\r\n".encode()


class FakeNetwork:
    """Answers Calls with a per-endpoint handler; records every request it saw."""

    def __init__(self, handlers: dict[str, Callable[[list[bytes]], Any]]) -> None:
        self.handlers = handlers
        self.seen: list[tuple[str, list[bytes]]] = []

    def run(self, plan) -> Any:
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = plan.send(reply) if error is None else plan.throw(error)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(op, Sleep):
                continue
            assert isinstance(op, Call)
            parser = RequestParser()
            parser.feed(op.payload)
            requests = []
            while (request := parser.next()) is not None:
                requests.append(request)
            assert len(requests) == op.replies
            try:
                handler = self.handlers[op.endpoint]
                reply = []
                for request in requests:
                    self.seen.append((op.endpoint, request))
                    reply.append(handler(request))
            except OSError as exc:
                error = exc


def down(request):
    raise ConnectionRefusedError("refused")


def test_finds_the_leader_through_a_follower_and_skips_dead_nodes():
    def follower(request):
        return leader_info("follower", "b:2") if request[0] == b"INFO" else ErrorReply("ERR should go to the leader")

    def leader(request):
        return leader_info("leader") if request[0] == b"INFO" else b"v"

    net = FakeNetwork({"dead:1": down, "a:1": follower, "b:2": leader})
    core = ClientCore(["dead:1", "a:1"], FAST)
    assert net.run(core.execute([c.Get(b"k")])) == [b"v"]
    assert core.leader == "b:2"
    assert "b:2" in core.endpoints  # learned from the follower


def test_a_write_retried_after_an_unknown_outcome_keeps_its_tag():
    attempts = []

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        attempts.append(request)
        if len(attempts) == 1:
            return ErrorReply("UNKNOWN outcome unknown: leader changed")
        return 6

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    assert net.run(core.execute([c.IncrBy(b"n", 1)])) == [6]
    assert len(attempts) == 2
    assert attempts[0][:2] == [b"RAFTCACHE", b"ONCE"]
    assert attempts[0][2:4] == attempts[1][2:4]  # same client id and seq: applied at most once
    assert attempts[0][5:] == [b"INCRBY", b"n", b"1"]


def test_connection_loss_mid_write_retries_elsewhere_with_the_same_tag():
    tags = []

    def dying(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        tags.append(request[2:4])
        raise ConnectionResetError("gone")

    def survivor(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        tags.append(request[2:4])
        return OK

    net = FakeNetwork({"a:1": dying, "b:1": survivor})
    core = ClientCore(["a:1", "b:1"], FAST)
    assert net.run(core.execute([c.Set(b"k", b"v")])) == [True]
    assert len(tags) == 2 and tags[0] == tags[1]


def test_deadline_gives_outcome_unknown_for_writes_and_no_leader_for_reads():
    def stuck(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        if request[0] == b"RAFTCACHE":
            return ErrorReply("UNKNOWN outcome unknown: no commit before the deadline")
        return ErrorReply("CLUSTERDOWN not applied: cluster unavailable")

    net = FakeNetwork({"a:1": stuck})
    core = ClientCore(["a:1"], RetryPolicy(deadline=0.2, backoff_base=0.01, jitter=0.0))
    write, read = net.run(core.execute([c.Set(b"k", b"v"), c.Get(b"k")]))
    assert isinstance(write, OutcomeUnknownError)
    assert isinstance(read, NoLeaderError)


def test_a_write_refused_everywhere_is_not_applied():
    net = FakeNetwork({"a:1": down, "b:1": down})
    core = ClientCore(["a:1", "b:1"], RetryPolicy(deadline=0.2, backoff_base=0.01, jitter=0.0))
    (result,) = net.run(core.execute([c.Set(b"k", b"v")]))
    # the request never reached a node: definitely not applied
    assert isinstance(result, NoLeaderError)


def test_command_errors_are_final_and_not_retried():
    calls = []

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        calls.append(request)
        return ErrorReply("ERR value is not an integer or out of range")

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    (result,) = net.run(core.execute([c.IncrBy(b"s", 1)]))
    assert isinstance(result, NotIntegerError)
    assert len(calls) == 1


def test_pipeline_retries_only_what_failed_and_keeps_order():
    replies = {b"GET": [ErrorReply("CLUSTERDOWN not applied"), b"x"], b"RAFTCACHE": [OK]}

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        return replies[request[0]].pop(0)

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    assert net.run(core.execute([c.Set(b"k", b"v"), c.Get(b"k")])) == [True, b"x"]


def test_ack_advances_as_answers_arrive():
    seen_acks = []

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        seen_acks.append((int(request[3]), int(request[4])))  # (seq, ack)
        return OK

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    for _ in range(3):
        net.run(core.execute([c.Set(b"k", b"v")]))
    assert [ack for _, ack in seen_acks] == [seq for seq, _ in seen_acks]  # all earlier answered


@pytest.mark.parametrize("attempt", [0, 3, 30])
def test_backoff_is_bounded(attempt):
    policy = RetryPolicy(backoff_base=0.05, backoff_max=1.0, jitter=0.5)
    assert 0 <= policy.backoff(attempt) <= 1.5


def test_a_stale_read_needs_no_leader_and_switches_the_connection_back():
    local = {b"k": b"local"}

    def node_without_leader(request):
        if request[0] == b"INFO":
            return leader_info("candidate")
        if request[0] in (b"READONLY", b"READWRITE"):
            return OK
        if request[0] == b"GET":  # only reached on a READONLY connection in this fake
            return local.get(request[1])
        return ErrorReply("CLUSTERDOWN not applied: no leader")  # what a linearizable read gets

    net = FakeNetwork({"a:1": node_without_leader})
    core = ClientCore(["a:1"], FAST)
    assert net.run(core.execute([StaleRead(c.Get(b"k")), StaleRead(c.Get(b"j"))])) == [b"local", None]
    # no discovery round; each read is wrapped so the pooled connection stays linearizable
    assert [r for _, r in net.seen] == [[b"READONLY"], [b"GET", b"k"], [b"READWRITE"], [b"READONLY"], [b"GET", b"j"], [b"READWRITE"]]
    stale, barrier = net.run(core.execute([StaleRead(c.Get(b"k")), c.Barrier()], timeout=0.1))
    assert stale == b"local" and isinstance(barrier, NoLeaderError)


def test_a_stale_read_moves_on_from_a_dead_node_and_reports_a_refused_switch():
    net = FakeNetwork({"a:1": down, "b:1": lambda request: OK if request[0] != b"GET" else b"v"})
    core = ClientCore(["a:1", "b:1"], FAST)
    assert net.run(core.execute([StaleRead(c.Get(b"k"))])) == [b"v"]
    net.handlers["b:1"] = lambda request: ErrorReply("NOAUTH Authentication required.")
    (result,) = net.run(core.execute([StaleRead(c.Get(b"k"))]))
    assert type(result).__name__ == "NoAuthError"


def test_a_calls_timeout_replaces_the_policys_deadline():
    def no_leader(request):
        return leader_info("candidate") if request[0] == b"INFO" else ErrorReply("CLUSTERDOWN not applied: no leader")

    net = FakeNetwork({"a:1": no_leader})
    core = ClientCore(["a:1"], RetryPolicy(deadline=30.0, backoff_base=0.0, jitter=0.0))
    start = time.monotonic()
    (result,) = net.run(core.execute([c.Barrier()], timeout=0.2))
    assert isinstance(result, NoLeaderError)
    assert time.monotonic() - start < 2.0


def test_consistency_arguments_are_checked():
    assert as_requested(c.Get(b"k"), None) == c.Get(b"k")
    assert as_requested(c.Get(b"k"), "linearizable") == c.Get(b"k")
    assert as_requested(c.Get(b"k"), "stale") == StaleRead(c.Get(b"k"))
    with pytest.raises(ValueError):
        as_requested(c.Get(b"k"), "eventual")
    with pytest.raises(ValueError):
        as_requested(c.Set(b"k", b"v"), "stale")


# ------------------------------------------------------------------------ transactions
def test_a_transaction_is_sent_whole_and_retried_whole_with_the_same_tag():
    """MULTI ... tagged EXEC on one connection; after a lost connection, all of it again with
    the same tag (the cluster answers the retry from its session table)."""
    sent: list[list[bytes]] = []
    lost = []

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        sent.append(request)
        if request[-1] == b"EXEC" and not lost:
            lost.append(1)
            raise ConnectionResetError("reset")
        return [1, b"1"] if request[-1] == b"EXEC" else (OK if request[0] in (b"MULTI", b"RAFTCACHE") else "QUEUED")

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    exec_cmd = c.Exec((c.IncrBy(b"n", 1), c.Get(b"n")), ((b"n", 6),))
    assert net.run(core.execute([exec_cmd])) == [[1, b"1"]]
    first, second = sent[: len(sent) // 2], sent[len(sent) // 2 :]
    assert first == second
    assert first[0] == [b"RAFTCACHE", b"WATCHED", b"n", b"6"] and first[1] == [b"MULTI"]
    assert first[2] == [b"INCRBY", b"n", b"1"] and first[3] == [b"GET", b"n"]
    assert first[4][:2] == [b"RAFTCACHE", b"ONCE"] and first[4][-1] == b"EXEC"


def test_an_aborted_transaction_is_a_watch_error_and_a_queuing_refusal_wins():
    from raftcache.errors import WatchError

    replies = {b"EXEC": None}

    def leader(request):
        if request[0] == b"INFO":
            return leader_info("leader")
        if request[-1] == b"EXEC":
            return replies[b"EXEC"]
        return OK if request[0] == b"MULTI" else ErrorReply("ERR value is not an integer or out of range")

    net = FakeNetwork({"a:1": leader})
    core = ClientCore(["a:1"], FAST)
    (result,) = net.run(core.execute([c.Exec((c.Get(b"k"),))]))
    assert isinstance(result, NotIntegerError)  # the refusal while queuing, not EXEC's reply
    (result,) = net.run(core.execute([c.Exec(())]))
    assert isinstance(result, WatchError)


def test_when_every_node_fails_the_tls_handshake_the_command_fails_at_once():
    def tls_refused(request):
        error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        error.reason = "WRONG_VERSION_NUMBER"  # as the ssl module sets it on a real handshake failure
        raise error

    net = FakeNetwork({"a:1": tls_refused, "b:1": tls_refused})
    core = ClientCore(["a:1", "b:1"], RetryPolicy(deadline=30.0, backoff_base=0.0, jitter=0.0))
    started = time.monotonic()
    (result,) = net.run(core.execute([c.Get(b"k")]))
    assert time.monotonic() - started < 1  # not retried until the 30 s deadline
    assert isinstance(result, NoLeaderError) and "TLS handshake failed" in str(result)
    assert len(net.seen) == 2  # one discovery round: each node asked once

    # One node that is merely down (a fault to wait out) keeps the retries going.
    answers = iter([ConnectionRefusedError("refused"), None])

    def flaky(request):
        error = next(answers, None)
        if error is not None:
            raise error
        return leader_info("leader") if request[0] == b"INFO" else b"v"

    net = FakeNetwork({"a:1": tls_refused, "b:1": flaky})
    core = ClientCore(["a:1", "b:1"], RetryPolicy(deadline=30.0, backoff_base=0.0, jitter=0.0))
    assert net.run(core.execute([c.Get(b"k")])) == [b"v"]
