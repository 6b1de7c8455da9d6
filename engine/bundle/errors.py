"""The error every step of `cra bundle` raises: the message names the step and the cause."""

from engine.core.errors import CraError


class BundleError(CraError):
    """A bundle cannot be made, or the out folder cannot take one."""
