"""Operator-facing errors: each message names the thing at fault and the rule it broke.

Importing it loads nothing else (pydantic is named for type checkers only): `cra --help`
imports it, and pydantic alone costs about 50 ms.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class CraError(Exception):
    """An operator mistake or a refused input; shown as a message, never as a traceback."""


class ConfigError(CraError):
    """The workspace config file has a bad value."""


class WorkspaceError(CraError):
    """The workspace folder cannot be used."""


class ManifestError(CraError):
    """A manifest.json cannot be read or does not match the schema."""


class IngestError(CraError):
    """A repo package cannot be approved or rejected."""


def validation_lines(source: str, exc: "ValidationError") -> str:
    """One line per problem pydantic found in `source`: the file, the key and the reason."""
    return "\n".join(
        f"{source}: key {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors()
    )
