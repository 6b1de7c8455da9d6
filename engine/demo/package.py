"""Build a valid repo package from the demo repository: repo/, packages/, manifest.json."""

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from engine.demo.repo import build_demo_repo, git_env
from engine.demo.wheels import build_wheel, repack_installed, runtime_closure
from engine.manifest import MANIFEST_FILE, FilterStage, ManifestCommit, ManifestV1, WheelEntry

STOPWORDS_MODULE = '''\
"""A tiny stopword list for the demo."""

STOPWORDS = frozenset({"a", "an", "and", "of", "or", "the", "to"})
'''
CREATED_AT = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)


def build_wheels(out_dir: Path) -> list[Path]:
    """The demo's wheels: its stopword library plus pytest and what pytest needs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = [
        build_wheel(
            "stopwords-mini",
            "1.0.0",
            {"stopwords_mini/__init__.py": STOPWORDS_MODULE},
            out_dir,
            summary="A tiny stopword list",
        )
    ]
    wheels += [repack_installed(name, out_dir) for name in runtime_closure("pytest")]
    return wheels


def is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.startswith("tests/") or name.startswith("test_") or name.endswith("_test.py")


def planning_type(paths: list[str]) -> str:
    """Seed 004 §6.9: tests only, production and tests, many files, or a few files."""
    tests = [p for p in paths if is_test_file(p)]
    if tests and len(tests) == len(paths):
        return "test_plan"
    if tests:
        return "mixed"
    return "meta_plan" if len(paths) >= 4 else "step_plan"


def describe_commit(repo: Path, sha: str) -> ManifestCommit:
    """The manifest entry of `sha`, from git's own numstat."""
    out = subprocess.run(
        ["git", "-C", str(repo), "show", "--numstat", "--format=%P%x00%aI%x00%s", sha],
        env=git_env("2024-01-01T00:00:00+00:00"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, _, numstat = out.partition("\n")
    parent, date, subject = header.split("\x00")
    added = deleted = 0
    paths = []
    for line in numstat.strip().splitlines():
        a, d, path = line.split("\t")
        added, deleted = added + int(a), deleted + int(d)
        paths.append(path)
    return ManifestCommit(
        sha=sha,
        parent=parent,
        date=datetime.fromisoformat(date),
        subject=subject,
        files_changed=len(paths),
        lines_added=added,
        lines_deleted=deleted,
        planning_type=planning_type(paths),
        test_files=[p for p in paths if is_test_file(p)],
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(package_dir: Path, manifest: ManifestV1) -> Path:
    path = package_dir / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def build_package(dest: Path, wheel_cache: Path | None = None, name: str = "textkit") -> Path:
    """Create a valid repo package at `dest`; wheels are copied from `wheel_cache` if given."""
    shas = build_demo_repo(dest / "repo")
    packages = dest / "packages"
    if wheel_cache is None:
        wheels = build_wheels(packages)
    else:
        packages.mkdir(parents=True)
        wheels = [Path(shutil.copy2(w, packages)) for w in sorted(wheel_cache.glob("*.whl"))]
    repo = dest / "repo"
    described = [describe_commit(repo, sha) for sha in shas[1:]]
    commits = [c for c in described if any(p.endswith(".py") for p in c.test_files)]
    manifest = ManifestV1(
        schema_version=1,
        name=name,
        description="Small text helpers: slugs, word counts, truncation.",
        source_url="https://example.invalid/textkit.git",
        head=shas[-1],
        python_version="3.11",
        test_command="python -m pytest",
        requirements=["stopwords-mini>=1.0", "pytest>=8"],
        install_repo=False,
        domain="text-processing",
        license="MIT",
        wheels=[WheelEntry(filename=w.name, sha256=sha256_file(w)) for w in sorted(wheels)],
        commits=commits,
        filter_stages=[
            FilterStage(name="non-merge", kept=len(shas), dropped=0),
            FilterStage(name="has parent", kept=len(shas) - 1, dropped=1),
            FilterStage(
                name="tests exist", kept=len(commits), dropped=len(described) - len(commits)
            ),
        ],
        created_at=CREATED_AT,
        created_by="cra demo",
    )
    write_manifest(dest, manifest)
    return dest
