"""The watch history ring, watch streams and the client's resume cursor (no sockets)."""

from __future__ import annotations

import gc
import random
import sys
import tracemalloc

import pytest

from raftcache.errors import CommandError, WatchCompactedError, error_from_resp, resp_prefix
from raftcache.resp import ErrorReply
from raftcache.watch import (
    EVENT_OVERHEAD_BYTES,
    History,
    WatchCursor,
    WatchEvent,
    WatchHub,
    WatchRequest,
    WatchStream,
    parse_watch,
)


def ev(seq: int, key: bytes = b"k", event: str = "set", value: bytes | None = None) -> WatchEvent:
    return WatchEvent(seq, event, key, value)


def drain(stream: WatchStream, history: History, limit: int = 7) -> list[int]:
    """Pull until the stream is caught up; the seqs delivered."""
    out: list[int] = []
    while True:
        frames = stream.pull(history, limit)
        out += [f[1] for f in frames]
        if stream.position >= history.applied:
            return out


def test_resume_inside_history_delivers_every_later_event_once_in_order() -> None:
    h = History(max_events=1000)
    h.record([ev(s) for s in range(1, 201)])
    for start in (0, 1, 57, 199, 200):
        stream = WatchStream.open(WatchRequest(b"*", start, False), h, now=0, future_wait_s=1)
        assert drain(stream, h) == list(range(start + 1, 201))
    # live: events recorded after the stream caught up come next, once
    stream = WatchStream.open(WatchRequest(b"*", 150, False), h, now=0, future_wait_s=1)
    first = drain(stream, h)
    h.record([ev(s) for s in range(201, 231)])
    assert first + drain(stream, h) == list(range(151, 231))
    assert stream.pull(h) == []


def test_gaps_in_seqs_and_entries_without_events_move_the_position() -> None:
    h = History()
    h.record([ev(10), ev(12)], through=15)  # seqs need not be dense; an entry may change nothing
    stream = WatchStream.open(WatchRequest(b"*", None, False), h, now=0, future_wait_s=1)
    assert stream.position == 15  # "now"
    h.record([], through=20)
    assert stream.pull(h) == [] and stream.progress() == [b"progress", 20]
    h.record([ev(21)])
    assert [f[1] for f in stream.pull(h)] == [21]


def test_a_seq_older_than_the_history_gets_the_compacted_error_with_the_oldest_seq() -> None:
    h = History(max_events=10)
    h.record([ev(s) for s in range(1, 31)])
    assert len(h) == 10 and h.oldest() == 20
    with pytest.raises(WatchCompactedError) as caught:
        WatchStream.open(WatchRequest(b"*", 19, False), h, now=0, future_wait_s=1)
    assert caught.value.oldest == 20 and "oldest available 20" in caught.value.message
    # the oldest one itself is a valid start: events 21..30 are all held
    stream = WatchStream.open(WatchRequest(b"*", 20, False), h, now=0, future_wait_s=1)
    assert drain(stream, h) == list(range(21, 31))


def test_a_slow_stream_overtaken_by_the_ring_fails_instead_of_skipping() -> None:
    h = History(max_events=5)
    h.record([ev(s) for s in range(1, 4)])
    stream = WatchStream.open(WatchRequest(b"*", 0, False), h, now=0, future_wait_s=1)
    assert [f[1] for f in stream.pull(h, limit=2)] == [1, 2]
    h.record([ev(s) for s in range(4, 20)])  # 3..14 dropped before the stream read them
    with pytest.raises(WatchCompactedError):
        stream.pull(h)


def test_reset_by_a_snapshot_breaks_streams_that_straddle_it() -> None:
    h = History()
    h.record([ev(s) for s in range(1, 6)])
    stream = WatchStream.open(WatchRequest(b"*", 5, False), h, now=0, future_wait_s=1)
    h.reset(100)
    with pytest.raises(WatchCompactedError):
        stream.pull(h)
    with pytest.raises(WatchCompactedError):
        WatchStream.open(WatchRequest(b"*", 5, False), h, now=0, future_wait_s=1)
    fresh = WatchStream.open(WatchRequest(b"*", 100, False), h, now=0, future_wait_s=1)
    h.record([ev(101)])
    assert [f[1] for f in fresh.pull(h)] == [101]


def test_replayed_events_are_not_held_twice() -> None:
    h = History()
    h.record([ev(1), ev(2)])
    h.record([ev(2), ev(3)])  # a log repair re-applied an entry
    stream = WatchStream.open(WatchRequest(b"*", 0, False), h, now=0, future_wait_s=1)
    assert drain(stream, h) == [1, 2, 3]


def test_a_future_seq_waits_until_applied_then_never_skips() -> None:
    h = History()
    h.record([ev(1)])
    stream = WatchStream.open(WatchRequest(b"*", 5, False), h, now=100.0, future_wait_s=2)
    assert stream.pull(h) == [] and not stream.expired(101.0)
    h.record([ev(s) for s in range(2, 8)])
    assert [f[1] for f in stream.pull(h)] == [6, 7]  # strictly after 5
    late = WatchStream.open(WatchRequest(b"*", 50, False), h, now=100.0, future_wait_s=2)
    assert late.expired(102.0)
    assert "ahead of this node" in late.future_error(h).message


def test_patterns_filter_and_values_ride_along() -> None:
    h = History()
    h.record([ev(1, b"cfg:a", value=b"1"), ev(2, b"other"), ev(3, b"cfg:b", "del")])
    stream = WatchStream.open(WatchRequest(b"cfg:*", 0, True), h, now=0, future_wait_s=1)
    assert stream.pull(h) == [[b"event", 1, b"set", b"cfg:a", b"1"], [b"event", 3, b"del", b"cfg:b", None]]
    assert stream.position == 3


def test_memory_is_bounded_by_count_and_bytes() -> None:
    h = History(max_events=1000, max_bytes=50_000)
    for s in range(1, 5001):
        h.record([ev(s, b"key:%d" % s, value=b"x" * random.randint(0, 300))])
        assert len(h) <= 1000 and h.bytes <= 50_000
    assert h.oldest() > 4000
    # internal lists do not keep the dropped prefix forever
    assert len(h._seqs) <= 2 * 1024 + 1000


def test_measured_memory_per_event_is_within_the_estimate() -> None:
    h = History(max_events=20_000)
    # what attach_hub records: plain (seq, event, key, value) tuples
    events = [(s, "set", b"user:%08d" % s, b"v" * 16) for s in range(1, 20_001)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    h.record(events)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # the events themselves were built before: what the ring adds is the list slots; the
    # estimate must cover a whole event (tuple, ints, bytes) plus the slots
    seq, _, key, value = events[0]
    whole = sys.getsizeof(events[0]) + sys.getsizeof(key) + sys.getsizeof(value) + sys.getsizeof(seq)
    assert held / 20_000 + whole <= EVENT_OVERHEAD_BYTES + len(key) + len(value)


def test_the_history_holds_nothing_the_cyclic_gc_must_keep_tracking() -> None:
    """A NamedTuple is tracked by the cyclic GC for life; 100,000 of them churning through
    the ring made a node run a full collection every ~25,000 changes (the expiry storm's
    stall). The ring holds exact tuples of atoms, which one collection untracks."""
    h = History(max_events=1000)
    hub = WatchHub(h)
    hub.on_applied([(s, "set", b"k%d" % s, b"v") for s in range(1, 1001)], 1000)
    h.record([ev(s) for s in range(1001, 1101)])  # WatchEvents given directly are copied to tuples
    gc.collect()
    assert not any(gc.is_tracked(e) for e in h._events[h._start:])
    got, _ = h.read_after(995, 10)
    assert [type(e) for e in got] == [WatchEvent] * 10 and got[0].key == b"k996"


def test_parse_watch() -> None:
    assert parse_watch([b"RAFTCACHE", b"WATCH", b"a*"]) == WatchRequest(b"a*", None, False)
    assert parse_watch([b"RAFTCACHE", b"WATCH", b"a*", b"from", b"7", b"VALUES"]) == WatchRequest(b"a*", 7, True)
    for bad in ([b"x", b"FROM"], [b"x", b"FROM", b"-1"], [b"x", b"FROM", b"z"], [b"x", b"NOPE"], [b"x", b"VALUES", b"VALUES"]):
        with pytest.raises(CommandError):
            parse_watch([b"RAFTCACHE", b"WATCH", *bad])
    with pytest.raises(CommandError, match="longer than"):
        parse_watch([b"RAFTCACHE", b"WATCH", b"*" * 2000])


def test_compacted_error_round_trips_over_resp() -> None:
    h = History(max_events=2)
    h.record([ev(s) for s in range(1, 10)])
    with pytest.raises(WatchCompactedError) as caught:
        h.check_start(3)
    err = caught.value
    back = error_from_resp(resp_prefix(err), err.message)
    assert isinstance(back, WatchCompactedError) and back.oldest == 7


def test_cursor_tracks_the_last_seq_and_resumes_elsewhere() -> None:
    cursor = WatchCursor(b"k*", ["a:1", "b:2", "c:3"], start_index=None, values=True)
    assert cursor.command() == [b"RAFTCACHE", b"WATCH", b"k*", b"VALUES"]
    assert cursor.next_endpoint() == "a:1"
    assert cursor.feed([b"watching", b"k*", 10]) is None and cursor.last == 10
    assert cursor.feed([b"event", 11, b"set", b"k1", b"v"]) == WatchEvent(11, "set", b"k1", b"v")
    assert cursor.feed([b"progress", 15]) is None and cursor.last == 15
    assert cursor.feed([b"event", 14, b"set", b"k1", b"v"]) is None  # never twice
    assert cursor.next_endpoint() == "b:2" and cursor.resumes == 1
    assert cursor.command() == [b"RAFTCACHE", b"WATCH", b"k*", b"FROM", b"15", b"VALUES"]
    with pytest.raises(WatchCompactedError):
        cursor.feed(ErrorReply.from_parts("COMPACTED", "required seq 15 has been compacted (oldest available 40); re-read"))


class ListSink:
    def __init__(self, room: int = 10**9) -> None:
        self.frames: list[list] = []
        self.error: CommandError | None = None
        self.room = room

    def push(self, frame: list) -> bool:
        if len(self.frames) >= self.room:
            return False
        self.frames.append(frame)
        return True

    def fail(self, error: CommandError) -> None:
        self.error = error


def test_hub_pumps_streams_wakes_and_drops_a_sink_over_its_limit() -> None:
    from raftcache.watch import WatchHub

    woken: list[int] = []
    hub = WatchHub(History(), progress_s=0.1, future_wait_s=1.0, batch=3)
    hub.add_waker(lambda: woken.append(1))
    fast, slow = ListSink(), ListSink(room=2)
    hub.open(WatchRequest(b"a*", None, False), fast, now=0)
    hub.open(WatchRequest(b"*", None, False), slow, now=0)
    hub.on_applied([ev(1, b"a1"), ev(2, b"b"), ev(3, b"a2"), ev(4, b"a3")])
    assert woken == [1]
    while hub.pump():
        pass
    assert [f[1] for f in fast.frames] == [1, 3, 4]
    assert len(hub) == 1  # the slow one went over its limit: dropped (its connection closes)
    hub.tick(1.0, leader_known=True)
    assert fast.frames[-1] == [b"progress", 4]
    hub.tick(2.0, leader_known=False)
    assert fast.frames[-1] == [b"progress", 4] and len(fast.frames) == 4  # quiet without a leader


def test_hub_refuses_values_it_does_not_keep_and_times_out_future_seqs() -> None:
    from raftcache.watch import WatchHub

    hub = WatchHub(History(), values_kept=False, future_wait_s=1.0)
    with pytest.raises(CommandError, match="keeps no values"):
        hub.open(WatchRequest(b"*", None, True), ListSink(), now=0)
    sink = ListSink()
    hub.open(WatchRequest(b"*", 99, False), sink, now=0)
    hub.tick(0.5, leader_known=True)
    assert sink.frames == [] and sink.error is None  # waiting: no progress claims yet
    hub.tick(1.5, leader_known=True)
    assert sink.error is not None and "ahead of this node" in sink.error.message and len(hub) == 0


def test_cursor_tries_every_node_before_giving_up_on_a_compacted_seq() -> None:
    cursor = WatchCursor(b"*", ["a:1", "b:2"], start_index=5)
    err = WatchCompactedError("required seq 5 has been compacted (oldest available 9)")
    cursor.next_endpoint()
    assert cursor.failed(err) == 0.0  # b may still hold it (its history did not restart)
    cursor.next_endpoint()
    with pytest.raises(WatchCompactedError):
        cursor.failed(err)
    cursor = WatchCursor(b"*", ["a:1"], start_index=5, deadline=0.0)
    cursor.next_endpoint()
    cursor.failed(ConnectionRefusedError())
    with pytest.raises(Exception, match="no node could serve"):
        cursor.failed(ConnectionRefusedError())
    with pytest.raises(CommandError, match="syntax"):
        cursor.failed(CommandError("syntax error"))  # a refused command is not cured elsewhere


def test_reset_keeps_events_after_the_horizon() -> None:
    h = History()
    h.record([ev(s) for s in range(1, 10)])
    h.reset(6)
    assert h.oldest() == 6 and len(h) == 3 and h.applied == 9
    stream = WatchStream.open(WatchRequest(b"*", 6, False), h, now=0, future_wait_s=1)
    assert [f[1] for f in stream.pull(h)] == [7, 8, 9]


def test_flushall_reaches_every_pattern() -> None:
    h = History()
    h.record([ev(1, b"a"), WatchEvent(2, "flushall", b"")])
    stream = WatchStream.open(WatchRequest(b"cfg:*", 0, False), h, now=0, future_wait_s=1)
    assert stream.pull(h) == [[b"event", 2, b"flushall", b""]]


def test_a_readable_filter_hides_keys_the_watcher_may_not_read() -> None:
    h = History()
    h.record([ev(1, b"cfg:a"), ev(2, b"secret:x"), ev(3, b"cfg:b")])
    stream = WatchStream.open(WatchRequest(b"*", 0, False), h, now=0, future_wait_s=1,
                              readable=lambda key: key.startswith(b"cfg:"))
    assert [f[3] for f in stream.pull(h)] == [b"cfg:a", b"cfg:b"] and stream.position == 3


def test_cursor_drives_a_near_cache_through_frames_and_failures() -> None:
    """What both clients' stream loops rely on: the greeting puts the near-cache up, every
    frame counts as word from the stream, an event invalidates its key, a failure drops it."""
    from raftcache.near_cache import NearCache, NearCacheConfig

    near = NearCache(NearCacheConfig(max_keys=10))
    cursor = WatchCursor(b"*", ["a:1", "b:2"], start_index=None)
    cursor.next_endpoint()
    assert near.begin_fill(b"k") is None  # not up yet: nothing may be filled
    greeting = [b"watching", b"*", 10]
    assert list(cursor.on_frames([greeting], near)) == [] and near.serving and cursor.last == 10
    near.finish_fill(b"k", near.begin_fill(b"k"), b"v")
    near.finish_fill(b"j", near.begin_fill(b"j"), b"w")
    frames = [[b"progress", 11], [b"event", 12, b"set", b"k"], [b"event", 12, b"set", b"j"]]
    assert list(cursor.on_frames(frames, near)) == [WatchEvent(12, "set", b"k")]  # the repeat is dropped
    assert near.lookup(b"k") is near.MISS and near.lookup(b"j") == b"w" and near.invalidations == 1
    # an error frame raises after the events before it were handed out (and counted in `last`)
    stream = cursor.on_frames([[b"event", 13, b"del", b"j"], ErrorReply.from_parts("ERR", "boom")], near)
    assert next(stream) == WatchEvent(13, "del", b"j") and cursor.last == 13
    with pytest.raises(CommandError, match="boom"):
        next(stream)
    assert cursor.on_failure(ConnectionResetError(), near) == 0.0  # the other node at once
    assert not near.serving and len(near) == 0
    cursor.next_endpoint()
    assert cursor.on_frame(greeting) is None  # without a near-cache: the cursor alone
    with pytest.raises(CommandError, match="syntax"):
        cursor.on_failure(CommandError("syntax error"), near)
