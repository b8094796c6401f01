"""Key commands through the leader-following client: get set del keys ttl expire incr cas."""

from __future__ import annotations

import sys

import click

from .common import Target, cluster_options


def _echo_value(value: bytes) -> None:
    out = sys.stdout.buffer
    out.write(value + b"\n")
    out.flush()


@click.command()
@cluster_options
@click.argument("key")
@click.option("--stale", is_flag=True, help="read the answering node's local state (no Raft round)")
def get(target: Target, key: str, stale: bool) -> None:
    """Print a key's value; exit status 1 (and "(nil)" on stderr) if it does not exist."""
    with target.client() as client:
        value = client.get(key, consistency="stale" if stale else None)
    if value is None:
        click.echo("(nil)", err=True)
        raise SystemExit(1)
    _echo_value(value)


@click.command(name="set")
@cluster_options
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=float, default=None, metavar="SECONDS", help="expire after SECONDS")
@click.option("--nx", is_flag=True, help="only if the key does not exist")
@click.option("--xx", is_flag=True, help="only if the key exists")
def set_(target: Target, key: str, value: str, ttl: float | None, nx: bool, xx: bool) -> None:
    """Set a key; prints OK (exit status 1 if --nx/--xx prevented it)."""
    with target.client() as client:
        done = client.set(key, value, ttl=ttl, nx=nx, xx=xx)
    if not done:
        click.echo("not set (--nx/--xx)", err=True)
        raise SystemExit(1)
    click.echo("OK")


@click.command(name="del")
@cluster_options
@click.argument("keys", nargs=-1, required=True)
def delete(target: Target, keys: tuple[str, ...]) -> None:
    """Delete keys; prints how many existed."""
    with target.client() as client:
        click.echo(client.delete(*keys))


@click.command(name="keys")
@cluster_options
@click.argument("pattern", default="*")
def keys_(target: Target, pattern: str) -> None:
    """List keys matching a glob PATTERN (default *), one per line."""
    with target.client() as client:
        for key in sorted(client.keys(pattern)):
            _echo_value(key)


@click.command()
@cluster_options
@click.argument("key")
def ttl(target: Target, key: str) -> None:
    """Seconds to live: -1 without expiry, -2 if the key does not exist."""
    with target.client() as client:
        click.echo(client.ttl(key))


@click.command()
@cluster_options
@click.argument("key")
@click.argument("seconds", type=float)
def expire(target: Target, key: str, seconds: float) -> None:
    """Set a key's time to live; prints 1, or 0 if the key does not exist."""
    with target.client() as client:
        click.echo(int(client.expire(key, seconds)))


@click.command()
@cluster_options
@click.argument("key")
@click.option("--by", "amount", type=int, default=1, show_default=True, help="increment")
def incr(target: Target, key: str, amount: int) -> None:
    """Increment an integer value (exactly once, even across retries); prints the new value."""
    with target.client() as client:
        click.echo(client.incr(key, amount))


@click.command()
@cluster_options
@click.argument("key")
@click.argument("expected")
@click.argument("new")
@click.option("--ttl", type=float, default=None, metavar="SECONDS", help="new expiry (default: keep the key's)")
def cas(target: Target, key: str, expected: str, new: str, ttl: float | None) -> None:
    """Compare-and-set: store NEW if the value is EXPECTED; prints 1 if swapped, else 0."""
    with target.client() as client:
        click.echo(int(client.cas(key, expected, new, ttl=ttl)))


COMMANDS = [get, set_, delete, keys_, ttl, expire, incr, cas]
