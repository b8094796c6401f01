"""Versioned, checksummed snapshot files (msgpack), written tmp -> fsync -> rename.

Used for Raft log compaction (one per node) and for ``raftcache backup`` files. Layout::

    b"RCSNAP\\0" + u8 format            8 bytes
    msgpack: header (map)               raft position, members, counts, creation time
    msgpack: [section, payload] ...     state, as produced by CacheStateMachine
    msgpack: ["end", record_count]
    u32 crc32 of everything above       4 bytes, little-endian

Readers verify magic, format and checksum before touching a single record, so a torn or
corrupt file is refused as a whole rather than half-loaded.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import os
import signal
import struct
import sys
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .commands import packer, unpacker
from .errors import StorageError

MAGIC = b"RCSNAP\x00"
FORMAT = 1
_TRAILER = struct.Struct("<I")
_READ_CHUNK = 1 << 20


class CorruptSnapshotError(StorageError):
    """A snapshot or backup file failed validation (magic, version or checksum)."""


def fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ChecksummedWriter:
    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        self._raw.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


def write_snapshot(
    path: str,
    header: dict[str, Any],
    sections: Iterable[tuple[str, Any]],
    *,
    fsync: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write a snapshot atomically to `path`; returns its size in bytes.

    `progress`, if given, is called with the number of records written so far.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    pack = packer().pack
    try:
        with open(tmp, "wb", buffering=_READ_CHUNK) as raw:
            out = _ChecksummedWriter(raw)
            out.write(MAGIC + bytes([FORMAT]))
            out.write(pack(header))
            records = 0
            for section in sections:
                out.write(pack(section))
                records += 1
                if progress is not None:
                    progress(records)
            out.write(pack(("end", records)))
            raw.write(_TRAILER.pack(out.crc))
            raw.flush()
            if fsync:
                os.fsync(raw.fileno())
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path)
        return out.size + _TRAILER.size
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class SnapshotReader:
    """A validated snapshot: ``header`` at once, ``sections()`` streamed."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.size = os.path.getsize(path)
            with open(path, "rb") as f:
                self._verify(f)
                f.seek(len(MAGIC) + 1)
                self.header: dict[str, Any] = unpacker(f, max_buffer_size=0).unpack()
        except OSError as exc:
            raise StorageError(f"cannot read snapshot {path}: {exc.strerror or exc}") from None
        except CorruptSnapshotError:
            raise
        except Exception as exc:
            raise CorruptSnapshotError(f"snapshot {path} is not readable: {exc}") from None
        if not isinstance(self.header, dict):
            raise CorruptSnapshotError(f"snapshot {path} has no header")

    def _verify(self, f: Any) -> None:
        prefix = f.read(len(MAGIC) + 1)
        if len(prefix) < len(MAGIC) + 1 or prefix[: len(MAGIC)] != MAGIC:
            raise CorruptSnapshotError(f"{self.path} is not a raftcache snapshot (bad magic)")
        if prefix[-1] != FORMAT:
            raise CorruptSnapshotError(
                f"{self.path} uses snapshot format {prefix[-1]}; this version reads format {FORMAT}"
            )
        body = self.size - _TRAILER.size
        if body < len(prefix):
            raise CorruptSnapshotError(f"{self.path} is truncated")
        crc = zlib.crc32(prefix)
        remaining = body - len(prefix)
        while remaining:
            chunk = f.read(min(_READ_CHUNK, remaining))
            if not chunk:
                raise CorruptSnapshotError(f"{self.path} is truncated")
            crc = zlib.crc32(chunk, crc)
            remaining -= len(chunk)
        (stored,) = _TRAILER.unpack(f.read(_TRAILER.size))
        if stored != crc:
            raise CorruptSnapshotError(f"{self.path} is corrupt (checksum mismatch)")

    def sections(self) -> Iterator[tuple[str, Any]]:
        """Yield the state sections; re-opens the file so it may be called after __init__."""
        with open(self.path, "rb") as f:
            f.seek(len(MAGIC) + 1)
            records = unpacker(f, max_buffer_size=0)
            records.unpack()  # header
            count = 0
            for record in records:
                name, payload = record
                if name == "end":
                    if payload != count:
                        raise CorruptSnapshotError(f"{self.path}: expected {payload} records, read {count}")
                    return
                count += 1
                yield name, payload
        raise CorruptSnapshotError(f"{self.path} ends without an end record")


def write_in_child(path: str, write: Callable[[str], None]) -> int:
    """Fork; the child writes a file with ``write(partial_path)`` from its frozen copy of the
    parent's memory, then renames it to `path`. Returns the child's pid (reap it with
    ``os.waitpid``: exit status 0 means `path` is complete). Raises OSError if fork fails.

    This is how a large state is written without stalling the parent's threads: copy-on-write
    gives the child a consistent picture of the moment of the fork.
    """
    parent = os.getpid()

    def body() -> None:
        partial = _partial_path(path, str(os.getpid()))
        write(partial)
        if os.getppid() != parent:  # an orphan must not replace a file its restarted parent made
            os.unlink(partial)
            raise RuntimeError("parent gone")
        os.rename(partial, path)
        fsync_dir(path)

    return _fork(body)


def _partial_path(path: str, pid: str) -> str:
    """Where `write_in_child`'s writer `pid` builds `path` (its own temporary files extend it)."""
    return f"{path}.{pid}.partial"


def remove_partial_files(path: str, pid: int | None = None) -> None:
    """Delete what killed `write_in_child` writers for `path` left behind (the writer `pid`'s,
    or every writer's): a killed child cannot clean up after itself."""
    pattern = _partial_path(glob.escape(path), "*" if pid is None else str(pid)) + "*"
    for partial in glob.glob(pattern):
        unlink_quietly(partial)


def unlink_quietly(path: str) -> None:
    """Remove a file that may already be gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def compute_in_child(compute: Callable[[], bytes]) -> tuple[int, int]:
    """Fork; the child runs ``compute()`` on its frozen copy of memory and writes the result
    to a pipe. Returns (pid, read end of the pipe): read to EOF, then reap the pid."""
    read_fd, write_fd = os.pipe()

    def body() -> None:
        os.close(read_fd)
        view = memoryview(compute())
        while view:
            view = view[os.write(write_fd, view):]

    try:
        pid = _fork(body)
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    return pid, read_fd


def _fork(body: Callable[[], None]) -> int:
    """Fork a child that runs `body` and exits (status 0 if it returned, 1 if it raised)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        gc.disable()  # a collection would touch (and so copy) every object page
        _die_with_parent()
        body()
        code = 0
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        os._exit(code)


def _die_with_parent() -> None:
    """Ask Linux to kill this (forked) process if its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
