"""Validate an incoming repo package: every check reported on its own, flags for review.

Nothing on the drive is modified or executed here except the test collection inside the
dry-run sandbox, which runs only once every other check has passed.
"""

import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from engine.core.config import ValidationConfig
from engine.core.errors import CraError
from engine.intake.checks.content import scan_content
from engine.intake.checks.context import PackageContext, not_run
from engine.intake.checks.dry_run import check_dry_run
from engine.intake.checks.files import check_file_policy
from engine.intake.checks.git import check_commits, check_git_fsck, check_git_safety
from engine.intake.checks.manifest_check import check_manifest
from engine.intake.checks.requirements import check_requirements
from engine.intake.checks.wheels import check_wheels
from engine.intake.manifest import MANIFEST_FILE
from engine.intake.validation_report import CheckResult, PackageSummary, ValidationReport

Check = Callable[[PackageContext], list[CheckResult]]

CHECKS: list[tuple[str, Check, tuple[str, ...]]] = [
    ("manifest", check_manifest, ()),
    ("file-policy", check_file_policy, ()),
    ("git-fsck", check_git_fsck, ()),
    ("git-safety", check_git_safety, ()),
    ("commits", check_commits, ("manifest", "git-fsck")),
    ("wheels", check_wheels, ("manifest", "file-policy")),
    ("requirements", check_requirements, ("manifest", "wheels")),
    (
        "dry-run",
        check_dry_run,
        ("manifest", "file-policy", "git-fsck", "git-safety", "commits", "wheels", "requirements"),
    ),
]
CHECK_NAMES = [name for name, _, _ in CHECKS]


def _summary(ctx: PackageContext) -> PackageSummary:
    size = count = 0
    for path in ctx.root.rglob("*"):
        if not path.is_dir() or path.is_symlink():
            size += path.lstat().st_size
            count += 1
    manifest = ctx.manifest
    if manifest is None:
        return PackageSummary(size_bytes=size, file_count=count)
    return PackageSummary(
        name=manifest.name,
        manifest_sha256=ctx.manifest_sha256,
        commit_count=len(manifest.commits),
        wheel_count=len(manifest.wheels),
        size_bytes=size,
        file_count=count,
        filter_stages=manifest.filter_stages,
        planning_types=dict(Counter(c.planning_type for c in manifest.commits)),
        style=manifest.style,
        plan_artifacts=manifest.plan_artifacts,
    )


PACKAGE_ENTRIES = (MANIFEST_FILE, "repo", "packages")
"""What a repo package's folder holds: a folder with none of them is not one at all (and is
not walked: `ingest validate /` would read the whole filesystem)."""


def package_folder(path: Path) -> Path:
    """`path` made absolute, refused unless it is a folder holding a package's entries."""
    root = path.expanduser().absolute()
    if root.is_symlink() or not root.is_dir():
        raise CraError(f"{path}: a repo package must be a folder (not a file or a link)")
    if not any(os.path.lexists(root / name) for name in PACKAGE_ENTRIES):
        raise CraError(f"{path}: not a repo package: it holds none of {', '.join(PACKAGE_ENTRIES)}")
    return root


def validate_package(path: Path, config: ValidationConfig) -> ValidationReport:
    """Run every check on the package folder at `path` and return the full report."""
    root = package_folder(path)
    with tempfile.TemporaryDirectory(prefix="cra-validate-") as scratch:
        ctx = PackageContext(root=root, config=config, scratch=Path(scratch))
        results: list[CheckResult] = []
        verdict: dict[str, bool] = {}
        for name, check, needs in CHECKS:
            blocked = [n for n in needs if not verdict[n]]
            if blocked:
                results.append(not_run(name, f"needs {', '.join(blocked)} to pass first"))
                verdict[name] = False
                continue
            outcome = check(ctx)
            results.extend(outcome)
            verdict[name] = all(r.ok for r in outcome)
        flags = scan_content(ctx)
        summary = _summary(ctx)
    return ValidationReport(
        package=str(root),
        ok=all(verdict.values()),
        checks=results,
        flags=flags,
        summary=summary,
    )
