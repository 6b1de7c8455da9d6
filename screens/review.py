"""The Review pane: spot-check a sample of each stage's items by key (LoRA Training Strategy §7.2,
§9.3).

On top, a strip with one column per stage (items, newest round's progress, reject rate, gate)
and the selected stage's gate in full. Below, the current item of the stage's newest round: its
heading, its task line, its prompt, then its answer (an SFT example) or its chosen and rejected
answers side by side with their differences highlighted (a pair). `g` shows the stage's review
guidelines beside it.

Layout: the prompt and the answers each scroll on their own. Where the item area is at least
`WIDE_ITEM` cells wide they sit side by side; narrower, they are stacked and the focused one
(`tab` moves focus; the answers have it first) takes two thirds of the height. A pane under
`SHORT_PANE` lines tall shows the strip and the heading compact. Both follow every resize.

Reading: a refresh (on entering the pane and after every change) reads the per-stage counts by
one indexed GROUP BY, the rounds and gates, and the selected stage's newest round (its items
without their text); one item's prompt and answers are read when it comes into view, a few
kept in a small cache, and the next one read ahead. All of it happens in thread workers that
only post messages; refreshes never overlap. Writing: a decision or note shows at once and
goes into a queue that thread workers apply in order, one at a time, so keys can be pressed as
fast as the operator reads; an engine refusal becomes a notification and the pane re-reads.
"""

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.core.stages import STAGES, Stage
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace, reopened
from engine.training_data.review import (
    Decision,
    RoundSummary,
    decide,
    draw_sample,
    set_note,
)
from engine.training_data.review_status import (
    RoundItem,
    StageStatus,
    latest_round_items,
    stage_statuses,
)
from engine.training_data.store import load_item
from screens.pane import ActionDone, EnginePane
from screens.review_lines import RowsView
from screens.review_view import (
    ItemView,
    gate_text,
    guidelines_text,
    heading,
    item_view,
    strip_table,
)
from screens.workers import WORKER_ERRORS

CACHE_ITEMS = 16
WIDE_ITEM = 140
"""The item area's width (cells) from which the prompt and the answers sit side by side."""
SHORT_PANE = 36
"""The pane's height (lines) under which the strip and the heading are compact."""
UNDECIDED: tuple[Decision | None, ...] = (None, "skip")


def fresh_seed() -> int:
    """A seed for a sample drawn from the pane; the round records it."""
    return secrets.randbelow(2**31)


@dataclass(frozen=True)
class Write:
    """A decision or a note on one item, waiting for the database."""

    round_id: int
    position: int
    decision: Decision | None = None
    note: str | None = None


# -- messages -----------------------------------------------------------------------------


@dataclass
class Refreshed(Message):
    """Every stage's status, the stage shown and its newest round with its items."""

    stage: Stage
    statuses: list[StageStatus]
    round: tuple[RoundSummary, list[RoundItem]] | None


@dataclass
class ItemLoaded(Message):
    """An item ready to draw, or the message of the error that kept it from being read."""

    example_id: int
    view: ItemView | str


@dataclass
class Written(Message):
    """A queued write was applied, or the engine's refusal of it."""

    write: Write
    error: str | None


class Resized(Message):
    """A part of the pane whose size the layout follows changed size."""


class Measured(Vertical):
    """A container that tells the pane when its size changes (after a terminal resize, the
    guidelines shown or hidden, or the pane coming back at another size)."""

    def on_resize(self) -> None:
        self.post_message(Resized())


# -- the note modal -----------------------------------------------------------------------


class NoteScreen(ModalScreen[str | None]):
    """Edits an item's note: enter saves (an empty note clears it), esc cancels."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, note: str) -> None:
        super().__init__()
        self._title = neutralise(title)
        self._note = neutralise(note)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title", markup=False)
            yield Input(self._note, placeholder="note (empty clears it)", id="note")
            yield Label("[b]enter[/] save   [b]esc[/] cancel", classes="dialog-keys")

    @on(Input.Submitted, "#note")
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the pane -----------------------------------------------------------------------------


class ReviewScreen(EnginePane):
    """The stage strip on top; the current item of the stage's newest round below."""

    PANE_TITLE = "Review"
    POLL_S = 1.0
    POLL_TITLE = "review"
    ACTION_TITLE = "review"
    CSS_PATH = "review.tcss"
    AUTO_FOCUS = "#answer"
    BINDINGS = [
        Binding("a", "decide('accept')", "Accept", tooltip="Keep the item for curation"),
        Binding("r", "decide('reject')", "Reject", tooltip="Leave the item out of curation"),
        Binding("f", "decide('flip')", "Flip", tooltip="A pair the wrong way round: swap it"),
        Binding("s", "decide('skip')", "Skip", tooltip="Decide later; the round stays open"),
        Binding("n", "note", "Note", tooltip="Write a note on the item"),
        Binding("j,down", "move(1)", "Next", key_display="j/k", priority=True),
        Binding("k,up", "move(-1)", "Previous item", show=False, priority=True),
        Binding("right_square_bracket", "stage(1)", "Stage", key_display="]/["),
        Binding("left_square_bracket", "stage(-1)", "Previous stage", show=False),
        Binding("d", "draw", "Draw", tooltip="Draw a new sample of the stage"),
        Binding("g", "guidelines", "Guide", tooltip="Show or hide the stage's review guidelines"),
    ]

    def __init__(self, workspace: Workspace, seed: Callable[[], int] = fresh_seed) -> None:
        super().__init__(workspace)
        self._seed = seed
        self._stage: Stage | None = None
        self._statuses: dict[Stage, StageStatus] = {}
        self._round: RoundSummary | None = None
        self._items: list[RoundItem] = []
        self._position = 0
        self._views: LRUCache[int, ItemView] = LRUCache(CACHE_ITEMS)
        self._loading: set[int] = set()
        self._writes: deque[Write] = deque()
        self._writing = False
        self._guidelines_stage: Stage | None = None
        self._compact = False
        self._drawing = False
        self._drawn_here: int | None = None

    def compose_pane(self) -> ComposeResult:
        with Measured(id="review"):
            with Vertical(id="stages") as stages:
                stages.border_title = "Stages"
                yield Static(Text("Reading the stages…", style="dim"), id="strip")
                yield Static(id="gate")
            with Horizontal(id="body"):
                with Measured(id="item"):
                    yield Static(id="item-head")
                    yield Static(id="empty")
                    yield Static(id="task")
                    with Container(id="panels"):
                        prompt = RowsView(id="prompt")
                        prompt.border_title = "Prompt"
                        yield prompt
                        answer = RowsView(id="answer")
                        answer.border_title = "Answer"
                        yield answer
                with VerticalScroll(id="guidelines") as guidelines:
                    guidelines.border_title = "Guidelines"
                    yield Static(id="guidelines-body")

    def on_mount(self) -> None:
        self.query_one("#guidelines").display = False
        self._show_item_area(False)

    @on(Resized)
    def _adapt(self) -> None:
        """Lay the item out for the room it has: prompt and answers side by side or stacked,
        the strip and heading compact or full."""
        review = self.query_one("#review")
        wide = self.query_one("#item").size.width >= WIDE_ITEM
        compact = review.size.height < SHORT_PANE
        review.set_class(wide, "-wide")
        review.set_class(compact, "-compact")
        if compact != self._compact:
            self._compact = compact
            self._render_all()

    # -- what the pane holds, for tests and the bench ------------------------------------

    @property
    def stage(self) -> Stage | None:
        return self._stage

    @property
    def round(self) -> RoundSummary | None:
        return self._round

    @property
    def position(self) -> int:
        """The current item's position in the round (1-based), 0 when there is none."""
        return self._position

    @property
    def items(self) -> list[RoundItem]:
        return list(self._items)

    @property
    def layout_name(self) -> str:
        """How the item is laid out: "side by side" or "stacked", and whether compact."""
        review = self.query_one("#review")
        shape = "side by side" if review.has_class("-wide") else "stacked"
        return f"{shape}, compact" if review.has_class("-compact") else shape

    @property
    def settled(self) -> bool:
        """Nothing is being read or written, and the current item (if any) is drawn."""
        current = self._current()
        return (
            not self.polling
            and not self._writes
            and self._stage is not None
            and (current is None or self.query_one("#answer", RowsView).shown == current.example_id)
            and self.query_one("#prompt", RowsView).opened
        )

    def _current(self) -> RoundItem | None:
        return self._items[self._position - 1] if self._position else None

    # -- refreshing ---------------------------------------------------------------------

    def poll_args(self) -> tuple[Stage | None]:
        return (self._stage,)

    def read(self, ws: Workspace, wanted: Stage | None) -> None:
        statuses = stage_statuses(ws)
        stage = wanted or _first_to_review(statuses)
        self.post_message(Refreshed(stage, statuses, latest_round_items(ws.db, stage)))

    @on(Refreshed)
    def _refreshed(self, message: Refreshed) -> None:
        if self._stage is not None and message.stage != self._stage:
            return
        self._stage = message.stage
        self._statuses = {status.stage: status for status in message.statuses}
        if message.round is None:
            self._round, self._items, self._position = None, [], 0
        else:
            summary, items = message.round
            same = self._round is not None and self._round.round_id == summary.round_id
            here = self._drawing or summary.round_id == self._drawn_here
            if self._round is not None and not same and not here:
                self.notify(
                    f"Round {summary.round_id} of {summary.stage} was drawn elsewhere; round "
                    f"{self._round.round_id} is no longer the one the gate reads.",
                    title="new round",
                    severity="warning",
                )
            self._round, self._items = summary, self._pending_applied(summary.round_id, items)
            if not same or not self._position:
                self._position = self._next_undecided(0) or 1
        self._render_all()

    def _pending_applied(self, round_id: int, items: list[RoundItem]) -> list[RoundItem]:
        """`items` as read, with the writes not yet applied shown as if they were."""
        for write in self._writes:
            if write.round_id == round_id:
                items[write.position - 1] = _with_write(items[write.position - 1], write)
        return items

    # -- loading items ------------------------------------------------------------------

    def _want(self, position: int) -> None:
        """Read the item at `position` unless it is cached or being read."""
        example_id = self._items[position - 1].example_id
        if example_id in self._views or example_id in self._loading:
            return
        self._loading.add(example_id)
        self._load(example_id)

    @work(thread=True, group="items")
    def _load(self, example_id: int) -> None:
        try:
            with reopened(self._ws) as ws:
                view = item_view(load_item(ws.db, example_id))
        except WORKER_ERRORS as exc:
            self.post_message(ItemLoaded(example_id, str(exc)))
            return
        self.post_message(ItemLoaded(example_id, view))

    @on(ItemLoaded)
    def _item_loaded(self, message: ItemLoaded) -> None:
        self._loading.discard(message.example_id)
        current = self._current()
        if isinstance(message.view, str):
            if current is not None and current.example_id == message.example_id:
                self.notify(message.view, title="the item could not be read", severity="error")
            return
        self._views.set(message.example_id, message.view)
        if current is not None and current.example_id == message.example_id:
            self._render_item()

    # -- writing ------------------------------------------------------------------------

    def _enqueue(self, write: Write) -> None:
        self._writes.append(write)
        if not self._writing:
            self._write_next()

    def _write_next(self) -> None:
        self._writing = True
        self._write(self._writes[0])

    @work(thread=True, group="writes")
    def _write(self, write: Write) -> None:
        try:
            with reopened(self._ws) as ws:
                if write.decision is not None:
                    decide(ws, write.round_id, write.position, write.decision)
                if write.note is not None:
                    set_note(ws, write.round_id, write.position, write.note)
        except WORKER_ERRORS as exc:
            self.post_message(Written(write, str(exc)))
            return
        self.post_message(Written(write, None))

    @on(Written)
    def _written(self, message: Written) -> None:
        self._writes.popleft()
        self._writing = False
        if message.error is not None:
            self.notify(message.error, title="review", severity="error", markup=False)
        if self._writes:
            self._write_next()
        else:
            self.request_poll()

    # -- actions ------------------------------------------------------------------------

    def action_decide(self, decision: Decision) -> None:
        current = self._current()
        if self._round is None or current is None:
            self.notify("No item to decide: draw a sample first (d).", severity="warning")
            return
        if decision == "flip" and current.kind != "preference":
            self.notify(
                f"Item {self._position} is an SFT example: flip swaps the chosen and rejected "
                "answers of a pair. Accept or reject it instead.",
                title="not a pair",
                severity="warning",
            )
            return
        write = Write(self._round.round_id, self._position, decision=decision)
        self._items[self._position - 1] = _with_write(current, write)
        self._enqueue(write)
        following = self._next_undecided(self._position)
        if following is None:
            self.notify(
                f"Every item of round {self._round.round_id} is decided.", title="round done"
            )
        else:
            self._position = following
        self._render_all()

    def action_note(self) -> None:
        current = self._current()
        if self._round is None or current is None:
            self.notify("No item to write a note on: draw a sample first (d).", severity="warning")
            return
        round_id, position = self._round.round_id, self._position

        def saved(note: str | None) -> None:
            if note is None or self._round is None or self._round.round_id != round_id:
                return
            write = Write(round_id, position, note=note)
            self._items[position - 1] = _with_write(self._items[position - 1], write)
            self._enqueue(write)
            self._render_all()

        title = f"Note on item {position} of round {round_id}"
        self.app.push_screen(NoteScreen(title, current.note or ""), saved)

    def action_move(self, delta: int) -> None:
        if not self._items:
            return
        self._position = max(1, min(len(self._items), self._position + delta))
        self._render_all()

    def action_stage(self, delta: int) -> None:
        if self._stage is None:
            return
        self._stage = STAGES[(STAGES.index(self._stage) + delta) % len(STAGES)]
        self._round, self._items, self._position = None, [], 0
        self._render_all(reading=True)
        self.request_poll()

    def action_draw(self) -> None:
        stage = self._stage
        status = self._statuses.get(stage) if stage is not None else None
        if stage is None or status is None:
            return
        n = self._ws.config.training_data.review_sample_size
        count = status.count
        if not count.unreviewed:
            why = (
                "it has no items yet: derive them with `cra data build`"
                if not count.items
                else f"all {count.items:,} of its items have been drawn before"
            )
            self.notify(f"No sample of {stage} to draw: {why}.", severity="warning")
            return
        body = (
            f"Draw {min(n, count.unreviewed)} of the {count.unreviewed:,} unreviewed items of "
            f"{stage}, stratified by source and repo ([training_data] review_sample_size)."
        )
        minimum = self._ws.config.training_data.review_min_sample
        if min(n, count.unreviewed) < minimum:
            body += (
                f"\n\nA round of fewer than {minimum} items gets no verdict ([training_data] "
                f"review_min_sample): to curate {stage}, derive more data first."
            )
        latest = status.latest
        if latest is not None and latest.undecided:
            body += (
                f"\n\nRound {latest.round_id} still has {latest.undecided} undecided items: they "
                "stay in that round and are not drawn again, and the gate looks only at the "
                "new round."
            )

        def draw() -> None:
            seed = self._seed()
            self._drawing = True
            self.act(
                lambda ws: draw_sample(ws, stage, n, seed),
                lambda round_id: f"Round {round_id} of {stage} drawn.",
                select=lambda round_id: round_id,
            )

        self.confirm(f"Draw a new sample of {stage}?", body, draw)

    def acted(self, message: ActionDone) -> None:
        """A draw ended: the round it drew is this pane's own, not one drawn elsewhere."""
        self._drawing = False
        self._drawn_here = message.select

    def action_guidelines(self) -> None:
        panel = self.query_one("#guidelines")
        panel.display = not panel.display

    # -- drawing ------------------------------------------------------------------------

    def _next_undecided(self, after: int) -> int | None:
        """The first undecided position after `after`, wrapping round, never `after` itself."""
        count = len(self._items)
        for step in range(1, count + 1):
            position = (after + step - 1) % count + 1
            if position != after and self._items[position - 1].decision in UNDECIDED:
                return position
        return None

    def _show_item_area(self, shown: bool) -> None:
        """Show the item, or the text saying why there is none. Hiding the item takes the focus
        from the prompt or answers; showing it again gives it back to the answers."""
        for selector in ("#item-head", "#task", "#panels"):
            self.query_one(selector).display = shown
        self.query_one("#empty").display = not shown
        if shown and self.focused is None:
            self.query_one("#answer").focus()

    def _render_all(self, reading: bool = False) -> None:
        stage = self._stage
        status = self._statuses.get(stage) if stage is not None else None
        box = self.query_one("#stages")
        if self._statuses:
            self.query_one("#strip", Static).update(
                strip_table(list(self._statuses.values()), stage, self._compact)
            )
        if stage is not None:
            box.border_title = f"Stages · {stage}"
        if stage is not None and stage != self._guidelines_stage:
            self._guidelines_stage = stage
            self.query_one("#guidelines-body", Static).update(guidelines_text(stage))
            self.query_one("#guidelines").border_title = f"Guidelines · {stage}"
        self.query_one("#gate", Static).update(
            "" if status is None or reading else gate_text(status)
        )
        current = self._current()
        if self._round is None or current is None:
            self._show_item_area(False)
            n = self._ws.config.training_data.review_sample_size
            self.query_one("#empty", Static).update(_empty_text(stage, status, reading, n))
            return
        self._show_item_area(True)
        self.query_one("#item-head", Static).update(
            heading(self._round, self._items, self._position, self._compact)
        )
        self._render_item()
        self._want(self._position)
        if self._position < len(self._items):
            self._want(self._position + 1)

    def _render_item(self) -> None:
        current = self._current()
        if current is None:
            return
        prompt = self.query_one("#prompt", RowsView)
        answer = self.query_one("#answer", RowsView)
        view = self._views.get(current.example_id)
        if answer.shown == current.example_id and view is not None:
            return
        task = self.query_one("#task", Static)
        if view is None:
            task.update(Text("Task  …", style="dim"))
            prompt.show([(Text("Reading the item…", style="dim"),)], None)
            answer.show([], None)
            return
        task.update(view.task)
        prompt.show(view.prompt, view.example_id, start=view.prompt_start)
        answer.show(view.answer, view.example_id, view.answer_header)
        prompt.border_title = view.prompt_title
        answer.border_title = view.answer_title
        self.query_one("#panels").set_class(view.answer_header is not None, "-pair")


def _with_write(item: RoundItem, write: Write) -> RoundItem:
    changes: dict[str, object] = {}
    if write.decision is not None:
        changes["decision"] = write.decision
    if write.note is not None:
        changes["note"] = write.note or None
    return item.model_copy(update=changes)


def _first_to_review(statuses: list[StageStatus]) -> Stage:
    """The stage to open on: the first whose newest round is open, else the first with items."""
    for status in statuses:
        if status.latest is not None and status.latest.undecided:
            return status.stage
    for status in statuses:
        if status.count.items:
            return status.stage
    return statuses[0].stage


def _empty_text(stage: Stage | None, status: StageStatus | None, reading: bool, n: int) -> Text:
    """What the item area says when there is no item to show."""
    if stage is None or status is None or reading:
        return Text("Reading…", style="dim")
    count = status.count
    if not count.items:
        return Text.assemble(
            (f"No items of {stage} yet.", "bold"),
            "\n\nDerive training data from validated tasks with `cra data build`, or import "
            "logged runs with `cra import-logs`; then draw a sample here with d.",
        )
    return Text.assemble(
        (f"{stage} holds {count.items:,} items ({count.pairs:,} pairs); ", "bold"),
        ("no sample has been drawn for review yet.", "bold"),
        f"\n\nPress d to draw {min(n, count.unreviewed)} of its {count.unreviewed:,} unreviewed "
        "items, stratified by source and repo.",
    )
