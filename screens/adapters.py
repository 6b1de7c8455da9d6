"""The Adapters pane: which version serves each stage, switching it with one key, and the server.

Left, the stages: what serves each (a version or the base) and how many candidates wait. Right,
the serving status: per configured base, whether its server runs, the adapters it has loaded and
any active version it lacks. In the middle, the selected stage's versions, newest first: status,
base, created, dataset, gate decision, and the primary metrics of each version's newest eval with
the change against the active version. Under them, the selected version's evidence: beside
its baseline's eval on the same eval set, per metric the baseline, the candidate, the paired
difference with its interval and n, the eval set's size against its target, the gate's decision
word, and any eval run of it still under way. Below, the stage's activation history.

A one-second timer polls the database in a thread worker that only posts messages (so a switch
made from the command line shows up), settling first any switch or eval job that died mid-way;
the same poll gathers the selected version's evidence, pairing the runs again only when they
changed, and the eval jobs: while one runs, the Gate cell of the version it scores says how far
it has got (`evaluating: 12/40 answered`), and when one ends, started here or from the command
line while the console looked, one notification says how (done with the gate's word, stopped,
or failed with the reason). The serving status is read every few seconds and on `s`.
`p` promotes the selected version and `r` rolls the stage back, each after a confirmation that
shows the metric deltas (promoting over a gate decision that did not pass then asks why); `e`
evaluates the selected version (a background job); `t` shows where the selected version came
from (`cra adapters trace`); `d` lists the examples where the selected version and its
baseline disagree (`DifferencesScreen`). Each runs the engine in a thread worker; an engine
refusal becomes a notification, never a traceback.
"""

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.adapters.lineage import trace_lines
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.evaluation.evidence import VersionEvidence, version_evidence
from engine.evaluation.paired import PairedDifference
from engine.evaluation.runs import (
    EvalJob,
    eval_jobs,
    newest_eval_id,
    reconcile_evals,
    start_eval,
)
from engine.promotion.overview import (
    Confirmation,
    StageView,
    VersionLine,
    promote_text,
    rollback_text,
    stage_views,
)
from engine.promotion.switch import (
    SwitchResult,
    promote_version,
    reconcile_intents,
    rollback_stage,
)
from engine.serving.status import ServerStatus, serving_status
from screens.adapter_differences import DifferencesScreen
from screens.pane import ActionDone, EnginePane
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.formatting import STATUS_STYLE, when
from screens.widgets.reason import ReasonScreen
from screens.widgets.text_modal import TextScreen
from screens.workers import WORKER_ERRORS

SERVING_POLL_S = 5.0
VERSION_COLUMNS = (
    ("Version", "name"),
    ("Status", "status"),
    ("Base", "base"),
    ("Created", "created"),
    ("Dataset", "dataset"),
    ("Gate", "gate"),
    ("Key metrics (Δ against the active one)", "metrics"),
)
HISTORY_COLUMNS = (
    ("When", "at"),
    ("Action", "action"),
    ("From → to", "moved"),
    ("Who", "operator"),
    ("Why", "reason"),
)


@dataclass
class ViewsPolled(Message):
    """The stages, the evidence of version `name` (or why it could not be gathered), and the
    eval jobs under way or ended since the pane first looked (`floor`: the newest eval run
    then)."""

    views: list[StageView]
    name: str | None
    evidence: VersionEvidence | None
    evidence_error: str | None
    evals: list[EvalJob]
    floor: int


def metrics_text(line: VersionLine) -> Text:
    text = Text()
    for number, cell in enumerate(line.metrics):
        if number:
            text.append(" · ")
        text.append(neutralise(f"{cell.metric} "))
        text.append("—" if cell.value is None else f"{cell.value:.3f}")
        if cell.delta is not None:
            style = "green" if cell.delta > 0 else "red" if cell.delta < 0 else "dim"
            text.append(f" ({cell.delta:+.3f})", style=style)
    return text


def _metric_style(paired: PairedDifference | None) -> str:
    """Green for a gain with confidence, red for a drop with confidence, plain otherwise."""
    if paired is None:
        return ""
    if paired.gain:
        return "green"
    return "red" if paired.high < 0 else ""


def evidence_text(evidence: VersionEvidence) -> Text:
    """The evidence's lines: the metric lines of a paired gain green, of a sure drop red."""
    text = Text()
    heading = evidence.heading()
    text.append(neutralise(heading[0]) + "\n", style="bold")
    for line in heading[1:]:
        style = "yellow" if "underpowered" in line or line.startswith("eval run") else ""
        text.append(neutralise(line) + "\n", style=style)
    header = evidence.table_header()
    if header is not None:
        text.append(header + "\n", style="dim")
        for metric in evidence.metrics:
            style = _metric_style(metric.paired)
            if metric.primary:
                style = f"bold {style}"
            text.append(neutralise(metric.line()) + "\n", style=style)
    text.append(neutralise(evidence.footer()), style="dim" if evidence.paired else "yellow")
    return text


def serving_cell(view: StageView) -> Text:
    """What serves a stage: its version in green, the bare base dimmed, or the bare base in
    yellow when the active version was trained on an older base and so never serves."""
    if view.stranded is not None:
        return Text(neutralise(f"base, not {view.stranded}"), style="yellow")
    return Text(view.serving, style="bold green" if view.serving != "base" else "dim")


def serving_text(statuses: list[ServerStatus] | None, error: str | None) -> Text:
    if error is not None:
        return Text(neutralise(f"cannot read the serving status: {error}"), style="red")
    if statuses is None:
        return Text("reading…", style="dim")
    if not statuses:
        return Text("no base is served: set [serving] bases in cra.toml", style="dim")
    text = Text()
    for status in statuses:
        text.append(neutralise(f"{status.base} "), style="bold")
        text.append(neutralise(f"{status.url} "))
        if status.running:
            text.append("running\n", style="green")
            text.append(neutralise(f"  loaded: {', '.join(status.loaded) or 'no adapters'}\n"))
        else:
            text.append("not running\n", style="yellow")
        if status.error:
            text.append(neutralise(f"  {status.error}\n"), style="red")
        if status.stranded:
            stranded = neutralise(
                f"  active on an old base, never loaded: {', '.join(status.stranded)}\n"
            )
            text.append(stranded, style="yellow")
        if status.missing:
            missing = neutralise(f"  active, not loaded: {', '.join(status.missing)}\n")
            text.append(missing, style="yellow")
    return text


class AdaptersScreen(EnginePane):
    """Stages and serving on top, the selected stage's versions, then its history."""

    PANE_TITLE = "Adapters"
    POLL_S = 1.0
    POLL_TITLE = "adapters"
    ACTION_TITLE = "adapters"
    ACTION_REFUSED_TITLE = "refused"
    CSS_PATH = "adapters.tcss"
    AUTO_FOCUS = "#stages"
    BINDINGS = [
        Binding("p", "promote", "Promote", tooltip="Make the selected version serve its stage"),
        Binding("r", "rollback", "Roll back", tooltip="Back to the stage's previous version"),
        Binding("e", "evaluate", "Evaluate", tooltip="Score the selected version and gate it"),
        Binding("t", "trace", "Trace", tooltip="Where the selected version came from"),
        Binding(
            "d",
            "differences",
            "Differences",
            tooltip="The examples where the selected version and its baseline disagree",
        ),
        Binding("s", "refresh_serving", "Serving", tooltip="Read the servers' status now"),
    ]

    def __init__(self, workspace: Workspace) -> None:
        super().__init__(workspace)
        self._views: dict[str, StageView] = {}
        self._stage: str | None = None
        self._version: str | None = None
        self._statuses: list[ServerStatus] | None = None
        self._reading_serving = False
        self._shown: StageView | None = None
        self._evidence: VersionEvidence | None = None
        # Eval jobs: what each version's Gate cell shows, the newest eval run when the pane
        # first looked (jobs after it are announced when they end), the keys of the jobs seen
        # under way, and those whose end was announced.
        self._gate_shown: dict[str, str] = {}
        self._eval_states: dict[str, str] = {}
        self._eval_floor: int | None = None
        self._following: set[int] = set()
        self._announced: set[int] = set()

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="adapters"):
            with Horizontal(id="top"):
                stages = DataTable(id="stages", cursor_type="row")
                stages.border_title = "Stages"
                yield stages
                serving = Static(serving_text(None, None), id="serving")
                serving.border_title = "Serving"
                yield serving
            versions = DataTable(id="versions", cursor_type="row")
            versions.border_title = "Versions"
            yield versions
            evidence = Static(Text("select a version", style="dim"), id="evidence")
            evidence.border_title = "Evidence"
            yield evidence
            history = DataTable(id="history", cursor_type="row")
            history.border_title = "Activation history"
            yield history

    def on_mount(self) -> None:
        stages = self.query_one("#stages", DataTable)
        stages.add_column("Stage", key="stage")
        stages.add_column("Serving", key="serving")
        stages.add_column("Candidates", key="candidates")
        for label, key in HISTORY_COLUMNS:
            self.query_one("#history", DataTable).add_column(label, key=key)
        self._serving_timer = self.set_interval(SERVING_POLL_S, self._read_serving, pause=True)

    def on_screen_resume(self) -> None:
        self._serving_timer.resume()
        self._read_serving()

    def on_screen_suspend(self) -> None:
        self._serving_timer.pause()

    @property
    def selected_stage(self) -> str | None:
        return self._stage

    @property
    def selected_version(self) -> str | None:
        return self._version

    # -- polling --------------------------------------------------------------------------

    def poll_args(
        self,
    ) -> tuple[str | None, VersionEvidence | None, frozenset[int], int | None]:
        return (self._version, self._evidence, frozenset(self._following), self._eval_floor)

    def settle(self, ws: Workspace) -> None:
        reconcile_intents(ws)
        reconcile_evals(ws)

    def read(
        self,
        ws: Workspace,
        name: str | None,
        reuse: VersionEvidence | None,
        following: frozenset[int],
        floor: int | None,
    ) -> None:
        floor = newest_eval_id(ws) if floor is None else floor
        evals = eval_jobs(ws, following, floor)
        views = stage_views(ws)
        evidence, evidence_error = None, None
        if name is not None:
            try:
                evidence = version_evidence(ws, name, reuse)
            except (*WORKER_ERRORS, ValueError) as exc:
                evidence_error = str(exc)
        self.post_message(ViewsPolled(views, name, evidence, evidence_error, evals, floor))

    def _read_serving(self) -> None:
        if not self._reading_serving:
            self._reading_serving = True
            self.fetch(
                serving_status,
                lambda statuses: self._show_serving(statuses, None),
                title="serving",
                failed=lambda error: self._show_serving(None, error),
                group="serving",
            )

    @on(ViewsPolled)
    def _views_polled(self, message: ViewsPolled) -> None:
        views = message.views
        first = not self._views
        self._views = {view.stage: view for view in views}
        stages = self.query_one("#stages", DataTable)
        for view in views:
            serving = serving_cell(view)
            waiting = Text(str(view.candidates or "—"), justify="right")
            if first:
                stages.add_row(view.stage, serving, waiting, key=view.stage)
            else:
                stages.update_cell(view.stage, "serving", serving, update_width=True)
                stages.update_cell(view.stage, "candidates", waiting, update_width=True)
        if self._stage not in self._views:
            self._stage = next(iter(self._views), None)
        self._follow_evals(message)
        self._render_stage()
        self._show_gates()
        self._render_evidence(message)

    def _follow_evals(self, message: ViewsPolled) -> None:
        """Keep each version's eval state, and announce once each eval job that ended."""
        if self._eval_floor is None:
            self._eval_floor = message.floor
        states: dict[str, str] = {}
        following = set()
        for job in message.evals:
            if job.live:
                following.add(job.key)
                for run in job.runs:
                    state = job.state(run.target)
                    if state is not None:
                        states[run.target] = state
                continue
            seen = job.key in self._following or job.key > self._eval_floor
            if seen and job.key not in self._announced:
                self._announced.add(job.key)
                text, severity = job.outcome()
                self.notify(neutralise(text), title="eval", severity=severity, markup=False)
        self._following = following
        self._eval_states = states

    def _gate_text(self, line: VersionLine) -> Text:
        """The Gate cell: the eval under way for the version, else its newest decision."""
        state = self._eval_states.get(line.name)
        if state is not None:
            return Text(neutralise(state), style="yellow")
        return Text(neutralise(line.gate))

    def _show_gates(self) -> None:
        """Redraw the Gate cells whose eval state changed since they were drawn."""
        if self._shown is None:
            return
        versions = self.query_one("#versions", DataTable)
        for line in self._shown.versions:
            cell = self._gate_text(line)
            if self._gate_shown.get(line.name) != cell.plain:
                self._gate_shown[line.name] = cell.plain
                versions.update_cell(line.name, "gate", cell, update_width=True)

    def _render_evidence(self, message: ViewsPolled) -> None:
        """The polled evidence, when it is the selected version's; otherwise poll again."""
        panel = self.query_one("#evidence", Static)
        if self._version is None:
            self._evidence = None
            panel.border_title = "Evidence"
            panel.update(Text("no version selected", style="dim"))
            return
        if message.name != self._version:
            self.request_poll()
            return
        panel.border_title = Text(neutralise(f"Evidence · {self._version}"))
        if message.evidence_error is not None:
            self._evidence = None
            error = neutralise(f"cannot gather the evidence: {message.evidence_error}")
            panel.update(Text(error, style="red"))
            return
        if message.evidence != self._evidence:
            self._evidence = message.evidence
            assert message.evidence is not None
            panel.update(evidence_text(message.evidence))

    def _show_serving(self, statuses: list[ServerStatus] | None, error: str | None) -> None:
        self._reading_serving = False
        self._statuses = statuses
        self.query_one("#serving", Static).update(serving_text(statuses, error))

    def _render_stage(self) -> None:
        view = self._views.get(self._stage) if self._stage is not None else None
        if view is None or view == self._shown:
            return
        self._shown = view
        versions = self.query_one("#versions", DataTable)
        history = self.query_one("#history", DataTable)
        versions.clear(columns=True)
        self._gate_shown = {}
        for label, key in VERSION_COLUMNS:
            versions.add_column(label, key=key)
        history.clear()
        versions.border_title = f"Versions · {view.stage} · serving {view.serving}"
        if not view.versions:
            versions.add_row(
                Text("no adapter versions yet: a finished training run registers one", "dim"),
                *[""] * (len(VERSION_COLUMNS) - 1),
            )
            self._version = None
        for line in view.versions:
            gate = self._gate_text(line)
            self._gate_shown[line.name] = gate.plain
            versions.add_row(
                Text(neutralise(line.name), style="bold" if line.status == "active" else ""),
                Text(line.status, style=STATUS_STYLE.get(line.status, "")),
                Text(neutralise(line.base))
                if line.unservable is None
                else Text(neutralise(f"{line.base} · unservable"), style="red"),
                when(line.created),
                Text(neutralise(line.dataset)),
                gate,
                metrics_text(line),
                key=line.name,
            )
        names = [line.name for line in view.versions]
        if self._version not in names:
            self._version = names[0] if names else None
        if self._version is not None:
            versions.move_cursor(row=names.index(self._version), animate=False)
        for record in view.history:
            moved = (
                record.from_name
                if record.action == "reject"
                else f"{record.from_name or 'base'} → {record.to_name or 'base'}"
            )
            history.add_row(
                when(record.at),
                record.action,
                *(
                    Text(neutralise(cell))
                    for cell in (moved, record.operator, record.reason or "—")
                ),
            )

    @on(DataTable.RowHighlighted, "#stages")
    def _stage_highlighted(self, event: DataTable.RowHighlighted) -> None:
        stage = event.row_key.value
        if stage is not None and stage != self._stage:
            self._stage = stage
            self._version = None
            self._render_stage()
            self._evidence_wanted()

    @on(DataTable.RowHighlighted, "#versions")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value != self._version:
            self._version = event.row_key.value
            self._evidence_wanted()

    def _evidence_wanted(self) -> None:
        """The selection changed: read the selected version's evidence now."""
        self._evidence = None
        if self._version is not None:
            self.query_one("#evidence", Static).update(Text("reading…", style="dim"))
        self.request_poll()

    # -- actions --------------------------------------------------------------------------

    def action_promote(self) -> None:
        if self._version is None:
            self.notify("Select a version to promote first.", severity="warning")
            return
        self._confirm_text("promote", self._version)

    def action_rollback(self) -> None:
        if self._stage is None:
            return
        self._confirm_text("rollback", self._stage)

    def action_evaluate(self) -> None:
        if self._version is None:
            self.notify("Select a version to evaluate first.", severity="warning")
            return
        self._evaluate(self._version)

    def action_trace(self) -> None:
        if self._version is None:
            self.notify("Select a version to trace first.", severity="warning")
            return
        self._trace(self._version)

    def action_differences(self) -> None:
        if self._version is None:
            self.notify("Select a version first.", severity="warning")
            return
        self.app.push_screen(DifferencesScreen(self._ws, self._version))

    def _trace(self, name: str) -> None:
        self.fetch(
            lambda ws: trace_lines(ws, name),
            lambda lines: self.app.push_screen(TextScreen(f"Lineage of {name}", "\n".join(lines))),
            title="trace",
            group="action",
        )

    def action_refresh_serving(self) -> None:
        self._read_serving()

    def _confirm_text(self, action: str, subject: str) -> None:
        """Read what the confirmation of `action` on `subject` says, then ask it."""
        words = promote_text if action == "promote" else rollback_text
        self.fetch(
            lambda ws: words(ws, subject),
            lambda confirmation: self._ask(action, subject, confirmation),
            title=action,
            group="action",
        )

    def _ask(self, action: str, subject: str, confirmation: Confirmation) -> None:
        title = f"Promote {subject}?" if action == "promote" else f"Roll {subject} back?"

        def overridden(reason: str | None) -> None:
            if reason is not None:
                self._switch(action, subject, confirmation.serving, reason)

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if confirmation.override is None:
                self._switch(action, subject, confirmation.serving)
                return
            self.app.push_screen(
                ReasonScreen(
                    f"Override the gate for {subject}?",
                    f"The gate said {confirmation.override}. Why promote it anyway?",
                    blank="An override needs a reason.",
                ),
                overridden,
            )

        self.app.push_screen(ConfirmScreen(title, confirmation.text), answered)

    def _switch(self, action: str, subject: str, serving: str, override: str | None = None) -> None:
        """Promote or roll back, naming the version the confirmation showed serving; `override`
        is the reason for promoting over a gate decision that did not pass."""

        def switch(ws: Workspace) -> SwitchResult:
            if action == "promote":
                return promote_version(
                    ws,
                    subject,
                    reason=override or "promoted in the console",
                    replacing=serving,
                    override=override is not None,
                )
            return rollback_stage(ws, subject, serving, reason="rolled back in the console")

        def done(result: SwitchResult) -> str:
            watch = f" Watch: {result.watch}" if result.watch else ""
            return f"{result.stage}: {result.active} serves now. {result.server}{watch}"

        self.act(switch, done)

    def _evaluate(self, name: str) -> None:
        self.act(
            lambda ws: start_eval(ws, adapter=name),
            lambda ids: (
                f"{name}: eval run {', '.join(str(i) for i in ids)} started; its row shows "
                "how far it has got, and the gate decides when it ends"
            ),
        )

    def acted(self, message: ActionDone) -> None:
        self._read_serving()
