"""The on-disk formats: batch codec, journal (WAL) and snapshot files."""

from __future__ import annotations

import os

import msgpack
import pytest

from raftcache import commands as c
from raftcache.errors import NotIntegerError, StorageError
from raftcache.snapshot import CorruptSnapshotError, SnapshotReader, write_snapshot
from raftcache.statemachine import CacheStateMachine
from raftcache.wal import LogFile, MetaFile


# ----------------------------------------------------------------------------- codec
def test_batch_round_trip():
    rows = [
        (c.SessionTag(2**62, 7, 3), c.Set(b"k\x00\xff", b"v", c.COND_NX, True, 1000, None, False)),
        (None, c.Sweep(100)),
        (c.SessionTag(1, 1, 1), c.MSet((b"a", b"1", b"b", b"2"))),
        (c.SessionTag(1, 2, 1), c.Expire(b"k", 5, True, c.COND_GT)),
    ]
    batch = c.decode_batch(c.encode_batch(123, rows))
    assert batch.time_ms == 123
    assert batch.commands == rows
    assert all(type(cmd) is type(orig) for (_, cmd), (_, orig) in zip(batch.commands, rows))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00garbage", msgpack.packb([99, 0, []]), msgpack.packb([c.FORMAT_VERSION, 0, [[250, None, 0, 0]]])],
)
def test_malformed_batches_are_refused(payload):
    with pytest.raises(c.MalformedBatch):
        c.decode_batch(payload)


def test_stored_results_round_trip_through_the_state_packer():
    data = c.packer().pack([b"x", None, 3, NotIntegerError()])
    unpacker = c.unpacker()
    unpacker.feed(data)
    assert next(unpacker) == [b"x", None, 3, NotIntegerError()]


# ------------------------------------------------------------------------------- WAL
def test_wal_append_reopen(tmp_path):
    path = str(tmp_path / "raft.log")
    log = LogFile(path, fsync=True)
    assert log.open() == []
    for i in range(1, 6):
        log.append(b"cmd%d" % i, i, 1)
    log.sync()
    log.close()
    again = LogFile(path, fsync=True)
    assert again.open() == [(b"cmd%d" % i, i, 1) for i in range(1, 6)]


def test_wal_unsynced_appends_are_not_on_disk_until_flush(tmp_path):
    path = str(tmp_path / "raft.log")
    log = LogFile(path, fsync=False)
    log.open()
    log.append(b"a", 1, 1)
    assert LogFile(path, fsync=False).open() == []
    log.flush()
    assert LogFile(path, fsync=False).open() == [(b"a", 1, 1)]


def test_wal_cuts_a_torn_tail(tmp_path):
    path = str(tmp_path / "raft.log")
    log = LogFile(path, fsync=True)
    log.open()
    for i in range(1, 4):
        log.append(b"x" * 100, i, 2)
    log.sync()
    log.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # a crash in the middle of the last record
        f.truncate(size - 30)
    entries = LogFile(path, fsync=True).open()
    assert [e[1] for e in entries] == [1, 2]
    assert os.path.getsize(path) < size - 30  # the partial record is gone for good


def test_wal_detects_corruption_by_checksum(tmp_path):
    path = str(tmp_path / "raft.log")
    log = LogFile(path, fsync=True)
    log.open()
    for i in range(1, 4):
        log.append(b"payload-%d" % i, i, 1)
    log.sync()
    log.close()
    data = bytearray(open(path, "rb").read())
    data[data.index(b"payload-2")] ^= 0xFF  # flip a byte inside record 2
    open(path, "wb").write(bytes(data))
    assert [e[1] for e in LogFile(path, fsync=True).open()] == [1]


def test_wal_truncate_and_rewrite(tmp_path):
    path = str(tmp_path / "raft.log")
    log = LogFile(path, fsync=True)
    log.open()
    for i in range(1, 11):
        log.append(b"e%d" % i, i, 1)
    log.truncate(7)  # includes records still in the write buffer
    log.append(b"new8", 8, 2)
    log.sync()
    assert [e[0] for e in LogFile(path, fsync=True).open()] == [b"e%d" % i for i in range(1, 8)] + [b"new8"]
    log.rewrite([(b"e7", 7, 1), (b"new8", 8, 2)])
    log.append(b"e9", 9, 2)
    log.sync()
    assert [e[1] for e in LogFile(path, fsync=True).open()] == [7, 8, 9]


def test_wal_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "raft.log"
    path.write_bytes(b"PYSYNCOBJ journal")
    with pytest.raises(StorageError, match="not a raftcache journal"):
        LogFile(str(path), fsync=True).open()


def test_meta_file(tmp_path):
    meta = MetaFile(str(tmp_path / "raft.meta"))
    assert meta.load() == {}
    meta.store({"term": 3, "vote": "127.0.0.1:1", "commit": 10})
    assert MetaFile(str(tmp_path / "raft.meta")).load() == {"term": 3, "vote": "127.0.0.1:1", "commit": 10}
    (tmp_path / "raft.meta").write_bytes(b"\xc1")
    with pytest.raises(StorageError, match="corrupt"):
        meta.load()


# -------------------------------------------------------------------------- snapshots
def _machine_with_data() -> CacheStateMachine:
    fsm = CacheStateMachine()
    rows = [(c.SessionTag(1, i, 1), c.Set(b"key%d" % i, b"v" * i, ttl_ms=None if i % 2 else 60_000)) for i in range(1, 200)]
    fsm.apply(c.Batch(1_700_000_000_000, rows))
    return fsm


def test_snapshot_round_trip(tmp_path):
    fsm = _machine_with_data()
    path = str(tmp_path / "snap.rcs")
    size = write_snapshot(path, {"kind": "test", "n": 1}, fsm.snapshot_sections(chunk=16))
    assert size == os.path.getsize(path)
    reader = SnapshotReader(path)
    assert reader.header == {"kind": "test", "n": 1}
    restored = CacheStateMachine()
    restored.restore(reader.sections())
    assert restored.digest() == fsm.digest()
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "format"])
def test_damaged_snapshots_are_refused_whole(tmp_path, damage):
    path = str(tmp_path / "snap.rcs")
    write_snapshot(path, {"kind": "test"}, _machine_with_data().snapshot_sections())
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "magic":
        data[0:3] = b"XYZ"
    else:
        data[7] = 99
    open(path, "wb").write(bytes(data))
    with pytest.raises(CorruptSnapshotError):
        SnapshotReader(path)


def test_failed_snapshot_write_leaves_no_file(tmp_path):
    path = str(tmp_path / "snap.rcs")

    def sections():
        yield "state", {"now": 0, "revision": 0, "keys": 0}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_snapshot(path, {}, sections())
    assert os.listdir(tmp_path) == []


def test_files_of_a_killed_snapshot_writer_are_removed(tmp_path):
    import signal
    import time

    from raftcache.snapshot import remove_partial_files, write_in_child
    from tests.helpers import wait_until

    path = str(tmp_path / "snapshot.rcs")
    write_snapshot(path, {"kind": "raft-snapshot"}, [("state", {})])  # the current snapshot stays

    def stuck_sections():
        yield "state", {}
        time.sleep(60)  # killed long before this ends

    pid = write_in_child(path, lambda partial: write_snapshot(partial, {}, stuck_sections()))
    wait_until(lambda: len(os.listdir(tmp_path)) >= 2, 10, 0.01, "the writer to create its file")
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert len(os.listdir(tmp_path)) == 2, os.listdir(tmp_path)  # the killed writer's file is left over
    (tmp_path / "snapshot.rcs.999.partial").write_bytes(b"another dead writer's")
    remove_partial_files(path, pid)
    assert sorted(os.listdir(tmp_path)) == ["snapshot.rcs", "snapshot.rcs.999.partial"]
    remove_partial_files(path)  # at start: every writer of an earlier run is dead
    assert os.listdir(tmp_path) == ["snapshot.rcs"]
    assert SnapshotReader(path).header["kind"] == "raft-snapshot"
