"""Rules every `cra` subcommand shares: how it opens its workspace, what a path may be.

An explicit workspace (`--workspace` or `$CRA_WORKSPACE`) must already be one: a mistyped path
is refused, never made into a new, empty workspace (`cra init` makes one). The default
workspace is made on first use, and the command says so. Commands that only read pass
`write=False`, so a read-only workspace still opens for them.
"""

from pathlib import Path

import click

from engine.core.workspace import Workspace


def open_workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    """The workspace `ctx`'s command runs on (see the module docstring)."""
    options = ctx.find_root().obj
    ws = Workspace.open(options["workspace"], create=not options["explicit"], write=write)
    if ws.created:
        click.echo(f"created the default workspace at {ws.root} (first use)", err=True)
    return ws


class PathArg(click.Path):
    """A path option or argument: an empty one is refused (Path("") would silently be `.`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path names nothing; give a path", param, ctx)
        return super().convert(value, param, ctx)
