"""When one build of the repository may serve other trees: the install must be a plain copy of
the tree, and the trees must build alike (engine.harness.repo_sites).

`map_install` is given real folders laid out as `uv pip install --target` leaves them; the
builds themselves are tested in test_harness_install_repo.py.
"""

from pathlib import Path

from engine.harness.repo_sites import build_key, map_install


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


PKG = {"pkg/__init__.py": "VERSION = 1\n", "pkg/core.py": "def f():\n    return 1\n"}
DIST = {"pkg-1.0.dist-info/METADATA": "Name: pkg\n", "pkg-1.0.dist-info/RECORD": ""}


def src_tree(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    files = {f"src/{rel}": text for rel, text in PKG.items()}
    return write(tmp_path / "tree", {**files, "tests/test_core.py": "", **(extra or {})})


def site(tmp_path: Path, files: dict[str, str]) -> Path:
    return write(tmp_path / "site", {**DIST, **files})


def test_a_src_layout_install_maps_to_src(tmp_path: Path):
    roots, generated, why = map_install(site(tmp_path, PKG), src_tree(tmp_path))
    assert (roots, generated, why) == ({"pkg": "src"}, {}, None)


def test_a_flat_module_maps_to_the_tree_itself(tmp_path: Path):
    tree = write(tmp_path / "tree", {"six.py": "X = 1\n", "test_six.py": ""})
    installed = site(tmp_path, {"six.py": "X = 1\n"})
    assert map_install(installed, tree) == ({"six.py": ""}, {}, None)


def test_a_file_only_the_install_has_is_generated(tmp_path: Path):
    installed = site(tmp_path, {**PKG, "pkg/_version.py": "version = '1.0'\n"})
    roots, generated, why = map_install(installed, src_tree(tmp_path))
    assert (roots, why) == ({"pkg": "src"}, None)
    assert generated == {"src/pkg/_version.py": installed / "pkg/_version.py"}


def test_a_rewritten_source_is_not_shared(tmp_path: Path):
    installed = site(tmp_path, {**PKG, "pkg/core.py": "def f():\n    return 2\n"})
    assert map_install(installed, src_tree(tmp_path))[2] == "the build rewrites src/pkg/core.py"


def test_an_extension_module_is_not_shared(tmp_path: Path):
    installed = site(tmp_path, {**PKG, "pkg/_speedups.cpython-311-x86_64-linux-gnu.so": "ELF"})
    assert map_install(installed, src_tree(tmp_path))[2] == (
        "the build compiles extension modules (pkg/_speedups.cpython-311-x86_64-linux-gnu.so)"
    )


def test_a_module_the_build_leaves_out_is_not_shared(tmp_path: Path):
    tree = src_tree(tmp_path, {"src/pkg/_private.py": "SECRET = 1\n"})
    assert map_install(site(tmp_path, PKG), tree)[2] == "the build leaves out src/pkg/_private.py"


def test_a_package_installed_under_another_name_is_not_shared(tmp_path: Path):
    installed = site(tmp_path, {f"renamed/{rel[4:]}": text for rel, text in PKG.items()})
    assert map_install(installed, src_tree(tmp_path))[2] == (
        "the installed renamed has no folder of that name in the tree"
    )


def test_the_root_is_where_most_installed_files_are(tmp_path: Path):
    """A vendored copy of one module elsewhere in the tree does not decide the root."""
    tree = src_tree(tmp_path, {"docs/examples/pkg/__init__.py": "VERSION = 1\n"})
    assert map_install(site(tmp_path, PKG), tree)[0] == {"pkg": "src"}


def test_metadata_scripts_and_pth_files_are_not_code_to_map(tmp_path: Path):
    installed = site(tmp_path, {**PKG, "bin/pkg-cli": "#!python\n", "pkg.pth": "/elsewhere\n"})
    assert map_install(installed, src_tree(tmp_path)) == ({"pkg": "src"}, {}, None)


def test_the_key_is_the_build_configuration(tmp_path: Path):
    one = write(tmp_path / "one", {"pyproject.toml": "[project]\nname = 'pkg'\n", **PKG})
    two = write(tmp_path / "two", {"pyproject.toml": "[project]\nname = 'pkg'\n", "x.py": ""})
    key, why = build_key(one)
    assert why is None and key is not None
    assert build_key(two) == (key, None), "code outside the build files does not change it"
    write(two, {"setup.cfg": "[metadata]\nname = pkg\n"})
    assert build_key(two)[0] not in (None, key)
    (two / "setup.cfg").unlink()
    (two / "pyproject.toml").write_text("[project]\nname = 'pkg2'\n")
    assert build_key(two)[0] not in (None, key)


def test_an_in_tree_backend_or_a_linked_build_file_is_never_shared(tmp_path: Path):
    backend = '[build-system]\nrequires = []\nbuild-backend = "b"\nbackend-path = ["."]\n'
    tree = write(tmp_path / "tree", {"pyproject.toml": backend, "b.py": ""})
    assert build_key(tree) == (
        None,
        "its build backend is in the tree (pyproject.toml backend-path)",
    )
    linked = write(tmp_path / "linked", {"real.cfg": ""})
    (linked / "setup.cfg").symlink_to(linked / "real.cfg")
    assert build_key(linked) == (None, "setup.cfg is a link")


PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "pkg"
dynamic = ["version"]
description = "A package."
dependencies = ["attrs"]

[project.scripts]
pkg = "pkg.cli:main"

[tool.hatch.build.targets.wheel]
packages = ["src/pkg"]

[tool.hatch.envs.default]
dependencies = ["pytest"]

[tool.ruff]
line-length = 100

[tool.pytest.ini_options]
addopts = "-ra"
"""


def key_of(tmp_path: Path, name: str, pyproject: str, setup_cfg: str = "") -> str | None:
    tree = write(tmp_path / name, {"pyproject.toml": pyproject, "setup.cfg": setup_cfg})
    return build_key(tree)[0]


def test_what_no_build_reads_leaves_the_key_alone(tmp_path: Path):
    """Linters' and test tools' tables, hatch's environments, the description and the
    dependencies (the environment has those) change often and never what is installed where."""
    key = key_of(tmp_path, "base", PYPROJECT)
    edited = (
        PYPROJECT.replace("line-length = 100", "line-length = 88")
        .replace('addopts = "-ra"', 'addopts = "-ra -q"')
        .replace('"A package."', '"A better package."')
        .replace('dependencies = ["attrs"]', 'dependencies = ["attrs>=23"]')
        .replace('dependencies = ["pytest"]', 'dependencies = ["pytest", "hypothesis"]')
    )
    assert edited != PYPROJECT
    assert key_of(tmp_path, "edited", edited) == key
    assert key_of(tmp_path, "cfg", PYPROJECT, "[flake8]\nmax-line-length = 100\n") == key_of(
        tmp_path, "cfg2", PYPROJECT, "[flake8]\nmax-line-length = 88\n"
    )


def test_what_a_build_reads_changes_the_key(tmp_path: Path):
    key = key_of(tmp_path, "base", PYPROJECT)
    for name, edited in {
        "scripts": PYPROJECT.replace('"pkg.cli:main"', '"pkg.cli:run"'),
        "packages": PYPROJECT.replace('["src/pkg"]', '["src/pkg", "src/extra"]'),
        "backend": PYPROJECT.replace('["hatchling"]', '["hatchling>=1.20"]'),
        "unknown tool": PYPROJECT + "\n[tool.some-build-hook]\nenabled = true\n",
    }.items():
        assert key_of(tmp_path, name, edited) not in (None, key), name
    options = "[options]\npackage_dir =\n    =src\n"
    assert key_of(tmp_path, "cfg", PYPROJECT, options) != key_of(
        tmp_path, "cfg2", PYPROJECT, options.replace("=src", "=lib")
    )
