"""The Harness pane's new-campaign form: a campaign's spec, checked by `CampaignSpec`."""

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, SelectionList

from engine.core.errors import CraError
from engine.harness.campaigns import CampaignSpec, default_temperatures, parse_spec
from engine.harness.pipeline import PIPELINES
from screens.widgets.form import FormScreen


def _listed(text: str) -> list[str]:
    """Comma-separated values as written; pydantic converts and judges each one."""
    return [part.strip() for part in text.split(",")] if text.strip() else []


def _temperatures(pipeline: str) -> str:
    return ",".join(f"{t:g}" for t in default_temperatures(pipeline))


class NewCampaignScreen(FormScreen[CampaignSpec]):
    """A form for a campaign's spec; enter checks it through `CampaignSpec`, and an error stays
    on the form until it is fixed; esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Create"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, packages: list[tuple[str, str]], model: str) -> None:
        super().__init__()
        self._packages = packages
        self._model = model

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog new-campaign"):
            yield Label("New campaign", classes="dialog-title")
            with Horizontal(classes="form-row form-packages"):
                yield Label("Packages", classes="form-label")
                yield SelectionList[str](
                    *[(Text(label), digest, True) for label, digest in self._packages],
                    id="form-packages",
                )
            with Horizontal(classes="form-row"):
                yield Label("Pipeline", classes="form-label")
                yield Select(
                    [(name, name) for name in PIPELINES],
                    value="gold",
                    allow_blank=False,
                    id="form-pipeline",
                )
            for key, label, value in [
                ("model", "Model", self._model),
                ("temperatures", "Temperatures", _temperatures("gold")),
                ("seeds", "Seeds", "1"),
                ("workers", "Workers", "2"),
            ]:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(value, id=f"form-{key}")
            yield from self.form_end("create")

    def on_mount(self) -> None:
        if not self._packages:
            self.show_error("No approved package: approve one in the Ingest pane first.")

    def on_select_changed(self, event: Select.Changed) -> None:
        """A pipeline's own default temperatures: one for gold, a sweep for the others."""
        if event.select.id == "form-pipeline" and isinstance(event.value, str):
            self.query_one("#form-temperatures", Input).value = _temperatures(event.value)

    def spec_data(self) -> dict[str, object]:
        """The form's fields as `CampaignSpec` input, unconverted."""
        return {
            "packages": self.query_one("#form-packages", SelectionList).selected,
            "pipeline": self.query_one("#form-pipeline", Select).value,
            "model": self.query_one("#form-model", Input).value.strip(),
            "temperatures": _listed(self.query_one("#form-temperatures", Input).value),
            "seeds": _listed(self.query_one("#form-seeds", Input).value),
            "workers": self.query_one("#form-workers", Input).value.strip(),
        }

    def action_submit(self) -> None:
        try:
            spec = parse_spec(self.spec_data())
        except CraError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(spec)
