"""The commit filter: every commit from one `git log`, through named stages, to manifest entries.

Stages apply in order, each counting what it kept and dropped (the attrition table). The cheap
stages read only `git log` output; "tests exist" and the planning type's symbol comparison read
file contents, so they run on the survivors alone, through one `git cat-file --batch` process.
"""

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.intake.manifest import FilterStage, ManifestCommit
from engine.mining.blobs import ObjectReader
from engine.mining.log import LogCommit, read_log
from engine.mining.paths import PathRoles
from engine.mining.planning import describe_commits
from engine.mining.rules import Stage, cheap_stages
from engine.mining.settings import FilterSettings
from engine.mining.tests_exist import covering_tests

TESTS_EXIST = "tests exist"


class DroppedCommit(BaseModel):
    """Which stage dropped a commit, and why."""

    model_config = ConfigDict(frozen=True)

    stage: str
    reason: str


class MiningResult(BaseModel):
    """The kept commits, the attrition table and, per dropped commit, where it went."""

    model_config = ConfigDict(frozen=True)

    commits: list[ManifestCommit]
    stages: list[FilterStage]
    dropped: dict[str, DroppedCommit]

    @property
    def total(self) -> int:
        return len(self.commits) + len(self.dropped)

    def attrition_table(self) -> str:
        """The attrition table as aligned text: one row per stage, then what was kept."""
        width = max(len(s.name) for s in self.stages)
        rows = [f"{'stage':<{width}}  {'kept':>6}  {'dropped':>7}"]
        rows += [f"{s.name:<{width}}  {s.kept:>6}  {s.dropped:>7}" for s in self.stages]
        share = 100 * (1 - len(self.commits) / self.total) if self.total else 0.0
        rows.append(f"{len(self.commits)} of {self.total} commits kept ({share:.1f}% attrition)")
        return "\n".join(rows)


class _Attrition:
    """Counts per stage as commits pass through, and where each dropped commit went."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.kept = dict.fromkeys((s.name for s in stages), 0)
        self.lost = dict.fromkeys((s.name for s in stages), 0)
        self.dropped: dict[str, DroppedCommit] = {}

    def passes(self, commit: LogCommit, stages: Sequence[Stage]) -> bool:
        for stage in stages:
            reason = stage.rule(commit)
            if reason is not None:
                self.lost[stage.name] += 1
                self.dropped[commit.sha] = DroppedCommit(stage=stage.name, reason=reason)
                return False
            self.kept[stage.name] += 1
        return True

    def table(self) -> list[FilterStage]:
        return [
            FilterStage(name=name, kept=kept, dropped=self.lost[name])
            for name, kept in self.kept.items()
        ]


def mine_commits(repo: Path, settings: FilterSettings) -> MiningResult:
    """Filter every commit reachable from HEAD in `repo`; describe the kept ones, oldest first.

    The cheap stages run on each commit as `git log` streams it in; the rest run on survivors.
    """
    roles = PathRoles(settings.test_patterns)
    cheap = cheap_stages(settings, roles)
    covering: dict[str, tuple[str, ...]] = {}
    tests_exist = Stage(
        TESTS_EXIST,
        lambda c: None if covering[c.sha] else "no test changed or importing a changed module",
    )
    attrition = _Attrition([*cheap, tests_exist])
    survivors = [c for c in read_log(repo) if attrition.passes(c, cheap)]
    with ObjectReader(repo) as objects:
        covering.update(covering_tests(objects, survivors, roles))
        kept = [c for c in reversed(survivors) if attrition.passes(c, [tests_exist])]
        commits = describe_commits(objects, kept, roles, covering)
    return MiningResult(commits=commits, stages=attrition.table(), dropped=attrition.dropped)
