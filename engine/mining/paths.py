"""What each changed path is: test, docs, CI, config or production code.

Roles are decided by globs (`*` and `?` within one path component, `**` for any number of
components), first match wins: CI, docs folders (GitHub's community files in `.github/` too) and
changelogs, tests, config, other docs, code.
"""

import re
from collections.abc import Iterable
from typing import Literal

Role = Literal["test", "docs", "ci", "config", "code"]

CI_PATTERNS = (
    ".github/workflows/**",
    ".github/actions/**",
    ".github/dependabot.yml",
    ".github/dependabot.yaml",
    ".gitlab/**",
    ".gitlab-ci.yml",
    ".travis.yml",
    ".circleci/**",
    "appveyor.yml",
    ".appveyor.yml",
    "azure-pipelines.yml",
    ".azure-pipelines/**",
    ".cirrus.yml",
    "Jenkinsfile",
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    "codecov.yml",
    ".codecov.yml",
    ".readthedocs.yml",
    ".readthedocs.yaml",
    "tox.ini",
    "noxfile.py",
)
CHANGELOG_PATTERNS = (
    "changelog.d/**",
    "newsfragments/**",
    "news/**",
    "changes/**",
    "CHANGELOG*",
    "CHANGES*",
    "NEWS*",
    "HISTORY*",
)
DOCS_FOLDER_PATTERNS = ("docs/**", "doc/**", ".github/**", *CHANGELOG_PATTERNS)
CONFIG_PATTERNS = (
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "MANIFEST.in",
    "requirements*.txt",
    "requirements/**",
    "*.toml",
    "*.cfg",
    "*.ini",
    "*.lock",
    "*.yml",
    "*.yaml",
    "*.json",
    ".gitignore",
    ".gitattributes",
    ".git-blame-ignore-revs",
    ".mailmap",
    ".editorconfig",
    ".coveragerc",
    ".flake8",
    ".pylintrc",
    ".python-version",
    ".dockerignore",
    "Dockerfile",
    "Makefile",
)
DOCS_FILE_PATTERNS = (
    "**/*.md",
    "**/*.rst",
    "**/*.txt",
    "**/*.adoc",
    "LICENSE*",
    "LICENCE*",
    "COPYING*",
    "AUTHORS*",
    "CONTRIBUTORS*",
)


def glob_regex(pattern: str) -> str:
    """A regex matching the same paths as the glob `pattern` (git's `:(glob)` semantics)."""
    parts = pattern.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append("".join(_glob_char(c) for c in part) + ("" if last else "/"))
    return "".join(out)


def _glob_char(char: str) -> str:
    if char == "*":
        return "[^/]*"
    if char == "?":
        return "[^/]"
    return re.escape(char)


def _matcher(patterns: Iterable[str], flags: int = 0) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{glob_regex(p)})" for p in patterns), flags)


_CI = _matcher(CI_PATTERNS, re.IGNORECASE)
_DOCS_FOLDERS = _matcher(DOCS_FOLDER_PATTERNS, re.IGNORECASE)
_CHANGELOG = _matcher(CHANGELOG_PATTERNS, re.IGNORECASE)
_CONFIG = _matcher(CONFIG_PATTERNS, re.IGNORECASE)
_DOCS_FILES = _matcher(DOCS_FILE_PATTERNS, re.IGNORECASE)


def is_python(path: str) -> bool:
    return path.endswith(".py")


def is_changelog(path: str) -> bool:
    return _CHANGELOG.fullmatch(path) is not None


class PathRoles:
    """The role of each path under a set of test globs; paths repeat, so answers are cached."""

    def __init__(self, test_patterns: Iterable[str]) -> None:
        self._tests = _matcher(test_patterns)
        self._cache: dict[str, Role] = {}

    def role(self, path: str) -> Role:
        if (cached := self._cache.get(path)) is not None:
            return cached
        role = self._classify(path)
        self._cache[path] = role
        return role

    def _classify(self, path: str) -> Role:
        if _CI.fullmatch(path):
            return "ci"
        if _DOCS_FOLDERS.fullmatch(path):
            return "docs"
        if self._tests.fullmatch(path):
            return "test"
        if _CONFIG.fullmatch(path):
            return "config"
        if _DOCS_FILES.fullmatch(path):
            return "docs"
        return "code"

    def test_files(self, paths: Iterable[str]) -> list[str]:
        """The Python test files among `paths` (test data files are not test files)."""
        return [p for p in paths if is_python(p) and self.role(p) == "test"]

    def code_files(self, paths: Iterable[str]) -> list[str]:
        return [p for p in paths if self.role(p) == "code"]
