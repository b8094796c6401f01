"""The peer wire (raftcache/consensus/wire.py) without sockets: framing, AES-GCM sealing,
and every way a frame can be wrong (tampered, replayed, reordered, truncated, another
secret, another protocol) ends in WireError, never in a message or a crash."""

from __future__ import annotations

import itertools
import pickle
import struct
import zlib
from typing import Any

import msgpack
import pytest

from raftcache.consensus import wire
from raftcache.consensus.wire import HELLO_SIZE, MAGIC, WireError, WireSession, decode_message, encode_message

SECRET = b"a-cluster-secret-of-enough-length-0123"
APPEND = {
    "type": "append_entries",
    "term": 3,
    "commit_index": 41,
    "prevLogIdx": 40,
    "prevLogTerm": 3,
    "entries": tuple((b"\x10" + bytes(199), 41 + i, 3) for i in range(16)),
}


def pair(secret_b: bytes = SECRET, **options: Any) -> tuple[WireSession, WireSession]:
    """An initiator and an acceptor with the hellos and the confirm frames exchanged."""
    a = WireSession(SECRET, initiator=True, **options)
    b = WireSession(secret_b, initiator=False, **options)
    b.receive(a.hello())
    a.receive(b.hello())
    assert a.next_message() is None and b.next_message() is None
    if secret_b == SECRET:
        assert deliver(b, a.take_output()) == [] and deliver(a, b.take_output()) == []
        assert a.confirmed and b.confirmed
    return a, b


def deliver(to: WireSession, data: bytes) -> list[Any]:
    to.receive(data)
    out = []
    while (message := to.next_message()) is not None:
        out.append(message)
    return out


# ------------------------------------------------------------------------------ working
def test_messages_cross_both_ways_and_arrive_as_sent():
    a, b = pair()
    assert deliver(b, a.send(APPEND) + a.send("127.0.0.1:7101")) == [APPEND, "127.0.0.1:7101"]
    reply = {"type": "next_node_idx", "next_node_idx": 57, "reset": False, "success": True}
    assert deliver(a, b.send(reply)) == [reply]


def test_messages_sent_before_the_peers_hello_are_held_then_sealed_in_order():
    a = WireSession(SECRET, initiator=True)
    b = WireSession(SECRET, initiator=False)
    assert a.send("first") == b"" and a.send({"type": "request_vote", "term": 1}) == b""
    b.receive(a.hello())
    assert b.next_message() is None
    a.receive(b.hello())
    assert a.next_message() is None and a.established and not a.confirmed
    assert deliver(b, a.take_output()) == ["first", {"type": "request_vote", "term": 1}]
    assert b.confirmed and a.take_output() == b""
    deliver(a, b.take_output())
    assert a.confirmed  # only now has b proven it holds the secret


def test_input_fed_byte_by_byte_gives_the_same_messages():
    a = WireSession(SECRET, initiator=True)
    b = WireSession(SECRET, initiator=False)
    a.receive(b.hello())
    a.next_message()
    stream = a.hello() + a.take_output() + a.send(APPEND) + a.send({"type": "timeout_now", "term": 4})
    got = []
    for i in range(len(stream)):
        got += deliver(b, stream[i : i + 1])
    assert got == [APPEND, {"type": "timeout_now", "term": 4}]


def test_compression_is_the_senders_choice_and_any_peer_reads_it():
    small = WireSession(SECRET, initiator=True, compress_level=6)
    plain = WireSession(SECRET, initiator=False)
    plain.receive(small.hello())
    small.receive(plain.hello())
    small.next_message()
    plain.next_message()
    deliver(plain, small.take_output())
    deliver(small, plain.take_output())
    message = {"type": "append_entries", "entries": tuple((b"x" * 1000, i, 1) for i in range(20))}
    compressed, raw = small.send(message), plain.send(message)
    assert len(compressed) < len(raw) / 10
    assert deliver(plain, compressed) == [message] and deliver(small, raw) == [message]


def test_every_connection_has_its_own_keys_so_the_same_message_never_seals_alike():
    frames = set()
    for _ in range(3):
        a, _b = pair()
        frames.add(a.send(APPEND))
    assert len(frames) == 3
    a, _b = pair()
    assert a.send(APPEND) != a.send(APPEND)  # the counter moves on


def test_keys_need_both_ends_randomness_and_differ_per_direction():
    r1, r2 = bytes(32), bytes([1]) * 32
    k = wire.derive_keys(SECRET, r1, r2)
    assert k[0] != k[1]
    assert wire.derive_keys(SECRET, r1, r2) == k
    assert wire.derive_keys(SECRET, r2, r1) != k and wire.derive_keys(SECRET, r1, r1)[0] != k[0]
    assert wire.derive_keys(b"another-secret", r1, r2) != k


# ----------------------------------------------------------------------------- refused
def test_a_tampered_frame_is_refused_and_the_session_stays_dead():
    a, b = pair()
    frame = bytearray(a.send(APPEND))
    frame[20] ^= 0x01
    with pytest.raises(WireError, match="failed authentication"):
        deliver(b, bytes(frame))
    with pytest.raises(WireError, match="already failed"):
        deliver(b, a.send(APPEND))


@pytest.mark.parametrize("where", [0, 1, 3])  # the length header itself
def test_a_tampered_length_is_refused(where):
    a, b = pair(max_frame=1 << 20)
    frame = bytearray(a.send(APPEND))
    frame[where] ^= 0x40
    with pytest.raises(WireError):
        deliver(b, bytes(frame) + a.send(APPEND) + bytes(1 << 16))


def test_a_replayed_frame_is_refused():
    a, b = pair()
    frame = a.send(APPEND)
    assert deliver(b, frame) == [APPEND]
    with pytest.raises(WireError, match="replay or reordering"):
        deliver(b, frame)


def test_reordered_frames_are_refused():
    a, b = pair()
    first, second = a.send("one"), a.send("two")
    with pytest.raises(WireError, match="failed authentication"):
        deliver(b, second + first)


def test_a_dropped_frame_is_noticed_at_the_next_one():
    a, b = pair()
    a.send("lost")
    with pytest.raises(WireError):
        deliver(b, a.send("two"))


def test_a_recorded_connection_replayed_as_a_new_one_is_refused():
    a = WireSession(SECRET, initiator=True)
    b = WireSession(SECRET, initiator=False)
    b.receive(a.hello())
    a.receive(b.hello())
    a.next_message()
    recorded = a.hello() + a.take_output() + a.send({"type": "apply_command", "command": b"\x10INCR"})
    assert deliver(b, recorded[HELLO_SIZE:])  # the original acceptor took it
    later = WireSession(SECRET, initiator=False)  # a new connection: fresh randomness
    with pytest.raises(WireError, match="failed authentication"):
        deliver(later, recorded)


def test_a_frame_reflected_back_to_its_sender_is_refused():
    a, _b = pair()
    with pytest.raises(WireError, match="failed authentication"):
        deliver(a, a.send(APPEND))


def test_a_looped_back_hello_is_refused():
    a = WireSession(SECRET, initiator=True)
    with pytest.raises(WireError, match="echoed"):
        deliver(a, a.hello())


def test_truncation_waits_for_the_rest_and_a_cut_connection_yields_nothing():
    a, b = pair()
    frame = a.send(APPEND)
    for cut in (1, 3, 4, len(frame) - 1):
        c, d = pair()
        partial = c.send(APPEND)[:cut]
        assert deliver(d, partial) == []  # need more data: not an error, not a message
    assert deliver(b, frame[:-1]) == []
    assert deliver(b, frame[-1:]) == [APPEND]


def test_a_short_frame_too_small_to_hold_a_tag_is_refused():
    _a, b = pair()
    with pytest.raises(WireError, match="out of bounds"):
        deliver(b, struct.pack(">I", 8) + bytes(8))


def test_an_oversized_frame_is_refused_before_it_is_buffered():
    _a, b = pair(max_frame=1 << 16)
    with pytest.raises(WireError, match="out of bounds"):
        deliver(b, struct.pack(">I", 1 << 30))


def test_another_cluster_secret_is_refused_at_the_confirm_frame_on_both_ends():
    a, b = pair(secret_b=b"some-other-secret-entirely-0123456789")
    to_a, to_b = b.take_output(), a.take_output()
    with pytest.raises(WireError, match="wrong cluster secret"):
        deliver(b, to_b)
    with pytest.raises(WireError, match="wrong cluster secret"):
        deliver(a, to_a)
    assert not a.confirmed and not b.confirmed


def test_a_first_frame_that_is_not_a_confirm_frame_is_refused():
    a = WireSession(SECRET, initiator=True)
    b = WireSession(SECRET, initiator=False)
    b.receive(a.hello())
    a.receive(b.hello())
    a.next_message()
    a.take_output()
    a._sent = 0  # seal a message as frame 0, skipping the confirm frame
    with pytest.raises(WireError, match="not a confirm frame"):
        deliver(b, a.send("127.0.0.1:7101"))


def test_a_confirm_frame_later_in_the_stream_is_refused():
    a, b = pair()
    sealed = a._seal.encrypt(wire._nonce(1), b"\x02", None)
    with pytest.raises(WireError, match="flags"):
        deliver(b, struct.pack(">I", len(sealed)) + sealed)


def test_an_old_raftcache_peer_speaking_pickle_in_fernet_is_refused_at_once():
    fernet_frame = struct.pack("i", 100) + b"gAAAAA" + bytes(94)  # what pysyncobj would send
    with pytest.raises(WireError, match="does not speak the raftcache peer wire"):
        deliver(WireSession(SECRET, initiator=False), fernet_frame)


def test_a_raw_pickle_bomb_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    frame = zlib.compress(pickle.dumps(Bomb(), 2))
    with pytest.raises(WireError):
        deliver(WireSession(SECRET, initiator=False), struct.pack("i", len(frame)) + frame)
    assert not marker.exists()


def test_a_sealed_pickle_is_just_bytes_that_do_not_decode(tmp_path):
    # Even with the secret, a pickle inside a frame is never unpickled: it is not msgpack of
    # a message, or at best decodes to some int/bytes value, never an object.
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    a, b = pair()
    plaintext = b"\x00" + pickle.dumps(Bomb(), 2)
    sealed = a._seal.encrypt(wire._nonce(1), plaintext, None)
    try:
        got = deliver(b, struct.pack(">I", len(sealed)) + sealed)
    except WireError:
        got = []
    assert all(isinstance(m, (int, bytes, str, float, type(None), bool, tuple, dict)) for m in got)
    assert not marker.exists()


# ------------------------------------------------------------------------------- codec
@pytest.mark.parametrize("value", [{1, 2}, object(), 1 << 70, {"k": frozenset()}, b"x".decode])
def test_values_that_are_not_plain_data_are_refused_when_sent(value):
    a, _b = pair()
    with pytest.raises(WireError, match="cannot encode"):
        a.send({"type": "append_entries", "x": value})


def test_extension_types_are_refused_when_received():
    body = msgpack.packb({"type": msgpack.ExtType(5, b"obj")})
    with pytest.raises(WireError, match="extension type 5"):
        decode_message(body)
    # msgpack's own timestamp extension never reaches ext_hook: it comes back as a plain int
    assert decode_message(msgpack.packb({"t": msgpack.Timestamp(1, 0)}, datetime=False)) == {"t": 10**9}


@pytest.mark.parametrize("body", [b"\xc1", b"\x92\x01", msgpack.packb({1: 2}), b"\xa2\xff\xfe", msgpack.packb(1) + b"x"])
def test_malformed_bodies_are_refused(body):
    with pytest.raises(WireError, match="malformed"):
        decode_message(body)


def test_the_codec_round_trips_pysyncobj_shapes():
    for message in (APPEND, "127.0.0.1:7101", {"type": "append_entries", "serialized": (b"chunk", True, False)},
                    {"type": "apply_command_response", "request_id": 7, "error": 4}, {"type": "x", "f": 1.5, "n": None}):
        assert decode_message(encode_message(message)) == message


def test_a_zlib_bomb_is_bounded_by_the_frame_limit():
    a, b = pair(max_frame=1 << 16)
    bomb = b"\x01" + zlib.compress(msgpack.packb(bytes(1 << 20)), 9)
    sealed = a._seal.encrypt(wire._nonce(1), bomb, None)
    with pytest.raises(WireError, match="inflates beyond"):
        deliver(b, struct.pack(">I", len(sealed)) + sealed)


def test_unknown_frame_flags_are_refused():
    a, b = pair()
    sealed = a._seal.encrypt(wire._nonce(1), b"\x07" + msgpack.packb("x"), None)
    with pytest.raises(WireError, match="flags"):
        deliver(b, struct.pack(">I", len(sealed)) + sealed)


def test_garbage_never_crashes_a_session():
    # Random-ish input: every outcome is WireError or "need more data", nothing else escapes.
    for seed, size in itertools.product(range(20), (1, 7, 40, 41, 300)):
        data = bytes((seed * 131 + i * 17) % 256 for i in range(size))
        for prefix in (b"", MAGIC + bytes(32)):
            session = WireSession(SECRET, initiator=False)
            try:
                deliver(session, prefix + data)
            except WireError:
                pass
