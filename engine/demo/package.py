"""Build a valid repo package from the demo repository: repo/, packages/, manifest.json.

The commits, attrition table, style score and plan artifacts come from the same mining code
`cra package` uses; only the wheels (built offline) and the fixed metadata are the demo's own.
"""

import shutil
from datetime import UTC, datetime
from pathlib import Path

from engine.core.hashing import sha256_file
from engine.demo.repo import DEMO_HISTORY, DemoCommit, build_demo_repo
from engine.demo.wheels import build_wheel, repack_installed, runtime_closure
from engine.intake.manifest import MANIFEST_FILE, ManifestV1, WheelEntry
from engine.mining import FilterSettings, mine_commits
from engine.packaging.plan_artifacts import find_plan_artifacts
from engine.packaging.style_score import score_style

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


def write_manifest(package_dir: Path, manifest: ManifestV1) -> Path:
    path = package_dir / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def build_package(
    dest: Path,
    wheel_cache: Path | None = None,
    name: str = "textkit",
    history: list[DemoCommit] = DEMO_HISTORY,
) -> Path:
    """Create a valid repo package of `history` at `dest`; wheels are copied from `wheel_cache`
    if given."""
    shas = build_demo_repo(dest / "repo", history)
    packages = dest / "packages"
    if wheel_cache is None:
        wheels = build_wheels(packages)
    else:
        packages.mkdir(parents=True)
        wheels = [Path(shutil.copy2(w, packages)) for w in sorted(wheel_cache.glob("*.whl"))]
    repo = dest / "repo"
    mined = mine_commits(repo, FilterSettings())
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
        commits=mined.commits,
        filter_stages=mined.stages,
        style=score_style(repo),
        plan_artifacts=find_plan_artifacts(repo),
        created_at=CREATED_AT,
        created_by="cra demo",
    )
    write_manifest(dest, manifest)
    return dest
