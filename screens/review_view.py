"""What the Review pane draws, as plain functions of engine data: no widgets, no database.

- the stage strip: one column per stage (items, newest round's progress, reject rate, gate),
  or, compact, its round's progress and gate mark alone;
- the item heading: round, position, stage, kind, provenance, decision and note, and a ribbon
  of the round's decisions with the current item marked (compact: two lines);
- the item itself: its task line (the subject of the prompt's `Task:` section, and a step
  plan's part), the prompt, then the answer of an SFT example, or a pair's chosen and rejected
  answers side by side, aligned line by line with difflib so what differs stands out (lines
  only in chosen green, only in rejected red, the changed characters of a changed line in
  reverse).

An answer holding search/replace edits (execute_code) is shown with each edit's search and
replace text as code lines, and other JSON re-indented, so the diff runs over code lines
rather than over escaped strings; the title says when an answer was reformatted.
"""

import difflib
import json
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from rich.table import Table
from rich.text import Text

from engine.core.stages import BASE_TUNE_STAGES, Stage
from engine.core.terminal_text import neutralise
from engine.training_data.guidelines import GUIDELINES, guideline_sections
from engine.training_data.items import Message, StoredItem
from engine.training_data.review import RoundSummary
from engine.training_data.review_status import RoundItem, StageStatus
from screens.review_lines import Row

DECISION_MARK = {
    None: ("·", "dim"),
    "skip": ("↷", "yellow"),
    "accept": ("✓", "bold green"),
    "reject": ("✗", "bold red"),
    "flip": ("⇄", "bold magenta"),
}
DECISION_WORD = {
    None: "undecided",
    "skip": "skipped",
    "accept": "accepted",
    "reject": "rejected",
    "flip": "flipped",
}
CHOSEN_STYLE = "green"
REJECTED_STYLE = "red"
CHANGED_CHARS = "reverse"
TAB_SIZE = 4
# Two lines this alike (difflib's ratio) are one line edited: their differing characters show.
SIMILAR_LINE = 0.6


# -- the stage strip ----------------------------------------------------------------------


def strip_table(
    statuses: list[StageStatus], selected: Stage | None, compact: bool = False
) -> Table:
    """Every stage as a column: its items, newest round, reject rate and gate; `compact`, its
    newest round and gate mark in one row (the selected stage's gate line says the rest)."""
    table = Table(box=None, padding=(0, 1, 0, 0), expand=True, show_edge=False, header_style="bold")
    rows: list[list[Text]] = [[], [], [], []]
    marks: list[Text] = []
    for status in statuses:
        mine = status.stage == selected
        table.add_column(
            Text(status.stage, style="reverse bold" if mine else "bold"),
            no_wrap=True,
            overflow="ellipsis",
            ratio=1,
        )
        count, latest = status.count, status.latest
        emphasis = "bold" if mine else ""
        rows[0].append(
            Text(f"{count.items:,} item{'s' if count.items != 1 else ''}", style=emphasis)
            if count.items
            else Text("no items", style="dim")
        )
        if latest is None:
            rows[1].append(Text("no round", style="dim"))
            rows[2].append(Text("—", style="dim"))
        else:
            done = "green" if not latest.undecided else "yellow"
            rows[1].append(
                Text.assemble(
                    (f"r{latest.round_id} ", emphasis),
                    (f"{latest.decided}/{latest.total}", f"{done} {emphasis}"),
                )
            )
            rows[2].append(
                Text(f"{latest.reject_rate:.0%} rejected", style=emphasis)
                if latest.decided
                else Text("—", style="dim")
            )
        mark, word, style = (
            ("✓", "ready", "bold green") if status.gate.ok else ("✗", "blocked", "red")
        )
        rows[3].append(Text(f"{mark} {word}", style=style))
        marks.append(Text(mark, style=style))
    if compact:
        rows = [[Text.assemble(mark, " ", r) for r, mark in zip(rows[1], marks, strict=True)]]
    for row in rows:
        table.add_row(*row)
    return table


def gate_text(status: StageStatus) -> Text:
    """The selected stage's gate in full: whether it may be curated (a planning stage: exported
    for the base fine-tune), and why (not)."""
    passed = (
        "✓ may be exported (cra data export-base)"
        if status.stage in BASE_TUNE_STAGES
        else "✓ may be curated"
    )
    mark, style = (passed, "bold green") if status.gate.ok else ("✗ blocked", "red")
    return Text.assemble(("Gate ", "bold"), (mark, style), " — ", neutralise(status.gate.reason))


# -- the item heading ---------------------------------------------------------------------


def ribbon(items: list[RoundItem], position: int) -> Text:
    """One mark per item of the round, the current one reversed."""
    text = Text("Items ", style="bold")
    for item in items:
        mark, style = DECISION_MARK[item.decision]
        text.append(mark, style=f"{style} reverse" if item.position == position else style)
    return text


def heading(
    summary: RoundSummary, items: list[RoundItem], position: int, compact: bool = False
) -> Text:
    """The current item's facts, its decision and note, and the round's ribbon; `compact`, in
    two lines: what and whence, then the decision, note and ribbon (the round's seed, time and
    counts, the task key, commit and example id left out)."""
    item = items[position - 1]
    kind = "pair" if item.kind == "preference" else "SFT example"
    text = Text.assemble(
        (f"Round {summary.round_id}", "bold"),
        f" · item {position}/{summary.total} · ",
        (summary.stage, "bold"),
        " · ",
        (kind, "bold cyan"),
        neutralise(f" · {item.source}/{item.origin}"),
    )
    if item.alignment is not None:
        text.append(f" · alignment {item.alignment:.2f}")
    if compact:
        text.append(neutralise(f" · repo {item.repo}"))
    else:
        text.append(neutralise(f"\nrepo {item.repo} ({item.domain}) · task {item.task_key}"))
        if item.sha:
            text.append(neutralise(f" · commit {item.sha[:12]}"))
        text.append(f" · example #{item.example_id}", style="dim")
    mark, style = DECISION_MARK[item.decision]
    text.append("\nDecision ", style="bold")
    text.append(f"{mark} {DECISION_WORD[item.decision]}", style=style)
    if item.decided_by and item.decision:
        text.append(neutralise(f" by {item.decided_by}"), style="dim")
    text.append("   Note ", style="bold")
    text.append(neutralise(item.note or "—"), style="" if item.note else "dim")
    if compact:
        text.append("   ")
    else:
        text.append(
            f"\nseed {summary.seed} · drawn {summary.drawn_at} · {summary.decided} decided, "
            f"{summary.rejected} rejected, {summary.undecided} to go   ",
            style="dim",
        )
    text.append_text(ribbon(items, position))
    return text


# -- the item -----------------------------------------------------------------------------


def readable(content: str) -> tuple[str, bool]:
    """The answer as a reviewer reads it, and whether it was reformatted to get there."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return content, False
    if _is_edits(value):
        return _edits_text(value), True
    if isinstance(value, dict | list):
        shown = json.dumps(value, indent=2, ensure_ascii=False)
        return shown, shown != content
    return content, False


def _is_edits(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(e, dict) and {"path", "search", "replace"} <= set(e) for e in value)
    )


def _edits_text(edits: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for number, edit in enumerate(edits, 1):
        if edit.get("delete"):
            lines.append(f"# edit {number}: delete {edit['path']}")
            continue
        action = "create" if not edit["search"] else "edit"
        lines.append(f"# edit {number}: {action} {edit['path']}")
        if edit["search"]:
            lines.append("search:")
            lines.extend(f"    {line}" for line in str(edit["search"]).splitlines())
        lines.append("replace:")
        lines.extend(f"    {line}" for line in str(edit["replace"]).splitlines())
    return "\n".join(lines)


def answer_content(messages: list[Message]) -> str:
    return "\n\n".join(message.content for message in messages)


@dataclass(frozen=True)
class DiffRow:
    """One aligned line: the chosen side's text and the rejected side's (None: no line)."""

    chosen: str | None
    rejected: str | None

    @property
    def changed(self) -> bool:
        return self.chosen != self.rejected


def aligned(chosen: str, rejected: str) -> list[DiffRow]:
    """The two answers line by line, lines that match side by side, the rest padded apart."""
    old, new = rejected.splitlines(), chosen.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(DiffRow(line, line) for line in new[j1:j2])
        else:
            rows.extend(
                DiffRow(c, r) for c, r in zip_longest(new[j1:j2], old[i1:i2], fillvalue=None)
            )
    return rows


def marked_line(line: str, other: str | None, style: str) -> Text:
    """A changed line in `style`; when `other` is a close variant of it (an edited line rather
    than a different one), the characters that differ are reversed too."""
    text = _cell(line, style)
    if other is None:
        return text
    matcher = difflib.SequenceMatcher(None, other, line, autojunk=False)
    if matcher.ratio() < SIMILAR_LINE:
        return text
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag != "equal" and j2 > j1:
            text.stylize(CHANGED_CHARS, j1, j2)
    return text


def diff_rows(rows: list[DiffRow]) -> list[Row]:
    """The aligned lines as (chosen, rejected) cells, what differs coloured."""
    cells: list[Row] = []
    for row in rows:
        if not row.changed:
            cells.append((_cell(row.chosen or ""), _cell(row.rejected or "")))
            continue
        cells.append(
            (
                _cell("")
                if row.chosen is None
                else marked_line(row.chosen, row.rejected, CHOSEN_STYLE),
                _cell("")
                if row.rejected is None
                else marked_line(row.rejected, row.chosen, REJECTED_STYLE),
            )
        )
    return cells


def _cell(line: str, style: str = "") -> Text:
    return Text(line, style=style, overflow="fold")


@dataclass(frozen=True)
class ItemView:
    """An item ready to draw: its prompt's and answer's rows and the titles of their boxes."""

    example_id: int
    task: Text
    prompt: list[Row]
    prompt_start: int
    prompt_title: str
    answer: list[Row]
    answer_title: str
    answer_header: Row | None = None


TASK_SECTION = "Task:\n"
PART_SECTION = "\n\nPart:\n"


def task_line(messages: list[Message]) -> Text:
    """The task the item's prompt asks about, for the line above it: the first line of the
    last user message's `Task:` section (every derived prompt has one: first, or after the
    files it shows), and a step plan's part; a prompt without one (a logged call) says so."""
    users = [message.content for message in messages if message.role == "user"]
    user = users[-1] if users else ""
    if user.startswith(TASK_SECTION):
        start = len(TASK_SECTION)
    else:
        found = user.rfind(f"\n\n{TASK_SECTION}")
        start = found + len(TASK_SECTION) + 2 if found != -1 else -1
    if start == -1:
        return Text.assemble(("Task  ", "bold"), ("the prompt names none: read it below", "dim"))
    text = Text.assemble(("Task  ", "bold"), (_shown(user[start:].partition("\n")[0]), "bold"))
    part = user.find(PART_SECTION, start)
    if part != -1:
        text.append("   Part  ", style="bold")
        text.append(_shown(_part_title(user[part + len(PART_SECTION) :])))
    return text


def _part_title(part: str) -> str:
    """A plan part's title (the part is its JSON), else its first line."""
    try:
        value = json.loads(part)
    except json.JSONDecodeError:
        return part.partition("\n")[0]
    if isinstance(value, dict) and isinstance(value.get("title"), str):
        return value["title"]
    return part.partition("\n")[0]


def prompt_rows(messages: list[Message]) -> tuple[list[Row], int]:
    """Each message's role, then its lines (the system prompt dimmed), a blank row between;
    and the row the last user message starts at, where a prompt too long to show whole opens
    (the system prompt above it is the same for every item of a stage)."""
    rows: list[Row] = []
    start = 0
    for number, message in enumerate(messages):
        if number:
            rows.append((_cell(""),))
        if message.role == "user":
            start = len(rows)
        rows.append((Text(neutralise(message.role), style="bold underline"),))
        style = "dim" if message.role == "system" else ""
        rows.extend((_cell(line, style),) for line in _lines(message.content))
    return rows, start


def _shown(text: str) -> str:
    """Untrusted text as the pane lays it out: its controls neutralised, its tabs expanded."""
    return neutralise(text).expandtabs(TAB_SIZE)


def _lines(text: str) -> list[str]:
    return _shown(text).splitlines() or [""]


def item_view(item: StoredItem) -> ItemView:
    """What the pane shows of `item`: the prompt, and the answer or the pair's diff."""
    chosen, chosen_formatted = readable(answer_content(item.chosen))
    task = task_line(item.prompt)
    prompt, prompt_start = prompt_rows(item.prompt)
    prompt_title = f"Prompt · {item.prompt_tokens:,} tokens"
    if item.rejected is None:
        title = f"Answer · {item.completion_tokens:,} tokens"
        return ItemView(
            item.id,
            task,
            prompt,
            prompt_start,
            prompt_title,
            [(_cell(line),) for line in _lines(chosen)],
            f"{title} · reformatted" if chosen_formatted else title,
        )
    rejected, rejected_formatted = readable(answer_content(item.rejected))
    rows = aligned(_shown(chosen), _shown(rejected))
    only_chosen = sum(1 for row in rows if row.changed and row.chosen is not None)
    only_rejected = sum(1 for row in rows if row.changed and row.rejected is not None)
    title = (
        f"Chosen vs rejected · lines changed: {only_chosen} in chosen, {only_rejected} in "
        f"rejected · {item.completion_tokens:,} tokens"
    )
    if not only_chosen and not only_rejected:
        title += " · the two answers are the same"
    if chosen_formatted or rejected_formatted:
        title += " · reformatted"
    header = (
        Text(f"chosen  +{only_chosen}", style=f"bold {CHOSEN_STYLE}"),
        Text(f"rejected  −{only_rejected}", style=f"bold {REJECTED_STYLE}"),
    )
    return ItemView(
        item.id, task, prompt, prompt_start, prompt_title, diff_rows(rows), title, header
    )


# -- the guidelines -----------------------------------------------------------------------


def guidelines_text(stage: Stage) -> Text:
    """The stage's guideline: what an item is, then when to accept, reject, flip, skip."""
    text = Text(f"{stage}\n", style="bold")
    text.append(GUIDELINES[stage].item, style="italic")
    styles = {
        "Accept when": "bold green",
        "Reject when": "bold red",
        "Flip (pairs only) when": "bold magenta",
        "Skip when": "bold yellow",
    }
    for title, rules in guideline_sections(stage):
        text.append(f"\n\n{title}", style=styles[title])
        for rule in rules:
            text.append(f"\n• {rule}")
    return text
