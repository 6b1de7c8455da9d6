"""The validation report of one repo package: separate checks, plus flags for human review."""

from pydantic import BaseModel, ConfigDict, Field

from engine.intake.label import package_label
from engine.intake.manifest import FilterStage, PlanArtifact, StyleScore


class CheckResult(BaseModel):
    """One check's verdict; a failing check names the file (`path`) and the rule (`detail`).

    A `skipped` check did not run because something it needs failed first: it keeps the package
    from passing but is not a finding of its own.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    detail: str
    path: str | None = None
    skipped: bool = False


class ContentFlag(BaseModel):
    """Something a human should look at before approving; never an automatic rejection."""

    model_config = ConfigDict(frozen=True)

    kind: str
    path: str
    line: int
    detail: str


class PackageSummary(BaseModel):
    """What the operator sees at a glance; filled as far as the package could be read."""

    name: str | None = None
    manifest_sha256: str | None = None
    commit_count: int = 0
    wheel_count: int = 0
    size_bytes: int = 0
    file_count: int = 0
    filter_stages: list[FilterStage] = Field(default_factory=list)
    planning_types: dict[str, int] = Field(default_factory=dict)
    style: StyleScore | None = None
    plan_artifacts: list[PlanArtifact] = Field(default_factory=list)


class ValidationReport(BaseModel):
    """`cra ingest validate --json` prints this."""

    package: str
    ok: bool
    checks: list[CheckResult]
    flags: list[ContentFlag] = Field(default_factory=list)
    summary: PackageSummary = Field(default_factory=PackageSummary)

    @property
    def label(self) -> str:
        """The package as the operator knows it: `folder@digest (name)` (`engine.intake.label`)."""
        return package_label(self.package, self.summary.manifest_sha256, self.summary.name)

    def failures(self) -> list[CheckResult]:
        """The findings: checks that ran and failed."""
        return [c for c in self.checks if not c.ok and not c.skipped]

    def not_run(self) -> list[CheckResult]:
        return [c for c in self.checks if c.skipped]
