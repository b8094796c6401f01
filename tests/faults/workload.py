"""What every fault workload shares: its client threads' lifecycle, and a client's home node.

* ``Crew`` — threads started together and stopped together: their stop event, a
  deadline-bounded join, and the exceptions they raised (re-raised in the test's thread by
  ``stop``/``join``, or by ``raise_errors`` at any time: an exception in a bare thread is lost).
* ``ClientWorkload`` — the base of the workloads (``harness.Workload``, ``bank``, ``queue``,
  ``eviction``, ``pubsub``, ``watch``): endpoints, the per-call timeout, a run-time bound,
  one ``Crew``, a lock over the record, and the notes every workload takes (outcomes and
  error prefixes, problems). A workload writes ``_launch`` (its threads) and its client loops,
  checks and summary; ``start``/``stop`` are here.
* ``RespConn`` and ``classify`` — one raw RESP connection (no client-side retries: nothing is
  hidden) and the outcome of one request: ``ok``, ``fail`` (definitely not applied) or
  ``unknown`` (see harness.py).
* ``Conns`` — a client's connections, one per node; ``Home`` — a client sticks to one node,
  like a real connection, and moves to a random one after a failure.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from raftcache.resp import ErrorReply, ReplyParser, encode_command
from tests.helpers import Workers

FAIL_PREFIXES = {"CLUSTERDOWN", "TRYAGAIN", "ERR", "NOAUTH"}
UNKNOWN_PREFIXES = {"UNKNOWN", "MISCONF"}


class NotSent(Exception):
    """The request never left: definitely not applied."""


class NoReply(Exception):
    """The request was sent but no reply came back: outcome unknown."""


class RespConn:
    """One blocking RESP connection; reconnects lazily."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.parser = ReplyParser()

    def call(self, *args: Any) -> Any:
        if self.sock is None:
            host, port = self.endpoint.rsplit(":", 1)
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=min(1.0, self.timeout))
            except OSError as exc:
                raise NotSent(str(exc)) from None
            self.sock.settimeout(self.timeout)
            self.parser = ReplyParser()
        try:
            self.sock.sendall(encode_command(*args))
        except OSError as exc:
            self.close()
            raise NoReply(str(exc)) from None  # part of it may have gone out
        sock = self.sock
        try:
            (reply,) = self.parser.read_replies(1, lambda: sock.recv(65536))
        except OSError as exc:  # ConnectionResetError included: the node closed the connection
            self.close()
            raise NoReply(str(exc)) from None
        return reply

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def classify(call: Callable[[], Any]) -> tuple[str, Any]:
    """(outcome, reply) for one request."""
    try:
        reply = call()
    except NotSent:
        return "fail", None
    except NoReply:
        return "unknown", None
    if isinstance(reply, ErrorReply):
        if reply.prefix in UNKNOWN_PREFIXES:
            return "unknown", reply
        return "fail", reply
    return "ok", reply


JOIN_SLACK_S = 10.0  # beyond a call's timeout, how long a stopping thread may take to notice


class Crew:
    """Threads started together and stopped together (see the module docstring)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._workers = Workers()

    def start(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
        return self._workers.start(target, *args, name=name)

    def running(self, deadline: float = float("inf")) -> bool:
        """Whether a thread's loop goes on: not stopped, and within its own deadline."""
        return not self.stopping.is_set() and time.monotonic() < deadline

    def stop(self, timeout: float) -> None:
        """Ask the threads to stop and wait for them (up to `timeout`); re-raises the first
        exception one of them raised, or fails on threads still running."""
        self.stopping.set()
        self.join(timeout)

    def join(self, timeout: float) -> None:
        self._workers.join(timeout)

    @property
    def errors(self) -> list[BaseException]:
        return self._workers.errors

    def raise_errors(self) -> None:
        errors = self.errors
        if errors:
            raise errors[0]


class ClientWorkload:
    """The base of the fault workloads (see the module docstring). Subclasses set
    ``self.record`` (with ``outcomes``/``errors``/``problems`` where they take those notes)
    and write ``_launch``; ``_prepare`` runs first, on a healthy cluster."""

    record: Any

    def __init__(self, endpoints: Callable[[], list[str]], *, timeout: float = 4.0, max_seconds: float = 600,
                 max_ops: float = float("inf")) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.max_seconds = max_seconds  # each client loop's bound, whether or not stop() comes
        self.max_ops = max_ops  # operations over all the clients that count them (``_take_op``)
        self._ops = 0
        self._lock = threading.Lock()
        self._crew = Crew()  # the clients stop() stops; a workload stopped in phases adds crews
        self._crews = [self._crew]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        self._prepare()
        self._launch()
        return self

    def stop(self) -> None:
        self._crew.stop(self._join_timeout())

    def raise_errors(self) -> None:
        """Re-raise the first exception a client thread of any crew raised (stop() does too)."""
        for crew in self._crews:
            crew.raise_errors()

    @property
    def ok_ops(self) -> int:
        """Acknowledged operations (of a workload whose record counts ``outcomes``)."""
        return self.record.outcomes["ok"]

    def _new_crew(self) -> Crew:
        """Another group of threads, stopped on its own (e.g. publishers before subscribers)."""
        crew = Crew()
        self._crews.append(crew)
        return crew

    def _prepare(self) -> None:
        """Set-up before any client runs (nothing by default)."""

    def _launch(self) -> None:
        raise NotImplementedError

    def _join_timeout(self) -> float:
        return self.timeout + JOIN_SLACK_S

    def _spawn(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
        return self._crew.start(target, *args, name=name)

    def _deadline(self) -> float:
        return time.monotonic() + self.max_seconds

    def _running(self, deadline: float = float("inf")) -> bool:
        return self._crew.running(deadline)

    def _take_op(self) -> bool:
        """Count one more operation: False once ``max_ops`` were taken (the client stops)."""
        with self._lock:
            if self._ops >= self.max_ops:
                return False
            self._ops += 1
            return True

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` (pacing, or a node that refuses), or less if stop() comes: True then."""
        return self._crew.stopping.wait(seconds)

    def _home(self, start: int, rng: random.Random) -> Home:
        return Home(self.endpoints, start, self.timeout, rng)

    def _conns(self, timeout: float | None = None) -> Conns:
        return Conns(self.timeout if timeout is None else timeout)

    # ---------------------------------------------------------------------- notes
    def _note(self, outcome: str, reply: Any) -> None:
        with self._lock:
            self.record.outcomes[outcome] += 1
            if isinstance(reply, ErrorReply):
                self.record.errors[reply.prefix] += 1
        if outcome == "fail" and reply is None:
            time.sleep(0.02)  # a dead node refuses at once: don't spin (keeps availability meaningful)

    def _problem(self, text: str) -> None:
        with self._lock:
            self.record.problems.append(text)


class Conns:
    """One lazily reconnecting ``RespConn`` per node a client talked to, closed together."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._conns: dict[str, RespConn] = {}

    def to(self, endpoint: str) -> RespConn:
        conn = self._conns.get(endpoint)
        if conn is None:
            conn = self._conns[endpoint] = RespConn(endpoint, self._timeout)
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


class Home(Conns):
    """A client's node (see the module docstring). ``conn()`` is the connection to it (the
    node list is read again each time: membership may change); ``move()`` picks another."""

    def __init__(self, endpoints: Callable[[], list[str]], start: int, timeout: float, rng: random.Random) -> None:
        super().__init__(timeout)
        self._endpoints = endpoints
        self._index = start
        self._rng = rng
        self._count = 1

    def conn(self) -> RespConn:
        endpoints = self._endpoints()
        self._count = len(endpoints)
        return self.to(endpoints[self._index % self._count])

    def move(self) -> None:
        """After a failure: another node, at random, among those the last ``conn()`` saw."""
        self._index = self._rng.randrange(self._count)
