"""Operator-facing errors: each message names the thing at fault and the rule it broke."""

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


def validation_lines(source: str, exc: ValidationError) -> str:
    """One line per problem pydantic found in `source`: the file, the key and the reason."""
    return "\n".join(
        f"{source}: key {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors()
    )
