"""The build backend's requirements across the packaged history, not only at HEAD.

The harness installs the repository at each packaged commit and at its parent from the package's
wheels alone, with the build backend that revision's own `pyproject.toml` names. A project that
changed backends inside the history window (attrs moved from setuptools to hatchling) needs the
wheels of every backend it used there, or every older commit fails to install. Each distinct
`[build-system] requires` is resolved on its own, so two revisions may pin incompatible versions
of one backend.
"""

import tomllib
from collections.abc import Sequence
from typing import NamedTuple

from engine.intake.checks.requirements import DEFAULT_BUILD_REQUIRES
from engine.mining.blobs import ObjectReader
from engine.packaging.deps import PYPROJECT

HEAD_SOURCE = f"{PYPROJECT} [build-system] requires"


class BuildRequires(NamedTuple):
    """A set of build requirements: HEAD's (`at` None), or an older one, named by the newest
    revision declaring it and how many packaged revisions do."""

    requires: tuple[str, ...]
    at: str | None = None
    revisions: int = 0

    @property
    def source(self) -> str:
        """Where the set was read, for the operator."""
        if self.at is None:
            return HEAD_SOURCE
        return f"{HEAD_SOURCE} at {self.at[:12]} ({self.revisions} revisions)"

    @property
    def label(self) -> str:
        """How a resolution failure names the set."""
        return "build requirements" + ("" if self.at is None else f" at {self.at[:12]}")


def _declared(data: bytes) -> tuple[str, ...] | str:
    """The build requirements a `pyproject.toml` declares, or why they cannot be read."""
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"it is not valid TOML ({exc})"
    build = parsed.get("build-system")
    if build is None:
        return DEFAULT_BUILD_REQUIRES
    requires = build.get("requires") if isinstance(build, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        return "[build-system] requires is not a list of strings"
    return tuple(requires)


def history_build_requires(
    reader: ObjectReader, revs: Sequence[str], head: Sequence[str]
) -> tuple[list[BuildRequires], list[str]]:
    """HEAD's build requirements, then each other set that one of `revs` (the packaged commits
    and their parents, newest first) declares, named by the newest revision with it and how many
    revisions have it; and notes on revisions whose `pyproject.toml` cannot be read (their
    install fails in the harness, with that reason). A revision with no `pyproject.toml`, or one
    without `[build-system]`, is built with setuptools, as uv and pip do."""
    newest: dict[tuple[str, ...], str] = {}
    counts: dict[tuple[str, ...], int] = {}
    unreadable: dict[bytes, str] = {}
    for rev in revs:
        obj = reader.read(f"{rev}:{PYPROJECT}")
        declared = DEFAULT_BUILD_REQUIRES if obj is None else _declared(obj[2])
        if isinstance(declared, str):
            unreadable.setdefault(obj[0] if obj else b"", f"{PYPROJECT} at {rev[:12]}: {declared}")
            continue
        newest.setdefault(declared, rev)
        counts[declared] = counts.get(declared, 0) + 1
    older = [
        BuildRequires(requires, rev, counts[requires])
        for requires, rev in newest.items()
        if requires != tuple(head)
    ]
    notes = [f"{why}; that revision cannot be built" for why in unreadable.values()]
    return [BuildRequires(tuple(head)), *older], notes
