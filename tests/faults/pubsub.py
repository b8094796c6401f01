"""The pub/sub workload: a subscriber on every node, publishers through any node, while
faults happen; then a check that every node's subscribers saw one common order.

Each subscriber holds one RESP2 connection to its node, SUBSCRIBEd to one channel; when the
connection breaks (the node was killed, paused past the read timeout, cut off) it records
a *disconnect* and subscribes again as soon as the node answers. What it received between
two disconnects is one *segment*. Publishers PUBLISH unique payloads (`<publisher>.<n>`),
one at a time, through a random node, and record each outcome (ok / fail / unknown).

Checked (``check``):

* one common order: the order of every two messages is the same in every segment that
  holds both (no cycle in "a came before b"), so all segments are subsequences of one order;
* gaps only across the subscriber's own disconnects: when two segments share messages, a
  message one of them has between two shared ones is in the other too;
* no duplicate within a segment; no message whose PUBLISH definitely failed is received; a
  publisher's acknowledged messages (it waits for each reply) arrive in the order it sent
  them (one whose outcome was unknown may be retried by its node and commit later).

Reported (``summary``): messages per subscriber, disconnects (the gaps allowed), and
acknowledged messages that no subscriber saw (possible only while every subscriber was
disconnected at once).
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from raftcache.resp import NEED_DATA, ReplyParser, encode_command
from tests.faults.workload import ClientWorkload, RespConn, classify
from tests.helpers import wait_until

DISCONNECT = "|"  # a segment boundary in a subscriber's record
END = "end"  # published once the publishers stopped: every subscriber has all before it


@dataclass
class PubSubRecord:
    received: dict[int, list[str]] = field(default_factory=dict)  # subscriber -> payloads and DISCONNECTs
    published: dict[str, str] = field(default_factory=dict)  # payload -> ok / fail / unknown


class PubSubWorkload(ClientWorkload):
    def __init__(self, endpoints: Callable[[], list[str]], *, publishers: int = 2, timeout: float = 3.0, seed: int = 1,
                 prefix: str = "ps:", max_messages: int = 20_000) -> None:
        super().__init__(endpoints, timeout=timeout)
        self.publishers = publishers
        self.seed = seed
        self.channel = f"{prefix}feed"
        self.max_messages = max_messages
        self.record = PubSubRecord()
        self._publishing = self._new_crew()  # stopped first; the workload's own crew is the subscribers
        self._ready: list[threading.Event] = []

    def _launch(self) -> None:
        for i, _ in enumerate(self.endpoints()):
            self.record.received[i] = []
            ready = threading.Event()
            self._ready.append(ready)
            self._spawn(self._subscribe, i, ready, name=f"ps-sub-{i}")
        for ready in self._ready:
            ready.wait(30)
        for w in range(self.publishers):
            self._publishing.start(self._publish, w, name=f"ps-pub-{w}")

    def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop publishing, publish END, and stop the subscribers once each has it (after
        the faults are healed every subscriber is back and receives it)."""
        try:
            self._publishing.stop(self._join_timeout())
            wait_until(self._published_end, drain_timeout, 0.1, "the END marker to be published")
            wait_until(lambda: all(END in r for r in self.record.received.values()), drain_timeout, 0.05,
                       "every subscriber to receive END")
        finally:
            super().stop()

    def _published_end(self) -> bool:
        conn = RespConn(random.choice(self.endpoints()), self.timeout)
        try:
            return classify(lambda: conn.call("PUBLISH", self.channel, END))[0] == "ok"
        finally:
            conn.close()

    @property
    def ok_publishes(self) -> int:
        with self._lock:
            return sum(1 for outcome in self.record.published.values() if outcome == "ok")

    # ---------------------------------------------------------------- the actors
    def _publish(self, w: int) -> None:
        rng = random.Random(self.seed * 100 + w)
        conns = self._conns()
        n = 0
        try:
            while self._publishing.running() and n < self.max_messages:
                conn = conns.to(rng.choice(self.endpoints()))
                payload = f"p{w}.{n}"
                n += 1
                with self._lock:
                    self.record.published[payload] = "pending"
                outcome, _ = classify(lambda conn=conn, payload=payload: conn.call("PUBLISH", self.channel, payload))
                with self._lock:
                    self.record.published[payload] = outcome
                if outcome != "ok":
                    self._publishing.stopping.wait(0.05)
        finally:
            conns.close()

    def _subscribe(self, i: int, ready: threading.Event) -> None:
        out = self.record.received[i]
        while self._running():
            endpoint = self.endpoints()[i]
            host, port = endpoint.rsplit(":", 1)
            try:
                sock = socket.create_connection((host, int(port)), timeout=1.0)
            except OSError:
                self._pause(0.1)
                continue
            try:
                sock.settimeout(self.timeout)
                sock.sendall(encode_command("SUBSCRIBE", self.channel))
                parser = ReplyParser()
                parser.read_replies(1, lambda sock=sock: sock.recv(65536))  # the confirmation: subscribed from here on
                ready.set()
                while self._running():
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        continue  # quiet: nothing published meanwhile (a paused node stays connected)
                    if not data:
                        break
                    parser.feed(data)
                    while (reply := parser.next()) is not NEED_DATA:
                        out.append(reply[2].decode())
            except OSError:
                pass
            finally:
                sock.close()
            if self._running():
                out.append(DISCONNECT)
                self._pause(0.1)

    # ---------------------------------------------------------------- the check
    def segments(self) -> list[tuple[int, list[str]]]:
        found = []
        for i, record in self.record.received.items():
            current: list[str] = []
            for item in [*record, DISCONNECT]:
                if item == END:
                    continue
                if item == DISCONNECT:
                    if current:
                        found.append((i, current))
                    current = []
                else:
                    current.append(item)
        return found

    def check(self) -> list[str]:
        problems: list[str] = []
        segments = self.segments()
        failed = {p for p, outcome in self.record.published.items() if outcome == "fail"}
        for i, seg in segments:
            if len(set(seg)) != len(seg):
                problems.append(f"subscriber {i}: a message received twice in one connection")
            bad = failed.intersection(seg)
            if bad:
                problems.append(f"subscriber {i}: received {sorted(bad)[:3]} whose PUBLISH definitely failed")
            last: dict[str, int] = {}
            for payload in seg:
                if self.record.published.get(payload) != "ok":
                    continue  # an unanswered PUBLISH may still commit after the next one
                w, n = payload[1:].split(".")
                if last.get(w, -1) > int(n):
                    problems.append(f"subscriber {i}: publisher {w}'s messages out of their order ({payload})")
                last[w] = int(n)
        problems += self._one_order(segments)
        problems += self._no_gaps(segments)
        return problems

    @staticmethod
    def _one_order(segments: list[tuple[int, list[str]]]) -> list[str]:
        """Consecutive messages of every segment are edges of "came before"; a cycle means
        two subscribers saw two messages in opposite orders."""
        after: dict[str, set[str]] = {}
        for _, seg in segments:
            for a, b in itertools.pairwise(seg):
                after.setdefault(a, set()).add(b)
        indegree: dict[str, int] = {}
        for a, nexts in after.items():
            indegree.setdefault(a, 0)
            for b in nexts:
                indegree[b] = indegree.get(b, 0) + 1
        queue = [m for m, d in indegree.items() if d == 0]
        seen = 0
        while queue:
            m = queue.pop()
            seen += 1
            for b in after.get(m, ()):
                indegree[b] -= 1
                if indegree[b] == 0:
                    queue.append(b)
        if seen != len(indegree):
            return [f"no common order: {len(indegree) - seen} messages are in a cycle of 'received before'"]
        return []

    @staticmethod
    def _no_gaps(segments: list[tuple[int, list[str]]]) -> list[str]:
        problems = []
        members = [set(seg) for _, seg in segments]
        for x, (i, seg) in enumerate(segments):
            for y, (j, other) in enumerate(segments):
                if x == y:
                    continue
                shared = [p for p in seg if p in members[y]]
                if len(shared) < 2:
                    continue
                start, end = seg.index(shared[0]), seg.index(shared[-1])
                missing = [p for p in seg[start:end + 1] if p not in members[y]]
                if missing:
                    problems.append(f"subscriber {j} missed {missing[:3]} ({len(missing)}) within one connection, "
                                    f"while subscriber {i} received them between messages both saw")
        return problems

    def summary(self) -> str:
        seen = set()
        for _, seg in self.segments():
            seen.update(seg)
        acked = [p for p, outcome in self.record.published.items() if outcome == "ok"]
        unseen = [p for p in acked if p not in seen]
        parts = []
        for i, record in self.record.received.items():
            parts.append(f"sub{i}: {sum(1 for r in record if r != DISCONNECT)} received, "
                         f"{record.count(DISCONNECT)} disconnects")
        outcomes = {o: sum(1 for v in self.record.published.values() if v == o) for o in ("ok", "fail", "unknown")}
        return (f"pub/sub: published {outcomes}; " + "; ".join(parts)
                + f"; acknowledged but seen by no subscriber: {len(unseen)}")

