"""Pub/sub without sockets: the glob matcher (Redis's syntax, no exponential backtracking),
notify-keyspace-events parsing, the hub's registry and delivery (messages, patterns, shard
channels, keyspace notifications), subscribe mode on a Connection fed bytes, RESET, the
ACL channel rules with Redis 7.0's texts, and the config section."""

from __future__ import annotations

import random
import re
import time

import pytest

from raftcache import commands as c
from raftcache.acl import parse_user
from raftcache.auth import Authenticator
from raftcache.config import config_from_mapping
from raftcache.connection import NEED_DATA, Connection
from raftcache.errors import CommandError, ConfigError
from raftcache.feed import Feed, Gap, KeyEvent, Message
from raftcache.pubsub import NOTIFY_ERROR, PubSubHub, parse_notify_setting, push_bytes
from raftcache.redis_semantics import compile_glob, glob_to_regex
from raftcache.statemachine import CacheStateMachine


# ------------------------------------------------------------------------------- glob
@pytest.mark.parametrize("pattern", [b"*", b"a*", b"*a", b"a*b", b"h?llo", b"h[ae]llo", b"h[^e]llo", b"h[b-a]llo",
                                     b"*a*b*c", b"\\*x", b"[", b"[]", b"[^]", b"a**b", b"*?*", b"?", b"[a\\]]*"])
def test_glob_matcher_agrees_with_redis_globbing(pattern):
    rnd = random.Random(pattern)
    fast = compile_glob(pattern)
    reference = re.compile(glob_to_regex(pattern).encode(), re.DOTALL).fullmatch  # backtracking, plain
    for _ in range(2000):
        s = bytes(rnd.choice(b"abcehlo*x?[]") for _ in range(rnd.randint(0, 9)))
        assert fast(s) == (reference(s) is not None), s


def test_glob_matcher_has_no_exponential_case():
    matches = compile_glob(b"*a" * 40 + b"b")
    started = time.process_time()
    assert not matches(b"a" * 50_000)
    assert time.process_time() - started < 1.0


# ------------------------------------------------------------------ notify-keyspace-events
@pytest.mark.parametrize(("given", "stored"), [(b"", ""), (b"KEA", "AKE"), (b"Egx", "gxE"), (b"Kgx$lshzetdnm", "AnKm"),
                                               (b"AK", "AK"), (b"Ksn", "snK")])
def test_notify_flags_parse_as_redis(given, stored):
    assert parse_notify_setting(given) == stored


def test_bad_notify_flags_get_redis_text():
    with pytest.raises(CommandError) as err:
        parse_notify_setting(b"KQ")
    assert err.value.message == NOTIFY_ERROR


# ------------------------------------------------------------------------------- hub
class Sub:
    def __init__(self, protocol: int = 2) -> None:
        from raftcache.pubsub import Subscriptions

        self.protocol = protocol
        self.subscriptions = Subscriptions()
        self.pushes: list[tuple[bytes, bool]] = []  # (data, now), in order
        self.disconnected = False

    def push(self, data: bytes, *, now: bool = False) -> None:
        assert not self.disconnected, "pushed after its disconnect"
        self.pushes.append((data, now))

    def disconnect(self) -> None:
        self.disconnected = True


def test_hub_delivers_messages_patterns_and_shard_channels():
    hub = PubSubHub(None, lambda: "")
    a, b, three = Sub(), Sub(), Sub(3)
    assert hub.subscribe(a, [b"news", b"news"]) == b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n" * 2
    hub.psubscribe(b, [b"n*"])
    hub.subscribe(three, [b"news"])
    hub.subscribe(three, [b"sh"], shard=True)
    hub.deliver([([Message(1, b"news", b"hi"), Message(2, b"sh", b"s", None, True), Message(3, b"other", b"x")], "")])
    assert a.pushes == [(b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n", True)]
    assert b.pushes == [(b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n", True)]
    # one entry's messages to one subscriber: one push
    assert three.pushes == [(b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n>3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$1\r\ns\r\n", True)]
    assert hub.receivers(b"news") == 3 and hub.receivers(b"nope") == 1 and hub.receivers(b"sh", shard=True) == 1
    assert hub.numsub([b"news", b"x"]) == [b"news", 2, b"x", 0] and hub.numpat() == 1
    assert hub.channels(None) == [b"news"] and hub.channels(b"n*", shard=True) == []
    hub.drop(a)
    hub.drop(three)
    assert hub.numsub([b"news"]) == [b"news", 0] and hub.channels(None, shard=True) == []
    assert hub.unsubscribe(a, []) == b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"


def test_a_snapshot_install_disconnects_subscribers():
    hub = PubSubHub(None, lambda: "")
    a, b, idle = Sub(), Sub(), Sub()
    hub.subscribe(a, [b"x"])
    hub.psubscribe(b, [b"*"])
    hub.deliver([([Message(1, b"x", b"before"), Gap(5)], "")])
    assert a.pushes and a.disconnected and b.disconnected and not idle.disconnected
    conn, _ = _conn()
    _run(conn, b"SUBSCRIBE x\r\n")
    conn.disconnect()
    assert conn.closing and conn.finished  # nothing left to send: the shell closes it now


def test_a_burst_reaches_each_subscriber_as_one_push_sent_at_once_in_order():
    hub = PubSubHub(None, lambda: "")
    wakes: list = []
    hub.attach_loop(wakes.append)  # the loop callback the Raft thread schedules
    a, b, idle = Sub(), Sub(3), Sub()
    hub.subscribe(a, [b"x", b"y"])
    hub.psubscribe(a, [b"*"])
    hub.subscribe(b, [b"y"])
    hub._on_items([Message(1, b"x", b"1"), Message(2, b"y", b"2")])
    hub._on_items([Message(3, b"y", b"3")])
    assert len(wakes) == 1  # one loop callback for both entries
    wakes[0]()

    def msg(kind: bytes, ch: bytes, payload: bytes, proto: int = 2, pat: bytes | None = None) -> bytes:
        return push_bytes((kind, *([pat] if pat else []), ch, payload), proto)

    assert a.pushes == [(b"".join([msg(b"message", b"x", b"1"), msg(b"pmessage", b"x", b"1", pat=b"*"),
                                   msg(b"message", b"y", b"2"), msg(b"pmessage", b"y", b"2", pat=b"*"),
                                   msg(b"message", b"y", b"3"), msg(b"pmessage", b"y", b"3", pat=b"*")]), True)]
    assert b.pushes == [(msg(b"message", b"y", b"2", 3) + msg(b"message", b"y", b"3", 3), True)]
    assert idle.pushes == []
    # A gap (a snapshot installed) inside a burst: what came before it leaves before the disconnect.
    hub._on_items([Message(4, b"x", b"before")])
    hub._on_items([Gap(9)])
    wakes[1]()
    assert a.pushes[-1] == (msg(b"message", b"x", b"before") + msg(b"pmessage", b"x", b"before", pat=b"*"), True)
    assert a.disconnected and b.disconnected


def test_hub_listens_to_the_feed_only_while_someone_subscribes():
    fsm = CacheStateMachine()
    feed = Feed(fsm)
    hub = PubSubHub(feed, lambda: "")
    s = Sub()
    assert not fsm.recording
    hub.psubscribe(s, [b"*"])
    assert fsm.recording
    hub.punsubscribe(s, [])
    assert not fsm.recording


def test_keyspace_notifications_follow_the_flags():
    hub = PubSubHub(None, lambda: "")
    s = Sub()
    hub.psubscribe(s, [b"__key*__:*"])
    events = [KeyEvent(1, "set", b"k"), KeyEvent(2, "expired", b"k"), KeyEvent(3, "new", b"n"), KeyEvent(4, "flushall", None)]
    hub.deliver([(events, "")])
    assert s.pushes == []
    hub.deliver([(events, parse_notify_setting(b"Kx"))])
    assert pmessages(s) == [(b"__keyspace@0__:k", b"expired")]
    s.pushes.clear()
    hub.deliver([(events, parse_notify_setting(b"EA"))])  # 'A' leaves out 'n' (new), as Redis
    assert pmessages(s) == [(b"__keyevent@0__:set", b"k"), (b"__keyevent@0__:expired", b"k")]


def pmessages(sub: Sub) -> list[tuple[bytes, bytes]]:
    """(channel, payload) of each RESP2 pmessage in a subscriber's pushes."""
    fields = b"".join(data for data, _ in sub.pushes).split(b"\r\n")
    assert fields[-1] == b"" and (len(fields) - 1) % 9 == 0
    return [(fields[i + 6], fields[i + 8]) for i in range(0, len(fields) - 1, 9)]


def test_subscription_and_pattern_bounds():
    hub = PubSubHub(None, lambda: "", max_subscriptions=3, max_pattern_bytes=8)
    s = Sub()
    hub.subscribe(s, [b"a", b"b"])
    with pytest.raises(CommandError, match="pubsub.max_pattern_bytes"):
        hub.psubscribe(s, [b"x" * 9])
    hub.psubscribe(s, [b"p*"])
    with pytest.raises(CommandError, match="max_subscriptions_per_client = 3"):
        hub.subscribe(s, [b"c"])


# ------------------------------------------------------------------------ connection
def _conn(users: tuple = (), **kw) -> tuple[Connection, PubSubHub]:
    hub = PubSubHub(None, lambda: "")
    return Connection(pubsub=hub, authenticator=Authenticator("", users), **kw), hub


def _run(conn: Connection, data: bytes) -> tuple[list, bytes]:
    conn.receive_data(data)
    handed = []
    while (event := conn.next_event()) is not NEED_DATA:
        handed.append(event)
    return handed, conn.data_to_send()


def test_resp2_subscribe_mode_refuses_other_commands_and_reset_leaves_it():
    conn, hub = _conn()
    handed, out = _run(conn, b"SUBSCRIBE a\r\nSET k v\r\nPING\r\nACL WHOAMI\r\n")
    assert handed == []
    assert out == (b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                   b"-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
                   b"in this context\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                   b"-ERR Can't execute 'acl|whoami': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                   b"allowed in this context\r\n")
    conn.push(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n")
    assert conn.unsent_push_bytes > 0
    assert conn.data_to_send().startswith(b"*3\r\n$7\r\nmessage") and conn.unsent_push_bytes == 0
    handed, out = _run(conn, b"RESET\r\nGET k\r\n")
    assert out == b"+RESET\r\n" and [e.spec.name for e in handed] == ["get"]
    assert hub.numsub([b"a"]) == [b"a", 0]


def test_resp3_connections_run_commands_while_subscribed():
    conn, _ = _conn()
    _run(conn, b"HELLO 3\r\n")
    handed, out = _run(conn, b"SUBSCRIBE a\r\nGET k\r\nPING\r\n")
    assert out == b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n" and [e.spec.name for e in handed] == ["get", "ping"]


def test_acl_channel_rules_with_redis_texts():
    user = parse_user("limited", ["on", "nopass", "~*", "+@all", "resetchannels", "&news.*"])
    default = parse_user("default", ["on", "nopass", "~*", "&*", "+@all"])
    conn, _ = _conn((default, user))
    conn.user, conn.acl_user, conn._acl_open = "limited", user, False
    denied = b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
    for command in (b"PUBLISH sports x", b"SUBSCRIBE news.a sports", b"PSUBSCRIBE news.a*", b"SPUBLISH sports x"):
        assert _run(conn, command + b"\r\n")[1] == denied
    handed, out = _run(conn, b"PUBLISH news.today x\r\nPSUBSCRIBE news.*\r\n")
    assert [e.spec.name for e in handed] == ["publish"]
    conn.complete(handed[0].slot, b":0\r\n")
    assert out + conn.data_to_send() == b":0\r\n*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n"
    assert not user.unrestricted and default.unrestricted


def test_publish_in_transactions_and_scripts_reaches_the_feed():
    fsm = CacheStateMachine()
    got: list = []
    Feed(fsm).add_listener(got.extend)
    script = b"return redis.call('publish', 'ch', 'from-lua')"
    import hashlib

    results = fsm.apply(c.Batch(1, [(None, c.Exec((c.Publish(b"ch", b"in-multi"),))),
                                    (None, c.Eval(hashlib.sha1(script).hexdigest(), script, (), (), 10**6, 1 << 16, 1 << 20))]))
    assert results == [[0], 0]
    assert [m.payload for m in fsm.take_items()] == [b"in-multi", b"from-lua"]


def test_pubsub_config_section():
    cfg = config_from_mapping({"pubsub": {"notify_keyspace_events": "Ex", "output_buffer_hard_mb": 4},
                               "nodes": [{"id": "n1", "raft": "127.0.0.1:7100"}]})
    assert cfg.pubsub.initial_settings() == (("notify-keyspace-events", b"Ex"),)
    assert cfg.pubsub.output_buffer_hard_mb == 4 and cfg.pubsub.output_buffer_soft_seconds == 60
    with pytest.raises(ConfigError, match="pubsub.notify_keyspace_events: invalid event class character"):
        config_from_mapping({"pubsub": {"notify_keyspace_events": "Q"}, "nodes": [{"id": "n1", "raft": "127.0.0.1:7100"}]})
