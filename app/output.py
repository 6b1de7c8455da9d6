"""`--json` output: every non-ASCII character written as a JSON escape (`\\u001b`, `\\u202e`).

The CLI's streams neutralise control characters (`app.visible_output`); in JSON, a C1 control or
a bidi override turned into `\\x9b` would no longer be JSON. Written ASCII-escaped, the document
has nothing to neutralise, stays JSON and keeps the original text.
"""

import json
from typing import Any

import click
from pydantic import BaseModel


def echo_json(value: BaseModel | Any) -> None:
    """Write `value` (a pydantic model, or what `json.dumps` takes) as indented ASCII JSON."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    click.echo(json.dumps(data, indent=2))
