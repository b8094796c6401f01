"""A full disk: a clear StorageError and a clean stop, never SIGBUS, no acknowledged write lost."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from raftcache import Cache, OutcomeUnknownError, StorageError
from tests.helpers import LONE_RAFT, free_ports, wait_until


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_stops_the_node_cleanly_and_keeps_acknowledged_writes(tiny_disk, tmp_path):
    (port,) = free_ports(1)
    data_dir = tiny_disk / "n1"
    cache = Cache(f"127.0.0.1:{port}", [], data_dir=str(data_dir), secret="s", raft={**LONE_RAFT, "snapshot_min_entries": 10**6})
    acked = {}
    try:
        cache.wait_ready(10)
        # The write in flight when the disk fills is "outcome unknown" (in a cluster it could
        # still commit elsewhere); the reason is named either way.
        with pytest.raises((StorageError, OutcomeUnknownError), match="disk full"):
            for i in range(10_000):  # 10 000 x 1 KiB cannot fit in 400 KiB
                cache.set(f"k{i}", f"{i:04d}" * 256)
                acked[f"k{i}"] = f"{i:04d}" * 256
        assert 50 < len(acked) < 10_000
        with pytest.raises(StorageError):  # stays stopped: every later call says why
            cache.get("k0")
        wait_until(lambda: not cache.replica.raft.running, 10, what="raft thread to stop")
    finally:
        cache.close()
    # Everything acknowledged is in the journal: restart from a copy on a roomy disk.
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    (port,) = free_ports(1)
    with Cache(f"127.0.0.1:{port}", [], raft=LONE_RAFT, data_dir=str(copy), secret="s") as again:
        again.wait_ready(10)
        values = again.mget(list(acked))
        assert values == [v.encode() for v in acked.values()]
