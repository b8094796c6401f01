"""Config loading: good files load; bad ones fail with file, key and problem named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftcache.config import load_config
from raftcache.errors import ConfigError

GOOD = """
[cluster]
secret = "s"

[raft]
heartbeat_ms = 40

[[nodes]]
id = "n1"
raft = "127.0.0.1:7101"
client = "127.0.0.1:7001"
data_dir = "data/n1"

[[nodes]]
id = "n2"
raft = "127.0.0.1:7102"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return str(path)


def test_good_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.cluster.secret == "s"
    assert cfg.cluster.fsync == "always"
    assert cfg.raft.heartbeat_ms == 40
    assert cfg.raft.election_timeout_min_ms == 1000
    assert cfg.node("n1").data_dir == os.path.join(str(tmp_path), "data", "n1")  # relative to the file
    assert cfg.node("n2").data_dir is None
    assert cfg.peers_of("n1") == ("127.0.0.1:7102",)


@pytest.mark.parametrize(
    "edit, key, problem",
    [
        (("heartbeat_ms = 40", 'heartbeat_ms = "fast"'), "raft.heartbeat_ms", "must be an integer"),
        (("heartbeat_ms = 40", "hearbeat_ms = 40"), "raft.hearbeat_ms", "did you mean 'heartbeat_ms'"),
        (('secret = "s"', 'secret = "s"\nfsync = "sometimes"'), "cluster.fsync", "must be one of"),
        (('raft = "127.0.0.1:7102"', 'raft = "127.0.0.1:99999"'), "nodes[1].raft", "port in 1-65535"),
        (('raft = "127.0.0.1:7102"', 'raft = "0.0.0.0:7102"'), "nodes[1].raft", "wildcard"),
        (('raft = "127.0.0.1:7102"', 'raft = "127.0.0.1:7101"'), "nodes[1].raft", "already used by nodes[0].raft"),
        (('raft = "127.0.0.1:7102"', 'raft = "127.0.0.1:7001"'), "nodes[1].raft", "already used by nodes[0].client"),
        (("[raft]", "[limits]\nmax_bulk_bytes = 0\n[raft]"), "limits.max_bulk_bytes", "must be an integer >= 1"),
        (("[raft]", "[limits]\nmax_bulk_bytes = 1024\n[raft]"), "limits.max_bulk_bytes", "at least limits.max_value_bytes"),
        (("[raft]", "[server]\nrequirepass = 5\n[raft]"), "server.requirepass", "must be a string"),
        (('id = "n2"', 'id = "n1"'), "nodes[1].id", "already used"),
        (('id = "n2"\n', ""), "nodes[1].id", "is required"),
        (("[raft]", "[rafts]"), "rafts", "unknown section"),
        (("heartbeat_ms = 40", "heartbeat_ms = 400"), "raft.election_timeout_min_ms", "3 x raft.heartbeat_ms"),
    ],
)
def test_bad_configs_name_file_key_and_problem(tmp_path, edit, key, problem):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(path + ": " + key), message
    assert problem in message


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[cluster\nsecret = 1"))


def test_unknown_node_id(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no node with id 'n9'"):
        cfg.node("n9")
