"""The drill-down from the Adapters pane (`d`): where a version and its baseline disagree.

On the left, the examples of the stage's first primary metric in two groups with their counts:
those the candidate scored higher, those the baseline scored higher. On the right, the
highlighted example: the prompt's task text (shortened), the reference, and the baseline's and
the candidate's answers side by side, each with its score. Prompts, references and answers are
text from outside (the repository, the model): every piece is neutralised and shown as
`rich.text.Text`, never parsed as markup. Read in a thread worker; esc goes back.
"""

import sqlite3
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from engine.core.errors import CraError
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace, reopened
from engine.evaluation.evidence import (
    Differences,
    DifferingExample,
    Side,
    VersionEvidence,
    differences,
    shorten,
    version_evidence,
)

PROMPT_CHARS = 600
ROW_CHARS = 48


@dataclass
class DifferencesRead(Message):
    """The evidence and its disagreeing examples, or why they could not be read."""

    evidence: VersionEvidence | None
    found: Differences | None
    error: str | None


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def option_text(example: DifferingExample) -> Text:
    """One list row: where, both scores, the task's first words."""
    where = f"line {example.line}" if example.line is not None else f"task {example.task}"
    text = Text(neutralise(where), style="bold")
    text.append(f"  {example.candidate.score()} vs {example.baseline.score()}\n")
    text.append(neutralise(shorten(example.prompt, ROW_CHARS)), style="dim")
    return text


def side_text(who: str, side: Side) -> Text:
    """One run's answer under its name and score; its note (an error, the harness outcome)
    after it."""
    text = Text(neutralise(who), style="bold")
    text.append(f"  {side.score()}\n\n")
    text.append(neutralise(side.answer) if side.answer else Text("(no answer)", style="dim"))
    if side.note:
        text.append(neutralise(f"\n\n{side.note}"), style="yellow")
    return text


class DifferencesScreen(Screen[None]):
    """A version's disagreements with its baseline, two groups, one example side by side."""

    CSS_PATH = "adapters.tcss"
    AUTO_FOCUS = "#examples"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, workspace: Workspace, name: str) -> None:
        super().__init__()
        self._ws = workspace
        self.version = name
        self.found: Differences | None = None
        self._examples: dict[str, DifferingExample] = {}
        self.sub_title = f"Differences · {name}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("Reading the examples…", style="dim"), id="differences-head")
        with Horizontal(id="differences"):
            examples = OptionList(id="examples")
            examples.border_title = "Examples"
            yield examples
            with VerticalScroll(id="example"):
                yield Static(id="example-task")
                yield Static(id="example-reference")
                with Horizontal(id="answers"):
                    yield Static(id="answer-baseline")
                    yield Static(id="answer-candidate")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#example").border_title = "Example"
        self._load()

    @work(thread=True)
    def _load(self) -> None:
        try:
            with reopened(self._ws) as ws:
                evidence = version_evidence(ws, self.version)
                found = differences(ws, evidence)
        except (CraError, sqlite3.Error, OSError, ValueError) as exc:
            self.post_message(DifferencesRead(None, None, str(exc)))
            return
        self.post_message(DifferencesRead(evidence, found, None))

    @on(DifferencesRead)
    def _read(self, message: DifferencesRead) -> None:
        head = self.query_one("#differences-head", Static)
        if message.error is not None:
            head.update(Text(neutralise(f"No differences to show: {message.error}"), style="red"))
            return
        evidence, found = message.evidence, message.found
        assert evidence is not None and found is not None
        self.found = found
        heading = Text(neutralise(evidence.heading()[0]), style="bold")
        heading.append(neutralise(f" · {evidence.set_line()}\n"))
        heading.append(
            neutralise(
                f"{found.metric}: {len(found.better)} examples {found.candidate} scored higher, "
                f"{len(found.worse)} {found.baseline} scored higher; the rest agree"
            )
        )
        head.update(heading)
        options: list[Option | None] = []
        groups = (
            (f"{found.candidate} better", found.better, "green"),
            (f"{found.baseline} better", found.worse, "red"),
        )
        for title, examples, style in groups:
            if options:
                options.append(None)
            label = Text(neutralise(f"{title} · {len(examples)}"), style=f"bold {style}")
            options.append(Option(label, disabled=True))
            for example in examples:
                self._examples[example.key] = example
                options.append(Option(option_text(example), id=example.key))
        listing = self.query_one("#examples", OptionList)
        listing.clear_options()
        listing.add_options(options)
        first = next((example for _, group, _ in groups for example in group), None)
        if first is None:
            self._show(None)
            return
        listing.highlighted = next(
            index
            for index in range(listing.option_count)
            if listing.get_option_at_index(index).id == first.key
        )

    @on(OptionList.OptionHighlighted, "#examples")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id
        if key is not None:
            self._show(self._examples[key])

    def _show(self, example: DifferingExample | None) -> None:
        task = self.query_one("#example-task", Static)
        reference = self.query_one("#example-reference", Static)
        baseline = self.query_one("#answer-baseline", Static)
        candidate = self.query_one("#answer-candidate", Static)
        if example is None:
            task.update(Text("The two runs agree on every example.", style="dim"))
            for widget in (reference, baseline, candidate):
                widget.update("")
            return
        assert self.found is not None
        self.query_one("#example").border_title = neutralise(example.title())
        body = Text("Task\n", style="bold")
        body.append(neutralise(clip(example.prompt, PROMPT_CHARS)) or "(no prompt)")
        task.update(body)
        body = Text("Reference\n", style="bold")
        body.append(neutralise(example.reference) or "(none)")
        reference.update(body)
        baseline.update(side_text(f"{self.found.baseline} (baseline)", example.baseline))
        candidate.update(side_text(f"{self.found.candidate} (candidate)", example.candidate))

    def action_back(self) -> None:
        self.app.pop_screen()
