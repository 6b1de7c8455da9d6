"""The yield of a package: its kept commits → validated → usable, by planning type and by how
they were validated (gold, supplemented, structural; test-only commits are skipped as test-plan
data). `cra package --report` shows the classes at packaging, `cra harness yield` and the Harness
pane the figures once commits are validated.
"""

from collections import Counter

from pydantic import BaseModel, ConfigDict

from engine.core.workspace import Workspace
from engine.harness.package import load_package
from engine.intake.manifest import PlanningType

PLANNING_ORDER: tuple[PlanningType, ...] = ("mixed", "step_plan", "meta_plan", "test_plan")
UNKNOWN_REASON = "unrecorded"
"""The reason kind of a task row validated before reasons had kinds."""


class YieldRow(BaseModel):
    """The commits of one planning type (or all of them, `planning_type` "all")."""

    model_config = ConfigDict(frozen=True)

    planning_type: str
    kept: int = 0
    skipped: int = 0
    pending: int = 0
    validated: int = 0
    gold: int = 0
    supplemented: int = 0
    structural: int = 0
    unusable: int = 0

    @property
    def usable(self) -> int:
        return self.gold + self.supplemented


class PackageYield(BaseModel):
    """A package's yield: one row per planning type present, then the total; and its unusable
    commits counted by the kind of their reason, most first."""

    model_config = ConfigDict(frozen=True)

    digest: str
    name: str
    rows: list[YieldRow]
    unusable_by_reason: list[tuple[str, int]] = []

    @property
    def total(self) -> YieldRow:
        return self.rows[-1]


def package_yield(ws: Workspace, digest: str) -> PackageYield:
    """The yield of the approved package `digest` from its manifest and its tasks' rows."""
    package = load_package(ws, digest)
    rows = {
        sha: (status, validation, reason_kind)
        for sha, status, validation, reason_kind in ws.db.execute(
            "SELECT sha, status, validation, reason_kind FROM tasks WHERE package_digest = ?",
            [digest],
        )
    }
    tallies: dict[str, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    for commit in package.manifest.commits:
        tally = tallies.setdefault(commit.planning_type, Counter())
        tally["kept"] += 1
        found = rows.get(commit.sha)
        if commit.task_class == "test_data":
            tally["skipped"] += 1
        elif found is None:
            tally["pending"] += 1
        else:
            status, validation, reason_kind = found
            tally["validated"] += 1
            if status == "usable":
                tally[validation] += 1
            elif status == "structural":
                tally["structural"] += 1
            else:
                tally["unusable"] += 1
                reasons[reason_kind or UNKNOWN_REASON] += 1
    present = [kind for kind in PLANNING_ORDER if kind in tallies]
    total = sum(tallies.values(), Counter())
    return PackageYield(
        digest=digest,
        name=package.manifest.name,
        rows=[
            *(YieldRow(planning_type=kind, **tallies[kind]) for kind in present),
            YieldRow(planning_type="all", **total),
        ],
        unusable_by_reason=sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
    )


def campaign_yields(ws: Workspace, digests: list[str]) -> list[PackageYield]:
    """The yields of those of `digests` that are approved packages (a campaign's, for the
    Harness pane): a digest with no corpus record has no manifest to count from."""
    approved = {row[0] for row in ws.db.execute("SELECT digest FROM packages")}
    return [package_yield(ws, digest) for digest in digests if digest in approved]


YIELD_COLUMNS = (
    "kept",
    "validated",
    "usable",
    "gold",
    "supplemented",
    "structural",
    "unusable",
    "pending",
    "skipped",
)


def reasons_line(found: PackageYield) -> str | None:
    """The unusable commits by the kind of their reason, most first, or None when none is."""
    if not found.unusable_by_reason:
        return None
    kinds = ", ".join(f"{kind} {count}" for kind, count in found.unusable_by_reason)
    return f"unusable by reason: {kinds}"


def yield_lines(found: PackageYield) -> list[str]:
    """The yield as a table: a row per planning type and the total."""
    header = ("planning type", *YIELD_COLUMNS)
    body = [
        (row.planning_type, *(str(getattr(row, column)) for column in YIELD_COLUMNS))
        for row in found.rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in (header, *body)
    ]


def yield_summary(found: PackageYield) -> str:
    """The total in one line: kept → validated → usable, with the kinds."""
    t = found.total
    return (
        f"{t.kept} kept → {t.validated} validated → {t.usable} usable "
        f"(gold {t.gold}, supplemented {t.supplemented}) · structural {t.structural} · "
        f"unusable {t.unusable} · not yet {t.pending} · test data {t.skipped}"
    )
