"""The Harness pane: campaigns, the selected one's progress and workers, and its attempts.

Top left, the campaigns (few: a small table). Top right, the selected campaign's progress per
package and overall (done/total, resolved rate, throughput, ETA) and one live line per worker.
Below, the campaign's attempts in an `AttemptList` (screens/widgets/attempt_list.py), which
reads the pages scrolled into view itself.

The pane polls once a second through `EnginePane`; the poll posts the attempt list's page
before the slower progress figures, so the list draws first. Campaign actions (create, start,
pause, stop) are engine calls in thread workers; a refusal becomes a notification. The new
campaign form lists the approved packages, read in a worker before it opens.
"""

from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from engine.core.terminal_text import neutralise
from engine.core.timestamps import Clock, duration_text, wall_clock
from engine.core.workspace import Workspace
from engine.harness.campaigns import (
    CampaignSpec,
    create_campaign,
    pause_campaign,
    reconcile_campaigns,
    start_campaign,
    stop_campaign,
)
from engine.harness.progress import (
    OUTCOMES,
    AttemptRow,
    CampaignProgress,
    CampaignSummary,
    NodeLine,
    Outcome,
    Progress,
    WorkerLine,
    attempt_count,
    attempt_page,
    campaign_summaries,
    node_lines,
    package_progress,
    parse_time,
    worker_lines,
)
from engine.harness.task_yield import (
    PackageYield,
    campaign_yields,
    reasons_line,
    yield_summary,
)
from engine.intake.approval import list_corpus
from screens.harness_attempt import AttemptScreen
from screens.harness_form import NewCampaignScreen
from screens.pane import ActionDone, EnginePane
from screens.widgets.attempt_list import PAGE_SIZE, AttemptList, AttemptSource, header_text
from screens.widgets.formatting import CAMPAIGN_STATUS_STYLE
from screens.widgets.keyed import KeyedStatic
from screens.widgets.progress import StableProgressBar

FILTERS: tuple[Outcome | None, ...] = (None, *OUTCOMES)
Action = Literal["start", "pause", "stop"]
# The campaign states whose figures move with the clock, not only with the database.
LIVE = ("running", "pausing", "stopping")


# -- formatting ---------------------------------------------------------------------------


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f} %"


def throughput_text(per_min: float | None) -> str:
    return "—" if per_min is None else f"{per_min:.1f}/min"


def eta_text(progress: Progress) -> str:
    return "done" if progress.remaining == 0 else duration_text(progress.eta_s)


def filter_name(outcome: Outcome | None) -> str:
    return outcome or "all"


# -- messages -----------------------------------------------------------------------------


@dataclass
class CampaignsPolled(Message):
    campaigns: list[CampaignSummary]


@dataclass
class AttemptsPolled(Message):
    source: AttemptSource
    count: int
    pages: dict[int, list[AttemptRow]]


@dataclass
class ProgressPolled(Message):
    campaign_id: int
    progress: CampaignProgress
    workers: list[WorkerLine]
    nodes: list[NodeLine]
    yields: list[PackageYield]


# -- the pane -----------------------------------------------------------------------------


class HarnessScreen(EnginePane):
    """Campaigns and the selected campaign's progress on top; its attempts below."""

    PANE_TITLE = "Harness"
    POLL_S = 1.0
    POLL_TITLE = "harness poll failed"
    ACTION_TITLE = "harness"
    CSS_PATH = "harness.tcss"
    BINDINGS = [
        Binding("n", "new_campaign", "New campaign", tooltip="Create a campaign over packages"),
        Binding("s", "campaign('start')", "Start/resume", tooltip="Start or resume the campaign"),
        Binding("p", "campaign('pause')", "Pause", tooltip="Finish running attempts, then stop"),
        Binding("x", "stop", "Stop", tooltip="Stop now; running attempts are redone on start"),
        Binding("f", "cycle_filter", "Filter", tooltip="Cycle the attempt list's outcome filter"),
        Binding("escape", "focus_campaigns", "Back to the campaigns", show=False),
    ]

    def __init__(self, workspace: Workspace, now: Clock = wall_clock) -> None:
        super().__init__(workspace, now=now)
        self._campaigns: dict[int, CampaignSummary] = {}
        self._campaigns_shown: list[CampaignSummary] | None = None
        self._selected: int | None = None
        self._outcome: Outcome | None = None

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="harness"):
            with Horizontal(id="top"):
                campaigns = DataTable(id="campaigns", cursor_type="row")
                campaigns.border_title = "Campaigns"
                yield campaigns
                with VerticalScroll(id="progress") as progress:
                    progress.border_title = "Progress"
                    yield Static(id="progress-head")
                    yield StableProgressBar(id="overall", show_eta=False)
                    yield KeyedStatic(id="overall-text")
                    yield KeyedStatic(id="packages-progress")
                    yield KeyedStatic(id="yield")
                    yield KeyedStatic(id="workers")
            with Vertical(id="attempts-box") as box:
                box.border_title = "Attempts"
                yield Static(id="attempts-header")
                yield AttemptList(self._ws, id="attempts")

    def on_mount(self) -> None:
        table = self.query_one("#campaigns", DataTable)
        for label, key in [
            ("#", "id"),
            ("Status", "status"),
            ("Pipeline", "pipeline"),
            ("Model", "model"),
            ("Done", "done"),
        ]:
            table.add_column(label, key=key)
        self._render_progress(None, [], [], [])
        self._update_attempts_title()

    def on_resize(self) -> None:
        header = self.query_one("#attempts-header", Static)
        header.update(header_text(self.query_one(AttemptList).size.width))

    # -- polling --------------------------------------------------------------------------

    def poll_args(self) -> tuple[Any, ...]:
        attempts = self.query_one(AttemptList)
        source = self._source()
        pages = attempts.visible_pages() if source == attempts.source else [0]
        return (self._selected, self._outcome, pages)

    def settle(self, ws: Workspace) -> None:
        reconcile_campaigns(ws)

    def must_read(self) -> bool:
        """A live campaign's throughput, ETA and worker times move with the clock."""
        campaign = self._campaigns.get(self._selected) if self._selected is not None else None
        return campaign is not None and campaign.status in LIVE

    def read(
        self, ws: Workspace, wanted: int | None, outcome: Outcome | None, pages: list[int]
    ) -> None:
        campaigns = campaign_summaries(ws)
        self.post_message(CampaignsPolled(campaigns))
        ids = [c.id for c in campaigns]
        chosen = wanted if wanted in ids else (ids[0] if ids else None)
        if chosen is None:
            return
        count = attempt_count(ws, chosen, outcome)
        rows = {
            page: attempt_page(ws, chosen, page * PAGE_SIZE, PAGE_SIZE, outcome)
            for page in pages
            if page * PAGE_SIZE < count
        }
        self.post_message(AttemptsPolled(AttemptSource(chosen, outcome), count, rows))
        now = self._now()
        progress = package_progress(ws, chosen, now)
        yields = campaign_yields(ws, [package.digest for package in progress.packages])
        workers = worker_lines(ws, chosen, now)
        self.post_message(ProgressPolled(chosen, progress, workers, node_lines(ws, chosen), yields))

    @on(CampaignsPolled)
    def _campaigns_polled(self, message: CampaignsPolled) -> None:
        if message.campaigns == self._campaigns_shown:
            return
        self._campaigns_shown = message.campaigns
        previous = list(self._campaigns)
        self._campaigns = {c.id: c for c in message.campaigns}
        if self._selected not in self._campaigns:
            self._select(next(iter(self._campaigns), None))
        table = self.query_one("#campaigns", DataTable)
        if list(self._campaigns) == previous:
            for campaign in message.campaigns:
                for key, value in self._campaign_cells(campaign).items():
                    table.update_cell(str(campaign.id), key, value, update_width=True)
        else:
            table.clear()
            for campaign in message.campaigns:
                table.add_row(*self._campaign_cells(campaign).values(), key=str(campaign.id))
        if self._selected is not None:
            table.move_cursor(row=table.get_row_index(str(self._selected)), animate=False)
        self._render_head()

    @on(AttemptsPolled)
    def _attempts_polled(self, message: AttemptsPolled) -> None:
        if message.source != self._source():
            return
        self.query_one(AttemptList).show(message.source, message.count, message.pages)
        self._update_attempts_title()

    @on(ProgressPolled)
    def _progress_polled(self, message: ProgressPolled) -> None:
        if message.campaign_id == self._selected:
            self._render_progress(message.progress, message.workers, message.nodes, message.yields)

    # -- selection ------------------------------------------------------------------------

    def _source(self) -> AttemptSource | None:
        return None if self._selected is None else AttemptSource(self._selected, self._outcome)

    def _select(self, campaign_id: int | None) -> None:
        if campaign_id == self._selected:
            return
        self._selected = campaign_id
        self.query_one(AttemptList).show(None, 0, {})
        self._render_progress(None, [], [], [])
        self._render_head()
        self._update_attempts_title()
        self.request_poll()

    @on(DataTable.RowHighlighted, "#campaigns")
    def _campaign_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(int(event.row_key.value))

    @on(DataTable.RowSelected, "#campaigns")
    def _campaign_chosen(self) -> None:
        self.query_one(AttemptList).focus()

    @on(AttemptList.Chosen)
    def _attempt_chosen(self, message: AttemptList.Chosen) -> None:
        self.app.push_screen(AttemptScreen(self._ws, message.attempt_id))

    @property
    def selected_campaign(self) -> int | None:
        return self._selected

    @property
    def outcome_filter(self) -> Outcome | None:
        return self._outcome

    # -- actions --------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        self._outcome = FILTERS[(FILTERS.index(self._outcome) + 1) % len(FILTERS)]
        self.query_one(AttemptList).show(None, 0, {})
        self._update_attempts_title()
        self.request_poll()

    def action_focus_campaigns(self) -> None:
        self.query_one("#campaigns").focus()

    def action_new_campaign(self) -> None:
        """The form over the approved packages, read first in a worker."""
        self.fetch(
            lambda ws: [(e.label, e.digest) for e in list_corpus(ws) if e.present],
            self._new_campaign_form,
            title="harness",
            group="action",
        )

    def _new_campaign_form(self, packages: list[tuple[str, str]]) -> None:
        def submitted(spec: CampaignSpec | None) -> None:
            if spec is not None:
                self.act(
                    lambda ws: create_campaign(ws, spec, ws.config.operator),
                    lambda campaign_id: f"campaign {campaign_id} created; start it with s",
                    select=lambda campaign_id: campaign_id,
                )

        model = self._ws.config.harness.openai.model
        self.app.push_screen(NewCampaignScreen(packages, model), submitted)

    def action_campaign(self, action: Action) -> None:
        campaign_id = self._require_campaign(action)
        if campaign_id is not None:
            self._act(action, campaign_id)

    def _act(self, action: Action, campaign_id: int) -> None:
        call = {"start": start_campaign, "pause": pause_campaign, "stop": stop_campaign}[action]
        done = {"start": "started", "pause": "pausing", "stop": "stopping"}[action]
        self.act(lambda ws: call(ws, campaign_id), lambda _: f"campaign {campaign_id} {done}")

    def action_stop(self) -> None:
        campaign_id = self._require_campaign("stop")
        if campaign_id is None:
            return
        body = (
            "Stopping kills the campaign's workers now. The attempts they are running are "
            "interrupted and redone from the start on the next start (s); finished attempts "
            "are kept."
        )
        self.confirm(f"Stop campaign {campaign_id}?", body, lambda: self._act("stop", campaign_id))

    def _require_campaign(self, verb: str) -> int | None:
        if self._selected is None:
            self.notify(f"No campaign to {verb}: create one first (n).", severity="warning")
        return self._selected

    def acted(self, message: ActionDone) -> None:
        if message.select is not None:
            self._select(message.select)

    # -- drawing --------------------------------------------------------------------------

    def _campaign_cells(self, campaign: CampaignSummary) -> dict[str, Text]:
        totals = campaign.totals
        return {
            "id": Text(str(campaign.id), justify="right"),
            "status": Text(campaign.status, style=CAMPAIGN_STATUS_STYLE.get(campaign.status, "")),
            "pipeline": Text(neutralise(campaign.pipeline)),
            "model": Text(neutralise(campaign.model)),
            "done": Text(f"{totals.done:,}/{totals.total:,}", justify="right"),
        }

    def _render_head(self) -> None:
        box = self.query_one("#progress")
        head = self.query_one("#progress-head", Static)
        campaign = self._campaigns.get(self._selected) if self._selected is not None else None
        if campaign is None:
            box.border_title = "Progress"
            head.update(Text("No campaign yet: press n to create one.", style="dim"))
            return
        box.border_title = f"Campaign {campaign.id} · {campaign.status}"
        temperatures = " ".join(f"{t:g}" for t in campaign.temperatures)
        seeds = " ".join(str(s) for s in campaign.seeds)
        text = Text.assemble(
            (neutralise(campaign.pipeline), "bold"),
            neutralise(
                f" · model {campaign.model} · temperatures {temperatures} · seeds {seeds} · "
                + (
                    f"on {campaign.nodes} cluster nodes"
                    if campaign.nodes
                    else f"{campaign.workers} workers"
                )
            ),
            ("\ncreated ", "dim"),
            neutralise(f"{campaign.created_at} by {campaign.created_by}"),
        )
        if campaign.reason:
            reason = neutralise(f"\n{campaign.reason}")
            text.append(reason, style=CAMPAIGN_STATUS_STYLE.get(campaign.status, ""))
        head.update(text)

    def _render_progress(
        self,
        progress: CampaignProgress | None,
        workers: list[WorkerLine],
        nodes: list[NodeLine],
        yields: list[PackageYield],
    ) -> None:
        bar = self.query_one("#overall", ProgressBar)
        overall = self.query_one("#overall-text", KeyedStatic)
        packages = self.query_one("#packages-progress", KeyedStatic)
        yield_box = self.query_one("#yield", KeyedStatic)
        workers_box = self.query_one("#workers", KeyedStatic)
        # Hidden, not removed: the bar keeps its width, which it rounds each new value to.
        bar.visible = progress is not None
        if progress is None:
            overall.show(None, str)
            packages.show(None, str)
            yield_box.display = False
            workers_box.show(None, str)
            return
        whole = progress.overall
        bar.update(total=max(1, whole.total), progress=whole.done)
        overall.show(progress, lambda: _overall_text(progress))
        packages.show(progress.packages, lambda: _packages_table(progress))
        # Shown only with a package to count: an empty Static would still take a line.
        yield_box.display = bool(yields)
        yield_box.show((progress.packages, yields), lambda: _yield_text(progress, yields))
        workers_box.show((workers, nodes), lambda: _workers_text(workers, nodes))

    def _update_attempts_title(self) -> None:
        box = self.query_one("#attempts-box")
        attempts = self.query_one(AttemptList)
        if self._selected is None:
            box.border_title = "Attempts"
            return
        count = f" · {attempts.count:,}" if attempts.source == self._source() else ""
        box.border_title = (
            f"Attempts of campaign {self._selected} · filter {filter_name(self._outcome)}{count}"
        )


def _window_text(progress: CampaignProgress) -> str:
    if progress.window_start is None or progress.window_end is None:
        return "(never ran)"
    start, end = parse_time(progress.window_start), parse_time(progress.window_end)
    return f"over the last {duration_text((end - start).total_seconds())}"


def _overall_text(progress: CampaignProgress) -> Text:
    whole = progress.overall
    return Text.assemble(
        (f"{whole.done:,}/{whole.total:,} done", "bold"),
        f" · {whole.running} running",
        f"\n{whole.resolved:,} resolved · {rate_text(whole.resolved_rate)} of the usable",
        f"\n{throughput_text(whole.throughput_per_min)} {_window_text(progress)}",
        f" · ETA {eta_text(whole)}",
    )


def _packages_table(progress: CampaignProgress) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, expand=False, header_style="bold")
    rows = [
        (
            package.label,
            f"{package.progress.done:,}/{package.progress.total:,}",
            f"{package.progress.resolved:,}",
            rate_text(package.progress.resolved_rate),
            throughput_text(package.progress.throughput_per_min),
            eta_text(package.progress),
        )
        for package in progress.packages
    ]
    titles = ["Package", "Done", "Resolved", "Rate", "Throughput", "ETA"]
    table.add_column(titles[0], overflow="ellipsis", min_width=7)
    for index, title in enumerate(titles[1:], start=1):
        # A narrow pane shortens the package's name, never a number.
        widest = max([len(title), *(len(row[index]) for row in rows)])
        table.add_column(title, justify="right", no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(Text(row[0]), *row[1:])
    return table


def _yield_text(progress: CampaignProgress, yields: list[PackageYield]) -> Text:
    """Each package's yield in one line: kept → validated → usable, by validation kind."""
    labels = {package.digest: package.label for package in progress.packages}
    text = Text("Yield", style="bold")
    for found in yields:
        text.append(neutralise(f"\n{labels.get(found.digest, found.name)}: "))
        text.append(yield_summary(found))
        if (reasons := reasons_line(found)) is not None:
            text.append(f"\n  {reasons}", style="dim")
    return text


def _workers_text(workers: list[WorkerLine], nodes: list[NodeLine]) -> Group | Text:
    if not workers and not nodes:
        return Text("No worker has reported yet.", style="dim")
    lines = _nodes_lines(nodes)
    lines.append(Text("Workers", style="bold"))
    for worker in workers:
        stage_style = "dim" if worker.stage in ("idle", "exited") else "bold yellow"
        lines.append(
            Text.assemble(
                f"slot {worker.slot:<2} ",
                (f"{worker.stage:<8}", stage_style),
                neutralise(f" {worker.task or '—'}"),
                (neutralise("  " + (worker.package_name or "")), "dim"),
                f"  {duration_text(worker.elapsed_s)}",
                (f"  on {worker.node_id[:8]}" if worker.node_id else "", "dim"),
            )
        )
    return Group(*lines)


def _nodes_lines(nodes: list[NodeLine]) -> list[Text]:
    """The cluster's nodes, one line each: short id, address, CPUs, and running orders."""
    if not nodes:
        return []
    lines = [Text("Nodes", style="bold")]
    for node in nodes:
        state = (
            (f"{node.running} running", "bold yellow" if node.running else "dim")
            if node.alive
            else ("lost", "bold red")
        )
        lines.append(
            Text.assemble(
                f"{node.node_id[:8]} ",
                neutralise(f"{node.address:<15}"),
                f" {node.cpus:>3g} CPUs  ",
                state,
            )
        )
    return lines
