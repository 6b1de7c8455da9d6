"""The cheap filter rules: each reads one commit's metadata and numstat, never its content.

A rule returns why it drops a commit, or None to keep it.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.mining.log import LogCommit
from engine.mining.message import message_problem
from engine.mining.paths import PathRoles, is_changelog, is_python
from engine.mining.settings import FilterSettings

Rule = Callable[[LogCommit], str | None]

BOT_AUTHOR = re.compile(
    r"\[bot\]|dependabot|renovate|pre-commit-ci|github-actions|greenkeeper|pyup-bot|mergify"
    r"|imgbot|allcontributors",
    re.IGNORECASE,
)
AUTOMATED_SUBJECTS = (
    ("version bump", re.compile(r"^bump\b|\bbump(?:s|ed)?\b.*\bversion\b", re.I)),
    ("release commit", re.compile(r"^(?:release|releasing|tag|version)\s+v?\d", re.I)),
    ("release commit", re.compile(r"^(?:prepare|preparing)\b.*(?:\brelease\b|\d+\.\d+)", re.I)),
    ("release commit", re.compile(r"^(?:start|begin|open)\b.*\b(?:development|cycle)\b", re.I)),
    ("release commit", re.compile(r"^back to development\b", re.I)),
    ("pre-commit autoupdate", re.compile(r"\[pre-commit\.ci\]|pre-commit autoupdate", re.I)),
    ("pre-commit autoupdate", re.compile(r"^(?:update|upgrade|bump)\b.*\bpre-commit\b", re.I)),
    ("changelog update", re.compile(r"^update (?:the )?(?:changelog|changes|news)\b", re.I)),
)


@dataclass(frozen=True)
class Stage:
    """A named filter stage and the rule it applies to each commit."""

    name: str
    rule: Rule


def cheap_stages(settings: FilterSettings, roles: PathRoles) -> list[Stage]:
    """The stages that need only `git log` output, in the order they apply."""
    return [
        Stage("date range", lambda c: _date_range(c, settings)),
        Stage("non-merge", _non_merge),
        Stage("has parent", _has_parent),
        Stage("not automated", lambda c: _automation(c, roles)),
        Stage("message quality", lambda c: message_problem(c.message)),
        Stage("diff size", lambda c: _diff_size(c, settings)),
        Stage("touches Python", _touches_python),
        Stage("not docs/CI/config-only", lambda c: _changes_code(c, roles)),
    ]


def _date_range(commit: LogCommit, settings: FilterSettings) -> str | None:
    day = commit.date.date()
    if settings.since and day < settings.since:
        return f"committed {day}, before {settings.since}"
    if settings.until and day > settings.until:
        return f"committed {day}, after {settings.until}"
    return None


def _non_merge(commit: LogCommit) -> str | None:
    return f"merge of {len(commit.parents)} parents" if len(commit.parents) > 1 else None


def _has_parent(commit: LogCommit) -> str | None:
    return None if commit.parents else "root commit: no parent to test against"


def _automation(commit: LogCommit, roles: PathRoles) -> str | None:
    author = f"{commit.author_name} <{commit.author_email}>"
    if BOT_AUTHOR.search(author):
        return f"bot author {author}"
    for reason, pattern in AUTOMATED_SUBJECTS:
        if pattern.search(commit.subject):
            return reason
    paths = [f.path for f in commit.files]
    if paths and all(is_changelog(p) for p in paths):
        return "changelog only"
    if paths and all(roles.role(p) == "ci" for p in paths):
        return "CI or pre-commit config only"
    return None


def _diff_size(commit: LogCommit, settings: FilterSettings) -> str | None:
    files = len(commit.files)
    if not settings.min_files <= files <= settings.max_files:
        return f"{files} files changed, outside {settings.min_files}–{settings.max_files}"
    lines = commit.lines_added + commit.lines_deleted
    if lines >= settings.max_lines:
        return f"{lines} lines changed, not below {settings.max_lines}"
    return None


def _touches_python(commit: LogCommit) -> str | None:
    return None if any(is_python(f.path) for f in commit.files) else "no Python file changed"


def _changes_code(commit: LogCommit, roles: PathRoles) -> str | None:
    if any(is_python(f.path) and roles.role(f.path) in ("code", "test") for f in commit.files):
        return None
    return "Python changes are all in docs, CI or config files"
