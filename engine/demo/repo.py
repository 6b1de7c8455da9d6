"""The demo repository: a small text library with real commits, each with its tests."""

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

AUTHOR = ("Demo Author", "demo.author@example.invalid")
FIRST_COMMIT = datetime(2024, 3, 1, 10, tzinfo=UTC)

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


# The library as it grows after the README update: each constant is one version of one file.

TOKENS = '''\
"""Split text into words."""

import re

WORD = re.compile(r"\\w+(?:['’]\\w+)*")


def words(text: str) -> list[str]:
    """The words of `text` in order, punctuation dropped; an apostrophe inside a word keeps
    it whole ("don't" is one word)."""
    return WORD.findall(text)
'''

TEST_TOKENS = """\
from textkit.tokens import words


def test_words_drop_punctuation():
    assert words("Hello, world!") == ["Hello", "world"]


def test_words_keep_an_apostrophe_inside():
    assert words("Don't stop") == ["Don't", "stop"]


def test_blank_text_has_no_words():
    assert words("  \\n") == []
"""

COUNT_V2 = '''\
"""Count words, leaving out stopwords."""

from collections import Counter

from stopwords_mini import STOPWORDS

from textkit.tokens import words


def word_counts(text: str) -> Counter:
    """How often each non-stopword appears in `text`, case-folded."""
    folded = (word.casefold() for word in words(text))
    return Counter(word for word in folded if word not in STOPWORDS)
'''

TEST_COUNT_V2 = (
    TEST_COUNT
    + """

def test_counts_ignore_quotes_and_brackets():
    assert word_counts('"Cat" (cat) cat') == {"cat": 3}
"""
)

SLUG_V2_DOCUMENTED = SLUG_V2.replace(
    '    """Lowercase ASCII words of `title` joined by hyphens; accents are folded first."""\n',
    '''\
    """Lowercase ASCII words of `title` joined by hyphens.

    Accents are folded first (é becomes e); any other character that is not an ASCII letter
    or digit separates words and is dropped, so an empty or all-punctuation title gives "".
    """
''',
)

NORMALIZE = '''\
"""Normalise text before comparing or slugging it."""

import unicodedata


def fold_accents(text: str) -> str:
    """`text` with the accents taken off its letters (é becomes e); other characters stay."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))
'''

TEST_NORMALIZE = """\
from textkit.normalize import fold_accents


def test_fold_accents():
    assert fold_accents("Crème brûlée") == "Creme brulee"


def test_fold_accents_keeps_letters_without_accents():
    assert fold_accents("Straße") == "Straße"
"""

SLUG_V3 = '''\
"""Turn titles into URL slugs."""

import re

from textkit.normalize import fold_accents


def slugify(title: str) -> str:
    """Lowercase ASCII words of `title` joined by hyphens.

    Accents are folded first (é becomes e); any other character that is not an ASCII letter
    or digit separates words and is dropped, so an empty or all-punctuation title gives "".
    """
    words = re.findall(r"[a-z0-9]+", fold_accents(title).lower())
    return "-".join(words)
'''

CASE_V1 = '''\
"""Convert identifiers between camelCase and snake_case."""

import re

HUMP = re.compile(r"(?<!^)(?=[A-Z])")


def camel_to_snake(name: str) -> str:
    """`name` in snake_case: "parseHtml" becomes "parse_html"."""
    return HUMP.sub("_", name).lower()


def snake_to_camel(name: str) -> str:
    """`name` in camelCase: "parse_html" becomes "parseHtml"."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
'''

TEST_CASE_V1 = """\
from textkit.case import camel_to_snake, snake_to_camel


def test_camel_to_snake():
    assert camel_to_snake("parseHtml") == "parse_html"


def test_camel_to_snake_lowers_a_leading_capital():
    assert camel_to_snake("UserName") == "user_name"


def test_snake_to_camel():
    assert snake_to_camel("parse_html") == "parseHtml"
"""

CASE_V2 = CASE_V1.replace(
    'HUMP = re.compile(r"(?<!^)(?=[A-Z])")',
    'HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")',
)

TEST_CASE_V2 = (
    TEST_CASE_V1
    + """

def test_camel_to_snake_keeps_acronyms_together():
    assert camel_to_snake("HTTPServer") == "http_server"
    assert camel_to_snake("getHTTPResponse") == "get_http_response"
"""
)

CASE_V3 = CASE_V2.replace("def camel_to_snake(", "def snake_case(").replace(
    "def snake_to_camel(", "def camel_case("
)

TEST_CASE_V3 = (
    TEST_CASE_V2.replace("camel_to_snake, snake_to_camel", "camel_case, snake_case")
    .replace("camel_to_snake", "snake_case")
    .replace("snake_to_camel", "camel_case")
)

STATS_V1 = '''\
"""Estimates about a text."""

import math

from textkit.tokens import words


def reading_time(text: str, words_per_minute: int = 200) -> int:
    """Whole minutes a reader needs for `text` at `words_per_minute`, rounded up."""
    return max(1, math.ceil(len(words(text)) / words_per_minute))
'''

TEST_STATS_V1 = """\
from textkit.stats import reading_time


def test_a_short_text_takes_a_minute():
    assert reading_time("a few words") == 1


def test_reading_time_rounds_up():
    assert reading_time("word " * 401) == 3


def test_reading_time_at_another_speed():
    assert reading_time("word " * 300, words_per_minute=100) == 3
"""

WRAP_V2 = (
    WRAP
    + '''

def wrap_lines(text: str, width: int) -> list[str]:
    """`text` broken between words into lines of at most `width` characters; a word longer
    than `width` is cut by `truncate`."""
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    lines: list[str] = []
    line = ""
    for word in text.split():
        word = truncate(word, width)
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines
'''
)

TEST_WRAP_V2 = TEST_WRAP.replace("import truncate", "import truncate, wrap_lines") + (
    """

def test_wrap_lines_breaks_between_words():
    assert wrap_lines("the quick brown fox", 10) == ["the quick", "brown fox"]


def test_wrap_lines_cuts_a_word_too_long():
    assert wrap_lines("a extraordinary b", 6) == ["a", "extra…", "b"]


def test_wrap_lines_of_blank_text():
    assert wrap_lines("   ", 5) == []
"""
)

README_V3 = """\
# textkit

Small text helpers: slugs, word counts, truncation.

- `slugify(title)`: a URL slug.
- `word_counts(text)`: how often each word appears, stopwords left out.
- `truncate(text, width)`: one line, cut with an ellipsis.
- `wrap_lines(text, width)`: a paragraph as lines of at most `width` characters.
"""

CHANGES_V1 = """\
# Changes

## Unreleased

- `wrap_lines` breaks a paragraph into lines of a given width.
"""

WRAP_V3 = WRAP_V2.replace(
    '''\
def truncate(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in an ellipsis when cut."""
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"
''',
    '''\
def truncate(text: str, width: int, *, at_word: bool = False) -> str:
    """`text` cut to `width` characters, ending in an ellipsis when cut. With `at_word` the
    cut moves back to the last space, so no word is split unless the first is too long."""
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if at_word and " " in cut:
        cut = cut[: cut.rindex(" ")].rstrip()
    return cut + "…"
''',
)

TEST_WRAP_V3 = TEST_WRAP_V2 + (
    """

def test_truncate_at_word_keeps_whole_words():
    assert truncate("hello brave new world", 14, at_word=True) == "hello brave…"


def test_truncate_at_word_cuts_a_first_word_too_long():
    assert truncate("extraordinary", 6, at_word=True) == "extra…"
"""
)

MARKUP_V1 = '''\
"""Plain text out of HTML snippets."""

import re

TAG = re.compile(r"<[^>]*>")


def strip_tags(snippet: str) -> str:
    """The text of `snippet` without its tags; a tag separates words, and each run of
    whitespace becomes one space."""
    return " ".join(TAG.sub(" ", snippet).split())
'''

TEST_MARKUP_V1 = """\
from textkit.markup import strip_tags


def test_strip_tags_keeps_the_text():
    assert strip_tags("<p>Hello <b>world</b></p>") == "Hello world"


def test_a_tag_separates_words():
    assert strip_tags("<li>one</li><li>two</li>") == "one two"
"""

CHANGES_V2 = CHANGES_V1 + "- `strip_tags` turns an HTML snippet into plain text.\n"

MARKUP_V2 = '''\
"""Plain text out of HTML snippets."""

import html
import re

TAG = re.compile(r"<[^>]*>")


def strip_tags(snippet: str) -> str:
    """The text of `snippet` without its tags, entities decoded (&amp; becomes &); a tag
    separates words, and each run of whitespace becomes one space."""
    return " ".join(html.unescape(TAG.sub(" ", snippet)).split())
'''

TEST_MARKUP_V2 = (
    TEST_MARKUP_V1
    + """

def test_strip_tags_decodes_entities():
    assert strip_tags("<p>Fish &amp; chips</p>") == "Fish & chips"


def test_an_escaped_tag_is_text():
    assert strip_tags("&lt;b&gt; makes text bold") == "<b> makes text bold"
"""
)

STATS_V2 = '''\
"""Estimates about a text."""

import math

from textkit.markup import strip_tags
from textkit.tokens import words


def reading_time(text: str, words_per_minute: int = 200) -> int:
    """Whole minutes a reader needs for `text` at `words_per_minute`, rounded up; HTML tags
    in `text` are not read."""
    return max(1, math.ceil(len(words(strip_tags(text))) / words_per_minute))
'''

TEST_STATS_V2 = (
    TEST_STATS_V1
    + """

def test_tags_are_not_read():
    assert reading_time("<p>" + "word " * 200 + "</p>") == 1
"""
)

STATS_V3 = STATS_V2.replace(
    "    return max(1, math.ceil(len(words(strip_tags(text))) / words_per_minute))\n",
    "    return math.ceil(len(words(strip_tags(text))) / words_per_minute)\n",
)

TEST_STATS_V3 = (
    TEST_STATS_V2
    + """

def test_text_without_words_takes_no_time():
    assert reading_time("") == 0
    assert reading_time("<br>") == 0
"""
)

STATS_V4 = STATS_V3.replace(
    '    in `text` are not read."""\n',
    '''\
    in `text` are not read."""
    if words_per_minute < 1:
        raise ValueError(f"words_per_minute must be at least 1, got {words_per_minute}")
''',
)

TEST_STATS_V4 = (
    "import pytest\n\n"
    + TEST_STATS_V3
    + (
        """

@pytest.mark.parametrize("speed", [0, -5])
def test_a_speed_below_one_is_refused(speed):
    with pytest.raises(ValueError, match="at least 1"):
        reading_time("some words", words_per_minute=speed)
"""
    )
)

SLUG_V4 = (
    SLUG_V3.replace(
        "def slugify(title: str) -> str:\n",
        'def slugify(title: str, separator: str = "-") -> str:\n',
    )
    .replace(
        '    """Lowercase ASCII words of `title` joined by hyphens.\n',
        '    """Lowercase ASCII words of `title` joined by `separator`.\n',
    )
    .replace('    return "-".join(words)\n', "    return separator.join(words)\n")
)

TEST_SLUG_V4 = (
    TEST_SLUG_V3
    + """

def test_slugify_with_another_separator():
    assert slugify("Hello, World", separator="_") == "hello_world"
"""
)

SLUG_V5 = '''\
"""Turn titles into URL slugs."""

import re

from textkit.normalize import fold_accents


def slugify(title: str, separator: str = "-", max_length: int | None = None) -> str:
    """Lowercase ASCII words of `title` joined by `separator`.

    Accents are folded first (é becomes e); any other character that is not an ASCII letter
    or digit separates words and is dropped, so an empty or all-punctuation title gives "".
    A slug longer than `max_length` keeps the words that fit; a first word too long is cut.
    """
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    words = re.findall(r"[a-z0-9]+", fold_accents(title).lower())
    slug = separator.join(words)
    if max_length is None or len(slug) <= max_length:
        return slug
    kept = words[0][:max_length]
    for word in words[1:]:
        longer = f"{kept}{separator}{word}"
        if len(longer) > max_length:
            break
        kept = longer
    return kept
'''

TEST_SLUG_V5 = (
    "import pytest\n\n"
    + TEST_SLUG_V4
    + (
        """

def test_slugify_keeps_the_words_that_fit():
    assert slugify("The quick brown fox", max_length=15) == "the-quick-brown"


def test_slugify_cuts_a_first_word_too_long():
    assert slugify("Supercalifragilistic", max_length=5) == "super"


def test_slugify_refuses_a_max_length_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        slugify("Title", max_length=0)
"""
    )
)

SENTENCES_V1 = '''\
"""Split text into sentences."""

import re

END = re.compile(r"(?<=[.!?])\\s+(?=[A-Z0-9\\"'])")


def sentences(text: str) -> list[str]:
    """The sentences of `text`: one ends at ".", "!" or "?" before a space and a capital."""
    return [part for part in END.split(text.strip()) if part]
'''

TEST_SENTENCES_V1 = """\
from textkit.sentences import sentences


def test_sentences_end_at_stops():
    assert sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]


def test_a_decimal_point_ends_nothing():
    assert sentences("It costs 3.50 today. Really.") == ["It costs 3.50 today.", "Really."]


def test_blank_text_has_no_sentences():
    assert sentences("   ") == []
"""

SENTENCES_V2 = '''\
"""Split text into sentences."""

import re

END = re.compile(r"(?<=[.!?])\\s+(?=[A-Z0-9\\"'])")
ABBREVIATIONS = frozenset({"dr.", "e.g.", "i.e.", "mr.", "mrs.", "ms.", "prof.", "vs."})


def ends_in_abbreviation(text: str) -> bool:
    """Whether the last word of `text` is a known abbreviation such as "Dr."."""
    words = text.split()
    return bool(words) and words[-1].lower() in ABBREVIATIONS


def sentences(text: str) -> list[str]:
    """The sentences of `text`: one ends at ".", "!" or "?" before a space and a capital,
    unless the stop ends an abbreviation."""
    found: list[str] = []
    for part in END.split(text.strip()):
        if found and ends_in_abbreviation(found[-1]):
            found[-1] = f"{found[-1]} {part}"
        elif part:
            found.append(part)
    return found
'''

TEST_SENTENCES_V2 = (
    TEST_SENTENCES_V1
    + """

def test_an_abbreviation_ends_no_sentence():
    assert sentences("Dr. Who came. He left.") == ["Dr. Who came.", "He left."]
"""
)


@dataclass(frozen=True)
class DemoCommit:
    """A commit to make: its subject, the files it writes and its message's body, if any."""

    subject: str
    files: dict[str, str]
    body: str = ""

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body}" if self.body else self.subject


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
    DemoCommit(
        "Add a words tokenizer for the other helpers",
        {"textkit/tokens.py": TOKENS, "tests/test_tokens.py": TEST_TOKENS},
        "One place that knows what a word is, so counting and the helpers to come agree on it.",
    ),
    DemoCommit(
        "Count words with the shared tokenizer",
        {"textkit/count.py": COUNT_V2, "tests/test_count.py": TEST_COUNT_V2},
        "word_counts split on spaces and stripped a few punctuation marks, so a quoted or\n"
        "bracketed word was counted apart from the bare one. It takes its words from\n"
        "textkit.tokens now.",
    ),
    DemoCommit(
        "Document what slugify drops from titles",
        {"textkit/slug.py": SLUG_V2_DOCUMENTED},
    ),
    DemoCommit(
        "Move accent folding into textkit.normalize (#12)",
        {
            "textkit/normalize.py": NORMALIZE,
            "textkit/slug.py": SLUG_V3,
            "tests/test_normalize.py": TEST_NORMALIZE,
        },
        "So other helpers can fold accents too. fold_accents takes the accents off and keeps\n"
        "every other character, where slugify's inline version dropped anything outside\n"
        "ASCII; slugify still drops those itself.",
    ),
    DemoCommit(
        "Add camelCase and snake_case conversion",
        {"textkit/case.py": CASE_V1, "tests/test_case.py": TEST_CASE_V1},
    ),
    DemoCommit(
        "fix: keep acronyms together in camel_to_snake",
        {"textkit/case.py": CASE_V2, "tests/test_case.py": TEST_CASE_V2},
        "HTTPServer came out as h_t_t_p_server: every capital started a word. A run of capitals\n"
        "is one word now, and its last capital starts the next word when a lower-case letter\n"
        "follows.\n\nFixes #17",
    ),
    DemoCommit(
        "Add a reading time estimate",
        {"textkit/stats.py": STATS_V1, "tests/test_stats.py": TEST_STATS_V1},
    ),
    DemoCommit(
        "Rename the case helpers to snake_case and camel_case",
        {"textkit/case.py": CASE_V3, "tests/test_case.py": TEST_CASE_V3},
        "They read better where they are called: snake_case(name) says what comes back.",
    ),
    DemoCommit(
        "Add wrap_lines to break a paragraph into lines",
        {
            "textkit/wrap.py": WRAP_V2,
            "tests/test_wrap.py": TEST_WRAP_V2,
            "README.md": README_V3,
            "CHANGES.md": CHANGES_V1,
        },
    ),
    DemoCommit(
        "Let truncate cut at a word boundary",
        {"textkit/wrap.py": WRAP_V3, "tests/test_wrap.py": TEST_WRAP_V3},
    ),
    DemoCommit(
        "Add strip_tags for HTML snippets",
        {
            "textkit/markup.py": MARKUP_V1,
            "tests/test_markup.py": TEST_MARKUP_V1,
            "CHANGES.md": CHANGES_V2,
        },
    ),
    DemoCommit(
        "Handle HTML entities in strip_tags (#21)",
        {"textkit/markup.py": MARKUP_V2, "tests/test_markup.py": TEST_MARKUP_V2},
        "Fish &amp; chips stayed as it was. Entities are decoded after the tags are gone, so\n"
        "an escaped tag stays text.",
    ),
    DemoCommit(
        "Ignore HTML tags in reading_time",
        {"textkit/stats.py": STATS_V2, "tests/test_stats.py": TEST_STATS_V2},
        "Posts come in as HTML, and every <p> counted as a word.",
    ),
    DemoCommit(
        "Fix reading_time for text without words",
        {"textkit/stats.py": STATS_V3, "tests/test_stats.py": TEST_STATS_V3},
        "An empty post said it takes a minute to read.",
    ),
    DemoCommit(
        "Reject a reading speed below one word a minute",
        {"textkit/stats.py": STATS_V4, "tests/test_stats.py": TEST_STATS_V4},
        "reading_time raised ZeroDivisionError at a speed of 0, and at a negative one it read\n"
        "any text in 0 minutes.",
    ),
    DemoCommit(
        "Let slugify join words with another separator",
        {"textkit/slug.py": SLUG_V4, "tests/test_slug.py": TEST_SLUG_V4},
        "Some sites want underscores in their URLs.\n\n"
        "Signed-off-by: Ana Lima <ana.lima@example.invalid>",
    ),
    DemoCommit(
        "Cap the length of slugs at a word boundary (#23)",
        {"textkit/slug.py": SLUG_V5, "tests/test_slug.py": TEST_SLUG_V5},
        "Long titles made URLs nobody could read. max_length keeps the words that fit.\n\n"
        "Co-authored-by: Ben Okafor <ben.okafor@example.invalid>",
    ),
    DemoCommit(
        "Add sentence splitting",
        {"textkit/sentences.py": SENTENCES_V1, "tests/test_sentences.py": TEST_SENTENCES_V1},
    ),
    DemoCommit(
        "Keep abbreviations like Dr. inside a sentence",
        {"textkit/sentences.py": SENTENCES_V2, "tests/test_sentences.py": TEST_SENTENCES_V2},
        '"Dr. Who came." was split after "Dr.": a stop after a known abbreviation ends no\n'
        "sentence now.",
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
    for day, commit in enumerate(history):
        for rel, text in commit.files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        date = (FIRST_COMMIT + timedelta(days=day)).isoformat()
        demo_git(dest, "add", "--all")
        demo_git(dest, "commit", "--quiet", "--no-verify", "-m", commit.message, date=date)
        shas.append(demo_git(dest, "rev-parse", "HEAD"))
    return shas
