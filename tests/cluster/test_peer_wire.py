"""The peer wire against real `raftcache serve` processes: pickles sent to a raft port are
never unpickled (without the secret, with it in pysyncobj's own Fernet framing, and with it
inside our wire), the node stays up and the cluster keeps serving; a data directory written
by the pickle-format version is refused with one line that says what to do."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pysyncobj.pickle
import pytest
from pysyncobj.encryptor import getEncryptor

from raftcache.consensus.wire import WireSession
from tests.helpers import REPO, ServerCluster, wait_until, write_cluster_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir_pickle_v1"
SECRET = "test-secret"  # write_cluster_config's


class Bomb:
    """Unpickling this creates `path`: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def raft_address(node) -> tuple[str, int]:
    host, port = node.raft.rsplit(":", 1)
    return host, int(port)


def closed_by_peer(sock: socket.socket, timeout: float = 15) -> bool:
    """True once the node closed the connection (reads drain anything it sent first)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ServerCluster(tmp_path_factory.mktemp("wire"), 3).start()
    yield c
    c.close()


def still_serving(cluster: ServerCluster, key: str) -> None:
    leader = cluster.leader()
    with leader.redis() as r:
        assert r.set(key, "v") is True
    for node in cluster.nodes:
        assert node.alive
        with node.redis() as r:
            wait_until(lambda r=r: r.get(key) == b"v", 20, what=f"{key} on {node.id}")


def test_a_pickle_bomb_without_the_secret_is_not_unpickled(cluster, tmp_path):
    marker = tmp_path / "pwned"
    frame = zlib.compress(pysyncobj.pickle.dumps(Bomb(marker)))
    target = cluster.nodes[0]
    with socket.create_connection(raft_address(target)) as sock:
        sock.sendall(struct.pack("i", len(frame)) + frame)
        assert closed_by_peer(sock)
    assert not marker.exists()
    still_serving(cluster, "after-raw-pickle")
    assert "peer connection dropped: peer does not speak the raftcache peer wire" in target.log_text()


def test_a_pickle_bomb_in_pysyncobjs_own_fernet_framing_with_the_secret_is_not_unpickled(cluster, tmp_path):
    # What the old wire accepted from anyone holding the secret: authenticated, then unpickled.
    marker = tmp_path / "pwned"
    data = getEncryptor(SECRET).encrypt(zlib.compress(pysyncobj.pickle.dumps(Bomb(marker))))
    with socket.create_connection(raft_address(cluster.nodes[1])) as sock:
        sock.sendall(struct.pack("i", len(data)) + data)
        assert closed_by_peer(sock)
    assert not marker.exists()
    still_serving(cluster, "after-fernet-pickle")


def test_pickled_log_entries_sent_inside_the_wire_with_the_secret_are_dropped(cluster, tmp_path):
    # A peer holding the secret and speaking our wire, trying every message that reached a
    # pickle.loads in pysyncobj: a forwarded command of its @replicated kind, a membership
    # change, and a chunked entry transmission.
    marker = tmp_path / "pwned"
    bomb = pysyncobj.pickle.dumps(Bomb(marker))
    leader = cluster.leader()
    session = WireSession(SECRET.encode(), initiator=True)
    with socket.create_connection(raft_address(leader)) as sock:
        sock.sendall(session.hello())
        sock.settimeout(15)
        while session.next_message() is None and not session.established:
            hello = sock.recv(65536)
            assert hello, "node closed the connection before its hello"
            session.receive(hello)
        # Confirm frame, then introduce ourselves as pysyncobj's "readonly" kind of node (what
        # a member would say would take that member's connection over; see the next test).
        out = session.take_output() + session.send("readonly")
        for message in (
            {"type": "apply_command", "command": b"\x00" + bomb, "request_id": 1},
            {"type": "apply_command", "command": b"\x02" + bomb},
            {"type": "append_entries", "term": 0, "commit_index": 0, "prevLogIdx": 1, "prevLogTerm": 0,
             "transmission": "finish", "data": bomb},
        ):
            out += session.send(message)
        sock.sendall(out)
        wait_until(lambda: leader.log_text().count("dropped a message from peer") >= 3, 20, what="the drops logged")
    assert not marker.exists()
    log = leader.log_text()
    assert "unknown entry kind 0" in log and "malformed membership change" in log and "chunked entry transmission" in log
    still_serving(cluster, "after-wire-pickle")
    cluster.converged()


def test_a_peer_may_not_claim_a_member_this_node_connects_to_itself(cluster):
    ordered = sorted(cluster.nodes, key=lambda n: n.raft)
    highest, lowest = ordered[-1], ordered[0]  # the highest address connects to the lowest
    session = WireSession(SECRET.encode(), initiator=True)
    with socket.create_connection(raft_address(highest)) as sock:
        sock.sendall(session.hello())
        sock.settimeout(15)
        while not session.established:
            data = sock.recv(65536)
            assert data, "node closed the connection before its hello"
            session.receive(data)
            session.next_message()
        sock.sendall(session.take_output() + session.send(lowest.raft))
        assert closed_by_peer(sock)
    assert f"claims {lowest.raft}, which we connect to" in highest.log_text()
    still_serving(cluster, "after-false-claim")


def test_a_data_dir_of_the_pickle_format_is_refused_in_one_line(tmp_path):
    config = write_cluster_config(tmp_path, 1)
    shutil.copytree(FIXTURE, tmp_path / "data" / "n1")
    proc = subprocess.run(
        [sys.executable, "-m", "raftcache", "serve", "--config", str(config), "--node", "n1"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    refusal = [line for line in lines if "raft.log" in line]
    assert len(refusal) == 1 and "raftcache backup" in refusal[0] and "raftcache restore --force" in refusal[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "data" / "n1" / "raft.log").read_bytes() == (FIXTURE / "raft.log").read_bytes()
