"""The Datasets pane: the latest training plan's weak stages, the audit of the stored examples
per stage, the curated datasets, one's detail.

On top, what the newest `cra train-plan` asks for: each weak stage with its run and the
improvement expected. Below it, `cra data audit` in short: per stage, its items, the share that
breaks the stage's contract (red above `[curation] max_degenerate_rate`, where curation refuses
the stage), the rules broken most, token lengths against the budget, duplicates and prompts with
personal data. In the middle, every curated dataset, newest first: stage, base model,
format, when, train/eval rows, replay share, where the train rows came from, the spot-check
round that let it be curated and the plan it followed. Below, the highlighted dataset's manifest:
the chronological split (cutoff, eval-only repos), the domains, every count and each file's
sha256.

The pane polls through `EnginePane` (a thread worker that only posts messages, never two at
once, only while the pane is in view, only when the database changed); `r` polls now. The
audit reads every item, so it runs in a worker of its own, only when a poll finds the items
changed (or on `r`), never two at once. `c` curates every stage the spot-check allows, after a
confirmation, in a thread worker; what it made and what it could not are notified.
Everything shown comes from the manifests, which are never rewritten, so a poll replaces rows
only when the list of datasets changed.
"""

from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
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
from engine.training_data.dataset_manifest import DatasetManifest
from engine.training_data.plan_model import TrainingPlan
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


def plan_text(found: tuple[int, TrainingPlan] | None) -> RenderableType:
    """The latest plan's weak stages, largest gap first, one line each (`cra train-plan`
    prints the whole plan); or what to do without one."""
    if found is None:
        return Text("No training plan yet: `cra train-plan` writes one.", style="dim")
    plan_id, plan = found
    head = Text.assemble(
        (f"Plan {plan_id}", "bold"),
        neutralise(f" · {when(plan.created_at)} by {plan.created_by} · "),
    )
    if not plan.stages:
        head.append("no stage is weak: nothing to train", style="green")
        return head
    stages = {p.stage for p in plan.stages}
    head.append(f"{len(stages)} weak stage{'s' if len(stages) > 1 else ''}, largest gap first")
    table = Table(box=None, padding=(0, 1), show_header=False, expand=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True, style="bold yellow")
    table.add_column(no_wrap=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for position, planned in enumerate(plan.stages, 1):
        hp = planned.hyperparameters
        table.add_row(
            f"{position}.",
            planned.stage,
            f"{hp.method.upper()} r{hp.rank}",
            Text(neutralise(planned.expected_improvement)),
        )
    return Group(head, table)


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
    """The latest plan on top, the datasets in the middle, the highlighted one's detail below."""

    PANE_TITLE = "Datasets"
    POLL_S = 2.0
    POLL_TITLE = "datasets could not be read"
    CSS_PATH = "datasets.tcss"
    AUTO_FOCUS = "#datasets"
    BINDINGS = [
        Binding("c", "curate", "Curate", tooltip="Curate every stage whose spot-check allows it"),
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
        self._errors: dict[str, str | None] = {"plan": None, "datasets": None, "audit": None}
        self._audit: AuditReport | None = None
        self._audited: tuple[int, int | None] | None = None
        self._audit_target: tuple[int, int | None] | None = None
        self._auditing = False
        self._audit_wanted = False

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="datasets-pane"):
            with VerticalScroll(id="plan-box") as plan_box:
                plan_box.border_title = "Training plan"
                yield Static(id="plan")
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
        self._show_detail()
        self._show_audit()

    @property
    def selected_dataset(self) -> str | None:
        return self._selected

    @property
    def dataset_ids(self) -> list[str]:
        return list(self._manifests)

    @property
    def audit_report(self) -> AuditReport | None:
        return self._audit

    def action_poll_now(self) -> None:
        self._audited = self._audit_target = None
        self.request_poll()

    def action_curate(self) -> None:
        body = (
            "Curate a dataset for every stage and format whose newest spot-check round is fully\n"
            "decided and within the reject rate (the same as `cra curate-data`). Stages that\n"
            "cannot be curated are listed with the reason; nothing is written for them."
        )
        self.confirm(
            "Curate datasets?",
            body,
            lambda: self.fetch(curate, self._curated, title="curation refused", group="curate"),
        )

    def _curated(self, report: CurateReport) -> None:
        made = [done.id for done in report.curated]
        blocked = [f"{b.stage} {b.format}: {b.reason}" for b in report.blocked]
        if made:
            self.notify(f"Curated {', '.join(made)}.", title="curation", markup=False)
        else:
            self.notify("No dataset was curated.", title="curation", severity="warning")
        for line in blocked[:4]:
            self.notify(line, title="not curated", severity="warning", markup=False)
        if len(blocked) > 4:
            more = len(blocked) - 4
            self.notify(f"… and {more} more; `cra curate-data` lists them all", markup=False)
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
        if message.error is None:
            self.query_one("#plan", Static).update(plan_text(message.found))

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
