"""The Ingest pane: drives and packages found, each package's validation report, approve/reject.

The selected package's heading (status, size, and its mining facts in one line) sits above two
tabs: Checks (the validation report) and Mining (the commit filter's attrition table, the
planning-type mix, the style score and the plan artifacts from its manifest); `c` and `m`
switch between them.

Everything slow runs in workers that only post messages: the USB watcher (async, over
`engine.intake.usb.watch_drives`), one validation thread per package, and the approve/reject calls.
A package's report is the one the workspace keeps for its content (`validation_cache`), so a
package already validated, in this console or an earlier one or by `cra ingest validate`, is not
validated again; rescans reuse the pane's reports per package path and manifest mtime; `v`
validates afresh. The corpus is the pane's poll (`EnginePane`): read when the pane comes into
view, after its own decisions, and whenever another process commits (an approval from `cra`).
"""

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace, reopened
from engine.intake.approval import (
    CorpusEntry,
    PackageNotValid,
    approve_package,
    list_corpus,
    refusal_text,
    reject_package,
)
from engine.intake.label import package_label
from engine.intake.manifest import MANIFEST_FILE
from engine.intake.usb import Drive, watch_drives
from engine.intake.validation_cache import validate_cached
from engine.intake.validation_report import ValidationReport
from screens.ingest_report import (
    checks_parts,
    facts_line,
    mining_headline,
    mining_parts,
    plural,
)
from screens.pane import EnginePane
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.reason import ReasonScreen
from screens.workers import WORKER_ERRORS

Decision = Literal["approved", "rejected"]
DRIVE_PREFIX = "drive:"
REFUSED_TITLE: dict[Decision, str] = {
    "approved": "approval refused",
    "rejected": "rejection refused",
}
CHECKS_TAB = "checks-tab"
MINING_TAB = "mining-tab"
TAB_SCROLL = {CHECKS_TAB: "#report", MINING_TAB: "#mining"}


@dataclass(frozen=True)
class ReportKey:
    """One version of a package: its folder and its manifest's mtime."""

    path: Path
    mtime_ns: int


@dataclass(frozen=True)
class PackageRow:
    """A package as listed: the drive it was found on and its current version."""

    drive: Path
    key: ReportKey

    @property
    def location(self) -> str:
        """Where the package sits on its drive; `.` when the drive is the package."""
        return self.key.path.relative_to(self.drive).as_posix()


@dataclass
class CorpusRead(Message):
    """The poll read the approved corpus."""

    entries: list[CorpusEntry]


@dataclass
class DrivesChanged(Message):
    """The USB watcher saw a drive or package come or go: the drives and their packages."""

    drives: list[Drive]
    rows: dict[Path, PackageRow]


@dataclass
class ReportReady(Message):
    """A validation finished: its report, or the message of the error that stopped it."""

    key: ReportKey
    outcome: ValidationReport | str


@dataclass
class DecisionDone(Message):
    """An approve or reject call returned (`error` set when the engine refused it)."""

    key: ReportKey
    decision: Decision
    text: str
    error: str | None


def package_rows(drives: list[Drive]) -> dict[Path, PackageRow]:
    """Each package found on `drives` at its current version (its manifest's mtime); one gone
    since the scan is left out, and the next scan drops it. Reads the disk: call it in a
    worker."""
    rows = {}
    for drive in drives:
        for path in drive.packages:
            try:
                mtime_ns = (path / MANIFEST_FILE).lstat().st_mtime_ns
            except OSError:
                continue
            rows[path] = PackageRow(drive=drive.path, key=ReportKey(path, mtime_ns))
    return rows


class IngestScreen(EnginePane):
    """Drives and packages on the left with the corpus below; on the right the selected
    package's heading above its Checks and Mining tabs."""

    PANE_TITLE = "Ingest"
    POLL_S = 0.5
    POLL_TITLE = "corpus"
    ACTION_TITLE = "ingest"
    CSS_PATH = "ingest.tcss"
    BINDINGS = [
        Binding("a", "approve", "Approve", tooltip="Approve the selected package into the corpus"),
        Binding("x", "reject", "Reject", tooltip="Reject the selected package, with a reason"),
        Binding("v", "revalidate", "Revalidate", tooltip="Validate the selected package again"),
        Binding("c", f"show_tab('{CHECKS_TAB}')", "Checks", tooltip="Show the validation checks"),
        Binding(
            "m",
            f"show_tab('{MINING_TAB}')",
            "Mining",
            tooltip="Show the commit filter, planning types, style score and plan artifacts",
        ),
        Binding("escape", "focus_packages", "Back to the packages", show=False),
    ]

    def __init__(self, workspace: Workspace, usb_dirs: list[Path]) -> None:
        super().__init__(workspace)
        self._usb_dirs = list(usb_dirs)
        self._drives: list[Drive] = []
        self._rows: dict[Path, PackageRow] = {}
        self._reports: dict[ReportKey, ValidationReport | str] = {}
        self._validating: set[ReportKey] = set()
        self._decisions: dict[ReportKey, Decision] = {}
        self._deciding: dict[ReportKey, Decision] = {}
        self._approved_digests: set[str] = set()
        self._selected: str | None = None
        self._stop_watching = asyncio.Event()

    def compose_pane(self) -> ComposeResult:
        with Horizontal(id="ingest"):
            with Vertical(id="left"):
                packages = DataTable(id="packages", cursor_type="row", zebra_stripes=False)
                packages.border_title = "Drives and packages"
                yield packages
                corpus = DataTable(id="corpus", cursor_type="row", show_cursor=False)
                corpus.border_title = "Approved corpus"
                yield corpus
            with Vertical(id="right") as right:
                right.border_title = "Report"
                yield Static(id="report-head")
                with TabbedContent(id="report-tabs", initial=CHECKS_TAB):
                    with TabPane("Checks", id=CHECKS_TAB), VerticalScroll(id="report"):
                        yield Static(id="report-body")
                    with TabPane("Mining", id=MINING_TAB), VerticalScroll(id="mining"):
                        yield Static(id="mining-body")

    def on_mount(self) -> None:
        packages = self.query_one("#packages", DataTable)
        # Status first: a long folder name may be cut at the right edge, the verdict never is.
        packages.add_column("Status", key="status")
        packages.add_column("Drive / package", key="location")
        corpus = self.query_one("#corpus", DataTable)
        for label, key in [
            ("Package", "package"),
            ("Commits", "commits"),
            ("Wheels", "wheels"),
            ("Approved (UTC)", "approved_at"),
            ("By", "approved_by"),
        ]:
            corpus.add_column(label, key=key)
        self._render_report()
        self._watch_usb()

    def on_unmount(self) -> None:
        self._stop_watching.set()

    def read(self, ws: Workspace) -> None:
        self.post_message(CorpusRead(list_corpus(ws)))

    # -- workers: they only post messages ---------------------------------------------------

    @work(exclusive=True, group="usb")
    async def _watch_usb(self) -> None:
        usb = self._ws.config.usb
        async for drives in watch_drives(usb, self._usb_dirs, self._stop_watching):
            rows = await asyncio.to_thread(package_rows, drives)
            self.post_message(DrivesChanged(drives, rows))

    @work(thread=True, group="validate")
    def _validate(self, key: ReportKey, fresh: bool) -> None:
        """The package's report: the one the workspace keeps for its content, else (or when
        `fresh`) a new validation, which is kept."""
        try:
            with reopened(self._ws) as ws:
                report = validate_cached(ws, key.path, fresh=fresh)
        except WORKER_ERRORS as exc:
            self.post_message(ReportReady(key, str(exc)))
            return
        self.post_message(ReportReady(key, report))

    @work(thread=True, group="decide")
    def _approve(self, key: ReportKey) -> None:
        try:
            with reopened(self._ws) as ws:
                result = approve_package(ws, key.path)
        except PackageNotValid as exc:
            # Approval validated again and found what the cached report did not: show it.
            self.post_message(ReportReady(key, exc.report))
            self.post_message(DecisionDone(key, "approved", "", str(exc)))
            return
        except WORKER_ERRORS as exc:
            self.post_message(DecisionDone(key, "approved", "", str(exc)))
            return
        where = result.corpus_path
        text = (
            f"{result.label}: already in the corpus as {where}; nothing copied"
            if result.already_approved
            else f"{result.label}: approved into {where}"
        )
        self.post_message(DecisionDone(key, "approved", text, None))

    @work(thread=True, group="decide")
    def _reject(self, key: ReportKey, reason: str, report: ValidationReport | None) -> None:
        try:
            with reopened(self._ws) as ws:
                decision = reject_package(ws, key.path, reason=reason, report=report)
        except WORKER_ERRORS as exc:
            self.post_message(DecisionDone(key, "rejected", "", str(exc)))
            return
        text = f"{decision.label}: rejected ({decision.reason})"
        self.post_message(DecisionDone(key, "rejected", text, None))

    # -- messages --------------------------------------------------------------------------

    @on(DrivesChanged)
    def _drives_changed(self, message: DrivesChanged) -> None:
        self._drives = message.drives
        self._rows = message.rows
        for row in self._rows.values():
            self._start_validation(row.key)
        self._rebuild_packages()
        self._render_report()

    @on(ReportReady)
    def _report_ready(self, message: ReportReady) -> None:
        self._validating.discard(message.key)
        self._reports[message.key] = message.outcome
        self._update_status(message.key)

    @on(DecisionDone)
    def _decision_done(self, message: DecisionDone) -> None:
        del self._deciding[message.key]
        if message.error is not None:
            self.notify(
                message.error,
                title=REFUSED_TITLE[message.decision],
                severity="error",
                markup=False,
            )
        else:
            self._decisions[message.key] = message.decision
            self.notify(message.text, title=f"package {message.decision}", markup=False)
            self.request_poll()
        self._update_status(message.key)

    @on(DataTable.RowHighlighted, "#packages")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._selected = event.row_key.value
        self._render_report()

    @on(DataTable.RowSelected, "#packages")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self._selected = event.row_key.value
        self._render_report()
        if self.selected_package() is not None:
            self._active_scroll().focus()

    # -- actions ---------------------------------------------------------------------------

    def action_approve(self) -> None:
        row = self._require_package("approve")
        if row is None:
            return
        state = self._state(row.key)
        name = self._package_name(row)
        if not isinstance(state, ValidationReport):
            why = (
                "is still being validated" if state is None else f"could not be validated: {state}"
            )
            self.notify(f"{name} {why}; nothing approved.", severity="error", markup=False)
            return
        if not state.ok:
            self.notify(
                refusal_text(state),
                title=REFUSED_TITLE["approved"],
                severity="error",
                markup=False,
            )
            return
        if self._status(row.key).plain == "approved":
            self.notify(f"{name} is already in the corpus.", severity="information", markup=False)
            return
        summary = state.summary
        flags = plural(len(state.flags), "content flag")
        body = (
            f"folder {row.location} on drive {row.drive}\n"
            f"{plural(summary.commit_count, 'commit')}, {plural(summary.wheel_count, 'wheel')}, "
            f"{flags} for review{' (read them in the report first)' if state.flags else ''}\n\n"
            "Approval validates the package again, then copies it into the corpus."
        )

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._start_approval(row.key)

        self.app.push_screen(ConfirmScreen(f"Approve {name}?", body), confirmed)

    def action_reject(self) -> None:
        row = self._require_package("reject")
        if row is None:
            return
        name = self._package_name(row)

        def confirmed(reason: str, answer: bool | None) -> None:
            if answer:
                self._start_rejection(row.key, reason)

        def reasoned(reason: str | None) -> None:
            if reason is None:
                return
            body = (
                f"folder {row.location} on drive {row.drive}\nReason: {reason}\n\n"
                "Rejection records the decision; nothing is copied and the drive is untouched."
            )
            self.app.push_screen(
                ConfirmScreen(f"Reject {name}?", body), lambda answer: confirmed(reason, answer)
            )

        self.app.push_screen(
            ReasonScreen(f"Reject {name}", "Why is this package rejected?"), reasoned
        )

    def action_revalidate(self) -> None:
        row = self._require_package("revalidate")
        if row is None:
            return
        if row.key in self._validating:
            self.notify(
                f"{self._package_name(row)} is already being validated.",
                severity="warning",
                markup=False,
            )
            return
        self._reports.pop(row.key, None)
        self._start_validation(row.key, fresh=True)
        self._update_status(row.key)

    def action_focus_packages(self) -> None:
        self.query_one("#packages").focus()

    def action_show_tab(self, tab: str) -> None:
        """Show the Checks or the Mining tab; focus follows when it was on the report side."""
        self.query_one("#report-tabs", TabbedContent).active = tab
        if self.query_one("#right").has_focus_within:
            self._active_scroll().focus()

    def _active_scroll(self) -> VerticalScroll:
        tab = self.query_one("#report-tabs", TabbedContent).active
        return self.query_one(TAB_SCROLL[tab], VerticalScroll)

    # -- state -----------------------------------------------------------------------------

    def selected_package(self) -> PackageRow | None:
        """The package row under the cursor, or None when a drive row (or nothing) is."""
        if self._selected is None or self._selected.startswith(DRIVE_PREFIX):
            return None
        return self._rows.get(Path(self._selected))

    def is_listed(self, path: Path) -> bool:
        """Whether the package at `path` (as the scan found it) is in the packages table."""
        return path in self._rows

    def package_status(self, path: Path) -> str:
        """The status shown for the package at `path` (as listed), in plain text."""
        return self._status(self._rows[path].key).plain

    def _require_package(self, verb: str) -> PackageRow | None:
        row = self.selected_package()
        if row is None:
            self.notify(f"Select a package to {verb} first.", severity="warning")
            return None
        if row.key in self._deciding:
            self.notify(
                f"{self._package_name(row)}: a decision is being recorded.",
                severity="warning",
                markup=False,
            )
            return None
        return row

    def _state(self, key: ReportKey) -> ValidationReport | str | None:
        return self._reports.get(key)

    def _package_name(self, row: PackageRow) -> str:
        """The package's label (`engine.intake.label`): its folder and, once its report says,
        its digest and manifest name."""
        state = self._state(row.key)
        if isinstance(state, ValidationReport):
            return state.label
        return package_label(row.key.path, None)

    def _row_label(self, row: PackageRow) -> Text:
        """The package's line under its drive: the folders above it on the drive, then its
        label without the manifest's name (the column is narrow; the heading has it)."""
        state = self._state(row.key)
        digest = state.summary.manifest_sha256 if isinstance(state, ValidationReport) else None
        above = Path(row.location).parent.as_posix()
        return Text.assemble(
            "  ",
            (neutralise(f"{above}/") if above != "." else "", "dim"),
            package_label(row.key.path, digest),
        )

    def _start_validation(self, key: ReportKey, fresh: bool = False) -> None:
        if key in self._reports or key in self._validating:
            return
        self._validating.add(key)
        self._validate(key, fresh)

    def _start_approval(self, key: ReportKey) -> None:
        self._deciding[key] = "approved"
        self._update_status(key)
        self._approve(key)

    def _start_rejection(self, key: ReportKey, reason: str) -> None:
        self._deciding[key] = "rejected"
        self._update_status(key)
        state = self._state(key)
        self._reject(key, reason, state if isinstance(state, ValidationReport) else None)

    def _status(self, key: ReportKey) -> Text:
        if key in self._deciding:
            verb = "approving…" if self._deciding[key] == "approved" else "rejecting…"
            return Text(verb, style="bold yellow")
        state = self._state(key)
        if state is None:
            return Text("validating…", style="yellow")
        if isinstance(state, str):
            return Text("error", style="bold white on red")
        decision = self._decisions.get(key)
        if decision == "approved":
            return Text("approved", style="bold cyan")
        if decision == "rejected":
            return Text("rejected by operator", style="red")
        if not state.ok:
            return Text(f"REJECTED ({plural(len(state.failures()), 'failure')})", style="bold red")
        if self._in_corpus(state):
            return Text("approved", style="bold cyan")
        if state.flags:
            return Text(f"flagged ({len(state.flags)})", style="bold dark_orange")
        return Text("OK", style="bold green")

    def _in_corpus(self, report: ValidationReport) -> bool:
        digest = report.summary.manifest_sha256
        return digest is not None and digest in self._approved_digests

    # -- drawing ---------------------------------------------------------------------------

    def _rebuild_packages(self) -> None:
        table = self.query_one("#packages", DataTable)
        selected = self._selected
        table.clear()
        for drive in self._drives:
            count = len([p for p in drive.packages if p in self._rows])
            table.add_row(
                Text(plural(count, "package"), style="dim"),
                Text(neutralise(str(drive.path)), style="bold"),
                key=f"{DRIVE_PREFIX}{drive.path}",
            )
            for path in drive.packages:
                row = self._rows.get(path)
                if row is not None:
                    table.add_row(self._status(row.key), self._row_label(row), key=str(path))
        keys = [r.key.value for r in table.ordered_rows]
        if selected in keys:
            table.move_cursor(row=keys.index(selected), animate=False)
        elif keys:
            first_package = next((k for k in keys if not k.startswith(DRIVE_PREFIX)), keys[0])
            table.move_cursor(row=keys.index(first_package), animate=False)
            self._selected = first_package
        else:
            self._selected = None

    def _update_status(self, key: ReportKey) -> None:
        row = self._rows.get(key.path)
        if row is None or row.key != key:
            return
        table = self.query_one("#packages", DataTable)
        table.update_cell(str(key.path), "status", self._status(key), update_width=True)
        table.update_cell(str(key.path), "location", self._row_label(row), update_width=True)
        if self._selected == str(key.path):
            self._render_report()

    @on(CorpusRead)
    def _show_corpus(self, message: CorpusRead) -> None:
        entries = message.entries
        self._approved_digests = {e.digest for e in entries}
        table = self.query_one("#corpus", DataTable)
        table.clear()
        for e in entries:
            label = e.label if e.present else f"{e.label} (missing)"
            table.add_row(
                Text(label, style="" if e.present else "bold red"),
                Text(str(e.commit_count), justify="right"),
                Text(str(e.wheel_count), justify="right"),
                e.approved_at.strftime("%Y-%m-%d %H:%M"),
                Text(neutralise(e.approved_by)),
                key=e.digest,
            )
        for row in self._rows.values():
            self._update_status(row.key)

    def _render_report(self) -> None:
        head = self.query_one("#report-head", Static)
        tabs = self.query_one("#report-tabs", TabbedContent)
        row = self.selected_package()
        if row is None and self.query_one("#right").has_focus_within:
            self.query_one("#packages").focus()  # the tabs it was in are about to go
        tabs.display = row is not None
        if not self._drives:
            head.update(self._no_drives())
            return
        if row is None:
            head.update(self._no_package_text())
            return
        head.update(self._heading(row))
        state = self._state(row.key)
        if state is None:
            checks = mining = Text(
                "Validating in the background; other packages are not held up.", style="dim"
            )
        elif isinstance(state, str):
            checks = mining = Text(neutralise(f"Validation could not run: {state}"), style="red")
        else:
            checks = Group(*checks_parts(state))
            mining = Group(*mining_parts(state.summary))
        self.query_one("#report-body", Static).update(checks)
        self.query_one("#mining-body", Static).update(mining)

    def _no_package_text(self) -> Text:
        if self._selected is not None and self._selected.startswith(DRIVE_PREFIX):
            drive = next(
                (d for d in self._drives if f"{DRIVE_PREFIX}{d.path}" == self._selected), None
            )
            if drive is not None:
                return self._drive_text(drive)
        return Text("Select a package to see its validation report.", style="dim")

    def _no_drives(self) -> Text:
        usb = self._ws.config.usb
        where = [*usb.mount_roots, *map(str, usb.extra_dirs), *map(str, self._usb_dirs)]
        return Text.assemble(
            ("No drive found.\n\n", "bold"),
            "Watching: ",
            neutralise(", ".join(where) or "nothing (no mount roots configured)"),
            "\nPlug in a drive, or start the console with --usb DIR.",
        )

    def _drive_text(self, drive: Drive) -> Text:
        count = plural(len(drive.packages), "package")
        hint = "a folder holding manifest.json, up to two levels down"
        return Text.assemble(
            (neutralise(str(drive.path)), "bold"),
            f"\n{count} ({hint}).\n\nSelect a package to see its report.",
        )

    def _heading(self, row: PackageRow) -> Text:
        """Name, status and where the package sits; then what validation found, at a glance."""
        state = self._state(row.key)
        heading = Text.assemble(
            (self._package_name(row), "bold"),
            "   ",
            self._status(row.key),
            ("\nfolder ", "dim"),
            neutralise(row.location),
            ("  on drive ", "dim"),
            neutralise(str(row.drive)),
        )
        if isinstance(state, ValidationReport):
            heading.append("\n")
            heading.append_text(facts_line(state.summary))
            heading.append("\n")
            heading.append_text(mining_headline(state.summary))
        return heading


# -- the report's text: pure functions of the report -----------------------------------------
