"""Why `cra curate-data` would not make a dataset.

`CurationRefused` is about one stage (its review, its data): curation reports it and goes on
with the other stages. `CurateError` is about the request itself and stops it.
"""

from engine.core.errors import CraError


class CurationRefused(CraError):
    """One stage's dataset cannot be made; the message says why and what to do."""


class CurateError(CraError):
    """A curation request that cannot be carried out (a bad plan, stage or format)."""
