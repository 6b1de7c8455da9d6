"""The error every packaging step raises for a problem the operator can fix."""

from engine.core.errors import CraError


class PackagingError(CraError):
    """A repository cannot be packaged; the message names the file or option and the rule."""
