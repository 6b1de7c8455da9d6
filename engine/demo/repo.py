"""The demo repository: a small text library with real commits, each with its tests."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

AUTHOR = ("Demo Author", "demo.author@example.invalid")

PYPROJECT = """\
[project]
name = "textkit"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["stopwords-mini>=1.0"]

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
"""

SLUG_V1 = '''\
"""Turn titles into URL slugs."""

import re


def slugify(title: str) -> str:
    """Lowercase ASCII words of `title` joined by hyphens."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)
'''

SLUG_V2 = '''\
"""Turn titles into URL slugs."""

import re
import unicodedata


def slugify(title: str) -> str:
    """Lowercase ASCII words of `title` joined by hyphens; accents are folded first."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", folded.lower())
    return "-".join(words)
'''

TEST_SLUG_V1 = """\
from textkit.slug import slugify


def test_slugify_joins_words():
    assert slugify("Hello, World") == "hello-world"


def test_slugify_keeps_digits():
    assert slugify("Top 10 Tips") == "top-10-tips"
"""

TEST_SLUG_V2 = (
    TEST_SLUG_V1
    + """

def test_slugify_folds_accents():
    assert slugify("Café Déjà Vu") == "cafe-deja-vu"
"""
)

TEST_SLUG_V3 = (
    TEST_SLUG_V2
    + """

def test_slugify_empty_title():
    assert slugify("") == ""


def test_slugify_only_punctuation():
    assert slugify("?!") == ""
"""
)

COUNT = '''\
"""Count words, leaving out stopwords."""

from collections import Counter

from stopwords_mini import STOPWORDS


def word_counts(text: str) -> Counter:
    """How often each non-stopword appears in `text`, case-folded."""
    words = (w.strip(".,;:!?").casefold() for w in text.split())
    return Counter(w for w in words if w and w not in STOPWORDS)
'''

TEST_COUNT = """\
from textkit.count import word_counts


def test_counts_skip_stopwords():
    counts = word_counts("The cat and the hat")
    assert counts == {"cat": 1, "hat": 1}


def test_counts_fold_case_and_punctuation():
    assert word_counts("Run! run, RUN.")["run"] == 3
"""

WRAP = '''\
"""Shorten text for one-line displays."""


def truncate(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in an ellipsis when cut."""
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"
'''

TEST_WRAP = """\
import pytest

from textkit.wrap import truncate


def test_short_text_unchanged():
    assert truncate("abc", 5) == "abc"


def test_long_text_gets_ellipsis():
    assert truncate("abcdef", 4) == "abc…"


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        truncate("abc", 0)
"""


PLAN_TRUNCATE = """\
# Plan: truncate long text

1. Add `truncate(text, width)` in `textkit/wrap.py`: return the text when it fits, else cut it
   to `width - 1` characters and end it with an ellipsis.
2. Refuse a width below 1 with a ValueError naming the width.
3. Cover both cases and the refusal in `tests/test_wrap.py`.
"""


@dataclass(frozen=True)
class DemoCommit:
    """A commit to make: its subject and the files it writes."""

    subject: str
    files: dict[str, str]


DEMO_HISTORY = [
    DemoCommit(
        "Create the textkit project",
        {
            "pyproject.toml": PYPROJECT,
            "README.md": "# textkit\n\nSmall text helpers.\n",
            "textkit/__init__.py": '"""Small text helpers."""\n',
        },
    ),
    DemoCommit(
        "Add slugify for ASCII titles",
        {"textkit/slug.py": SLUG_V1, "tests/test_slug.py": TEST_SLUG_V1},
    ),
    DemoCommit(
        "Add word counting that skips stopwords",
        {"textkit/count.py": COUNT, "tests/test_count.py": TEST_COUNT},
    ),
    DemoCommit(
        "Fold accented letters in slugify",
        {"textkit/slug.py": SLUG_V2, "tests/test_slug.py": TEST_SLUG_V2},
    ),
    DemoCommit(
        "Plan the truncate helper",
        {"docs/plans/truncate.md": PLAN_TRUNCATE},
    ),
    DemoCommit(
        "Add truncate with an ellipsis",
        {"textkit/wrap.py": WRAP, "tests/test_wrap.py": TEST_WRAP},
    ),
    DemoCommit("Cover slugify edge cases in tests", {"tests/test_slug.py": TEST_SLUG_V3}),
    DemoCommit(
        "Update README",
        {"README.md": "# textkit\n\nSmall text helpers: slugs, word counts, truncation.\n"},
    ),
]


def git_env(date: str) -> dict[str, str]:
    """An environment that makes commits reproducible and ignores the user's git config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_DATE=date,
    )
    return env


def demo_git(repo: Path, *args: str, date: str = "2024-01-01T00:00:00+00:00") -> str:
    """Run git in a demo repository with `git_env(date)`; return its output."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=git_env(date),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def build_demo_repo(dest: Path, history: list[DemoCommit] = DEMO_HISTORY) -> list[str]:
    """Create a git repository at `dest` from `history`; return the commit shas in order."""
    dest.mkdir(parents=True)
    demo_git(dest, "init", "--quiet", "--template=", "--initial-branch=main")
    shas = []
    for day, commit in enumerate(history, start=1):
        for rel, text in commit.files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        date = f"2024-03-{day:02d}T10:00:00+00:00"
        demo_git(dest, "add", "--all")
        demo_git(dest, "commit", "--quiet", "--no-verify", "-m", commit.subject, date=date)
        shas.append(demo_git(dest, "rev-parse", "HEAD"))
    return shas
