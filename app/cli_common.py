"""Rules every `cra` subcommand shares: how it opens its workspace, what a path may be.

`--workspace` is taken before the subcommand or after it, at any level (`cra demo --workspace
X`, `cra ingest list --workspace X`): `with_workspace_option` gives every subcommand the option.
An explicit workspace (`--workspace` or `$CRA_WORKSPACE`) must already be one: a mistyped path
is refused, never made into a new, empty workspace (`cra init` makes one). The default
workspace is made on first use, and the command says so. Commands that only read pass
`write=False`, so a read-only workspace still opens for them.
"""

from pathlib import Path

import click
from click.core import ParameterSource

from engine.core.workspace import Workspace

WORKSPACE_HELP = "Workspace folder, as `cra --workspace`; given here or before the subcommand."


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


def note_root_workspace(ctx: click.Context, workspace: Path | None) -> None:
    """Record the root's `--workspace` (or `$CRA_WORKSPACE`) in `ctx.obj`, and whether it was
    typed on the command line."""
    ctx.ensure_object(dict)
    ctx.obj["workspace"] = workspace
    ctx.obj["explicit"] = workspace is not None
    ctx.obj["typed"] = ctx.get_parameter_source("workspace") is ParameterSource.COMMANDLINE


def _workspace_after(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """A subcommand's `--workspace`: it names the workspace as the root's would; one typed
    before the subcommand too must name the same folder, and wins over `$CRA_WORKSPACE`."""
    if value is None:
        return
    options = ctx.find_root().obj
    earlier = options["workspace"]
    if options["typed"] and earlier.expanduser().absolute() != value.expanduser().absolute():
        raise click.BadParameter(
            f"{value} is not {earlier}, given before the subcommand: give --workspace once",
            ctx,
            param,
        )
    options.update(workspace=value, explicit=True, typed=True)


def with_workspace_option(command: click.Command) -> click.Command:
    """`command`, and every command under it, taking `--workspace` too (once each)."""
    if not any(param.name == "workspace" for param in command.params):
        command.params.append(
            click.Option(
                ["--workspace"],
                type=PathArg(file_okay=False),
                expose_value=False,
                callback=_workspace_after,
                help=WORKSPACE_HELP,
            )
        )
    if isinstance(command, click.Group):
        for child in command.commands.values():
            with_workspace_option(child)
    return command
