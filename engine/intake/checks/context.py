"""What every check sees: the package folder, the limits, and the manifest once parsed."""

from dataclasses import dataclass
from pathlib import Path

from engine.core.config import ValidationConfig
from engine.intake.manifest import ManifestV1
from engine.intake.validation_report import CheckResult


@dataclass
class PackageContext:
    """One validation run over the package at `root` (absolute, never modified)."""

    root: Path
    config: ValidationConfig
    scratch: Path
    manifest: ManifestV1 | None = None
    manifest_sha256: str | None = None

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    def rel(self, path: Path) -> str:
        """`path` relative to the package root, for reports."""
        return path.relative_to(self.root).as_posix()


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, ok=True, detail=detail)


def failed(name: str, detail: str, path: str | None) -> CheckResult:
    return CheckResult(name=name, ok=False, detail=detail, path=path)


def not_run(name: str, why: str, path: str | None = None) -> CheckResult:
    """A check left out because what it needs failed; the package cannot pass without it."""
    return CheckResult(name=name, ok=False, detail=f"not run: {why}", path=path, skipped=True)
