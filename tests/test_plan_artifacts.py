"""Plan artifacts: generated histories that follow a committed plan to each of the LoRA Training
Strategy's labels."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from git_repos import add_commit, new_repo

import engine.isolation.gitobjects as gitobjects
from engine.intake.manifest import PlanArtifact
from engine.packaging.plan_artifacts import PlanArtifactError, find_plan_artifacts, is_plan_path

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PLAN = """\
# Plan: cache slugs

1. Add `textkit/cache.py` with an LRU cache around slugify.
2. Cover it in tests/test_cache.py (hits, misses, eviction).
"""
REVISED_PLAN = PLAN + "3. Bound the cache at 128 entries, e.g. with functools.\n"
SLUG = '"""Slugs."""\n\n\ndef slugify(title):\n    return title.lower()\n'


def _lines(count: int, tag: str) -> str:
    return "".join(f"{tag}_{n} = {n}\n" for n in range(count))


IMPLEMENTATION = {"textkit/cache.py": _lines(20, "cache"), "tests/test_cache.py": _lines(10, "t")}


class History:
    """A generated repository and a clock of days since START."""

    def __init__(self, root: Path) -> None:
        self.repo = new_repo(root / "repo")
        self.commit(0, "Add slugify", {"textkit/slug.py": SLUG, "README.md": "# textkit\n"})

    def commit(self, day: int, subject: str, files: dict[str, str | None]) -> str:
        """Write (or, for None, delete) `files` and commit them on `day`."""
        return add_commit(self.repo, files, subject, (START + timedelta(days=day)).isoformat())

    def artifacts(self) -> dict[str, PlanArtifact]:
        found = find_plan_artifacts(self.repo)
        return {artifact.path: artifact for artifact in found}


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path)


def test_plan_implemented_cleanly_is_good(history: History) -> None:
    plan_sha = history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    impl_sha = history.commit(2, "Add a slug cache", IMPLEMENTATION)
    history.commit(3, "Tidy the README", {"README.md": "# textkit\n\nSlugs.\n"})

    [artifact] = history.artifacts().values()

    assert (artifact.path, artifact.added_in, artifact.label) == ("PLAN.md", plan_sha, "good")
    assert f"implemented in 1 commit (30 lines: {impl_sha[:7]})" in artifact.reason
    assert "no revision or fix" in artifact.reason


def test_plan_committed_with_its_implementation_is_good(history: History) -> None:
    sha = history.commit(
        1, "Add a slug cache, as planned", {"docs/plans/cache.md": PLAN, **IMPLEMENTATION}
    )
    artifact = history.artifacts()["docs/plans/cache.md"]
    assert (artifact.added_in, artifact.label) == (sha, "good")


def test_plan_revised_then_implemented_is_fine(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"plans/cache.md": PLAN})
    revised = history.commit(2, "Bound the planned cache", {"plans/cache.md": REVISED_PLAN})
    history.commit(3, "Add a slug cache", IMPLEMENTATION)

    artifact = history.artifacts()["plans/cache.md"]

    assert artifact.label == "fine"
    assert artifact.reason.startswith(f"plan revised in {revised[:7]}")


def test_plan_edits_with_the_code_or_after_it_are_progress_notes(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", {**IMPLEMENTATION, "PLAN.md": PLAN + "- [x] step 1\n"})
    history.commit(3, "Mark the cache plan done", {"PLAN.md": PLAN + "Done.\n"})

    assert history.artifacts()["PLAN.md"].label == "good"


def test_plan_moved_unchanged_is_not_a_revision(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Keep plans in one folder", {"PLAN.md": None, "plans/cache.md": PLAN})
    history.commit(3, "Add a slug cache", IMPLEMENTATION)

    artifacts = history.artifacts()

    assert set(artifacts) == {"PLAN.md"}
    assert artifacts["PLAN.md"].label == "good"


def test_small_fix_after_implementation_is_fine(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    fix = history.commit(
        5, "Fix an off-by-one in cache eviction", {"textkit/cache.py": _lines(19, "cache")}
    )

    artifact = history.artifacts()["PLAN.md"]

    assert artifact.label == "fine"
    assert f"then 1 fix (1 line: {fix[:7]})" in artifact.reason


def test_heavy_fixing_after_implementation_is_bad(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    history.commit(4, "Fix cache eviction", {"textkit/cache.py": _lines(20, "evict")})

    artifact = history.artifacts()["PLAN.md"]

    assert artifact.label == "bad"
    assert artifact.reason.startswith("heavy rework: implemented in 1 commit (30 lines")
    assert "then 1 fix (40 lines" in artifact.reason


def test_many_small_fixes_are_heavy_rework(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    for day in range(3, 7):
        history.commit(day, f"Fix cache bug {day}", {"textkit/cache.py": _lines(20 + day, "cache")})

    artifact = history.artifacts()["PLAN.md"]

    assert artifact.label == "bad"
    assert "then 4 fixes" in artifact.reason


def test_rewrite_after_implementation_is_bad(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    rewrite = history.commit(6, "Rewrite the cache around a dict", {"textkit/cache.py": "D = {}\n"})

    artifact = history.artifacts()["PLAN.md"]

    assert artifact.label == "bad"
    assert f"then rewritten in {rewrite[:7]}" in artifact.reason


def test_reverted_implementation_is_bad(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    revert = history.commit(3, 'Revert "Add a slug cache"', dict.fromkeys(IMPLEMENTATION, None))

    artifact = history.artifacts()["PLAN.md"]

    assert (artifact.label, artifact.reason) == ("bad", f"reverted in {revert[:7]}")


def test_plan_nobody_followed_is_abandoned(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"PLAN.md": PLAN})
    history.commit(3, "Document slugify", {"README.md": "# textkit\n\nslugify.\n"})
    history.commit(45, "Add a slug cache", IMPLEMENTATION)

    artifact = history.artifacts()["PLAN.md"]

    assert artifact.label == "bad"
    assert artifact.reason == "abandoned: no commit touched the 2 files it names within 30 days"


def test_plan_whose_files_never_existed_is_abandoned(history: History) -> None:
    history.commit(1, "Plan a parser", {"PARSER_PLAN.md": "Write textkit/parser.py first.\n"})

    artifact = history.artifacts()["PARSER_PLAN.md"]

    assert artifact.label == "bad"
    assert "none of the files it names (textkit/parser.py) was ever committed" in artifact.reason


def test_replaced_plan_is_bad_and_its_replacement_is_followed(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"docs/plans/cache-v1.md": PLAN})
    replacement = history.commit(
        2,
        "Replace the cache plan",
        {"docs/plans/cache-v1.md": None, "docs/plans/cache-v2.md": "Cache in textkit.cache.\n"},
    )
    history.commit(3, "Add a slug cache", IMPLEMENTATION)

    artifacts = history.artifacts()

    assert artifacts["docs/plans/cache-v1.md"].label == "bad"
    assert artifacts["docs/plans/cache-v1.md"].reason == (
        f"replaced by docs/plans/cache-v2.md ({replacement[:7]})"
    )
    assert artifacts["docs/plans/cache-v2.md"].label == "good"


def test_two_plans_side_by_side_are_not_replacements(history: History) -> None:
    history.commit(1, "Plan the slug cache", {"plans/cache.md": PLAN})
    history.commit(
        2, "Plan cache metrics", {"plans/metrics.md": "Count hits in textkit/cache.py.\n"}
    )
    history.commit(3, "Add a slug cache", IMPLEMENTATION)

    labels = {path: artifact.label for path, artifact in history.artifacts().items()}

    assert labels == {"plans/cache.md": "good", "plans/metrics.md": "good"}


def test_plan_naming_no_file_is_left_out(history: History) -> None:
    history.commit(1, "Write down the design", {"DESIGN.md": "Slugs must be fast, e.g. 1.5x.\n"})
    history.commit(2, "Add a slug cache", IMPLEMENTATION)
    assert history.artifacts() == {}


def test_one_git_log_for_the_whole_history(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(1, 6):
        history.commit(day, f"Plan part {day}", {f"plans/part-{day}.md": PLAN})
    history.commit(7, "Add a slug cache", IMPLEMENTATION)
    calls: list[str] = []
    real_run_git = gitobjects.run_git

    def counting_run_git(repo: Path, *args: str, **kwargs):
        calls.append(args[1])
        return real_run_git(repo, *args, **kwargs)

    monkeypatch.setattr(gitobjects, "run_git", counting_run_git)

    assert len(find_plan_artifacts(history.repo)) == 5
    assert calls == ["rev-parse", "log", "cat-file"]


@pytest.mark.parametrize(
    ("path", "is_plan"),
    [
        ("PLAN.md", True),
        ("plan.txt", True),
        ("IMPLEMENTATION_PLAN.md", True),
        ("docs/plans/2024-05-cache.md", True),
        (".claude/plans/cache.md", True),
        ("cache.plan.md", True),
        ("TODO-plan", True),
        ("DESIGN.md", True),
        ("docs/design/overview.rst", True),
        ("ApiDesign.md", True),
        ("ReleasePlanning.md", True),
        ("README.md", False),
        ("docs/explanation.md", False),
        ("planet.md", False),
        ("plans/cache.py", False),
        ("docs/_static/card.afdesign", False),
    ],
)
def test_plan_paths(path: str, is_plan: bool) -> None:
    assert is_plan_path(path) is is_plan


def test_repo_without_commits_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "empty")
    with pytest.raises(PlanArtifactError, match=r"empty: HEAD names no commit"):
        find_plan_artifacts(repo)


def test_folder_without_git_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanArtifactError, match=r"not a git repository"):
        find_plan_artifacts(tmp_path)
