"""The commit filter on a generated repository whose commits each hit one rule."""

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from git_repos import new_repo
from pydantic import ValidationError

from engine.demo.repo import demo_git
from engine.intake.manifest import FilterStage
from engine.isolation.gitsafe import GitError
from engine.mining import FilterSettings, MiningResult, clean_task_text, mine_commits
from engine.mining.log import FileChange, LogCommit, read_log
from engine.mining.message import message_problem
from engine.mining.paths import PathRoles, glob_regex
from engine.mining.rules import cheap_stages
from engine.mining.settings import DEFAULT_TEST_PATTERNS
from engine.mining.tests_exist import imported_modules, module_names

BOT = "dependabot[bot] <49699333+dependabot[bot]@users.noreply.github.com>"

OPS = '''\
"""Arithmetic on two numbers."""


def add(a, b):
    return a + b


def sub(a, b):
    return a - b
'''
TEST_OPS = """\
from calc.ops import add, sub


def test_add():
    assert add(1, 2) == 3


def test_sub():
    assert sub(3, 2) == 1
"""
TEST_MUL = "from calc.ops import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
TEST_ROUND = (
    "from calc.ops import round_half\n\n\ndef test_half():\n    assert round_half(0.5) == 1\n"
)
GEOMETRY = ("area", "perimeter", "units", "volume")
TEST_GEOMETRY = """\
from calc import (
    area,  # squares first
    perimeter,
    units,
    volume,
)


def test_modules_load():
    assert area and perimeter and units and volume
"""
SIGNED_OFF = """\
Fix rounding of halves (#42)

Round half away from zero, as GH-7 asks.
See https://example.invalid/issues/7 for the report.

Signed-off-by: Jane Dev <jane@example.invalid>
Co-authored-by: Sam Dev <sam@example.invalid>
"""


def geometry_module(name: str, body: str = "return 1", extra: str = "") -> str:
    return f'"""Geometry: {name}."""\n\n\ndef {name}_of(x):\n    {body}\n{extra}'


@dataclass
class History:
    """The generated repository and the sha of each named commit."""

    repo: Path
    shas: dict[str, str]


class Committer:
    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.day = 0

    def __call__(self, message: str, files: dict[str, str], author: str | None = None) -> str:
        self.day += 1
        for rel, text in files.items():
            path = self.repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        demo_git(self.repo, "add", "--all")
        args = ["commit", "--quiet", "--no-verify", "-m", message]
        if author:
            args += ["--author", author]
        demo_git(self.repo, *args, date=self.date)
        return demo_git(self.repo, "rev-parse", "HEAD")

    def appended(self, rel: str, text: str) -> str:
        """The current content of `rel` with `text` added at the end."""
        return (self.repo / rel).read_text(encoding="utf-8") + text

    @property
    def date(self) -> str:
        return f"2024-05-{self.day:02d}T10:00:00+00:00"


def build_history(repo: Path) -> History:
    new_repo(repo)
    commit = Committer(repo)
    shas = {}
    shas["root"] = commit(
        "Create the calc project",
        {
            "pyproject.toml": '[project]\nname = "calc"\n',
            "README.md": "# calc\n",
            "calc/__init__.py": '__version__ = "1.0.0"\n',
            "calc/ops.py": OPS,
            "tests/test_ops.py": TEST_OPS,
            "tests/test_geometry.py": TEST_GEOMETRY,
            **{f"calc/{name}.py": geometry_module(name) for name in GEOMETRY},
        },
    )
    shas["fix"] = commit(
        "Fix subtraction of negative numbers",
        {
            "calc/ops.py": OPS.replace("return a - b", "return a + -b"),
            "tests/test_ops.py": TEST_OPS
            + "\n\ndef test_sub_negative():\n    assert sub(1, -1) == 2\n",
        },
    )
    shas["bot"] = commit(
        "Pin the test runner below version nine",
        {"requirements-dev.txt": "pytest<9\n"},
        author=BOT,
    )
    demo_git(repo, "switch", "--quiet", "--create", "feature")
    shas["branch"] = commit(
        "Add multiplication to the operations",
        {
            "calc/ops.py": commit.appended("calc/ops.py", "\n\ndef mul(a, b):\n    return a * b\n"),
            "tests/test_mul.py": TEST_MUL,
        },
    )
    demo_git(repo, "switch", "--quiet", "main")
    commit.day += 1
    demo_git(
        repo,
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge branch 'feature'",
        "feature",
        date=commit.date,
    )
    shas["merge"] = demo_git(repo, "rev-parse", "HEAD")
    shas["docs"] = commit(
        "Explain the rounding rules in the guide",
        {
            "docs/guide.md": "# Rounding\n\nHalves round away from zero.\n",
            "README.md": "# calc\n\nSee docs.\n",
        },
    )
    shas["docs_conf"] = commit(
        "Enable the autodoc extension for the API pages",
        {"docs/conf.py": 'extensions = ["sphinx.ext.autodoc"]\n'},
    )
    shas["refactor"] = commit(
        "Split the operations into one module per operator",
        {f"calc/op_{i:02d}.py": f"def op_{i:02d}(a, b):\n    return a\n" for i in range(12)},
    )
    shas["wip"] = commit("wip", {"calc/ops.py": commit.appended("calc/ops.py", "\n# more\n")})
    shas["version"] = commit(
        "Bump version to 1.1.0", {"calc/__init__.py": '__version__ = "1.1.0"\n'}
    )
    shas["ci"] = commit(
        "Run the tests on Python 3.13 as well",
        {".github/workflows/ci.yml": "on: [push]\njobs: {}\n"},
    )
    shas["test_only"] = commit(
        "Cover subtraction with large numbers",
        {
            "tests/test_ops.py": commit.appended(
                "tests/test_ops.py",
                "\n\ndef test_big():\n    assert sub(10**20, 1) == 10**20 - 1\n",
            )
        },
    )
    shas["import_only"] = commit(
        "Add a clamp helper to the operations",
        {
            "calc/ops.py": commit.appended(
                "calc/ops.py", "\n\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"
            )
        },
    )
    shas["untested"] = commit(
        "Add a logging helper module",
        {"calc/logging_helpers.py": "def log(msg):\n    print(msg)\n"},
    )
    shas["signed_off"] = commit(
        SIGNED_OFF,
        {
            "calc/ops.py": commit.appended(
                "calc/ops.py", "\n\ndef round_half(x):\n    return int(x + 0.5)\n"
            ),
            "tests/test_round.py": TEST_ROUND,
        },
    )
    shas["meta"] = commit(
        "Add square and circle variants to the geometry helpers",
        {
            f"calc/{name}.py": geometry_module(
                name, extra=f"\n\ndef {name}_of_circle(r):\n    return r\n"
            )
            for name in GEOMETRY
        },
    )
    shas["modify_four"] = commit(
        "Return floats from every geometry helper",
        {
            f"calc/{name}.py": geometry_module(
                name, body="return 1.0", extra=f"\n\ndef {name}_of_circle(r):\n    return r\n"
            )
            for name in GEOMETRY
        },
    )
    shas["changelog"] = commit(
        "Describe the clamp helper in the changelog", {"CHANGELOG.md": "## 1.1\n\n- clamp\n"}
    )
    shas["generic"] = commit(
        "Fix a typo", {"calc/ops.py": (repo / "calc/ops.py").read_text().replace("two", "2")}
    )
    return History(repo, shas)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("mining") / "calc")


@pytest.fixture(scope="module")
def mined(history: History) -> MiningResult:
    return mine_commits(history.repo, FilterSettings())


@pytest.mark.parametrize(
    ("name", "stage", "reason"),
    [
        ("root", "has parent", "root commit"),
        ("merge", "non-merge", "merge of 2 parents"),
        ("bot", "not automated", "bot author dependabot[bot]"),
        ("version", "not automated", "version bump"),
        ("ci", "not automated", "CI or pre-commit config only"),
        ("changelog", "not automated", "changelog only"),
        ("wip", "message quality", "work in progress"),
        ("generic", "message quality", "generic message"),
        ("refactor", "diff size", "12 files changed, outside 1–5"),
        ("docs", "touches Python", "no Python file changed"),
        ("docs_conf", "not docs/CI/config-only", "all in docs, CI or config"),
        ("untested", "tests exist", "no test changed or importing a changed module"),
    ],
)
def test_each_dropped_commit_lands_in_its_stage(
    history: History, mined: MiningResult, name: str, stage: str, reason: str
):
    dropped = mined.dropped[history.shas[name]]
    assert dropped.stage == stage
    assert reason in dropped.reason


@pytest.mark.parametrize(
    ("name", "planning_type", "test_files"),
    [
        ("fix", "mixed", ["tests/test_ops.py"]),
        ("branch", "mixed", ["tests/test_mul.py"]),
        ("test_only", "test_plan", ["tests/test_ops.py"]),
        ("import_only", "step_plan", ["tests/test_mul.py", "tests/test_ops.py"]),
        ("signed_off", "mixed", ["tests/test_round.py"]),
        ("meta", "meta_plan", ["tests/test_geometry.py"]),
        ("modify_four", "step_plan", ["tests/test_geometry.py"]),
    ],
)
def test_kept_commits_have_their_planning_type_and_tests(
    history: History, mined: MiningResult, name: str, planning_type: str, test_files: list[str]
):
    kept = {c.sha: c for c in mined.commits}
    commit = kept[history.shas[name]]
    assert commit.planning_type == planning_type
    assert commit.test_files == test_files


def test_attrition_table_counts_every_stage(history: History, mined: MiningResult):
    assert mined.stages == [
        FilterStage(name="date range", kept=19, dropped=0),
        FilterStage(name="non-merge", kept=18, dropped=1),
        FilterStage(name="has parent", kept=17, dropped=1),
        FilterStage(name="not automated", kept=13, dropped=4),
        FilterStage(name="message quality", kept=11, dropped=2),
        FilterStage(name="diff size", kept=10, dropped=1),
        FilterStage(name="touches Python", kept=9, dropped=1),
        FilterStage(name="not docs/CI/config-only", kept=8, dropped=1),
        FilterStage(name="tests exist", kept=7, dropped=1),
    ]
    assert mined.total == len(history.shas) == 19
    assert set(mined.dropped) | {c.sha for c in mined.commits} == set(history.shas.values())
    assert "7 of 19 commits kept (63.2% attrition)" in mined.attrition_table()


def test_kept_commits_are_oldest_first_with_git_numbers(history: History, mined: MiningResult):
    order = list(history.shas.values())
    kept_order = [c.sha for c in mined.commits]
    assert kept_order == sorted(kept_order, key=order.index)
    fix = mined.commits[0]
    assert fix.sha == history.shas["fix"]
    assert fix.parent == history.shas["root"]
    assert (fix.files_changed, fix.lines_added, fix.lines_deleted) == (2, 5, 1)
    assert fix.date == datetime(2024, 5, 2, 10, tzinfo=UTC)


def test_subject_is_the_cleaned_task_text(history: History, mined: MiningResult):
    signed = next(c for c in mined.commits if c.sha == history.shas["signed_off"])
    assert signed.subject == "Fix rounding of halves"


def test_size_bounds_are_configurable(history: History):
    result = mine_commits(history.repo, FilterSettings(max_files=12))
    refactor = result.dropped[history.shas["refactor"]]
    assert refactor.stage == "tests exist", "12 files now fit; no test imports the new modules"
    tight = mine_commits(history.repo, FilterSettings(max_lines=3))
    assert tight.dropped[history.shas["fix"]].stage == "diff size"
    assert "6 lines changed, not below 3" in tight.dropped[history.shas["fix"]].reason


def test_date_range_drops_commits_outside_it(history: History):
    result = mine_commits(
        history.repo, FilterSettings(since=date(2024, 5, 2), until=date(2024, 5, 4))
    )
    assert result.stages[0] == FilterStage(name="date range", kept=3, dropped=16)
    assert result.dropped[history.shas["root"]].reason == "committed 2024-05-01, before 2024-05-02"
    assert [c.sha for c in result.commits] == [history.shas["fix"], history.shas["branch"]]


def test_test_patterns_decide_what_a_test_is(history: History):
    result = mine_commits(history.repo, FilterSettings(test_patterns=("spec/**",)))
    assert result.dropped[history.shas["test_only"]].stage == "tests exist"


def test_not_a_repository_is_a_clear_error(tmp_path: Path):
    with pytest.raises(GitError, match="not a git repository"):
        mine_commits(tmp_path, FilterSettings())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_files": 3, "max_files": 2}, "min_files 3 is above max_files 2"),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "is after until"),
        ({"test_patterns": ("/abs/**",)}, "relative POSIX glob"),
        ({"test_patterns": ("tests**",)}, "whole path component"),
        ({"test_patterns": ("tests/[ab]*.py",)}, "only \\*, \\? and \\*\\*"),
        ({"max_lines": 0}, "greater than or equal to 1"),
    ],
)
def test_filter_settings_refuse_bad_bounds(settings: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        FilterSettings.model_validate(settings)


# --- git log parsing ---------------------------------------------------------------------


def test_log_reports_renames_binaries_and_odd_paths(tmp_path: Path):
    repo = tmp_path / "repo"
    new_repo(repo)
    commit = Committer(repo)
    body = "\n".join(
        f"line {i} of a module that is long enough to be found as a rename" for i in range(20)
    )
    commit("Create the first module", {"pkg/old_name.py": body + "\n"})
    (repo / "pkg" / "logo.png").write_bytes(bytes(range(256)) * 4)
    commit("Add the logo\n\n1\t2\tlooks like numstat\n", {"dir with space/a\tb.py": "x = 1\n"})
    (repo / "pkg" / "old_name.py").rename(repo / "pkg" / "new_name.py")
    commit("Rename the first module", {"pkg/new_name.py": body + "\nextra = 1\n"})

    newest, middle, oldest = read_log(repo)

    assert newest.files == (
        FileChange(
            path="pkg/new_name.py", old_path="pkg/old_name.py", added=1, deleted=0, binary=False
        ),
    )
    assert middle.body == "1\t2\tlooks like numstat\n"
    assert sorted(middle.files, key=lambda f: f.path) == [
        FileChange(
            path="dir with space/a\tb.py",
            old_path="dir with space/a\tb.py",
            added=1,
            deleted=0,
            binary=False,
        ),
        FileChange(path="pkg/logo.png", old_path="pkg/logo.png", added=0, deleted=0, binary=True),
    ]
    assert oldest.parents == ()
    assert newest.parents == (middle.sha,)
    assert oldest.author_email == "demo.author@example.invalid"


def test_log_of_a_missing_revision_names_the_command(tmp_path: Path):
    repo = tmp_path / "empty"
    repo.mkdir()
    demo_git(repo, "init", "--quiet", "--template=")
    with pytest.raises(GitError, match="git log -z --numstat failed"):
        list(read_log(repo))


# --- messages ----------------------------------------------------------------------------


def test_task_text_loses_trailers_refs_urls_emails_and_hashes():
    text = clean_task_text(SIGNED_OFF)
    assert (
        text == "Fix rounding of halves\n\nRound half away from zero, as asks.\nSee for the report."
    )
    for gone in ("#42", "GH-7", "https://", "@", "Signed-off-by", "Co-authored-by"):
        assert gone not in text


@pytest.mark.parametrize(
    ("message", "cleaned"),
    [
        ("Fix crash on empty input (#123)", "Fix crash on empty input"),
        ("fix(parser): handle tabs in names", "Handle tabs in names"),
        ("[core] Drop the cache from 3f2a9c1b", "Drop the cache from"),
        (
            "Add retries\n\nCloses #12, #13.\nReported by jane@example.org",
            "Add retries\n\nReported by",
        ),
        ("Support owner/repo#77 style refs", "Support style refs"),
        ("Keep deadbeef and 1234567 as words", "Keep deadbeef and 1234567 as words"),
    ],
)
def test_clean_task_text(message: str, cleaned: str):
    assert clean_task_text(message) == cleaned


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("Add slugify for ASCII titles", None),
        ("fix: handle empty input gracefully", None),
        ("Cover slugify edge cases in tests", None),
        ("wip", "work in progress"),
        ("WIP: add a parser", "work in progress"),
        ("Merge branch 'main' into feature", "merge message"),
        ("Merge pull request #3 from someone/branch", "merge message"),
        ("1.2.3", "version-only message"),
        ("v2.0", "version-only message"),
        ("3f2a9c1b", "hash-only message"),
        ("Signed-off-by: Jane <jane@example.org>", "nothing left"),
        ("Fix typo", "fewer than 3 words"),
        ("Fix a typo", "generic message"),
        ("Update the docs", "generic message"),
        ("Minor code cleanup", "does not start with a verb"),
        ("Switching to tuples removed this case", "does not start with a verb"),
        ("Bump version to 0.2.0", "release or version bump"),
        ("Increment dev version so we can upload again", "release or version bump"),
        ("Officially start the 15.0.0 cycle", "release or version bump"),
        ("Release 23.1.0", "release or version bump"),
        ("Fixed typo", "fewer than 3 words"),
        ("Fixed a typo", "generic message"),
        ('Revert "Add a parser"', "does not start with a verb"),
    ],
)
def test_message_quality(message: str, problem: str | None):
    found = message_problem(message)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    "message",
    [
        "Don't cache proxied methods in _ThreadLocalDictWrapper",
        "Don\u2019t add a docstring to generated __init__s",
        "Do not copy __weakref__ from original _cls_dict",
        "Never raise on a missing __name__",
        "Fixed frozen and cache_hash incompatibility",
        "Added `type` parameter to `attrs.field` function",
        "Adds `log` and `alog` to `FilteringBoundLogger`.",
        "Fixes bug in render_to_log_kwargs",
        "Wrapped __ne__ in a _make_ne function",
        "Applied the converter to defaults",
        "Made the repr shorter for slotted classes",
        "Correctly unpickle WriteLogger",
        "Only drop None values",
        "Re-enable the pypy3 annotation tests",
        "Undeprecate cmp on attr.ib",
        "Add MaybeTimeStamper",
        "Remove `until_not_interrupted`",
    ],
)
def test_common_verb_forms_pass_the_message_rule(message: str):
    """Past and third-person verbs, negations, adverb-led verbs, re-/un- prefixes and a verb
    with one name from code are task text (attrs lost 165 such commits to the old rule)."""
    assert message_problem(message) is None


def _commit(
    subject: str, paths: list[str], author: str = "Jane Dev <jane@example.org>"
) -> LogCommit:
    name, _, email = author.partition(" <")
    return LogCommit(
        sha="0" * 40,
        parents=("1" * 40,),
        author_name=name,
        author_email=email.rstrip(">"),
        date=datetime(2024, 1, 1, tzinfo=UTC),
        subject=subject,
        body="",
        files=tuple(FileChange(p, p, 1, 0, False) for p in paths),
    )


@pytest.mark.parametrize(
    ("subject", "paths", "author", "reason"),
    [
        ("Prepare 19.2.0", ["CHANGELOG.rst", "src/pkg/__init__.py"], None, "release commit"),
        ("Release 1.0.0", ["pyproject.toml"], None, "release commit"),
        ("Start 19.3.0 development cycle", ["CHANGELOG.rst"], None, "release commit"),
        ("Start new release cycle", ["src/pkg/__init__.py"], None, "release commit"),
        ("[pre-commit.ci] pre-commit autoupdate", [".pre-commit-config.yaml"], None, "pre-commit"),
        ("Add a new hook to lint imports", [".pre-commit-config.yaml"], None, "CI or pre-commit"),
        ("Add a parser", ["src/p.py"], "renovate[bot] <bot@renovateapp.com>", "bot author"),
        (
            "Add a parser",
            ["src/p.py"],
            "pre-commit-ci <66853113+pre-commit-ci@users>",
            "bot author",
        ),
        ("Add a parser for dates", ["src/p.py", "tests/test_p.py"], None, None),
    ],
)
def test_not_automated(subject: str, paths: list[str], author: str | None, reason: str | None):
    rules = {
        s.name: s.rule for s in cheap_stages(FilterSettings(), PathRoles(DEFAULT_TEST_PATTERNS))
    }
    commit = _commit(subject, paths, author) if author else _commit(subject, paths)
    found = rules["not automated"](commit)
    assert found == reason if reason is None else reason in found


# --- paths and imports -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("src/pkg/mod.py", "code"),
        ("src/pkg/data.json", "code"),
        ("tests/test_x.py", "test"),
        ("tests/data/sample.json", "test"),
        ("pkg/tests/helpers.py", "test"),
        ("pkg/mod_test.py", "test"),
        ("conftest.py", "test"),
        ("docs/conf.py", "docs"),
        ("README.md", "docs"),
        ("changelog.d/12.change.md", "docs"),
        (".github/CONTRIBUTING.md", "docs"),
        (".github/workflows/ci.yml", "ci"),
        (".pre-commit-config.yaml", "ci"),
        ("tox.ini", "ci"),
        ("noxfile.py", "ci"),
        ("setup.py", "config"),
        ("pyproject.toml", "config"),
        ("requirements-dev.txt", "config"),
    ],
)
def test_path_roles(path: str, role: str):
    assert PathRoles(DEFAULT_TEST_PATTERNS).role(path) == role


def test_globs_match_what_git_pathspecs_match(tmp_path: Path):
    """The filter's globs and git's `:(glob)` pathspecs must agree, path for path."""
    paths = [
        "tests/test_a.py",
        "tests/deep/x.py",
        "test/a.py",
        "src/pkg/tests/b.py",
        "test_top.py",
        "src/pkg/test_c.py",
        "src/pkg/c_test.py",
        "src/conftest.py",
        "src/pkg/mod.py",
        "src/testsuite/a.py",
        "latest/a.py",
        "contest.py",
        "a_test.pyc",
    ]
    repo = tmp_path / "globs"
    repo.mkdir()
    demo_git(repo, "init", "--quiet", "--template=")
    for rel in paths:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("")
    demo_git(repo, "add", "--all")
    for pattern in DEFAULT_TEST_PATTERNS:
        by_git = set(
            subprocess.run(
                ["git", "-C", str(repo), "ls-files", f":(glob){pattern}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        )
        ours = {p for p in paths if re.fullmatch(glob_regex(pattern), p)}
        assert ours == by_git, pattern


def test_module_names_cover_src_layouts():
    assert module_names("src/attr/_make.py") == {"src.attr._make", "attr._make", "_make"}
    assert module_names("pkg/__init__.py") == {"pkg"}


@pytest.mark.parametrize(
    ("statement", "expected", "absent"),
    [
        ("from calc.ops import add, sub", {"calc", "calc.ops", "calc.ops.add"}, set()),
        ("import calc.ops as o, json", {"calc", "calc.ops", "json"}, {"o"}),
        (
            "from calc import (\n    area,  # first\n    units,\n)",
            {"calc.area", "calc.units"},
            {"calc.first"},
        ),
        ("from . import helpers", set(), {"helpers", ".helpers"}),
        ("from the start", set(), {"the"}),
    ],
)
def test_imported_modules(statement: str, expected: set[str], absent: set[str]):
    found = imported_modules(statement)
    assert expected <= found
    assert not absent & found
