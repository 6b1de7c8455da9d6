"""The fail-fast style score: metrics with answers worked out by hand, and a real git repo."""

from pathlib import Path

import pytest
from git_repos import add_commit, new_repo

import engine.isolation.gitobjects as gitobjects
from engine.packaging.style_score import (
    StyleScoreError,
    count_source,
    is_test_path,
    score_style,
    style_of_sources,
)

# 22 lines of code, 5 handlers: one bare (and silent), one blind, one specific tuple that chains,
# one specific and silent (`...`), one specific that re-raises bare.
MIXED_HANDLERS = b"""\
def run(tasks, cache):
    for task in tasks:
        try:
            task()
        except:
            pass
        try:
            task.close()
        except Exception:
            print("close failed")
        try:
            cache.store(task)
        except (KeyError, ValueError) as exc:
            raise RuntimeError("store") from exc
        try:
            cache.flush()
        except OSError:
            ...
        try:
            task.retry()
        except TimeoutError:
            raise
"""

# 11 lines of code: one specific handler raising with its cause, one assert, one constant key read.
FAIL_FAST = b'''\
"""Core."""


class CoreError(Exception):
    pass


def load(mapping, key):
    try:
        return mapping[key]
    except KeyError as exc:
        raise CoreError(f"no {key}") from exc


def port(config):
    # the port must be configured
    assert "port" in config
    return int(config["port"])
'''

CHAINING = b"""\
def f(d):
    try:
        return d["a"]
    except KeyError:
        raise ValueError("a")
    except IndexError:
        raise ValueError("b") from None
    except TypeError:
        def later():
            raise ValueError("c")
        return later
"""

KEY_READS = b"""\
def g(d, q, k):
    a = d["a"]
    d["b"] = 1
    del d["c"]
    n = d[0]
    x = d.get("c")
    y = d.get("c", 1)
    z = q.get()
    w = d.get(k, default=1)
    return a, n, x, y, z, w
"""


def test_handler_ratios_of_a_mixed_module() -> None:
    metrics = style_of_sources([("pkg/run.py", MIXED_HANDLERS)], "test").metrics
    assert metrics["handlers"] == 5
    assert metrics["bare_except_ratio"] == 0.2
    assert metrics["blind_except_ratio"] == 0.2
    assert metrics["try_except_pass_count"] == 2
    assert metrics["specific_exception_ratio"] == 0.6
    assert metrics["lines_of_code"] == 22
    assert metrics["raise_density"] == round(2 / 22 * 1000, 4)
    assert metrics["raises_in_handlers"] == 1
    assert metrics["exception_chaining_ratio"] == 1.0


def test_score_of_a_mixed_module() -> None:
    # bare 0.2 is past 0.1: 0; blind 0.2 of 0.5: 0.6 × 15 = 9; silent 2/5 = 0.4 of 0.5:
    # 0.2 × 15 = 3; specific 0.6 × 10 = 6; no key reads: 15; no asserts: 0; raises 90.9/kloc: 15;
    # chaining 1/1: 10.
    assert style_of_sources([("pkg/run.py", MIXED_HANDLERS)], "test").score == 58.0


def test_fail_fast_module_scores_full_marks() -> None:
    style = style_of_sources([("pkg/core.py", FAIL_FAST)], "test")
    assert style.files == 1
    assert style.metrics["lines_of_code"] == 11
    assert style.metrics["assert_density"] == round(1000 / 11, 4)
    assert style.metrics["subscript_vs_get_ratio"] == 1.0
    assert style.score == 100.0


def test_chaining_counts_from_none_and_skips_nested_functions() -> None:
    counts = count_source(CHAINING)
    assert counts.raises == 3
    assert counts.raises_in_handlers == 2
    assert counts.chained_raises == 1
    metrics = style_of_sources([("f.py", CHAINING)], "test").metrics
    assert metrics["exception_chaining_ratio"] == 0.5


def test_constant_key_reads_against_get_calls() -> None:
    counts = count_source(KEY_READS)
    assert (counts.key_subscripts, counts.get_calls) == (1, 2)
    metrics = style_of_sources([("g.py", KEY_READS)], "test").metrics
    assert metrics["subscript_vs_get_ratio"] == 0.3333


def test_empty_denominators_take_their_best_value() -> None:
    style = style_of_sources([("h.py", b"def h(x):\n    return x + 1\n")], "test")
    assert style.metrics["bare_except_ratio"] == 0.0
    assert style.metrics["specific_exception_ratio"] == 1.0
    assert style.metrics["subscript_vs_get_ratio"] == 1.0
    assert style.metrics["exception_chaining_ratio"] == 1.0
    # Everything but the assert (5) and raise (15) densities earns full marks.
    assert style.score == 80.0


def test_test_files_and_unparsable_files_are_counted_not_scored() -> None:
    sources = [
        ("pkg/core.py", FAIL_FAST),
        ("tests/test_core.py", MIXED_HANDLERS),
        ("pkg/conftest.py", MIXED_HANDLERS),
        ("typing_tests/check.py", MIXED_HANDLERS),
        ("pkg/py2.py", b'print "hello"\n'),
        ("pkg/nul.py", b"x = 1\0\n"),
        ("pkg/latin.py", b"# -*- coding: latin-1 -*-\nname = '\xe9'\n"),
    ]
    style = style_of_sources(sources, "test")
    assert style.files == 2
    assert style.metrics["test_files"] == 3
    assert style.metrics["unparsable_files"] == 2
    assert style.score == 100.0


def test_nothing_left_to_score_is_an_error() -> None:
    sources = [("tests/test_a.py", FAIL_FAST), ("pkg/old.py", b'print "x"\n')]
    with pytest.raises(StyleScoreError, match=r"somewhere: no production Python file.*1 test"):
        style_of_sources(sources, "somewhere")


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_x.py", True),
        ("src/pkg/tests/helpers.py", True),
        ("test/helpers.py", True),
        ("typing_tests/mypy.py", True),
        ("pkg/test_util.py", True),
        ("pkg/util_test.py", True),
        ("conftest.py", True),
        ("pkg/testing_utils.py", False),
        ("pkg/contest.py", False),
        ("src/attr/_make.py", False),
        ("latest/mod.py", False),
    ],
)
def test_test_paths(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


def test_score_style_reads_head_not_the_work_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    new_repo(repo)
    (repo / "pkg" / "core.py").write_bytes(FAIL_FAST)
    (repo / "pkg" / "run.py").write_bytes(MIXED_HANDLERS)
    (repo / "pkg" / "py2.py").write_bytes(b'print "hello"\n')
    (repo / "pkg" / "notes.txt").write_bytes(MIXED_HANDLERS)
    (repo / "tests" / "test_core.py").write_bytes(MIXED_HANDLERS)
    (repo / "pkg" / "alias.py").symlink_to("run.py")
    add_commit(repo, {}, "Add the package")
    (repo / "pkg" / "run.py").unlink()
    add_commit(repo, {}, "Remove the runner")
    (repo / "pkg" / "core.py").write_bytes(MIXED_HANDLERS)
    (repo / "pkg" / "extra.py").write_bytes(MIXED_HANDLERS)

    style = score_style(repo)

    assert style.files == 1
    assert style.metrics["test_files"] == 1
    assert style.metrics["unparsable_files"] == 1
    assert style.metrics["handlers"] == 1
    assert style.score == 100.0


def test_repo_without_commits_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "empty")
    with pytest.raises(StyleScoreError, match=r"empty: HEAD names no commit"):
        score_style(repo)


def test_folder_without_git_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StyleScoreError, match=r"not a git repository"):
        score_style(tmp_path)


def test_repo_without_python_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "docs-only")
    (repo / "README.md").write_text("# docs\n")
    add_commit(repo, {}, "Add the README")
    with pytest.raises(StyleScoreError, match=r"docs-only at HEAD: no production Python file"):
        score_style(repo)


def test_three_git_processes_whatever_the_file_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    new_repo(repo)
    for n in range(12):
        (repo / "pkg" / f"mod{n}.py").write_bytes(FAIL_FAST)
    add_commit(repo, {}, "Add twelve modules")
    calls: list[str] = []
    real_run_git = gitobjects.run_git

    def counting_run_git(repo: Path, *args: str, **kwargs):
        calls.append(args[1])
        return real_run_git(repo, *args, **kwargs)

    monkeypatch.setattr(gitobjects, "run_git", counting_run_git)

    assert score_style(repo).files == 12
    assert calls == ["rev-parse", "ls-tree", "cat-file"]
