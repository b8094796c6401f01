"""The Raft journal on disk: an append-only file of CRC-checked records, plus a meta file.

Replaces pysyncobj's journal, which is an mmap'd file without checksums that is never
fsynced (and dies with SIGBUS on a full disk). Here:

* every record carries a CRC32; on open, a torn or corrupt tail is cut off at the last good
  record (what a crash in the middle of a write leaves behind);
* appends are buffered and reach the kernel at ``flush()`` (survives kill -9) and the disk at
  ``sync()`` (survives power loss) — the adapter calls ``sync()`` before any message that
  could acknowledge an entry leaves the node;
* write errors (ENOSPC, EIO) surface as ``StorageError``, never as a signal.

Record: ``<u32 payload length><u32 crc32><u64 index><u64 term>`` + payload. The CRC covers
index, term and payload.

Format 2 (the magic's last byte): payloads are the consensus backend's entries without pickle.
Format 1 journals hold pickled entries; they are refused with what to do, never read.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from array import array
from collections.abc import Iterable
from typing import Any

import msgpack

from .errors import StorageError
from .snapshot import fsync_dir

log = logging.getLogger(__name__)

MAGIC = b"RCLOG\x00\x00\x02"
# Journals of an older format, and why they cannot be read. One line each: it is what the
# operator sees when the node refuses to start.
_OLD_FORMATS = {
    b"RCLOG\x00\x00\x01": (
        "was written by a raftcache older than the pickle-free peer wire (journal format 1); "
        "take a `raftcache backup` with the old version, then `raftcache restore --force` it "
        "with this one (README: Upgrading)"
    ),
}
_RECORD = struct.Struct("<IIQQ")
_INDEX_TERM = struct.Struct("<QQ")
_MAX_RECORD = 1 << 31

Entry = tuple[bytes, int, int]  # (payload, index, term): the order pysyncobj's journal uses


def _storage_error(action: str, path: str, exc: OSError) -> StorageError:
    reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    return StorageError(f"{action} {path} failed: {reason}")


class LogFile:
    """Append-only record file. Not thread-safe: used from the Raft thread only."""

    def __init__(self, path: str, *, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self._buffer = bytearray()
        self._ends = array("Q")  # end offset of each record
        self._fd = -1
        self.bytes = 0  # payload bytes held (for size-triggered compaction)

    # ------------------------------------------------------------------------ load
    def open(self) -> list[Entry]:
        """Open (creating if needed) and return the intact records."""
        try:
            entries = self._load()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise _storage_error("opening journal", self.path, exc) from None
        return entries

    def _load(self) -> list[Entry]:
        if not os.path.exists(self.path):
            self._write_new(self.path, [])
        with open(self.path, "rb") as f:
            data = f.read()
        old = _OLD_FORMATS.get(data[: len(MAGIC)])
        if old is not None:
            raise StorageError(f"{self.path} {old}")
        if data[: len(MAGIC)] != MAGIC:
            raise StorageError(f"{self.path} is not a raftcache journal (bad magic)")
        entries: list[Entry] = []
        pos, size = len(MAGIC), len(data)
        view = memoryview(data)
        while pos + _RECORD.size <= size:
            length, crc, index, term = _RECORD.unpack_from(data, pos)
            start = pos + _RECORD.size
            end = start + length
            if end > size or zlib.crc32(view[start - 16 : end]) != crc:
                break
            entries.append((bytes(view[start:end]), index, term))
            self._ends.append(end)
            self.bytes += length
            pos = end
        if pos != size:
            log.warning("journal %s: cut %d bytes of torn/corrupt tail after record %d", self.path, size - pos, len(entries))
            with open(self.path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        return entries

    @staticmethod
    def _write_new(path: str, entries: Iterable[Entry]) -> array:
        ends = array("Q")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            pos = len(MAGIC)
            for payload, index, term in entries:
                record = _encode(payload, index, term)
                f.write(record)
                pos += len(record)
                ends.append(pos)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path)
        return ends

    # --------------------------------------------------------------------- writing
    def append(self, payload: bytes, index: int, term: int) -> None:
        if len(payload) >= _MAX_RECORD:
            raise StorageError(f"journal record of {len(payload)} bytes is too large")
        record = _encode(payload, index, term)
        self._buffer += record
        last = self._ends[-1] if self._ends else len(MAGIC)
        self._ends.append(last + len(record))
        self.bytes += len(payload)

    @property
    def dirty(self) -> bool:
        return bool(self._buffer)

    def flush(self) -> None:
        """Hand buffered records to the kernel (survives a process crash)."""
        buffer = self._buffer
        if not buffer:
            return
        view = memoryview(buffer)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise _storage_error("writing journal", self.path, exc) from None
        finally:
            view.release()
        buffer.clear()

    def sync(self) -> None:
        """Flush, and with the fsync policy on, make it durable (survives power loss)."""
        if not self._buffer:
            return
        self.flush()
        if self.fsync:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise _storage_error("fsync of journal", self.path, exc) from None

    def truncate(self, keep: int) -> None:
        """Keep the first `keep` records."""
        if keep >= len(self._ends):
            return
        self.flush()
        end = self._ends[keep - 1] if keep else len(MAGIC)
        try:
            os.ftruncate(self._fd, end)
        except OSError as exc:
            raise _storage_error("truncating journal", self.path, exc) from None
        del self._ends[keep:]

    def rewrite(self, entries: list[Entry]) -> None:
        """Replace the whole file with `entries` (after compaction), atomically."""
        try:
            self.flush()
            ends = self._write_new(self.path, entries)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise _storage_error("rewriting journal", self.path, exc) from None
        self._ends = ends
        self.bytes = sum(len(e[0]) for e in entries)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1


def _encode(payload: bytes, index: int, term: int) -> bytes:
    head = _INDEX_TERM.pack(index, term)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return struct.pack("<II", len(payload), crc) + head + payload


class MetaFile:
    """Small msgpack map (term, vote, commit index) replaced atomically and durably."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                data = msgpack.unpackb(f.read(), raw=False)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise _storage_error("reading", self.path, exc) from None
        except Exception as exc:
            raise StorageError(f"{self.path} is corrupt: {exc}") from None
        if not isinstance(data, dict):
            raise StorageError(f"{self.path} is corrupt: not a map")
        return data

    def store(self, meta: dict[str, Any]) -> None:
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(msgpack.packb(meta, use_bin_type=True))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path)
        except OSError as exc:
            raise _storage_error("writing", self.path, exc) from None
