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


# ------------------------------------------------------------------ secrets and TLS
def test_secret_from_file_or_environment(tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("from-the-file\nignored\n")
    cfg = load_config(write(tmp_path, GOOD.replace('secret = "s"', 'secret_file = "secret.txt"')))
    assert cfg.cluster.secret_file == str(tmp_path / "secret.txt")  # relative to the config file
    assert cfg.secret() == "from-the-file"
    cfg = load_config(write(tmp_path, GOOD.replace('secret = "s"', 'secret_env = "RC_TEST_SECRET"')))
    monkeypatch.setenv("RC_TEST_SECRET", "from-the-env")
    assert cfg.secret() == "from-the-env"
    monkeypatch.delenv("RC_TEST_SECRET")
    with pytest.raises(ConfigError, match=r"cluster.secret_env: environment variable RC_TEST_SECRET is not set"):
        cfg.secret()
    cfg = load_config(write(tmp_path, GOOD.replace('secret = "s"', 'secret_file = "missing.txt"')))
    with pytest.raises(ConfigError, match=r"cluster.secret_file: cannot read .*missing.txt"):
        cfg.secret()  # read when a node starts, not at load (operator commands do not need it)


def test_only_one_secret_source(tmp_path):
    with pytest.raises(ConfigError, match=r"cluster.secret_env: give one of secret, secret_file, secret_env"):
        load_config(write(tmp_path, GOOD.replace('secret = "s"', 'secret = "s"\nsecret_env = "X"')))


def test_server_security_defaults_and_tls_options(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.server.protected_mode is True and cfg.server.tls() is None
    text = GOOD + '\n[server]\ntls_cert_file = "tls/n.crt"\ntls_key_file = "tls/n.key"\ntls_ca_cert_file = "/abs/ca.crt"\n'
    tls = load_config(write(tmp_path, text)).server.tls()
    assert tls.cert_file == str(tmp_path / "tls" / "n.crt") and tls.ca_cert_file == "/abs/ca.crt"
    assert tls.auth_clients == "yes" and tls.protocols == "TLSv1.2 TLSv1.3"  # Redis's defaults


@pytest.mark.parametrize(
    "server, key, problem",
    [
        ('tls_cert_file = "a.crt"', "server.tls_key_file", "is required with tls_cert_file"),
        ('tls_auth_clients = "maybe"', "server.tls_auth_clients", "must be one of 'no', 'optional', 'yes'"),
        ('tls_protocols = "TLSv1.1 TLSv1.2"', "server.tls_protocols", "unknown protocol 'TLSv1.1'"),
        ("protected_mode = 0", "server.protected_mode", "must be true or false"),
    ],
)
def test_bad_security_options_are_named(tmp_path, server, key, problem):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD + f"\n[server]\n{server}\n"))
    assert err.value.key == key and problem in err.value.problem
