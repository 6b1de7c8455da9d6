"""Dependency discovery on real git repositories, one declaration style at a time."""

from pathlib import Path

import pytest

from engine.demo.repo import DemoCommit, build_demo_repo
from engine.packaging.deps import Dependencies, GroupNames, apply_choices, discover_dependencies
from engine.packaging.errors import PackagingError
from engine.packaging.summary import folded_sources
from engine.packaging.tree_files import TreeFiles


def head_files(tmp_path: Path, files: dict[str, str]) -> TreeFiles:
    repo = tmp_path / "repo"
    build_demo_repo(repo, [DemoCommit("Create the project", files)])
    return TreeFiles(repo / ".git")


def sources(deps: Dependencies) -> dict[str, list[str]]:
    return {r.text: r.sources for r in deps.requirements}


PYPROJECT_WITH_EXTRAS = """\
[project]
name = "Demo_Lib"
requires-python = ">=3.10"
dependencies = ["requests >= 2", 'tomli; python_version < "3.11"']

[project.optional-dependencies]
tests = ["pytest>=8", "Demo-Lib[speedups]"]
speedups = ["ujson"]
dev = ["ruff"]
docs = ["sphinx"]
"""


def test_pyproject_runtime_and_test_extras_with_sources(tmp_path: Path):
    deps = discover_dependencies(head_files(tmp_path, {"pyproject.toml": PYPROJECT_WITH_EXTRAS}))
    assert sources(deps) == {
        "requests>=2": ["pyproject.toml [project] dependencies"],
        'tomli; python_version < "3.11"': ["pyproject.toml [project] dependencies"],
        "pytest>=8": ["pyproject.toml [project.optional-dependencies] tests"],
        "ujson": [
            "pyproject.toml [project.optional-dependencies] speedups"
            " (via pyproject.toml [project.optional-dependencies] tests)"
        ],
    }
    assert deps.project_name == "demo-lib"
    assert deps.requires_python == ">=3.10"
    assert deps.install_repo is False
    assert deps.build_requires == []
    assert any("'Demo-Lib[speedups]' names the repository itself" in n for n in deps.notes)


def test_dev_extra_is_the_fallback_and_names_are_configurable(tmp_path: Path):
    text = PYPROJECT_WITH_EXTRAS.replace("tests = ", "unit = ")
    files = head_files(tmp_path, {"pyproject.toml": text})
    fallback = discover_dependencies(files)
    assert "ruff" in sources(fallback)
    assert "sphinx" not in sources(fallback)
    chosen = discover_dependencies(files, names=GroupNames.exactly(["docs"]))
    assert "sphinx" in sources(chosen)
    assert "ruff" not in sources(chosen)


def test_dependency_groups_follow_include_group(tmp_path: Path):
    text = """\
[project]
name = "grouped"
dependencies = []

[dependency-groups]
base = ["hypothesis"]
tests = [{include-group = "base"}, "pytest-xdist[psutil]", "pytest"]
lint = ["ruff"]
"""
    deps = discover_dependencies(head_files(tmp_path, {"pyproject.toml": text}))
    assert sources(deps) == {
        "hypothesis": [
            "pyproject.toml [dependency-groups] base (via pyproject.toml [dependency-groups] tests)"
        ],
        "pytest-xdist[psutil]": ["pyproject.toml [dependency-groups] tests"],
        "pytest": ["pyproject.toml [dependency-groups] tests"],
    }


def test_dependency_group_cycle_is_refused(tmp_path: Path):
    text = """\
[dependency-groups]
tests = [{include-group = "more"}]
more = [{include-group = "tests"}]
"""
    files = head_files(tmp_path, {"pyproject.toml": text})
    with pytest.raises(PackagingError, match="include-group cycle tests -> more -> tests"):
        discover_dependencies(files)


REQUIREMENTS_DEV = """\
-r requirements.txt
--index-url https://mirror.example.invalid/simple
-e .[extra]
pytest==8.4.2 \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
mock; python_version < "3.3"  # only on ancient Pythons
https://example.invalid/pkg-1.0-py3-none-any.whl
vendored @ file:///tmp/vendored
-r ../outside.txt
-c constraints.txt
"""


def test_requirements_files_follow_includes_and_drop_what_is_not_a_wheel(tmp_path: Path):
    files = head_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "reqs"\n\n'
            '[project.optional-dependencies]\nextra = ["colorama"]\n',
            "requirements.txt": "attrs>=23\n",
            "requirements-dev.txt": REQUIREMENTS_DEV,
            "requirements-docs.txt": "sphinx\n",
            "requirements/test.txt": "-r ../requirements.txt\nfreezegun\n",
        },
    )
    deps = discover_dependencies(files)
    assert sources(deps) == {
        "attrs>=23": ["requirements.txt:1"],
        "colorama": [
            "pyproject.toml [project.optional-dependencies] extra (via requirements-dev.txt:3)"
        ],
        "pytest==8.4.2": ["requirements-dev.txt:4"],
        'mock; python_version < "3.3"': ["requirements-dev.txt:6"],
        "freezegun": ["requirements/test.txt:2"],
    }
    notes = "\n".join(deps.notes)
    assert "requirements-dev.txt:2: option '--index-url https://mirror" in notes
    assert "requirements-dev.txt:3: '.[extra]' installs the repository itself" in notes
    assert "requirements-dev.txt:7: 'https://example.invalid/pkg-1.0-py3-none-any.whl'" in notes
    assert "requirements-dev.txt:8: requirement 'vendored @ file:///tmp/vendored'" in notes
    assert "requirements-dev.txt:9: -r ../outside.txt leaves the repository" in notes
    assert "requirements-dev.txt:10: option '-c constraints.txt' dropped" in notes
    assert "requirements-docs.txt: neither a runtime nor a test requirements file" in notes


TOX_INI = """\
[tox]
env_list = py311, lint

[base]
deps =
    coverage[toml]

[testenv]
deps =
    {[base]deps}
    -r{toxinidir}/test-requirements.txt
    py311: pytest-randomly
    lint: flake8
    pytest-cov {posargs}
extras = extra
commands = pytest {posargs}

[testenv:lint]
deps = ruff
commands = ruff check .

[testenv:bench]
deps = pytest-benchmark
commands = pytest bench/
"""


def test_tox_test_environments_deps_and_extras(tmp_path: Path):
    files = head_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "toxed"\n\n'
            '[project.optional-dependencies]\nextra = ["colorama"]\n',
            "tox.ini": TOX_INI,
            "test-requirements.txt": "pytest>=8\n",
        },
    )
    deps = discover_dependencies(files)
    assert sources(deps) == {
        "coverage[toml]": ["tox.ini [testenv] deps"],
        "pytest>=8": ["test-requirements.txt:1"],
        "pytest-randomly": ["tox.ini [testenv] deps"],
        "colorama": [
            "pyproject.toml [project.optional-dependencies] extra (via tox.ini [testenv] extras)"
        ],
    }
    notes = "\n".join(deps.notes)
    assert "tox.ini [testenv] deps: 'lint: flake8' applies to other environments" in notes
    assert "'pytest-cov {posargs}' uses a substitution" in notes
    assert "ruff" not in sources(deps)
    assert "pytest-benchmark" not in sources(deps)


NOXFILE = """\
import nox

EXTRA = "hypothesis"


@nox.session
def tests(session):
    session.install("-r", "requirements-test.txt")
    session.install("pytest-mock", EXTRA)
    session.install("-e", ".[extra]")
    session.run("pytest")


@nox.session
def unit(session):
    session.install("coverage")
    session.run("coverage", "run", "-m", "pytest")


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check")
"""


def test_noxfile_install_literals_of_test_sessions(tmp_path: Path):
    files = head_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "noxed"\n\n'
            '[project.optional-dependencies]\nextra = ["colorama"]\n',
            "noxfile.py": NOXFILE,
            "requirements-test.txt": "pytest\n",
        },
    )
    deps = discover_dependencies(files)
    assert sources(deps) == {
        "pytest": ["requirements-test.txt:1"],
        "pytest-mock": ["noxfile.py:9 (tests)"],
        "colorama": [
            "pyproject.toml [project.optional-dependencies] extra (via noxfile.py:10 (tests))"
        ],
        "coverage": ["noxfile.py:16 (unit)"],
    }
    notes = "\n".join(deps.notes)
    assert "noxfile.py:9 (tests): an argument that is not a string literal is not read" in notes


def test_the_runner_is_added_when_nothing_declares_it(tmp_path: Path):
    text = '[project]\nname = "bare"\ndependencies = ["click"]\n'
    deps = discover_dependencies(head_files(tmp_path, {"pyproject.toml": text}))
    assert sources(deps) == {
        "click": ["pyproject.toml [project] dependencies"],
        "pytest": ["added: the repository declares no pytest requirement"],
    }
    assert "no pytest requirement declared; pytest added as the test runner" in deps.notes


def test_build_system_means_the_repo_is_installed(tmp_path: Path):
    text = (
        '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n'
        '\n[project]\nname = "built"\n'
    )
    deps = discover_dependencies(head_files(tmp_path, {"pyproject.toml": text}))
    assert deps.install_repo is True
    assert deps.build_requires == ["flit_core>=3.9,<4"]


def test_setup_py_beside_a_pyproject_is_built_with_setuptools(tmp_path: Path):
    files = head_files(
        tmp_path,
        {"pyproject.toml": '[project]\nname = "legacy"\n', "setup.py": "raise SystemExit(1)\n"},
    )
    deps = discover_dependencies(files)
    assert deps.install_repo is True
    assert deps.build_requires == ["setuptools>=40.8.0"]


def test_setup_py_alone_is_not_installed_and_setup_cfg_is_read(tmp_path: Path):
    setup_cfg = """\
[metadata]
name = oldstyle

[options]
install_requires =
    six>=1.16

[options.extras_require]
testing =
    pytest>=7
docs =
    sphinx
"""
    files = head_files(tmp_path, {"setup.py": "raise SystemExit(1)\n", "setup.cfg": setup_cfg})
    deps = discover_dependencies(files)
    assert deps.install_repo is False
    assert any("setup.py without pyproject.toml" in n for n in deps.notes)
    assert sources(deps) == {
        "six>=1.16": ["setup.cfg [options] install_requires"],
        "pytest>=7": ["setup.cfg [options.extras_require] testing"],
    }


def test_only_head_is_read_never_the_work_tree(tmp_path: Path):
    files = head_files(tmp_path, {"requirements.txt": "attrs\n"})
    (tmp_path / "repo" / "requirements.txt").write_text("evil\n", encoding="utf-8")
    (tmp_path / "repo" / "requirements-dev.txt").write_text("uncommitted\n", encoding="utf-8")
    deps = discover_dependencies(files)
    assert set(sources(deps)) == {"attrs", "pytest"}


def test_an_invalid_pyproject_names_the_file(tmp_path: Path):
    files = head_files(tmp_path, {"pyproject.toml": "[project\n"})
    with pytest.raises(PackagingError, match=r"pyproject.toml at HEAD is not valid TOML"):
        discover_dependencies(files)


ATTRS_LIKE_PYPROJECT = """\
[project]
name = "attrs-like"

[dependency-groups]
tests = ["hypothesis", "pytest>9"]
cov = [{ include-group = "tests" }, "coverage[toml]"]
"""
ATTRS_LIKE_TOX = """\
[testenv]
dependency_groups =
    tests: tests
commands =
    tests: pytest {posargs:-n auto}

[testenv:3.1{0,4}-tests]
dependency_groups = cov
commands = coverage run -m pytest {posargs:-n auto}
"""


def test_a_group_reached_from_tox_names_tox_ini_as_its_source(tmp_path: Path):
    """attrs' `coverage[toml]` comes from the `cov` group because tox.ini's coverage environment
    names it: its source says so, so an error about it does not blame the pyproject group alone;
    the group's own members name both ways they were reached."""
    files = head_files(
        tmp_path, {"pyproject.toml": ATTRS_LIKE_PYPROJECT, "tox.ini": ATTRS_LIKE_TOX}
    )
    found = sources(discover_dependencies(files))
    via_tox = "(via tox.ini [testenv:3.1{0,4}-tests] dependency_groups)"
    assert found["coverage[toml]"] == [f"pyproject.toml [dependency-groups] cov {via_tox}"]
    assert found["pytest>9"] == [
        "pyproject.toml [dependency-groups] tests",
        "pyproject.toml [dependency-groups] tests (via tox.ini [testenv] dependency_groups)",
        f"pyproject.toml [dependency-groups] tests (via pyproject.toml [dependency-groups] cov "
        f"{via_tox})",
    ]


def test_extras_installed_by_tox_commands_are_test_dependencies(tmp_path: Path):
    """black's tox.ini installs its `d` extra in the commands (`pip install -e .[d]`) before
    pytest runs the blackd tests: the extra is a test dependency, named with the command line."""
    files = head_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "blackish"\n\n'
            '[project.optional-dependencies]\nd = ["aiohttp>=3.10"]\ncolorama = ["colorama"]\n'
            '\n[dependency-groups]\ntests = ["pytest>=7"]\n',
            "tox.ini": "[testenv]\nskip_install = True\ndependency_groups = tests\n"
            "commands =\n    pip install -e .[d]\n    coverage erase\n"
            "    pytest tests --run-optional no_jupyter \\\n        --cov {posargs}\n",
        },
    )
    found = sources(discover_dependencies(files))
    assert found["aiohttp>=3.10"] == [
        "pyproject.toml [project.optional-dependencies] d (via tox.ini [testenv] commands)"
    ]
    assert "colorama" not in found


def choices_deps(tmp_path: Path) -> Dependencies:
    return discover_dependencies(
        head_files(
            tmp_path,
            {
                "pyproject.toml": '[project]\nname = "x"\n\n[dependency-groups]\n'
                'tests = ["pytest>=7", "coverage[toml]", '
                "'cloudpickle; platform_python_implementation == \"CPython\"']\n"
            },
        )
    )


def test_pins_and_excludes_apply_to_the_declared_requirements(tmp_path: Path):
    """`--pin` sets a declared requirement's version (its extras and marker kept) or adds one,
    `--exclude` drops every requirement of a name; each says what it changed and where from."""
    deps = apply_choices(
        choices_deps(tmp_path),
        pins=["pytest==8.3.5", "cloudpickle==3.0.0", "pluggy==1.5.0"],
        excludes=["Coverage"],
    )
    group = "pyproject.toml [dependency-groups] tests"
    assert sources(deps) == {
        "pytest==8.3.5": [group, "--pin pytest==8.3.5"],
        'cloudpickle==3.0.0; platform_python_implementation == "CPython"': [
            group,
            "--pin cloudpickle==3.0.0",
        ],
        "pluggy==1.5.0": ["--pin pluggy==1.5.0"],
    }
    assert f"--exclude Coverage: coverage[toml] dropped (from {group})" in deps.notes
    assert "--pin pytest==8.3.5: pytest>=7 becomes pytest==8.3.5" in deps.notes


@pytest.mark.parametrize(
    ("pins", "excludes", "complaint"),
    [
        ([], ["numpy"], "--exclude numpy: no requirement names it (declared: cloudpickle, "),
        (["pytest>=8"], [], "--pin 'pytest>=8': expected NAME==VERSION"),
        (["coverage==7.0"], ["coverage"], "--pin coverage==7.0: coverage is also excluded"),
    ],
)
def test_bad_pins_and_excludes_are_refused(
    tmp_path: Path, pins: list[str], excludes: list[str], complaint: str
):
    """A pin that is not NAME==VERSION, an exclude naming nothing declared, or both on one name
    are refused with the option and the rule."""
    with pytest.raises(PackagingError) as caught:
        apply_choices(choices_deps(tmp_path), pins=pins, excludes=excludes)
    assert str(caught.value).startswith(complaint)


def test_a_requirement_reached_by_several_routes_names_its_table_once():
    """The package summary folds the routes to one table instead of repeating the table."""
    tests = "pyproject.toml [dependency-groups] tests"
    cov = "pyproject.toml [dependency-groups] cov"
    sources = [
        tests,
        f"{tests} (via tox.ini [testenv] dependency_groups)",
        f"{tests} (via {cov} (via tox.ini [testenv:cov] dependency_groups))",
        f"{cov} (via tox.ini [testenv:cov] dependency_groups)",
        "requirements/test.txt line 3",
    ]
    assert folded_sources(sources) == (
        f"{tests}, also via tox.ini [testenv] dependency_groups, "
        f"{cov} (via tox.ini [testenv:cov] dependency_groups); "
        f"{cov} (via tox.ini [testenv:cov] dependency_groups); requirements/test.txt line 3"
    )
