"""`raftcache init`: write a new cluster file with a fresh random secret.

The file is created with mode 0600 (it holds a secret) and never overwrites an existing one
without ``--force``. With ``--secret-file`` the secret goes to a file of its own (also 0600)
and the cluster file only names it, so the cluster file can be committed. No
``requirepass`` is written: until one is set, protected mode refuses clients that are not on
loopback (the command says so for nodes on other hosts).
"""

from __future__ import annotations

import json
import os

import click

from .. import cluster_secret
from ..addresses import is_loopback


def _write_new(path: str, text: str, force: bool) -> None:
    """Write `text` to `path` with mode 0600; refuse an existing file unless `force`."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} already exists; use --force to overwrite it") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # also when --force replaced a more open file


def render(hosts: list[str], count: int, raft_port: int, client_port: int, secret_line: str) -> str:
    """The TOML text of a new cluster file."""
    spread = len(hosts) > 1  # one node per host, same ports; else all on one host, ports counting up
    lines = [
        "# raftcache cluster, written by `raftcache init`. Every option is described in",
        "# cluster.example.toml; the README's \"Running in production\" section says what to protect.",
        "",
        "[cluster]",
        "# Authenticates and encrypts peer (raft) traffic: keep it private, the same on every node.",
        secret_line,
        "",
        "[server]",
        "# Clients not on loopback are refused (protected mode) until a password is set here.",
        'requirepass = ""',
        "",
    ]
    for i in range(count):
        host = hosts[i] if spread else hosts[0]
        offset = 0 if spread else i
        lines += [
            "[[nodes]]",
            f'id = "n{i + 1}"',
            f'raft = "{host}:{raft_port + offset}"',
            f'client = "{host}:{client_port + offset}"',
            f'data_dir = "data/n{i + 1}"',
            "",
        ]
    return "\n".join(lines)


@click.command()
@click.argument("path", default="cluster.toml", metavar="[PATH]")
@click.option("--nodes", "count", type=click.IntRange(1, 99), default=None, help="how many nodes [default: 3, or one per --host]")
@click.option("--host", "hosts", multiple=True, metavar="ADDRESS",
              help="node address; repeat for one node per host (same ports); once for all nodes on one host [default: 127.0.0.1]")
@click.option("--raft-port", type=click.IntRange(1, 65535), default=7101, show_default=True, help="first raft (peer) port")
@click.option("--client-port", type=click.IntRange(1, 65535), default=7001, show_default=True, help="first client (RESP) port")
@click.option("--secret-file", metavar="FILE", default=None, help="write the secret to FILE (0600) and only name it in the cluster file")
@click.option("--force", is_flag=True, help="overwrite existing files")
def init(path: str, count: int | None, hosts: tuple[str, ...], raft_port: int, client_port: int, secret_file: str | None, force: bool) -> None:
    """Write a new cluster file with a random cluster secret (mode 0600)."""
    host_list = list(hosts) or ["127.0.0.1"]
    if len(host_list) > 1 and count is not None and count != len(host_list):
        raise click.UsageError(f"--nodes {count} does not match the {len(host_list)} --host addresses")
    count = len(host_list) if len(host_list) > 1 else (count or 3)
    if len(host_list) == 1 and max(raft_port, client_port) + count - 1 > 65535:
        raise click.UsageError("ports run past 65535")
    secret = cluster_secret.generate()
    config_dir = os.path.dirname(os.path.abspath(path))
    if secret_file:
        relative = os.path.relpath(os.path.abspath(secret_file), config_dir)
        secret_line = f"secret_file = {json.dumps(relative)}   # the secret is in this file (relative to this one)"
    else:
        secret_line = f"secret = {json.dumps(secret)}"
    public = [h for h in host_list if not is_loopback(f"{h}:1")]
    text = render(host_list, count, raft_port, client_port, secret_line)
    if not force and os.path.exists(path):  # before writing the secret file
        raise click.ClickException(f"{path} already exists; use --force to overwrite it")
    if secret_file:
        _write_new(secret_file, secret + "\n", force)
    _write_new(path, text, force)
    where = f"the secret in {secret_file}" if secret_file else "a random cluster secret"
    click.echo(f"wrote {path} ({count} nodes, {where}; mode 0600)")
    if len(host_list) == 1 and not public:
        click.echo(f"start it with: raftcache up --config {path}")
    else:
        click.echo("set [server] requirepass (and TLS) before clients on other hosts connect; see README \"Running in production\"")
        click.echo(f"copy it to every host and start each node with: raftcache serve --config {path} --node n1 (n2, ...)")


COMMANDS = [init]
