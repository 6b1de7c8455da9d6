"""What every `cra` command writes to the terminal goes through here, neutralised.

A command's lines carry untrusted text (commit subjects, test names, logged rows, reasons that
quote them), so `echo` passes everything through `engine.terminal_text.neutralise`: its
control characters are shown, never obeyed. `echo_json` writes JSON with every non-ASCII
character as a JSON escape (`\\u001b`), which leaves nothing to neutralise and stays JSON.
"""

import json
from typing import Any

import click
from pydantic import BaseModel

from engine.terminal_text import neutralise


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Write `text` (and a newline) to stdout, or stderr with `err`, neutralised."""
    click.echo(neutralise(text), err=err, nl=nl)


def echo_json(value: BaseModel | Any) -> None:
    """Write `value` (a pydantic model, or what `json.dumps` takes) as indented ASCII JSON."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    echo(json.dumps(data, indent=2))
