"""Entry point of the `raftcache` command."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="raftcache")
def cli() -> None:
    """raftcache: a Raft-replicated, strongly consistent cache that speaks Redis."""


def main() -> None:
    cli()
