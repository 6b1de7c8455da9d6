"""`EnginePane`, the base of every pane that reads or acts through the engine.

It owns what every such pane did alike: polling the workspace on a thread of its own (never
two polls at once, paused while the pane is out of view, a tick that reads nothing when the
database did not change, on a workspace opened once and kept), turning a worker's error into
one notification, asking before an action with consequences, and the action → worker →
message → redraw path. A pane keeps what is its own:
what it reads (`read`, in the worker) and how it draws the messages that read posts.

The clock (`now`) is the pane's constructor argument, so tests stop it instead of patching.
"""

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.message import Message
from textual.timer import Timer

from engine.core.db import ChangeProbe
from engine.core.timestamps import Clock, wall_clock
from engine.core.workspace import DB_FILE, Workspace, reopened
from screens import PaneScreen
from screens.widgets.confirm import ConfirmScreen
from screens.workers import WORKER_ERRORS, Fetches

Result = TypeVar("Result")


@dataclass
class PollDone(Message):
    """A poll ended; `error` is set when it could not finish, `crash` when it raised what is
    no refusal (a bug: raised again on the UI thread, which ends the app with its traceback)."""

    error: str | None
    crash: BaseException | None = None


@dataclass
class ActionDone(Message):
    """An action returned: what it did (`text`), or the engine's refusal (`error`); `select`
    is what the pane selects afterwards, if anything."""

    text: str
    error: str | None
    select: Any = None


class EnginePane(PaneScreen, Fetches):
    """A pane over the workspace whose polls run on its poll thread and actions in thread
    workers.

    Polling: with `POLL_S` set, a timer ticks while the pane is in view. A tick polls unless a
    poll is under way, and reads only when another connection committed since the last poll
    (`PRAGMA data_version`, see `ChangeProbe`) or `must_read()` says the view moves without
    the database (a clock, files being written). `request_poll()` always reads: the pane asks
    after its own writes and when what it shows changed; asked during a poll, it reads again
    right after it. `settle(ws)` runs on every poll before the probe: engine calls that bring
    rows up to date with processes that may have died.

    Every poll of a pane runs on one thread of the pane's, on the workspace that thread opened
    at its first poll and keeps (an idle tick is one pragma, not a workspace open); after a
    poll's error the next poll opens it afresh.
    """

    POLL_S: ClassVar[float | None] = None
    # The title of a poll's error notification and of an action's.
    POLL_TITLE: ClassVar[str]
    ACTION_TITLE: ClassVar[str]
    ACTION_REFUSED_TITLE: ClassVar[str | None] = None

    def __init__(self, workspace: Workspace, *, now: Clock = wall_clock) -> None:
        super().__init__()
        self._ws = workspace
        self._now = now
        self._polling = False
        self._poll_wanted = False
        self._poll_error: str | None = None
        self._timer: Timer | None = None
        self._in_view = False
        # Used on the poll thread alone (polls never overlap).
        self._poll_thread: ThreadPoolExecutor | None = None
        self._poll_ws: Workspace | None = None
        self._probe: ChangeProbe | None = None

    # -- hooks ----------------------------------------------------------------------------

    def poll_args(self) -> tuple[Any, ...]:
        """What the next poll needs of the pane's state, taken on the UI thread."""
        return ()

    def settle(self, ws: Workspace) -> None:
        """Engine calls that run on every poll, in the worker, before the change probe."""

    def must_read(self) -> bool:
        """Whether a tick reads even when the database did not change."""
        return False

    def read(self, ws: Workspace, *args: Any) -> None:
        """Read what the pane shows, in the worker, posting messages that the pane draws."""

    def acted(self, message: ActionDone) -> None:
        """After an action's notification, before the poll that follows every action."""

    # -- polling --------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.POLL_S is not None:
            self._timer = self.set_interval(self.POLL_S, self.tick, pause=True)

    def on_screen_resume(self) -> None:
        """Poll while the pane is in view, and at once when it comes back into view."""
        self._in_view = True
        if self._timer is not None:
            self._timer.resume()
        self.request_poll()

    def on_screen_suspend(self) -> None:
        self._in_view = False
        if self._timer is not None:
            self._timer.pause()

    def on_unmount(self) -> None:
        if self._poll_thread is not None:
            self._poll_thread.submit(self._close_poll)
            self._poll_thread.shutdown(wait=False)

    @property
    def polling(self) -> bool:
        """A poll is under way or owed."""
        return self._polling or self._poll_wanted

    @property
    def in_view(self) -> bool:
        """The pane is in view, so its timer ticks."""
        return self._in_view

    def tick(self) -> None:
        """The timer's poll: skipped while one is under way, and reads only on a change."""
        if not self._polling:
            self._start_poll(force=self.must_read())

    def request_poll(self) -> None:
        """Read now, or right after the poll under way (whose answer may be out of date)."""
        if self._polling:
            self._poll_wanted = True
        else:
            self._start_poll(force=True)

    def _start_poll(self, force: bool) -> None:
        self._polling = True
        self._poll_wanted = False
        self._poll(force, self.poll_args())

    def _poll(self, force: bool, args: tuple[Any, ...]) -> None:
        """Run a poll on the poll thread; its end comes back as `PollDone`. A plain future,
        not a Textual worker: a worker's state messages cost an idle pane most of its CPU."""
        if self._poll_thread is None:
            self._poll_thread = ThreadPoolExecutor(1, thread_name_prefix=f"poll-{self.PANE_TITLE}")
        self._poll_thread.submit(self._poll_once, force, args).add_done_callback(self._polled)

    def _polled(self, future: "Future[str | None]") -> None:
        crash = future.exception()
        if crash is not None:
            self.post_message(PollDone(None, crash))
        else:
            self.post_message(PollDone(future.result()))

    def _poll_once(self, force: bool, args: tuple[Any, ...]) -> str | None:
        """One poll, on the poll thread: its error, or None."""
        try:
            if self._poll_ws is None:
                self._poll_ws = self._ws.reopen()
            self.settle(self._poll_ws)
            if self._probe is None:
                self._probe = ChangeProbe(self._poll_ws.root / DB_FILE)
            if self._probe.changed() or force:
                self.read(self._poll_ws, *args)
        except WORKER_ERRORS as exc:
            self._close_poll()
            return str(exc)
        return None

    def _close_poll(self) -> None:
        """Close what the poll thread keeps open, on that thread."""
        if self._poll_ws is not None:
            self._poll_ws.db.conn.close()
            self._poll_ws = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    @on(PollDone)
    def _poll_done(self, message: PollDone) -> None:
        if message.crash is not None:
            raise message.crash
        self._polling = False
        self.report_error(message.error, self.POLL_TITLE)
        if self._poll_wanted:
            self._start_poll(force=True)

    def report_error(self, error: str | None, title: str) -> None:
        """Notify a poll's error once, not again on every poll that meets it."""
        if error is not None and error != self._poll_error:
            self.notify(error, title=title, severity="error", markup=False)
        self._poll_error = error

    # -- actions --------------------------------------------------------------------------

    def confirm(self, title: str, body: str, then: Callable[[], object]) -> None:
        """Ask `title` (a modal yes/no over `body`); on yes, call `then`."""

        def answered(answer: bool | None) -> None:
            if answer:
                then()

        self.app.push_screen(ConfirmScreen(title, body), answered)

    @work(thread=True, group="action")
    def act(
        self,
        call: Callable[[Workspace], Result],
        done: Callable[[Result], str],
        select: Callable[[Result], Any] | None = None,
    ) -> None:
        """Run `call` on the workspace in a worker; `done` words what it returned and
        `select` picks what the pane selects next. A refusal becomes a notification."""
        try:
            with reopened(self._ws) as ws:
                result = call(ws)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        chosen = None if select is None else select(result)
        self.post_message(ActionDone(done(result), None, chosen))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        if message.error is not None:
            title = self.ACTION_REFUSED_TITLE or self.ACTION_TITLE
            self.notify(message.error, title=title, severity="error", markup=False)
        else:
            self.notify(message.text, title=self.ACTION_TITLE, markup=False)
        self.acted(message)
        self.request_poll()
