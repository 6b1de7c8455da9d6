"""The default history window: the commits whose own configuration today's tools accept.

A commit is packaged to be tested under the target Python and a current pytest. Older commits
often cannot be: their `setup.cfg` has a `[pytest]` section (pytest 4 and later refuse to start),
or their declared `requires-python` / `python_requires` excludes the target Python. Only the
commits that changed one of those files can change the verdict, so those are read (through one
`git cat-file --batch`), newest first; the window starts at the first commit after the newest
one whose configuration is refused, and what is cut is named with the evidence.
"""

import configparser
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from engine.isolation.gitsafe import run_git
from engine.mining.blobs import ObjectReader

CONFIG_FILES = ("setup.cfg", "pyproject.toml", "setup.py")
_PYTHON_REQUIRES = re.compile(r"python_requires\s*=\s*[\"']([^\"']+)[\"']")


@dataclass(frozen=True)
class WindowCut:
    """The default window starts at `since` (the date of the first configuration change after
    `sha`), because commit `sha`, dated `refused_at`, says `why` today's tools cannot run it."""

    since: date
    sha: str
    refused_at: datetime
    why: str

    def warning(self, cut: int) -> str:
        """The operator's warning, with how many commits the window cut."""
        return (
            f"history before {self.since} cut ({cut} commits): at {self.sha[:12]} "
            f"({self.refused_at.date()}) {self.why}; pass --since YYYY-MM-DD to widen the window"
        )


def _text(reader: ObjectReader, sha: str, path: str) -> str | None:
    data = reader.read_file(sha, path)
    return None if data is None else data.decode("utf-8", "replace")


def _excludes(spec: str, python_version: str, where: str) -> str | None:
    try:
        allowed = SpecifierSet(spec.strip())
    except InvalidSpecifier:
        return None
    if allowed.contains(python_version, prereleases=True):
        return None
    return f"{where} {spec.strip()!r} excludes Python {python_version}"


def _parsed_cfg(text: str) -> configparser.ConfigParser | None:
    """`setup.cfg` parsed, or None when configparser cannot read it."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def refusal(reader: ObjectReader, sha: str, python_version: str) -> str | None:
    """Why today's tools cannot run the tests of commit `sha`, from its configuration alone."""
    if (cfg := _text(reader, sha, "setup.cfg")) is not None:
        parser = _parsed_cfg(cfg)
        if parser is not None and parser.has_section("pytest"):
            return "setup.cfg has a [pytest] section, which pytest 4 and later refuse"
        if parser is not None and parser.has_option("options", "python_requires"):
            spec = parser.get("options", "python_requires")
            if why := _excludes(spec, python_version, "setup.cfg python_requires"):
                return why
    if (pyproject := _text(reader, sha, "pyproject.toml")) is not None:
        requires: object
        try:
            requires = tomllib.loads(pyproject).get("project", {}).get("requires-python")
        except tomllib.TOMLDecodeError:
            requires = None
        if isinstance(requires, str) and (
            why := _excludes(requires, python_version, "requires-python")
        ):
            return why
    setup = _text(reader, sha, "setup.py")
    if setup is not None and (match := _PYTHON_REQUIRES.search(setup)):
        return _excludes(match[1], python_version, "setup.py python_requires")
    return None


def default_window(repo: Path, python_version: str) -> WindowCut | None:
    """The cut that keeps only commits after the newest one whose configuration today's tools
    refuse for `python_version`; None when no commit's configuration is refused."""
    log = run_git(
        repo, "log", "--first-parent", "--format=%H %cI", "HEAD", "--", *CONFIG_FILES
    ).stdout.decode("ascii")
    changes = [
        (sha, datetime.fromisoformat(date))
        for sha, date in (line.split() for line in log.splitlines())
    ]
    newer: tuple[str, datetime] | None = None
    with ObjectReader(repo) as reader:
        for sha, date in changes:
            why = refusal(reader, sha, python_version)
            if why is None:
                newer = (sha, date)
                continue
            if newer is None:
                return None
            return WindowCut(since=newer[1].date(), sha=sha, refused_at=date, why=why)
    return None
