"""A click group that imports a subcommand's module only when that subcommand is used.

`cra --help` lists every command with its one-line help. Importing each command's module for
that line would load the engine behind it (sqlite-utils and pandas, curation, evaluation) just
to print a listing, so the group is told each lazy command's name, where it lives and the first
paragraph of its help. The listing is drawn from those; the module is imported when the command
is invoked, its own `--help` is asked, or shell completion looks inside it.
`tests/test_cli_startup.py` holds every registered help to the loaded command's own.
"""

import importlib
from dataclasses import dataclass
from gettext import gettext as _

import click


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand the group imports on use: `target` is `module:attribute`, `help` the first
    paragraph of the command's help, from which click makes the listing's line."""

    target: str
    help: str


class LazyGroup(click.Group):
    """A `click.Group` whose `lazy` commands are imported on first use. Commands added the usual
    way (`@group.command`, `add_command`) are listed and found first, as in any group."""

    def __init__(self, *args, lazy: dict[str, LazyCommand] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        return self.load(cmd_name)

    def load(self, name: str) -> click.Command:
        """Import the lazy command `name`; a target that is not that command is a bug, refused."""
        target = self.lazy[name].target
        module_name, _sep, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != name:
            raise TypeError(f"{target} is {command!r}, not the click command {name!r}")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (`click.Group.format_commands`), each lazy command's line made
        from its registered help instead of from the imported command."""
        listed = [(name, self._listed(name)) for name in self.list_commands(ctx)]
        listed = [(name, command) for name, command in listed if not command.hidden]
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _command in listed)
        with formatter.section(_("Commands")):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in listed]
            )

    def _listed(self, name: str) -> click.Command:
        """The command as the listing shows it: itself when loaded, else a stand-in bearing
        its registered help."""
        if name in self.commands:
            return self.commands[name]
        return click.Command(name, help=self.lazy[name].help)
