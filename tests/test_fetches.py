"""A screen's one-off reads through the engine (screens/workers.py `Fetches`): the read runs in a
worker on its own connection, and its value or its error comes back on the UI thread."""

import threading

from pilot_wait import until
from textual.app import App, ComposeResult
from textual.widgets import Static

from engine.core.errors import CraError
from engine.core.workspace import Workspace
from screens.workers import Fetches


class FetchingScreen(Fetches):
    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self._ws = workspace
        self.got: list[object] = []
        self.failures: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("fetching")


class FetchingApp(App[None]):
    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.screen_under_test = FetchingScreen(workspace)

    def on_mount(self) -> None:
        self.push_screen(self.screen_under_test)


def read_in_worker(ws: Workspace) -> tuple[str, bool, int]:
    """What a read sees: its thread, whether its connection is the screen's, a database value."""
    count = ws.db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    return threading.current_thread().name, ws.db.conn is SCREEN_CONN[0], count


SCREEN_CONN: list[object] = []


async def test_a_fetch_reads_in_a_worker_on_its_own_connection_and_delivers_on_the_ui_thread(
    ws: Workspace,
):
    """The read runs off the UI thread with a connection of its own (SQLite serves one
    thread), and `then` is called on the UI thread with exactly what the read returned."""
    SCREEN_CONN[:] = [ws.db.conn]
    app = FetchingApp(ws)
    async with app.run_test() as pilot:
        screen = app.screen_under_test
        delivered_on: list[str] = []

        def then(value: tuple[str, bool, int]) -> None:
            delivered_on.append(threading.current_thread().name)
            screen.got.append(value)

        screen.fetch(read_in_worker, then, title="test")
        await until(pilot, lambda: screen.got, "the fetched value")
    ((thread, same_connection, migrations),) = screen.got
    assert thread != delivered_on[0]
    assert delivered_on[0] == threading.main_thread().name
    assert not same_connection
    assert migrations > 0


async def test_a_refused_read_is_one_notification_under_its_title(ws: Workspace):
    """An engine refusal in the read is not a crash: it is notified, titled, as one error, and
    `then` is never called."""

    def refuse(ws: Workspace) -> None:
        raise CraError("corpus: the package is not approved")

    app = FetchingApp(ws)
    async with app.run_test() as pilot:
        screen = app.screen_under_test
        screen.fetch(refuse, screen.got.append, title="corpus")
        await until(pilot, lambda: app._notifications, "the notification")
        notes = list(app._notifications)
    assert [(n.title, n.message, n.severity) for n in notes] == [
        ("corpus", "corpus: the package is not approved", "error")
    ]
    assert screen.got == []


async def test_a_refusal_goes_to_failed_when_the_screen_handles_it(ws: Workspace):
    """With `failed`, the screen gets the error's text itself (to show it in place) and no
    notification is raised."""

    def refuse(ws: Workspace) -> None:
        raise OSError("disk gone")

    app = FetchingApp(ws)
    async with app.run_test() as pilot:
        screen = app.screen_under_test
        screen.fetch(refuse, screen.got.append, title="serving", failed=screen.failures.append)
        await until(pilot, lambda: screen.failures, "the failure")
        assert list(app._notifications) == []
    assert screen.failures == ["disk gone"]
    assert screen.got == []
