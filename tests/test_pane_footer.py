"""The panes' footer shows the keys of the widget in focus and reuses its key widgets.

Textual's `Footer` mounts a widget per key again each time focus moves between widgets offering
different keys: half of a tab's time on the Harness pane. `PaneFooter` hides and shows the keys
it has composed; it composes again only for a key it has never shown.
"""

from pathlib import Path

from textual.widgets._footer import FooterKey
from workspaces import open_workspace

from app.app import CraApp
from screens.widgets.attempt_list import AttemptList
from screens.widgets.footer import merged

SIZE = (160, 50)


def shown(app: CraApp) -> list[str]:
    return [key.description for key in app.screen.query(FooterKey) if key.display]


async def test_moving_focus_shows_the_focused_widgets_keys_without_mounting_keys(tmp_path: Path):
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause(0.5)
        rounds: list[list[tuple[str, bool, list[FooterKey]]]] = []
        for _ in range(2):
            seen = []
            for _ in range(3):
                await pilot.press("tab")
                await pilot.pause(0.2)
                keys = list(app.screen.query(FooterKey))
                seen.append((type(app.focused).__name__, "Open attempt" in shown(app), keys))
            rounds.append(seen)
    for focused, opens, _keys in rounds[0] + rounds[1]:
        assert opens == (focused == AttemptList.__name__), focused
    assert any(opens for _f, opens, _k in rounds[0]) and not all(o for _f, o, _k in rounds[0])
    settled = rounds[0][-1][2]
    assert all(keys == settled for _f, _o, keys in rounds[1]), "the second round mounted keys"


def test_keys_seen_before_keep_their_places():
    a, b, c, o = (("a",), ("b",), ("c",), ("o",))
    assert merged([a, b, c], [o, a, b, c]) == [o, a, b, c]
    assert merged([o, a, b, c], [a, b, c]) == [o, a, b, c]
    assert merged([a, c], [a, b, c]) == [a, b, c]
    assert merged([a, b], [b, a]) == [b, a]
