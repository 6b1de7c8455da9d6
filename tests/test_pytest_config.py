"""Which of a commit's test files the repository's own pytest configuration collects as test
modules, read from real configuration files in a tree (engine.harness.pytest_config)."""

from pathlib import Path

import pytest

from engine.harness.pytest_config import (
    PytestConfigError,
    collected_test_files,
    conftest_ignores,
    read_config,
)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_without_configuration_pytest_defaults_apply(tmp_path):
    """No configuration file: `test_*.py`/`*_test.py` are test modules; a data file, a helper
    module, a conftest and a file under a dot-folder are not."""
    files = {
        "tests/test_a.py": "",
        "tests/b_test.py": "",
        "tests/utils.py": "",
        "tests/conftest.py": "",
        "tests/data/cases/comments.py": "",
        ".hidden/test_x.py": "",
        "tests/fixture.txt": "",
    }
    kept, dropped = collected_test_files(_tree(tmp_path, files), [*files, "tests/test_gone.py"])
    assert kept == ["tests/test_a.py", "tests/b_test.py"]
    assert set(dropped) == set(files) - set(kept)
    assert "python_files (test_*.py *_test.py) of pytest's default" in dropped["tests/utils.py"]
    assert "norecursedirs '.*'" in dropped[".hidden/test_x.py"]
    assert dropped["tests/conftest.py"] == "conftest.py is never a test module"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\ntestpaths = tests\npython_files = check_*.py\n"),
        (
            "tox.ini",
            "[tox]\nenvlist = py\n\n[pytest]\ntestpaths = tests\npython_files = check_*.py\n",
        ),
        ("setup.cfg", "[tool:pytest]\ntestpaths =\n    tests\npython_files = check_*.py\n"),
        (
            "pyproject.toml",
            '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npython_files = ["check_*.py"]\n',
        ),
    ],
)
def test_each_configuration_file_is_read(tmp_path, name, text):
    """pytest.ini, tox.ini's [pytest], setup.cfg's [tool:pytest] and pyproject's
    [tool.pytest.ini_options] each set testpaths and python_files."""
    files = {name: text, "tests/check_a.py": "", "tests/test_b.py": "", "other/check_c.py": ""}
    kept, dropped = collected_test_files(_tree(tmp_path, files), list(files)[1:])
    assert kept == ["tests/check_a.py"]
    assert f"python_files (check_*.py) of {name}" in dropped["tests/test_b.py"]
    assert dropped["other/check_c.py"] == f"outside testpaths (tests) of {name}"


def test_the_first_file_with_a_pytest_section_wins(tmp_path):
    """A setup.cfg without [tool:pytest] and a pyproject without pytest options are passed over;
    a pytest.ini nearer the files comes before the root's."""
    tree = _tree(
        tmp_path,
        {
            "setup.cfg": "[metadata]\nname = x\n",
            "pyproject.toml": '[project]\nname = "x"\n',
            "tox.ini": "[pytest]\npython_files = t_*.py\n",
            "tests/t_a.py": "",
        },
    )
    assert read_config(tree, ["tests/t_a.py"]).inifile == "tox.ini"
    _tree(tmp_path, {"tests/pytest.ini": "[pytest]\n"})
    config = read_config(tree, ["tests/t_a.py"])
    assert (config.inifile, config.python_files) == ("tests/pytest.ini", ("test_*.py", "*_test.py"))


def test_norecursedirs_ignore_and_conftest_collect_ignore(tmp_path):
    """norecursedirs, --ignore in addopts and a conftest's literal collect_ignore(_glob) each keep
    a test-named file out."""
    files = {
        "pytest.ini": "[pytest]\nnorecursedirs = data\naddopts = --ignore=tests/old -q\n",
        "tests/conftest.py": 'collect_ignore = ["test_py2.py"]\n'
        'collect_ignore_glob = ["*_slow.py"]\ncollect_ignore.append("test_extra.py")\n',
        "tests/data/test_case.py": "",
        "tests/old/test_legacy.py": "",
        "tests/test_py2.py": "",
        "tests/test_io_slow.py": "",
        "tests/test_extra.py": "",
        "tests/test_kept.py": "",
    }
    kept, dropped = collected_test_files(_tree(tmp_path, files), list(files)[2:])
    assert kept == ["tests/test_kept.py"]
    assert "norecursedirs 'data'" in dropped["tests/data/test_case.py"]
    assert dropped["tests/old/test_legacy.py"] == "--ignore=tests/old in addopts of pytest.ini"
    assert dropped["tests/test_py2.py"] == "collect_ignore 'test_py2.py' in tests/conftest.py"
    assert "collect_ignore_glob '*_slow.py'" in dropped["tests/test_io_slow.py"]
    assert "collect_ignore 'test_extra.py'" in dropped["tests/test_extra.py"]


def test_a_collect_ignore_built_by_code_is_not_guessed():
    """Only literal lists count: a conditional append is not evaluated."""
    source = (
        b'import sys\ncollect_ignore = ["a.py"]\n'
        b'if sys.version_info < (3, 8):\n    collect_ignore.append("b.py")\n'
    )
    assert conftest_ignores(source) == (["a.py"], [])


def test_a_configuration_that_does_not_parse_is_an_error(tmp_path):
    """A pyproject.toml that is not TOML: what pytest collects is unknown, which is said."""
    tree = _tree(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options\n", "tests/test_a.py": ""})
    with pytest.raises(PytestConfigError, match="pyproject.toml: not valid TOML"):
        collected_test_files(tree, ["tests/test_a.py"])
