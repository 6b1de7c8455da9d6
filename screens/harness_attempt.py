"""One attempt, drilled into from the Harness pane: what it was, how it went, and its artifacts.

The heading gives the task, outcome and reason, temperature and seed, tokens, durations and the
five plan-diff alignment scores (`—` where a score is undefined). Tabs hold the plan (parts,
then steps with their file and symbols), the diff (highlighted), the test output, the raw
response of the pipeline and report.json. The attempt is read in a thread worker; esc goes back.
"""

import sqlite3
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from engine.core.errors import CraError
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace, reopened
from engine.harness.plan import Plan
from engine.harness.progress import (
    ALIGNMENT_KEYS,
    TEST_OUTPUT,
    ArtifactText,
    AttemptDetail,
    attempt_detail,
)

TABS = [
    ("plan", "Plan", "p"),
    ("diff", "Diff", "d"),
    ("output", "Test output", "o"),
    ("raw", "Raw response", "r"),
    ("report", "Report", "j"),
]
ALIGNMENT_LABELS = {
    "file_precision": "file precision",
    "file_recall": "file recall",
    "symbol_precision": "symbol precision",
    "symbol_recall": "symbol recall",
    "order_agreement": "order agreement",
}
OUTCOME_STYLE = {
    "resolved": "bold green",
    "partial": "yellow",
    "failed": "red",
    "error": "bold magenta",
    "unusable": "dim",
}


@dataclass
class AttemptLoaded(Message):
    """The attempt's detail, or the message of the error that kept it from being read."""

    detail: AttemptDetail | str


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


def _count(passed: int | None, total: int | None) -> str:
    return "—" if total is None else f"{passed}/{total}"


def _tokens(prompt: int | None, completion: int | None) -> str:
    if prompt is None or completion is None:
        return "—"
    return f"{prompt:,} prompt + {completion:,} completion"


def heading(detail: AttemptDetail) -> Text:
    """The attempt's facts in four lines."""
    row = detail.row
    outcome = row["outcome"] or row["state"]
    package = row["package_name"] or row["package_digest"][:12]
    temperature = "—" if row["temperature"] is None else f"{row['temperature']:g}"
    text = Text.assemble(
        (f"Attempt {row['id']}", "bold"),
        neutralise(f" · task {row['task']} · {package} @ {row['sha'][:12]}"),
        neutralise(f" · {row['pipeline']} / {row['model']}"),
        "\n",
        (neutralise(outcome), OUTCOME_STYLE.get(outcome, "bold")),
        neutralise(f" — {row['reason'] or 'no reason recorded'}"),
        "\n",
        f"temperature {temperature} · seed {row['seed']} · "
        f"tokens {_tokens(row['prompt_tokens'], row['completion_tokens'])} · "
        f"{_seconds(row['duration_s'])} total, {_seconds(row['test_duration_s'])} tests · "
        f"F2P {_count(row['f2p_passed'], row['f2p_total'])} · "
        f"P2P {_count(row['p2p_passed'], row['p2p_total'])}",
        "\n",
        ("alignment ", "bold"),
    )
    text.append(
        " · ".join(
            f"{ALIGNMENT_LABELS[key]} {_score(detail.alignment[key])}" for key in ALIGNMENT_KEYS
        )
    )
    return text


def plan_text(plan: Plan) -> Text:
    """The plan as indented text: its summary, each part, each part's numbered steps (a
    model wrote all of it, so all of it is neutralised)."""
    text = Text(neutralise(plan.summary), style="bold")
    for part in plan.parts:
        text.append(neutralise(f"\n\n[{part.id}] "), style="cyan")
        text.append(neutralise(part.title), style="bold")
        if part.depends_on:
            text.append(neutralise(f"  after {', '.join(part.depends_on)}"), style="dim")
        for number, step in enumerate(part.steps, start=1):
            text.append(neutralise(f"\n  {number}. {step.description}"))
            text.append(neutralise(f"\n     {step.file}"), style="green")
            if step.symbols:
                text.append(neutralise(f"  {', '.join(step.symbols)}"), style="yellow")
    return text


def plan_view(detail: AttemptDetail) -> RenderableType:
    if detail.plan is not None:
        return plan_text(detail.plan)
    if detail.plan_error is not None:
        return Text(neutralise(detail.plan_error), style="red")
    return Text("No plan recorded for this attempt.", style="dim")


def artifact_view(artifact: ArtifactText, lexer: str | None) -> RenderableType:
    """The artifact's text (highlighted with `lexer` when given), or why there is none. The
    text is the tested code's or the model's: its controls are shown, never obeyed."""
    if artifact.text is None:
        why = artifact.missing or f"{artifact.name}: nothing to show"
        return Text(neutralise(why), style="dim italic")
    if not artifact.text:
        return Text(neutralise(f"{artifact.path} is empty."), style="dim")
    shown = neutralise(artifact.text)
    body: RenderableType = (
        Syntax(shown, lexer, theme="ansi_dark", word_wrap=False) if lexer else Text(shown)
    )
    if not artifact.truncated:
        return body
    note = Text(
        neutralise(
            f"… shown up to {len(artifact.text.encode()):,} bytes of {artifact.size:,}; "
            f"the whole file is {artifact.path}"
        ),
        style="bold yellow",
    )
    return Group(body, note)


class AttemptScreen(Screen[None]):
    """One attempt's facts above its plan, diff, test output, raw response and report."""

    CSS_PATH = "harness.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        *(Binding(key, f"show_tab('{tab}')", title) for tab, title, key in TABS),
    ]

    def __init__(self, workspace: Workspace, attempt_id: int) -> None:
        super().__init__()
        self._ws = workspace
        self.attempt_id = attempt_id
        self.detail: AttemptDetail | None = None
        self.sub_title = f"Attempt {attempt_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("Reading the attempt…", style="dim"), id="attempt-head")
        with TabbedContent(id="attempt-tabs", initial="plan"):
            for tab, title, _ in TABS:
                with TabPane(title, id=tab), VerticalScroll(id=f"{tab}-scroll"):
                    yield Static(id=f"{tab}-body")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True)
    def _load(self) -> None:
        try:
            with reopened(self._ws) as ws:
                detail = attempt_detail(ws, self.attempt_id)
        except (CraError, sqlite3.Error, OSError) as exc:
            self.post_message(AttemptLoaded(str(exc)))
            return
        self.post_message(AttemptLoaded(detail))

    @on(AttemptLoaded)
    def _loaded(self, message: AttemptLoaded) -> None:
        head = self.query_one("#attempt-head", Static)
        if isinstance(message.detail, str):
            error = neutralise(f"The attempt could not be read: {message.detail}")
            head.update(Text(error, style="red"))
            return
        detail = message.detail
        self.detail = detail
        head.update(heading(detail))
        artifacts = detail.artifacts
        views = {
            "plan": plan_view(detail),
            "diff": artifact_view(artifacts["patch.diff"], "diff"),
            "output": artifact_view(artifacts[TEST_OUTPUT], None),
            "raw": artifact_view(artifacts["raw.txt"], None),
            "report": artifact_view(artifacts["report.json"], "json"),
        }
        for tab, view in views.items():
            self.query_one(f"#{tab}-body", Static).update(view)

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#attempt-tabs", TabbedContent).active = tab
        self.query_one(f"#{tab}-scroll").focus()

    def action_back(self) -> None:
        self.app.pop_screen()
