"""`raftcache init`: a cluster file with a fresh random secret, never overwritten by accident."""

from __future__ import annotations

import os
import stat

from click.testing import CliRunner

from raftcache import cluster_secret
from raftcache.cli.main import cli
from raftcache.config import load_config


def test_init_writes_a_loadable_file_with_a_strong_random_secret(tmp_path):
    runner = CliRunner()
    path = tmp_path / "cluster.toml"
    result = runner.invoke(cli, ["init", str(path)])
    assert result.exit_code == 0, result.output
    assert "raftcache up --config" in result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cfg = load_config(str(path))
    assert [n.raft for n in cfg.nodes] == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
    first = cfg.secret()
    assert cluster_secret.weakness(first) is None
    # a second run refuses to overwrite (exit 1, file untouched); --force makes a new secret
    again = runner.invoke(cli, ["init", str(path)])
    assert again.exit_code == 1 and "already exists; use --force" in again.output
    assert load_config(str(path)).secret() == first
    assert runner.invoke(cli, ["init", str(path), "--force"]).exit_code == 0
    assert load_config(str(path)).secret() != first


def test_init_one_node_per_host_with_the_secret_in_its_own_file(tmp_path):
    runner = CliRunner()
    path, secret = tmp_path / "c.toml", tmp_path / "keys" / "secret"
    secret.parent.mkdir()
    result = runner.invoke(cli, ["init", str(path), "--host", "10.0.0.1", "--host", "10.0.0.2", "--host", "10.0.0.3",
                                 "--secret-file", str(secret)])
    assert result.exit_code == 0, result.output
    assert "requirepass" in result.output  # clients from other hosts need one (protected mode)
    text = path.read_text()
    assert 'secret_file = "keys/secret"' in text and secret.read_text().strip() not in text
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    cfg = load_config(str(path))
    assert [n.client for n in cfg.nodes] == ["10.0.0.1:7001", "10.0.0.2:7001", "10.0.0.3:7001"]
    assert cluster_secret.problem(cfg.secret(), [n.raft for n in cfg.nodes]) is None
    # an existing cluster file is refused before the secret file is touched
    before = secret.read_text()
    other = tmp_path / "other-secret"
    assert runner.invoke(cli, ["init", str(path), "--secret-file", str(other)]).exit_code == 1
    assert not other.exists() and secret.read_text() == before
