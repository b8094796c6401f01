"""CLIENT TRACKING's node-local tables (raftcache/tracking.py), without sockets: argument
errors as Redis 7.0 words them (checked against a real redis-server 7.0.15), default mode,
BCAST prefixes, OPTIN/OPTOUT with CLIENT CACHING, NOLOOP, REDIRECT and its RESP2 pub/sub form,
FLUSHALL, the bounded table, and cleanup when a connection goes."""

from __future__ import annotations

import pytest

from raftcache.errors import CommandError
from raftcache.resp import OK
from raftcache.tracking import ClientTracking, Invalidation, Peer, Tracker


def _on(tracker: Tracker, cid: int, *options: bytes, exists=lambda i: True) -> ClientTracking:
    state = tracker.clients.get(cid) or ClientTracking()
    assert tracker.tracking(cid, state, [b"CLIENT", b"TRACKING", b"ON", *options], exists) == OK
    return state


def _error(tracker: Tracker, state: ClientTracking, *args: bytes, exists=lambda i: True) -> str:
    with pytest.raises(CommandError) as info:
        tracker.tracking(1, state, [b"CLIENT", b"TRACKING", *args], exists)
    return info.value.message


@pytest.mark.parametrize(("args", "message"), [
    ((b"ON", b"PREFIX", b"a"), "PREFIX option requires BCAST mode to be enabled"),
    ((b"ON", b"BCAST", b"OPTIN"), "OPTIN and OPTOUT are not compatible with BCAST"),
    ((b"ON", b"OPTIN", b"OPTOUT"), "You can't specify both OPTIN mode and OPTOUT mode"),
    ((b"ON", b"REDIRECT", b"999"), "The client ID you want redirect to does not exist"),
    ((b"ON", b"REDIRECT", b"0"), "The client ID you want redirect to does not exist"),
    ((b"ON", b"REDIRECT", b"-5"), "The client ID you want redirect to does not exist"),
    ((b"OFF", b"REDIRECT", b"999"), "The client ID you want redirect to does not exist"),
    ((b"ON", b"REDIRECT", b"x"), "value is not an integer or out of range"),
    ((b"ON", b"REDIRECT", b"7", b"REDIRECT", b"7"), "A client can only redirect to a single other client"),
    ((b"ON", b"REDIRECT", b"999", b"FOO"), "The client ID you want redirect to does not exist"),
    ((b"ON", b"FOO"), "syntax error"),
    ((b"ON", b"PREFIX"), "syntax error"),
    ((b"MAYBE",), "syntax error"),
    ((b"ON", b"BCAST", b"PREFIX", b"foobar", b"PREFIX", b"foo"),
     "Prefix 'foobar' overlaps with another provided prefix 'foo'. Prefixes for a single client must not overlap."),
    ((b"ON", b"BCAST", b"PREFIX", b"a", b"PREFIX", b"a"),
     "Prefix 'a' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap."),
])
def test_bad_arguments_get_redis_errors(args, message):
    tracker = Tracker()
    state = ClientTracking()
    assert _error(tracker, state, *args, exists=lambda i: i == 7) == message
    assert not state.on and not tracker.clients


def test_mode_switches_and_prefix_overlaps_with_existing_prefixes():
    tracker = Tracker()
    state = _on(tracker, 1, b"OPTIN")
    assert _error(tracker, state, b"ON", b"OPTOUT") == (
        "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."
    )
    assert _error(tracker, state, b"ON", b"BCAST") == (
        "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."
    )
    tracker.tracking(1, state, [b"CLIENT", b"TRACKING", b"OFF"], lambda i: True)
    state = _on(tracker, 1, b"BCAST", b"PREFIX", b"foo", b"PREFIX", b"bar")
    assert _error(tracker, state, b"ON", b"BCAST", b"PREFIX", b"fo") == (
        "Prefix 'fo' overlaps with an existing prefix 'foo'. Prefixes for a single client must not overlap."
    )
    assert _error(tracker, state, b"ON", b"BCAST", b"PREFIX", b"barb").startswith("Prefix 'barb' overlaps with an existing prefix 'bar'")
    _on(tracker, 1, b"BCAST", b"PREFIX", b"baz")  # ON again: adds prefixes, resets the flags
    assert Tracker.info(state) == {b"flags": [b"on", b"bcast"], b"redirect": 0, b"prefixes": [b"bar", b"baz", b"foo"]}
    assert _error(tracker, state, b"ON").startswith("You can't switch BCAST mode on/off")


def test_trackinginfo_getredir_and_caching_flags():
    tracker = Tracker()
    state = ClientTracking()
    assert Tracker.info(state) == {b"flags": [b"off"], b"redirect": -1, b"prefixes": []}
    assert Tracker.getredir(state) == -1
    with pytest.raises(CommandError, match="CLIENT CACHING can be called only when the client is in tracking mode"):
        Tracker.caching(state, [b"CLIENT", b"CACHING", b"YES"])
    _on(tracker, 1, b"OPTIN", b"NOLOOP", b"REDIRECT", b"7", exists=lambda i: i == 7)
    state = tracker.clients[1]
    assert Tracker.getredir(state) == 7
    with pytest.raises(CommandError, match="CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."):
        Tracker.caching(state, [b"CLIENT", b"CACHING", b"NO"])
    with pytest.raises(CommandError, match="syntax error"):
        Tracker.caching(state, [b"CLIENT", b"CACHING", b"MAYBE"])
    assert Tracker.caching(state, [b"CLIENT", b"CACHING", b"yes"]) == OK
    assert Tracker.info(state)[b"flags"] == [b"on", b"optin", b"caching-yes", b"noloop"]


def test_optin_tracks_only_after_caching_yes_and_optout_skips_after_caching_no():
    tracker = Tracker()
    optin = _on(tracker, 1, b"OPTIN")
    assert not optin.reads_tracked()
    Tracker.caching(optin, [b"CLIENT", b"CACHING", b"YES"])
    assert optin.reads_tracked()  # this command only
    assert not optin.reads_tracked()
    optout = _on(tracker, 2, b"OPTOUT")
    assert optout.reads_tracked()
    Tracker.caching(optout, [b"CLIENT", b"CACHING", b"NO"])
    assert not optout.reads_tracked()
    assert optout.reads_tracked()
    default = _on(tracker, 3)
    assert default.reads_tracked()
    assert not ClientTracking().reads_tracked()  # tracking off


def test_default_mode_invalidates_each_reader_once_then_forgets_the_key():
    tracker = Tracker()
    _on(tracker, 1)
    _on(tracker, 2)
    tracker.remember(1, [b"a", b"b"])
    tracker.remember(2, [b"a"])
    tracker.remember(1, [b"a"])  # twice: still one entry
    assert (tracker.total_keys, tracker.items) == (2, 3)
    assert tracker.changed([(b"a", None), (b"c", None)]) == [Invalidation(1, (b"a",)), Invalidation(2, (b"a",))]
    assert tracker.changed([(b"a", None)]) == []  # read again to hear again
    assert (tracker.total_keys, tracker.items) == (1, 1)
    assert tracker.changed([(b"b", None), (b"b", None)]) == [Invalidation(1, (b"b",))]
    assert (tracker.total_keys, tracker.items) == (0, 0)


def test_noloop_skips_own_writes_only():
    tracker = Tracker()
    _on(tracker, 1, b"NOLOOP")
    _on(tracker, 2)
    assert tracker.watching_origins
    tracker.remember(1, [b"k"])
    tracker.remember(2, [b"k"])
    tracker.wrote(1, (77, 5))  # client 1's write goes out as origin (77, 5)
    tracker.wrote(2, (77, 6))  # client 2 has no NOLOOP: not noted
    assert tracker.changed([(b"k", (77, 5))]) == [Invalidation(2, (b"k",))]
    tracker.remember(1, [b"k"])
    assert tracker.changed([(b"k", (78, 5))]) == [Invalidation(1, (b"k",))]  # same seq, another node's session
    tracker.written((77, 5))
    tracker.remember(1, [b"k"])
    assert tracker.changed([(b"k", (77, 5))]) == [Invalidation(1, (b"k",))]  # answered: no longer its write


def test_bcast_prefixes_group_keys_per_prefix_and_respect_noloop():
    tracker = Tracker()
    _on(tracker, 1, b"BCAST", b"PREFIX", b"p:", b"PREFIX", b"q")
    _on(tracker, 2, b"BCAST")  # no prefix: every key
    _on(tracker, 3, b"BCAST", b"PREFIX", b"p:", b"NOLOOP")
    tracker.wrote(3, "mine")
    out = tracker.changed([(b"p:1", None), (b"x", None), (b"p:2", "mine"), (b"q", None), (b"p:1", None)])
    assert sorted(out) == sorted([
        Invalidation(1, (b"p:1", b"p:2")), Invalidation(1, (b"q",)),
        Invalidation(2, (b"p:1", b"x", b"p:2", b"q")),
        Invalidation(3, (b"p:1",)),
    ])
    tracker.remember(1, [b"p:1"])  # BCAST clients are not in the key table
    assert tracker.total_keys == 0 and tracker.total_prefixes == 3


def test_flush_tells_every_tracking_client_and_empties_the_table():
    tracker = Tracker()
    _on(tracker, 1)
    _on(tracker, 2, b"BCAST", b"NOLOOP")
    tracker.remember(1, [b"a"])
    assert tracker.flushed() == [Invalidation(1, None), Invalidation(2, None)]
    assert (tracker.total_keys, tracker.items) == (0, 0)
    assert tracker.changed([(b"a", None)]) == [Invalidation(2, (b"a",))]  # only the BCAST client still hears


def test_table_is_bounded_and_overflow_invalidates_the_oldest_keys():
    tracker = Tracker(max_keys=3)
    _on(tracker, 1)
    _on(tracker, 2)
    tracker.remember(1, [b"k1", b"k2"])
    tracker.remember(2, [b"k1", b"k3", b"k4", b"k5"])
    assert tracker.total_keys == 5  # over until trimmed (a read's reply goes out first)
    assert tracker.trim() == [Invalidation(1, (b"k1",)), Invalidation(2, (b"k1",)), Invalidation(1, (b"k2",))]
    assert (tracker.total_keys, tracker.items) == (3, 3)
    assert tracker.changed([(b"k2", None)]) == []
    assert tracker.trim() == []


def test_disable_and_disconnect_free_everything_the_client_held():
    tracker = Tracker()
    a = _on(tracker, 1, b"NOLOOP")
    _on(tracker, 2)
    b = _on(tracker, 3, b"BCAST", b"PREFIX", b"x")
    tracker.remember(1, [b"k", b"only-1"])
    tracker.remember(2, [b"k"])
    tracker.wrote(1, "o")
    tracker.closed(1, a)
    tracker.disable(3, b)
    assert not a.on and not a.keys and not b.prefixes and set(tracker.clients) == {2}
    assert (tracker.total_keys, tracker.items, tracker.total_prefixes) == (1, 1, 0)
    assert not tracker.watching_origins
    assert tracker.changed([(b"k", "o"), (b"x1", None)]) == [Invalidation(2, (b"k",))]
    for cid in range(100):  # many clients come and go: nothing accumulates
        s = _on(tracker, 10 + cid)
        tracker.remember(10 + cid, [b"k%d" % i for i in range(50)])
        tracker.closed(10 + cid, s)
    assert (tracker.total_keys, tracker.items) == (0, 0)


def test_route_encodes_for_the_client_or_its_redirect_target():
    tracker = Tracker()
    peers = {1: Peer(3, False), 2: Peer(2, False), 3: Peer(2, True), 4: Peer(3, False), 5: Peer(2, False)}
    _on(tracker, 1)
    _on(tracker, 2)  # RESP2 without redirect: nothing can be sent
    _on(tracker, 4, b"REDIRECT", b"3")  # to a RESP2 connection in pub/sub mode
    _on(tracker, 5, b"REDIRECT", b"1")  # to a RESP3 connection
    route = lambda inv: tracker.route(inv, peers.get)
    assert route(Invalidation(1, (b"k",))) == (1, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    assert route(Invalidation(1, None)) == (1, b">2\r\n$10\r\ninvalidate\r\n_\r\n")
    assert route(Invalidation(2, (b"k",))) is None
    assert route(Invalidation(4, (b"a", b"b"))) == (
        3, b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    )
    assert route(Invalidation(4, None)) == (3, b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n")
    assert route(Invalidation(5, (b"k",))) == (1, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    peers[3] = Peer(2, False)  # the RESP2 target left pub/sub mode: Redis sends nothing
    assert route(Invalidation(4, (b"k",))) is None
    del peers[3]  # the target disconnected: a RESP3 client is told once per invalidation
    assert route(Invalidation(4, (b"k",))) == (4, b">2\r\n$21\r\ntracking-redir-broken\r\n:3\r\n")
    assert tracker.clients[4].broken_redirect
    assert Tracker.info(tracker.clients[4])[b"flags"] == [b"on", b"broken_redirect"]
    assert route(Invalidation(99, (b"k",))) is None  # tracking already off


def test_a_push_goes_behind_computed_replies_and_ahead_of_pending_ones():
    from raftcache.connection import Connection

    conn = Connection()
    conn.receive_data(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\nc\r\n")
    first, second, third = (conn.next_event() for _ in range(3))
    conn.complete(second.slot, b"$2\r\nb0\r\n")  # computed before the change, waiting behind `first`
    conn.push(b">push\r\n")
    conn.complete(first.slot, b"$2\r\na1\r\n")
    conn.complete(third.slot, b"$2\r\nc1\r\n")
    assert conn.data_to_send() == b"$2\r\na1\r\n$2\r\nb0\r\n>push\r\n$2\r\nc1\r\n"
    conn.push(b">idle\r\n")  # nothing pending: out at once
    assert conn.data_to_send() == b">idle\r\n"


def test_client_caching_lasts_one_command_or_one_transaction():
    from raftcache.connection import Connection

    conn = Connection()
    conn.tracking.on = conn.tracking.optin = True
    for caching_after, command in [
        (False, b"*1\r\n$4\r\nPING\r\n"),  # handed out: the server spends the flag (reads_tracked)
        (True, b"*1\r\n$5\r\nMULTI\r\n"),  # MULTI keeps it for the transaction
        (True, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),  # queued
        (False, b"*1\r\n$7\r\nDISCARD\r\n"),
        (False, b"*1\r\n$8\r\nREADONLY\r\n"),  # answered by the connection itself: spent too
    ]:
        conn.tracking.caching = True
        conn.receive_data(command)
        event = conn.next_event()
        if event is not None and hasattr(event, "spec"):
            event.slot.data = b"+OK\r\n"
            conn.tracking.reads_tracked()
        assert conn.tracking.caching is caching_after, command


def test_feed_items_become_ordered_changes_and_a_snapshot_counts_as_a_flush():
    from raftcache.feed import Gap, KeyEvent, Message
    from raftcache.tracking import feed_changes

    items = [
        KeyEvent(1, "set", b"a", (7, 1)), Message(2, b"chan", b"hi"), KeyEvent(3, "flushall", None, (7, 2)),
        KeyEvent(4, "set", b"b", (7, 2)), KeyEvent(5, "expired", b"c"),
    ]
    changes = feed_changes(items)
    assert changes == [(b"a", (7, 1)), None, (b"b", (7, 2)), (b"c", None)]
    assert feed_changes([Gap(9)]) == [None]
    tracker = Tracker()
    _on(tracker, 1)
    tracker.remember(1, [b"a", b"b", b"c"])
    # in order: a, then everything (the table empties), then b and c are no longer tracked
    assert tracker.apply(changes) == [Invalidation(1, (b"a",)), Invalidation(1, None)]
