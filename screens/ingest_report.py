"""How the Ingest pane draws a package: the heading facts, the Checks tab and the Mining tab.

Pure functions from a validation report (or its summary) to Rich renderables; the pane decides
when to draw them. Everything the package wrote (paths, details, names in its manifest) is
neutralised on its way into a renderable.
"""

from collections import Counter
from typing import get_args

from rich.columns import Columns
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from engine.core.sizes import human_size
from engine.core.terminal_text import neutralise
from engine.intake.manifest import FilterStage, PlanArtifact, PlanningType, StyleScore
from engine.intake.validation_report import PackageSummary, ValidationReport

PLANNING_BAR_WIDTH = 20
STRONG_STYLE_SCORE = 75  # LoRA Training Strategy §6.7: repos scoring 75-100 are strong candidates
PLAN_LABEL_STYLE = {"good": "bold green", "fine": "bold yellow", "bad": "bold red"}


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def facts_line(s: PackageSummary) -> Text:
    facts = Text.assemble(
        (str(s.commit_count), "bold"),
        " commits  ",
        (str(s.wheel_count), "bold"),
        " wheels  ",
        (human_size(s.size_bytes), "bold"),
        "  ",
        (str(s.file_count), "bold"),
        " files",
    )
    if s.manifest_sha256:
        facts.append(f"  sha256 {s.manifest_sha256[:12]}…", style="dim")
    return facts


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _attrition(stages: list[FilterStage]) -> tuple[int, int]:
    """(commits the filter started from, commits it kept)."""
    return stages[0].kept + stages[0].dropped, stages[-1].kept


def mining_headline(s: PackageSummary) -> Text:
    """One line of the mining facts, so the Checks tab shows them too."""
    if s.name is None:
        return Text("mining facts unknown: the manifest did not parse", style="dim")
    sep = (" · ", "dim")
    if s.filter_stages:
        mined, kept = _attrition(s.filter_stages)
        funnel = Text.assemble(
            ("filter ", "dim"), f"{mined:,} → ", (f"{kept:,}", "bold"), f" ({_share(kept, mined)})"
        )
    else:
        funnel = Text("no attrition table", style="dim")
    style = (
        Text.assemble(("style ", "dim"), (f"{s.style.score:.0f}", "bold"), "/100")
        if s.style is not None
        else Text("style not scored", style="dim")
    )
    plans = (
        Text(plural(len(s.plan_artifacts), "plan artifact"))
        if s.plan_artifacts
        else Text("no plan artifacts", style="dim")
    )
    return Text.assemble(funnel, sep, style, sep, plans)


def checks_parts(report: ValidationReport) -> list[RenderableType]:
    skipped = len(report.not_run())
    verdict = (
        Text("All checks passed.", style="bold green")
        if report.ok
        else Text(
            f"{plural(len(report.failures()), 'finding')}"
            + (f", {skipped} not run" if skipped else "")
            + ": REJECTED.",
            style="bold red",
        )
    )
    checks = Table.grid(padding=(0, 1), expand=True)
    checks.add_column(width=4, no_wrap=True)
    checks.add_column(no_wrap=True)
    checks.add_column(ratio=1)
    for check in report.checks:
        if check.ok:
            mark = Text("ok", style="green")
        elif check.skipped:
            mark = Text("skip", style="yellow")
        else:
            mark = Text("FAIL", style="bold red")
        detail = Text()
        if check.path:
            detail.append(neutralise(check.path), style="bold")
            detail.append("\n" if not check.ok else "  ")
        failed = not (check.ok or check.skipped)
        detail.append(neutralise(check.detail), style="red" if failed else "")
        checks.add_row(mark, Text(neutralise(check.name), style="bold"), detail)
    parts: list[RenderableType] = [verdict, checks]
    if report.flags:
        parts.append(
            Text(
                f"\nFlags for review ({len(report.flags)}): not rejections, read them first",
                style="bold dark_orange",
            )
        )
        flags = Table.grid(padding=(0, 1), expand=True)
        flags.add_column(no_wrap=True, style="dark_orange")
        flags.add_column(ratio=1)
        for flag in report.flags:
            where = Text(neutralise(f"{flag.path}:{flag.line}"), style="bold")
            flags.add_row(
                Text(neutralise(flag.kind)), Text.assemble(where, "  ", neutralise(flag.detail))
            )
        parts.append(flags)
    else:
        parts.append(Text("\nNo content flags.", style="dim"))
    return parts


def _section(title: str, note: str = "") -> Text:
    """A section heading; `note` (dim, same line) says what it holds or why it is empty."""
    return Text.assemble((title, "bold underline"), (f"  {note}" if note else "", "dim"))


def mining_parts(s: PackageSummary) -> list[RenderableType]:
    """The Mining tab: commit filter attrition, planning-type mix, style score, plan artifacts."""
    if s.name is None:
        return [Text("The manifest did not parse: no mining facts to show.", style="dim")]
    return [
        *_attrition_parts(s.filter_stages),
        Text(),
        *_planning_parts(s.planning_types),
        Text(),
        *_style_parts(s.style),
        Text(),
        *_plan_artifact_parts(s.plan_artifacts),
    ]


def _attrition_parts(stages: list[FilterStage]) -> list[RenderableType]:
    if not stages:
        return [_section("Commit filter", "no attrition table in the manifest")]
    mined, kept = _attrition(stages)
    heading = Text.assemble(
        ("Commit filter", "bold underline"),
        "  kept ",
        (f"{kept:,}", "bold"),
        f" of {mined:,} commits (",
        (_share(kept, mined), "bold"),
        ")",
    )
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row(*(Text(h, style="dim") for h in ("stage", "kept", "dropped")))
    worst = max(stage.dropped for stage in stages)
    for stage in stages:
        dropped_style = "dim" if stage.dropped == 0 else "bold" if stage.dropped == worst else ""
        table.add_row(
            Text(neutralise(stage.name)),
            f"{stage.kept:,}",
            Text(f"{stage.dropped:,}", style=dropped_style),
        )
    return [heading, table]


def _bar(fraction: float, width: int) -> str:
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


def _planning_parts(mix: dict[str, int]) -> list[RenderableType]:
    total = sum(mix.values())
    if total == 0:
        return [_section("Planning types", "no commits")]
    known = get_args(PlanningType)
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True, style="cyan")
    for kind in [*known, *sorted(set(mix) - set(known))]:
        count = mix.get(kind, 0)
        dim = "dim" if count == 0 else ""
        table.add_row(
            Text(neutralise(kind), style=dim),
            Text(f"{count:,}", style=dim),
            Text(_share(count, total), style=dim),
            _bar(count / total, PLANNING_BAR_WIDTH),
        )
    return [_section("Planning types", f"of {plural(total, 'kept commit')}"), table]


def _metric_value(value: float) -> str:
    return f"{value:,.0f}" if value.is_integer() else f"{value:.3g}"


def _style_parts(style: StyleScore | None) -> list[RenderableType]:
    if style is None:
        return [_section("Style score", "not scored")]
    strong = style.score >= STRONG_STYLE_SCORE
    colour = "green" if strong else "yellow"
    heading = Text.assemble(
        ("Style score", "bold underline"),
        "  ",
        (f"{style.score:.0f}", f"bold {colour}"),
        "/100 · ",
        ("strong candidate" if strong else f"below {STRONG_STYLE_SCORE}", colour),
        (f" · {plural(style.files, 'Python file')}", "dim"),
    )
    if not style.metrics:
        return [heading, Text("no metrics recorded", style="dim")]
    values = {neutralise(name): _metric_value(value) for name, value in style.metrics.items()}
    name_width = max(map(len, values))
    value_width = max(map(len, values.values()))
    cells = [
        Text.assemble((name.ljust(name_width), "dim"), " ", value.rjust(value_width))
        for name, value in values.items()
    ]
    return [heading, Columns(cells, column_first=True, padding=(0, 3))]


def _plan_artifact_parts(artifacts: list[PlanArtifact]) -> list[RenderableType]:
    if not artifacts:
        return [_section("Plan artifacts", "none in the manifest")]
    counts = Counter(a.label for a in artifacts)
    tally = ", ".join(f"{counts[label]} {label}" for label in PLAN_LABEL_STYLE if counts[label])
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(width=4, no_wrap=True)
    table.add_column(ratio=1)
    for artifact in artifacts:
        table.add_row(
            Text(artifact.label, style=PLAN_LABEL_STYLE[artifact.label]),
            Text.assemble(
                (neutralise(artifact.path), "bold"),
                (neutralise(f"  {artifact.added_in[:8]}"), "dim"),
                "  ",
                neutralise(artifact.reason),
            ),
        )
    return [_section("Plan artifacts", f"{len(artifacts)}: {tally}"), table]
