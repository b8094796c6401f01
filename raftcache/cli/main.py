"""The `raftcache` command group. Each command family lives in its own module; every
`RaftCacheError` becomes one actionable line and a non-zero exit status, never a traceback."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import RaftCacheError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RaftCacheError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="raftcache")
def cli() -> None:
    """raftcache: a Raft-replicated, strongly consistent cache that speaks Redis."""


def _register() -> None:
    from . import admin, backup, bench, init, keys, members, run, status

    for module in (init, run, status, keys, members, backup, admin, bench):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="raftcache")
