"""The help screen: every key binding that works where the operator pressed `?`."""

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static


@dataclass(frozen=True)
class HelpSection:
    """The bindings of one node (the pane, the focused widget, the app): key and description."""

    title: str
    rows: list[tuple[str, str]]


def _section_title(node: DOMNode, screen: Screen) -> str:
    if node is screen.app:
        return "Everywhere"
    if node is screen:
        return f"{screen.sub_title or type(screen).__name__} pane"
    label = getattr(node, "border_title", None) or node.id or type(node).__name__
    return f"In {label}"


def _describe(binding: Binding) -> str:
    return binding.description or binding.action.replace("_", " ")


def binding_sections(screen: Screen) -> list[HelpSection]:
    """Group `screen`'s active bindings by where they are defined: pane, focused widget, app.

    Bindings shown in the footer come first; keys bound to the same action on the same node
    share a row (`ctrl+c / super+c`).
    """
    app = screen.app
    grouped: dict[int, tuple[DOMNode, dict[tuple[str, str], list[str]]]] = {}
    active_bindings = sorted(screen.active_bindings.items(), key=lambda kv: not kv[1].binding.show)
    for key, active in active_bindings:
        binding = active.binding
        if binding.system:
            continue
        _, rows = grouped.setdefault(id(active.node), (active.node, {}))
        display = app.get_key_display(Binding(key, binding.action, key_display=binding.key_display))
        rows.setdefault((binding.action, _describe(binding)), []).append(display)
    order = {id(screen): 0, id(app): 2}
    sections = sorted(grouped.values(), key=lambda item: order.get(id(item[0]), 1))
    return [
        HelpSection(
            title=_section_title(node, screen),
            rows=[(" / ".join(keys), description) for (_, description), keys in rows.items()],
        )
        for node, rows in sections
    ]


class HelpScreen(ModalScreen[None]):
    """Lists `sections`; esc, q or ? closes it."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: list[HelpSection]) -> None:
        super().__init__()
        self._sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                for section in self._sections:
                    yield Static(self._section_table(section), classes="help-section")
            yield Label("[b]esc[/] close", classes="dialog-keys")

    @staticmethod
    def _section_table(section: HelpSection) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(min_width=16, style="bold")
        table.add_column()
        table.title = section.title
        table.title_justify = "left"
        table.title_style = "bold underline"
        for key, description in section.rows:
            table.add_row(Text(key), Text(description))
        return table

    def action_close(self) -> None:
        self.dismiss(None)
