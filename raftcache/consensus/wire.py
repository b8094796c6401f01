"""The peer (raft) wire: msgpack frames sealed with AES-256-GCM, sans I/O.

Replaces pysyncobj's own framing (``zlib(pickle)`` in a Fernet envelope), whose receiver
unpickles whatever authenticates: with the cluster secret, anyone could run code on a node.
Here nothing is ever unpickled; a frame decodes to plain data (dicts, arrays as tuples, str,
bytes, ints, floats, bools, None) or the connection is dropped.

One :class:`WireSession` per TCP connection. The protocol:

1. **Hello** (plaintext, both ends send it at once, no waiting): ``MAGIC`` + 32 fresh random
   bytes. Messages sent before the peer's hello arrives are held and sealed once it has.
   The first sealed frame each way is a *confirm* frame (no message): the peer is
   :attr:`~WireSession.confirmed` once its confirm frame authenticates, i.e. once it has
   proven it holds the secret (a bare TCP connect, even to a stopped process, proves nothing).
2. **Keys**: HKDF-SHA256 over the cluster secret, salted with *both* ends' random bytes
   (initiator's first), gives one 32-byte AES-GCM key per direction. Fresh randomness from the
   receiver in every key means a recorded connection replayed later decrypts to nothing, and
   one key per direction means a frame reflected back to its sender fails.
3. **Frames**: ``<u32 big-endian length>`` + AES-GCM(nonce, plaintext). The nonce is the
   frame's sequence number in its direction (4 zero bytes + a u64 counter), never sent: the
   receiver uses the next number it expects (as TLS 1.3 does). A key is only ever used with
   distinct nonces (the counter only grows, and every connection has its own keys), and a
   replayed, reordered, dropped, truncated or altered frame fails authentication.
   Plaintext: one flags byte (``0`` raw, ``1`` zlib) + the msgpack body. Compression is the
   sending node's choice (``peer_compression_level``); any peer reads both.

Any failure raises :class:`WireError`; the caller drops the connection (pysyncobj reconnects
and starts over with a new session and new keys).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"RCWIRE\x00\x01"  # protocol name + version: an old (pickle/Fernet) peer fails right here
RANDOM_BYTES = 32
HELLO_SIZE = len(MAGIC) + RANDOM_BYTES
TAG_BYTES = 16
DEFAULT_MAX_FRAME = 64 << 20
_LENGTH = struct.Struct(">I")
_NONCE_PREFIX = bytes(4)
_HKDF_INFO = b"raftcache peer wire v1: initiator->acceptor, acceptor->initiator"
_RAW, _ZLIB, _CONFIRM = 0, 1, 2


class WireError(Exception):
    """A peer connection broke the protocol (or the secrets differ): drop it."""


# ------------------------------------------------------------------------ the message codec
def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension type {code} is not part of the peer protocol")


def encode_message(message: Any) -> bytes:
    """msgpack of a peer message. Only plain data: anything else (a Node object, a set, an
    int beyond 64 bits) raises WireError instead of being converted silently."""
    try:
        return msgpack.packb(message, use_bin_type=True, strict_types=False, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode peer message: {exc}") from None


def decode_message(body: bytes) -> Any:
    """The inverse of :func:`encode_message`. Arrays come back as tuples (pysyncobj's log
    entries are tuples); str must be UTF-8; extension types are refused, except msgpack's
    built-in timestamp, which its unpacker decodes itself: asked for as a plain int."""
    try:
        return msgpack.unpackb(body, raw=False, use_list=False, strict_map_key=True, ext_hook=_refuse_ext, timestamp=2)
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # msgpack's errors for malformed input
        raise WireError(f"malformed peer message: {type(exc).__name__}: {exc}") from None


def derive_keys(secret: bytes, initiator_random: bytes, acceptor_random: bytes) -> tuple[bytes, bytes]:
    """(initiator->acceptor key, acceptor->initiator key) for one connection."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=initiator_random + acceptor_random, info=_HKDF_INFO).derive(secret)
    return okm[:32], okm[32:]


def _nonce(counter: int) -> bytes:
    return _NONCE_PREFIX + counter.to_bytes(8, "big")


# ----------------------------------------------------------------------------- a session
class WireSession:
    """One connection's end of the wire. Not thread-safe (pysyncobj's Raft thread only).

    ``hello()`` first; then ``send(message)`` returns the bytes to write (empty while the
    peer's hello is awaited: held, see :meth:`take_output`); ``receive(data)`` buffers what
    arrived and ``next_message()`` returns the next whole message, or None for "need more".
    """

    def __init__(
        self,
        secret: bytes,
        *,
        initiator: bool,
        compress_level: int = 0,
        max_frame: int = DEFAULT_MAX_FRAME,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not secret:
            raise ValueError("the peer wire needs a non-empty secret")
        self._secret = secret
        self._initiator = initiator
        self._level = compress_level
        self._max_frame = max_frame
        self._random = random_bytes(RANDOM_BYTES)
        self._seal: AESGCM | None = None
        self._open: AESGCM | None = None
        self._sent = 0
        self._received = 0
        self.confirmed = False  # the peer's confirm frame authenticated
        self._held: list[bytes] = []  # plaintexts sent before the keys were known
        self._output = bytearray()
        self._input = bytearray()
        self._dead = False

    @property
    def established(self) -> bool:
        return self._seal is not None

    def hello(self) -> bytes:
        return MAGIC + self._random

    # -- sending
    def send(self, message: Any) -> bytes:
        plaintext = self._plaintext(message)
        if self._seal is None:
            self._held.append(plaintext)
            return b""
        return self._frame(plaintext)

    def take_output(self) -> bytes:
        """Frames made ready by the peer's hello (the held messages), to write now."""
        out = bytes(self._output)
        self._output.clear()
        return out

    def _plaintext(self, message: Any) -> bytes:
        body = encode_message(message)
        if self._level > 0:
            return bytes([_ZLIB]) + zlib.compress(body, self._level)
        return bytes([_RAW]) + body

    def _frame(self, plaintext: bytes) -> bytes:
        assert self._seal is not None
        sealed = self._seal.encrypt(_nonce(self._sent), plaintext, None)
        self._sent += 1
        return _LENGTH.pack(len(sealed)) + sealed

    # -- receiving
    def receive(self, data: bytes) -> None:
        self._input += data

    def next_message(self) -> Any:
        """The next message, or None until more data arrives. Raises WireError, after
        which the session is dead (every later call raises too)."""
        if self._dead:
            raise WireError("connection already failed")
        try:
            if self._open is None and not self._read_hello():
                return None
            return self._read_frame()
        except WireError:
            self._dead = True
            self._input.clear()
            raise

    def _read_hello(self) -> bool:
        if len(self._input) < len(MAGIC):
            if MAGIC.startswith(bytes(self._input)):
                return False
            raise WireError("peer does not speak the raftcache peer wire (an older raftcache, or not raftcache)")
        if bytes(self._input[: len(MAGIC)]) != MAGIC:
            raise WireError("peer does not speak the raftcache peer wire (an older raftcache, or not raftcache)")
        if len(self._input) < HELLO_SIZE:
            return False
        peer_random = bytes(self._input[len(MAGIC) : HELLO_SIZE])
        del self._input[:HELLO_SIZE]
        if peer_random == self._random:
            raise WireError("peer echoed our own hello")  # a connection looped back onto itself
        if self._initiator:
            out_key, in_key = derive_keys(self._secret, self._random, peer_random)
        else:
            in_key, out_key = derive_keys(self._secret, peer_random, self._random)
        self._seal, self._open = AESGCM(out_key), AESGCM(in_key)
        self._output += self._frame(bytes([_CONFIRM]))
        for plaintext in self._held:
            self._output += self._frame(plaintext)
        self._held.clear()
        return True

    def _read_frame(self) -> Any:
        plaintext = self._open_frame()
        if plaintext is None:
            return None
        if not self.confirmed:
            if plaintext != bytes([_CONFIRM]):
                raise WireError("peer's first frame is not a confirm frame")
            self.confirmed = True
            plaintext = self._open_frame()
            if plaintext is None:
                return None
        return decode_message(self._body(plaintext))

    def _open_frame(self) -> bytes | None:
        if len(self._input) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._input)
        if length < TAG_BYTES + 1 or length > self._max_frame:
            raise WireError(f"frame length {length} out of bounds (max {self._max_frame})")
        end = _LENGTH.size + length
        if len(self._input) < end:
            return None
        sealed = bytes(self._input[_LENGTH.size : end])
        del self._input[:end]
        assert self._open is not None
        try:
            plaintext = self._open.decrypt(_nonce(self._received), sealed, None)
        except InvalidTag:
            raise WireError(
                f"frame {self._received} failed authentication (wrong cluster secret, tampering, replay or reordering)"
            ) from None
        self._received += 1
        return plaintext  # never empty: the length check above leaves at least one byte

    def _body(self, plaintext: bytes) -> bytes:
        flags, body = plaintext[0], plaintext[1:]
        if flags == _RAW:
            return body
        if flags == _ZLIB:
            inflate = zlib.decompressobj()
            try:
                out = inflate.decompress(body, self._max_frame)
            except zlib.error as exc:
                raise WireError(f"bad compressed frame: {exc}") from None
            if inflate.unconsumed_tail or not inflate.eof:
                raise WireError(f"compressed frame inflates beyond {self._max_frame} bytes or is cut short")
            return out
        raise WireError(f"unknown frame flags {flags}")
