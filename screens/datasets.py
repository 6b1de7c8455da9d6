"""The Datasets pane: each LoRA stage and whether it may be curated, the audit of the stored
examples per stage, the curated datasets, one's detail.

On top, a row per LoRA stage (`curate_outlook`): its items in the format it is curated in, those
no dataset of the stage holds yet, its place in the newest `cra train-plan` (largest gap first)
and whether it may be curated, else why not (the spot-check gate, no items, nothing new, or
what the last curation refused it for, while the stage stays as it was); the highlighted stage's
expected improvement and reason in full below. Then `cra data audit` in short: per stage, its
items, the share that breaks the stage's contract (red above `[curation] max_degenerate_rate`,
where curation refuses the stage), the rules broken most, token lengths against the budget,
duplicates and prompts with personal data. In the middle, every curated dataset, newest first:
stage, base model, format, when, train/eval rows, replay share, where the train rows came from,
the spot-check round that let it be curated and the plan it followed. Below, the highlighted
dataset's manifest: the chronological split (cutoff, eval-only repos), the domains, every count
and each file's sha256.

The pane polls through `EnginePane` (a thread worker that only posts messages, never two at
once, only while the pane is in view, only when the database changed); `r` polls now. The
audit reads every item, so it runs in a worker of its own, only when a poll finds the items
changed (or on `r`), never two at once. `c` curates the highlighted stage (`cra curate-data
--stage S`), `C` every stage (`cra curate-data`), each after a confirmation, in a thread
worker, and says what it made and what it could not in one notification.
Everything shown comes from the manifests, which are never rewritten, so a poll replaces rows
only when the list of datasets changed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from rich.cells import cell_len
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.core.stages import LORA_STAGES
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace, reopened
from engine.evaluation.eval_set import EvalSetError, build_eval_set
from engine.training_data.audit import AuditReport, StageAudit, audit, examples_signature
from engine.training_data.curate import CurateReport, curate
from engine.training_data.curate_outlook import StageOutlook, curation_outlook
from engine.training_data.dataset_manifest import DatasetManifest
from engine.training_data.plan_model import PlannedStage, TrainingPlan
from engine.training_data.train_plan import latest_plan, recorded_datasets
from screens.pane import EnginePane
from screens.widgets.formatting import when
from screens.workers import WORKER_ERRORS

SOURCE_SHORT = {"synthetic": "syn", "harness": "har", "logged": "log"}
FORMAT_SHORT = {"sft": "sft", "preference": "pref"}
COLUMNS = (
    ("Dataset", "id"),
    ("Stage", "stage"),
    ("Base", "base"),
    ("Format", "format"),
    ("Created", "created"),
    ("Train", "train"),
    ("Eval", "eval"),
    ("Replay", "replay"),
    ("Review rej", "review"),
    ("Plan", "plan"),
    ("Sources (train)", "sources"),
)


# -- formatting ---------------------------------------------------------------------------


def share(value: float) -> str:
    return f"{100 * value:.1f}%"


def tally(counts: dict[str, int], short: bool = False) -> str:
    """`synthetic 800, harness 100` (or `syn 800 har 100`), largest first; `—` when empty."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if short:
        return " ".join(f"{SOURCE_SHORT.get(k, k)} {n:,}" for k, n in ordered) or "—"
    return ", ".join(f"{k} {n:,}" for k, n in ordered) or "—"


def size_text(size: int) -> str:
    """`512 B`, `1.2 KiB`, `3.4 MiB`, `1.0 GiB`."""
    if size < 1024:
        return f"{size:,} B"
    scaled = size / 1024
    for unit in ("KiB", "MiB"):
        if scaled < 1024:
            return f"{scaled:.1f} {unit}"
        scaled /= 1024
    return f"{scaled:.1f} GiB"


def _by_split(counts: dict[Literal["train", "eval"], dict[str, int]]) -> str:
    return f"train: {tally(counts.get('train', {}))}\neval: {tally(counts.get('eval', {}))}"


def dataset_cells(manifest: DatasetManifest) -> dict[str, Text]:
    """One dataset's row in the table, by column key. Short forms keep it near 120 columns,
    the sources last (the detail spells them out); the review cell is the spot-check round and
    its rejects out of the items reviewed."""
    review = manifest.review
    return {
        "id": Text(manifest.id, style="bold"),
        "stage": Text(manifest.stage),
        "base": Text(manifest.base_model),
        "format": Text(FORMAT_SHORT[manifest.format]),
        "created": Text(manifest.created_at[:10]),
        "train": Text(f"{manifest.counts.train:,}", justify="right"),
        "eval": Text(f"{manifest.counts.eval:,}", justify="right"),
        "replay": Text(share(manifest.replay.share), justify="right"),
        "review": Text(f"#{review.round_id} {review.rejected}/{review.reviewed}"),
        "plan": Text("—" if manifest.plan_id is None else f"#{manifest.plan_id}"),
        "sources": Text(neutralise(tally(manifest.sources.get("train", {}), short=True))),
    }


def fill_table(table: DataTable, manifests: list[DatasetManifest]) -> None:
    """Rebuild the table with a row per dataset. Each column gets the width of its widest
    cell up front: a table left to size columns itself does so when idle, and lines it drew
    before that could stay drawn at the old widths."""
    rows = [dataset_cells(manifest) for manifest in manifests]
    table.clear(columns=True)
    for label, key in COLUMNS:
        width = max([cell_len(label), *(row[key].cell_len for row in rows)])
        table.add_column(label, key=key, width=width)
    for manifest, cells in zip(manifests, rows, strict=True):
        table.add_row(*cells.values(), key=manifest.id)


def plan_title(found: tuple[int, TrainingPlan] | None, unreadable: bool = False) -> str:
    """The stages box's title: which plan the Plan column follows, or what to do without one."""
    if unreadable:
        return "Stages · the newest training plan could not be read"
    if found is None:
        return "Stages · no training plan yet: `cra train-plan` writes one"
    plan_id, plan = found
    head = neutralise(f"Stages · plan {plan_id} · {when(plan.created_at)} by {plan.created_by} · ")
    weak = len({p.stage for p in plan.stages})
    if not weak:
        return head + "no stage is weak"
    return head + f"{weak} weak stage{'s' if weak > 1 else ''}, numbered largest gap first"


def planned_for(
    found: tuple[int, TrainingPlan] | None, stage: str
) -> list[tuple[int, PlannedStage]]:
    """The plan's entries for `stage` with their places (largest gap first, from 1)."""
    if found is None:
        return []
    return [(n, p) for n, p in enumerate(found[1].stages, 1) if p.stage == stage]


STAGE_COLUMNS = (
    ("Stage", "stage"),
    ("Format", "format"),
    ("Items", "items"),
    ("New", "new"),
    ("Plan", "plan"),
    ("Curate", "curate"),
)


def curate_text(outlook: StageOutlook, refused: str | None) -> Text:
    """✓ and the gate's verdict for a stage that may be curated; ✗ and why not, or why the
    last curation refused it."""
    if refused is not None:
        return Text.assemble(("✗ ", "bold red"), neutralise(f"refused: {refused}"))
    if outlook.ready:
        return Text.assemble(("✓ ", "bold green"), neutralise(outlook.reason))
    return Text.assemble(("✗ ", "bold red"), neutralise(outlook.reason))


def stage_cells(
    outlook: StageOutlook, planned: list[tuple[int, PlannedStage]], refused: str | None
) -> dict[str, Text]:
    """One stage's row in the stages table, by column key."""
    plan = " ".join(
        f"{n}. {p.hyperparameters.method.upper()} r{p.hyperparameters.rank}" for n, p in planned
    )
    return {
        "stage": Text(outlook.stage, style="bold"),
        "format": Text(FORMAT_SHORT[outlook.format]),
        "items": Text(f"{outlook.items:,}", justify="right"),
        "new": Text(f"{outlook.new:,}", justify="right"),
        "plan": Text(plan or "—", style="bold yellow" if plan else "dim"),
        "curate": curate_text(outlook, refused),
    }


def fill_stages(table: DataTable, rows: dict[str, dict[str, Text]], width: int) -> None:
    """Rebuild the stages table; the Curate cells are cut to what `width` leaves them (the
    line below the table gives the highlighted stage's in full)."""
    table.clear(columns=True)
    widths = {
        key: max([cell_len(label), *(row[key].cell_len for row in rows.values())])
        for label, key in STAGE_COLUMNS
    }
    padding = 2 * table.cell_padding
    rest = width - sum(widths[key] + padding for key in widths if key != "curate") - padding
    widths["curate"] = max(cell_len("Curate"), rest)
    for label, key in STAGE_COLUMNS:
        table.add_column(label, key=key, width=widths[key])
    for stage, cells in rows.items():
        cut = cells["curate"].copy()
        cut.truncate(widths["curate"], overflow="ellipsis")
        table.add_row(*{**cells, "curate": cut}.values(), key=stage)


def stage_line(
    outlook: StageOutlook,
    found: tuple[int, TrainingPlan] | None,
    refused: str | None,
) -> Text:
    """The highlighted stage under the table: what the plan expects of it, then whether it
    may be curated, in full."""
    if found is None:
        expected = "no training plan yet"
    else:
        plan_id = found[0]
        expected = "; ".join(
            f"plan {plan_id} #{n}: {p.expected_improvement}"
            for n, p in planned_for(found, outlook.stage)
        ) or (f"not weak in plan {plan_id}")
    line = Text.assemble(
        (f"{outlook.stage} ({outlook.format})", "bold"), neutralise(f" · {expected}\n")
    )
    line.append_text(curate_text(outlook, refused))
    return line


def detail_renderable(manifest: DatasetManifest) -> RenderableType:
    """The dataset's manifest: split, review, replay, counts, sources, domains and files. Its
    rows quote repos, domains and operators, so each is neutralised and none read as markup."""
    split, counts, review, replay = (
        manifest.split,
        manifest.counts,
        manifest.review,
        manifest.replay,
    )
    table = Table(box=None, padding=(0, 1), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)

    def row(label: str, value: str) -> None:
        table.add_row(label, Text(neutralise(value)))

    row(
        "Made",
        f"{when(manifest.created_at)} by {manifest.created_by}"
        + ("" if manifest.plan_id is None else f" · following plan {manifest.plan_id}")
        + f" · seed {manifest.seed}",
    )
    row(
        "Split",
        f"{split.rule} · eval share {share(split.eval_share)} · cutoff {split.cutoff or '—'}\n"
        f"eval-only repos: {', '.join(split.eval_repos) or '—'} · "
        f"{split.train_tasks:,} train tasks, {split.eval_tasks:,} eval tasks",
    )
    row(
        "Review",
        f"round {review.round_id}: {review.reviewed} reviewed, {review.rejected} rejected, "
        f"{review.flipped} flipped",
    )
    row(
        "Replay",
        f"{share(replay.share)} of train ({share(replay.target_share)} wanted) · "
        f"parents: {', '.join(replay.parents) or '—'}",
    )
    row(
        "Counts",
        f"{counts.candidates:,} candidates · {counts.excluded_by_review:,} excluded by review · "
        f"{counts.flipped_by_review:,} flipped · {counts.degenerate:,} degenerate left out · "
        f"{counts.exact_duplicates:,} exact and "
        f"{counts.near_duplicates:,} near duplicates (≥ {manifest.near_duplicate_threshold:g}) · "
        f"{counts.dropped_for_balance:,} dropped for balance (≤ "
        f"{share(manifest.max_domain_share)} a domain) · {counts.train:,} train, "
        f"{counts.eval:,} eval, {counts.replay:,} replayed",
    )
    row("Sources", _by_split(manifest.sources))
    row("Domains", _by_split(manifest.domains))
    files = Table(box=None, padding=(0, 1), show_header=False)
    files.add_column(no_wrap=True)
    files.add_column(justify="right", no_wrap=True)
    files.add_column(justify="right", no_wrap=True)
    files.add_column(no_wrap=True, style="dim")
    for name, record in manifest.files.items():
        files.add_row(name, f"{record.rows:,} rows", size_text(record.bytes), record.sha256)
    table.add_row("Files", files)
    return table


def audit_renderable(report: AuditReport | None, limit: float) -> RenderableType:
    """A row per audited stage: items, degenerate share (red above `limit`, the curation
    refusal's), the rules broken most, tokens against the budget, duplicates and personal data
    (`cra data audit` prints it all)."""
    if report is None:
        return Text("Auditing the examples…", style="dim")
    if not report.stages:
        return Text("No examples yet: `cra data build` derives them.", style="dim")
    table = Table(box=None, padding=(0, 1), expand=True)
    table.add_column("Stage", no_wrap=True, style="bold")
    table.add_column("Items", justify="right", no_wrap=True)
    table.add_column("Degenerate", justify="right", no_wrap=True)
    table.add_column("Rules broken most", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("Tokens p95/budget", justify="right", no_wrap=True)
    table.add_column("Dropped", justify="right", no_wrap=True)
    table.add_column("Dups", justify="right", no_wrap=True)
    table.add_column("PII", justify="right", no_wrap=True)
    for stage in report.stages:
        table.add_row(*_audit_cells(stage, limit))
    return table


def _audit_cells(stage: StageAudit, limit: float) -> list[Text]:
    rate = Text(f"{stage.degenerate:,} {share(stage.degenerate_rate)}", justify="right")
    if stage.degenerate_rate > limit:
        rate.stylize("bold red")
    elif stage.degenerate == 0 and stage.items:
        rate.stylize("green")
    broken = sorted((t for t in stage.rules if t.items), key=lambda t: (-t.items, t.rule))
    rules = ", ".join(f"{t.rule} {t.items:,}" for t in broken) or "—"
    tokens = stage.tokens
    dups = stage.duplicates.within_package + stage.duplicates.across_packages
    pii = Text(f"{stage.personal_data.items:,}", justify="right")
    if stage.personal_data.items:
        pii.stylize("bold red")
    return [
        Text(stage.stage),
        Text(f"{stage.items:,}", justify="right"),
        rate,
        Text(rules),
        Text(f"{'—' if tokens.p95 is None else f'{tokens.p95:,}'}/{tokens.budget:,}"),
        Text(f"{tokens.dropped_by_budget:,}", justify="right"),
        Text(f"{dups:,}", justify="right"),
        pii,
    ]


# -- messages -----------------------------------------------------------------------------


@dataclass
class PlanPolled(Message):
    """The latest plan (None when there is none), or the error that stopped reading it."""

    found: tuple[int, TrainingPlan] | None
    error: str | None


@dataclass
class StagesPolled(Message):
    """Each LoRA stage's curation outlook, or the error that stopped reading them."""

    outlook: list[StageOutlook]
    error: str | None


@dataclass
class DatasetsPolled(Message):
    """Every dataset's manifest, newest first, or the error that stopped reading them."""

    manifests: list[DatasetManifest]
    error: str | None


@dataclass
class ExamplesPolled(Message):
    """How many items the database holds and the newest id (`examples_signature`), or the
    error that stopped reading them."""

    signature: tuple[int, int | None] | None
    error: str | None


@dataclass
class Audited(Message):
    """The audit of the items as they were at `signature`, or the error that stopped it."""

    report: AuditReport | None
    signature: tuple[int, int | None] | None
    error: str | None


# -- the pane -----------------------------------------------------------------------------


def build_eval_sets(ws: Workspace) -> list[str]:
    """Each LoRA stage's eval set built, one line each: built, unchanged, or why none."""
    lines: list[str] = []
    for stage in LORA_STAGES:
        try:
            built = build_eval_set(ws, stage)
        except EvalSetError as exc:
            lines.append(f"{stage}: no eval set: {exc}")
            continue
        lines.append(built.line())
    return lines


class DatasetsScreen(EnginePane):
    """The stages on top, the audit, the datasets, the highlighted dataset's detail below."""

    PANE_TITLE = "Datasets"
    POLL_S = 1.0
    POLL_TITLE = "datasets could not be read"
    CSS_PATH = "datasets.tcss"
    AUTO_FOCUS = "#stages"
    BINDINGS = [
        Binding(
            "c",
            "curate",
            "Curate stage",
            tooltip="Curate the highlighted stage (cra curate-data --stage S)",
        ),
        Binding(
            "C",
            "curate_all",
            "Curate all",
            tooltip="Curate every stage whose spot-check allows it, one summary",
        ),
        Binding(
            "e",
            "build_eval_sets",
            "Eval sets",
            tooltip="Freeze each LoRA stage's newest held-out tasks as its eval set",
        ),
        Binding("r", "poll_now", "Refresh", tooltip="Read the plans and datasets again now"),
    ]

    def __init__(self, workspace: Workspace) -> None:
        super().__init__(workspace)
        self._manifests: dict[str, DatasetManifest] = {}
        self._selected: str | None = None
        self._plan: tuple[int, TrainingPlan] | None = None
        self._outlook: dict[str, StageOutlook] = {}
        self._stage: str | None = None
        # A stage's refusal by the last curation, kept while its outlook is what it was then.
        self._refused: dict[str, tuple[StageOutlook, str]] = {}
        self._stage_rows: dict[str, dict[str, Text]] = {}
        self._stages_width = 0
        self._errors: dict[str, str | None] = {
            "plan": None,
            "stages": None,
            "datasets": None,
            "audit": None,
        }
        self._audit: AuditReport | None = None
        self._audited: tuple[int, int | None] | None = None
        self._audit_target: tuple[int, int | None] | None = None
        self._auditing = False
        self._audit_wanted = False

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="datasets-pane"):
            with Vertical(id="stages-box") as stages_box:
                stages_box.border_title = "Stages"
                yield DataTable(id="stages", cursor_type="row")
                yield Static(id="stage-line")
            with VerticalScroll(id="audit-box") as audit_box:
                audit_box.border_title = "Audit"
                yield Static(id="audit")
            table = DataTable(id="datasets", cursor_type="row")
            table.border_title = "Datasets"
            yield table
            with VerticalScroll(id="detail-box") as detail_box:
                detail_box.border_title = "Dataset"
                yield Static(id="detail")

    def on_mount(self) -> None:
        fill_table(self.query_one("#datasets", DataTable), [])
        self._show_stages()
        self._show_detail()
        self._show_audit()

    @property
    def selected_dataset(self) -> str | None:
        return self._selected

    @property
    def selected_stage(self) -> str | None:
        return self._stage

    @property
    def outlook(self) -> list[StageOutlook]:
        return list(self._outlook.values())

    @property
    def dataset_ids(self) -> list[str]:
        return list(self._manifests)

    @property
    def audit_report(self) -> AuditReport | None:
        return self._audit

    def action_poll_now(self) -> None:
        self._audited = self._audit_target = None
        self.request_poll()

    # -- curation -------------------------------------------------------------------------

    def action_curate(self) -> None:
        """Curate the highlighted stage after asking; a stage the outlook says cannot be
        curated is refused at once, with the reason."""
        outlook = self._outlook.get(self._stage) if self._stage is not None else None
        if outlook is None:
            self.notify("No stage to curate yet: the stages are being read.", severity="warning")
            return
        if not outlook.ready:
            self.notify(
                f"{outlook.stage} ({outlook.format}) cannot be curated: {outlook.reason}",
                title="not curated",
                severity="warning",
                markup=False,
            )
            return
        body = (
            f"Curate a dataset of {outlook.stage} ({outlook.format}) from its {outlook.new:,} "
            f"items no {outlook.stage} dataset holds yet, spot-checked by round "
            f"{outlook.round_id} (the same as `cra curate-data --stage {outlook.stage}`). "
            "Nothing is written if curation refuses it; the reason is notified."
        )
        self.confirm(
            f"Curate {outlook.stage}?",
            body,
            lambda: self._start_curation([outlook], partial(curate, stage=outlook.stage)),
        )

    def action_curate_all(self) -> None:
        """Curate every stage whose spot-check allows it, after asking, as `cra curate-data`
        does; one summary notification."""
        ready = [outlook for outlook in self._outlook.values() if outlook.ready]
        if not ready:
            self.notify(
                "No stage may be curated now; the stages list says why.",
                title="not curated",
                severity="warning",
            )
            return
        names = ", ".join(f"{o.stage} ({o.format})" for o in ready)
        body = (
            "Curate a dataset for every stage whose newest spot-check round is fully decided "
            f"and within the reject rate (the same as `cra curate-data`): now {names}. The "
            "other stages are not curated; the stages list says why."
        )
        self.confirm(
            "Curate every ready stage?",
            body,
            lambda: self._start_curation(list(self._outlook.values()), curate),
        )

    def _start_curation(
        self, outlooks: list[StageOutlook], call: Callable[[Workspace], CurateReport]
    ) -> None:
        self.fetch(
            call,
            partial(self._curated, {o.stage: o for o in outlooks}),
            title="curation refused",
            group="curate",
        )

    def _curated(self, asked: dict[str, StageOutlook], report: CurateReport) -> None:
        """One notification for the whole curation; each refused stage keeps its refusal in
        the stages list while its outlook is what it was when curation was asked."""
        for stage in asked:
            self._refused.pop(stage, None)
        for blocked in report.blocked:
            if blocked.stage in asked:
                self._refused[blocked.stage] = (asked[blocked.stage], blocked.reason)
        text = report.summary()
        if report.blocked and (report.curated or len(report.blocked) > 1):
            text += " — the stages list says why"
        self.notify(
            text,
            title="curation",
            severity="information" if report.curated else "warning",
            markup=False,
        )
        if report.curated:
            self._selected = report.curated[0].id
        self._show_stages()
        self.request_poll()

    def action_build_eval_sets(self) -> None:
        body = (
            "Freeze each LoRA stage's newest held-out tasks as its eval set (the same as\n"
            "`cra eval set build --stage S` for every stage). A stage whose newest tasks are\n"
            "unchanged keeps its version; the tasks of every eval set never train. Build them\n"
            "before curating: curation then holds their tasks out."
        )
        self.confirm(
            "Build eval sets?",
            body,
            lambda: self.fetch(
                build_eval_sets,
                self._eval_sets_built,
                title="eval sets refused",
                group="eval-sets",
            ),
        )

    def _eval_sets_built(self, lines: list[str]) -> None:
        for line in lines:
            self.notify(line, title="eval set", markup=False)

    # -- polling --------------------------------------------------------------------------

    def read(self, ws: Workspace, *args: object) -> None:
        try:
            self.post_message(PlanPolled(latest_plan(ws), None))
        except WORKER_ERRORS as exc:
            self.post_message(PlanPolled(None, str(exc)))
        try:
            self.post_message(StagesPolled(curation_outlook(ws), None))
        except WORKER_ERRORS as exc:
            self.post_message(StagesPolled([], str(exc)))
        try:
            self.post_message(DatasetsPolled(recorded_datasets(ws), None))
        except WORKER_ERRORS as exc:
            self.post_message(DatasetsPolled([], str(exc)))
        try:
            self.post_message(ExamplesPolled(examples_signature(ws), None))
        except WORKER_ERRORS as exc:
            self.post_message(ExamplesPolled(None, str(exc)))

    def _report(self, what: str, error: str | None) -> None:
        """Notify an error once, not on every poll that meets it again."""
        if error is not None and error != self._errors[what]:
            self.notify(error, title=f"{what} could not be read", severity="error", markup=False)
        self._errors[what] = error

    @on(PlanPolled)
    def _plan_polled(self, message: PlanPolled) -> None:
        self._report("plan", message.error)
        self._plan = None if message.error is not None else message.found
        self._show_stages()

    @on(StagesPolled)
    def _stages_polled(self, message: StagesPolled) -> None:
        """Redraw the stages when their outlook changed; a refusal stays only while its
        stage's outlook is what it was when curation refused it."""
        self._report("stages", message.error)
        if message.error is not None:
            return
        outlook = {o.stage: o for o in message.outlook}
        if outlook == self._outlook:
            return
        first = not self._outlook
        self._outlook = outlook
        self._refused = {
            stage: (then, reason)
            for stage, (then, reason) in self._refused.items()
            if outlook.get(stage) == then
        }
        if first:
            self._stage = next((o.stage for o in message.outlook if o.ready), None)
        self._show_stages()

    @on(DatasetsPolled)
    def _datasets_polled(self, message: DatasetsPolled) -> None:
        self._report("datasets", message.error)
        if message.error is not None:
            return
        previous = list(self._manifests)
        self._manifests = {m.id: m for m in message.manifests}
        table = self.query_one("#datasets", DataTable)
        table.border_title = f"Datasets · {len(self._manifests)}"
        if list(self._manifests) != previous:
            fill_table(table, message.manifests)
        if self._selected not in self._manifests:
            self._selected = next(iter(self._manifests), None)
        if self._selected is not None:
            table.move_cursor(row=table.get_row_index(self._selected), animate=False)
        self._show_detail()

    @on(ExamplesPolled)
    def _examples_polled(self, message: ExamplesPolled) -> None:
        """Audit again when the items changed since the last audit (or the one under way)."""
        self._report("audit", message.error)
        signature = message.signature
        if signature is None or signature in (self._audited, self._audit_target):
            return
        self._audit_target = signature
        if self._auditing:
            self._audit_wanted = True
        else:
            self._start_audit()

    def _start_audit(self) -> None:
        self._auditing = True
        self._audit_wanted = False
        self._run_audit()

    @work(thread=True, group="audit")
    def _run_audit(self) -> None:
        try:
            with reopened(self._ws) as ws:
                signature = examples_signature(ws)
                report = audit(ws)
        except WORKER_ERRORS as exc:
            self.post_message(Audited(None, None, str(exc)))
            return
        self.post_message(Audited(report, signature, None))

    @on(Audited)
    def _audit_done(self, message: Audited) -> None:
        self._auditing = False
        self._report("audit", message.error)
        if message.report is not None:
            self._audit = message.report
            self._audited = message.signature
            self._show_audit()
        if self._audit_wanted:
            self._start_audit()

    def _show_audit(self) -> None:
        box = self.query_one("#audit-box")
        limit = self._ws.config.curation.max_degenerate_rate
        self.query_one("#audit", Static).update(audit_renderable(self._audit, limit))
        if self._audit is not None:
            items = sum(stage.items for stage in self._audit.stages)
            box.border_title = (
                f"Audit · {items:,} items · curation refuses above {share(limit)} degenerate"
            )

    # -- the stages -----------------------------------------------------------------------

    def _refusal(self, stage: str) -> str | None:
        refused = self._refused.get(stage)
        return None if refused is None else refused[1]

    def _show_stages(self) -> None:
        """Refill the stages table when a row or the width changed (its Curate cells are cut
        to the width), keep the highlighted stage, and say it in full below."""
        title = plan_title(self._plan, unreadable=self._errors["plan"] is not None)
        self.query_one("#stages-box").border_title = title
        table = self.query_one("#stages", DataTable)
        rows = {
            stage: stage_cells(outlook, planned_for(self._plan, stage), self._refusal(stage))
            for stage, outlook in self._outlook.items()
        }
        width = self.size.width - 4  # the box's border and padding
        if rows != self._stage_rows or width != self._stages_width:
            self._stage_rows, self._stages_width = rows, width
            fill_stages(table, rows, width)
        if self._stage not in self._outlook:
            self._stage = next(iter(self._outlook), None)
        if self._stage is not None:
            table.move_cursor(row=table.get_row_index(self._stage), animate=False)
        self._show_stage_line()

    def _show_stage_line(self) -> None:
        line = self.query_one("#stage-line", Static)
        outlook = self._outlook.get(self._stage) if self._stage is not None else None
        if outlook is None:
            line.update(Text("Reading the stages…", style="dim"))
            return
        line.update(stage_line(outlook, self._plan, self._refusal(outlook.stage)))

    def on_resize(self, event: events.Resize) -> None:
        """Cut the stages' Curate cells to the new width."""
        self._show_stages()

    @on(DataTable.RowHighlighted, "#stages")
    def _stage_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value != self._stage:
            self._stage = event.row_key.value
            self._show_stage_line()

    # -- selection ------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#datasets")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value != self._selected:
            self._selected = event.row_key.value
            self._show_detail()

    def _show_detail(self) -> None:
        box = self.query_one("#detail-box")
        detail = self.query_one("#detail", Static)
        manifest = self._manifests.get(self._selected) if self._selected is not None else None
        if manifest is None:
            box.border_title = "Dataset"
            detail.update(
                Text("No dataset yet: `cra curate-data` makes one from reviewed items.", "dim")
            )
            return
        box.border_title = (
            f"Dataset {manifest.id} · {manifest.stage} · {manifest.base_model} base · "
            f"{manifest.format}"
        )
        detail.update(detail_renderable(manifest))
