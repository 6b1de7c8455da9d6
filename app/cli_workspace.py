"""How every `cra` subcommand opens its workspace: the one place that applies the rules.

An explicit workspace (`--workspace` or `$CRA_WORKSPACE`) must already be one: a mistyped path
is refused, never made into a new, empty workspace (`cra init` makes one). The default
workspace is made on first use, and the command says so. Commands that only read pass
`write=False`, so a read-only workspace still opens for them.
"""

import click

from engine.workspace import Workspace


def open_workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    """The workspace `ctx`'s command runs on (see the module docstring)."""
    options = ctx.find_root().obj
    ws = Workspace.open(options["workspace"], create=not options["explicit"], write=write)
    if ws.created:
        click.echo(f"created the default workspace at {ws.root} (first use)", err=True)
    return ws
