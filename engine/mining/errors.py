"""Errors of the commit mining pipeline."""

from engine.core.errors import CraError


class MiningError(CraError):
    """A commit cannot be mined or described as asked."""
