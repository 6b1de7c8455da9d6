"""Repo package manifest, schema v1: what the harness needs to know about a package.

A repo package is a folder holding `repo/` (a git clone), `packages/` (wheels only) and this
`manifest.json`. The harness reads the manifest and never discovers commits at run time.
"""

import json
import re
import shlex
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.core.errors import ManifestError, validation_lines

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION,)
MANIFEST_FILE = "manifest.json"

Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PlanningType = Literal["meta_plan", "step_plan", "test_plan", "mixed"]
TaskClass = Literal["gold", "test_data", "code_only"]
"""What a kept commit can become. gold: it changes code and tests, so its own tests can show
the change making a test pass (gold validation). test_data: it changes tests only, so no test
fails before it that its change fixes: test-plan data, never a task. code_only: it changes code
without tests, so a task needs tests from elsewhere (supplementation) or a structural check."""
TEST_RUNNERS = ("pytest",)


def _relative_posix_path(value: str) -> str:
    if not value or value.startswith("/") or "\\" in value or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a relative POSIX path inside the repository")
    return value


RepoPath = Annotated[str, AfterValidator(_relative_posix_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def task_class_of(planning_type: PlanningType) -> TaskClass:
    """The task class a planning type implies: mixed changes code and tests, test_plan tests
    only, meta_plan and step_plan production code only."""
    if planning_type == "mixed":
        return "gold"
    return "test_data" if planning_type == "test_plan" else "code_only"


class ManifestCommit(_Model):
    """One filtered commit the harness may turn into a task.

    `task_class` is absent from manifests written before it was recorded: it is then derived
    from the planning type, which was decided from the same counts of code and test files."""

    sha: Sha
    parent: Sha
    date: datetime
    subject: str = Field(min_length=1, max_length=1000)
    files_changed: int = Field(ge=1)
    lines_added: int = Field(ge=0)
    lines_deleted: int = Field(ge=0)
    planning_type: PlanningType
    task_class: TaskClass
    test_files: list[RepoPath] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _derive_task_class(cls, data: Any) -> Any:
        if isinstance(data, dict) and "task_class" not in data and "planning_type" in data:
            return {**data, "task_class": task_class_of(data["planning_type"])}
        return data

    @model_validator(mode="after")
    def _class_matches_planning_type(self) -> "ManifestCommit":
        if self.task_class != task_class_of(self.planning_type):
            raise ValueError(
                f"commit {self.sha}: task_class {self.task_class!r} does not fit planning type "
                f"{self.planning_type!r} (it must be {task_class_of(self.planning_type)!r})"
            )
        return self


class WheelEntry(_Model):
    """A wheel shipped in `packages/` and the sha256 it must have."""

    filename: Annotated[str, StringConstraints(pattern=r"^[^/\\]+\.whl$")]
    sha256: Sha256


class FilterStage(_Model):
    """One row of the commit filter's attrition table."""

    name: str = Field(min_length=1)
    kept: int = Field(ge=0)
    dropped: int = Field(ge=0)


class StyleScore(_Model):
    """Fail-fast style score of the repository's Python at HEAD (LoRA Training Strategy §6.7),
    0–100."""

    score: float = Field(ge=0, le=100)
    files: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)


class PlanRef(_Model):
    """Another plan file of the repository: its path and the commit that added it."""

    path: RepoPath
    added_in: Sha


PlanLabel = Literal["good", "fine", "bad"]


class PlanArtifact(_Model):
    """A plan file committed to the repository, labelled by what the history did next (§6.8).

    `replaced_by` names the plan that replaced a bad one (absent in manifests made before it
    was recorded, and for every other plan)."""

    path: RepoPath
    added_in: Sha
    label: PlanLabel
    reason: str = Field(min_length=1, max_length=1000)
    replaced_by: PlanRef | None = None


class ManifestV1(_Model):
    """Schema v1 of `manifest.json`."""

    schema_version: Literal[1]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    description: str = Field(default="", max_length=2000)
    source_url: str = Field(default="", max_length=2000)
    head: Sha
    python_version: Annotated[str, StringConstraints(pattern=r"^3\.\d{1,2}$")]
    test_command: str = Field(min_length=1, max_length=2000)
    requirements: list[str] = Field(default_factory=list)
    install_repo: bool = False
    domain: str = Field(min_length=1, max_length=100)
    license: str = Field(min_length=1, max_length=200)
    wheels: list[WheelEntry] = Field(default_factory=list)
    commits: list[ManifestCommit] = Field(min_length=1)
    filter_stages: list[FilterStage] = Field(default_factory=list)
    style: StyleScore | None = None
    plan_artifacts: list[PlanArtifact] = Field(default_factory=list)
    created_at: datetime
    created_by: str = Field(default="", max_length=200)

    @field_validator("requirements")
    @classmethod
    def _requirements_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                raise ValueError(f"requirement {text!r} is not PEP 508: {exc}") from exc
        return value

    @field_validator("test_command")
    @classmethod
    def _test_command_runs_a_known_runner(cls, value: str) -> str:
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"test_command {value!r} cannot be split: {exc}") from exc
        if runner_of(argv) is None:
            raise ValueError(
                f"test_command {value!r} must run one of {', '.join(TEST_RUNNERS)} "
                "(as `pytest …` or `python -m pytest …`)"
            )
        return value

    @field_validator("wheels")
    @classmethod
    def _wheel_names_unique(cls, value: list[WheelEntry]) -> list[WheelEntry]:
        names = [w.filename for w in value]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"wheels listed twice: {', '.join(dupes)}")
        return value

    @property
    def test_argv(self) -> list[str]:
        return shlex.split(self.test_command)

    @property
    def runner(self) -> str:
        runner = runner_of(self.test_argv)
        assert runner is not None, "checked by the validator"
        return runner

    def requirement_names(self) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in self.requirements}


def runner_of(argv: list[str]) -> str | None:
    """The test runner an argv invokes (`pytest …`, `python -m pytest …`), or None."""
    if not argv:
        return None
    if argv[0] in TEST_RUNNERS:
        return argv[0]
    if re.fullmatch(r"python(3(\.\d+)?)?", argv[0]) and len(argv) >= 3 and argv[1] == "-m":
        return argv[2] if argv[2] in TEST_RUNNERS else None
    return None


def manifest_json_schema() -> dict:
    """The JSON Schema of the current manifest version."""
    return ManifestV1.model_json_schema()


def parse_manifest(raw: bytes, source: str = MANIFEST_FILE) -> ManifestV1:
    """Parse manifest bytes; every failure names `source` and the rule it broke."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: must hold a JSON object, found {type(data).__name__}")
    if "schema_version" not in data:
        raise ManifestError(f"{source}: schema_version is missing")
    version = data["schema_version"]
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise ManifestError(
            f"{source}: unknown schema_version {version!r}; this console reads {supported}"
        )
    try:
        return ManifestV1.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(validation_lines(source, exc)) from exc


def read_manifest(package_dir: Path, max_bytes: int) -> ManifestV1:
    """Read `package_dir/manifest.json`, refusing files over `max_bytes` before parsing."""
    path = package_dir / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        raise ManifestError(f"{path}: must be a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ManifestError(f"{path}: {size} bytes is over the manifest limit of {max_bytes}")
    with path.open("rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ManifestError(f"{path}: over the manifest limit of {max_bytes} bytes")
    return parse_manifest(raw, str(path))
