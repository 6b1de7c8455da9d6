"""What the Training pane draws for a run: its table row, its head and its figures."""

from rich.table import Table
from rich.text import Text

from engine.core.terminal_text import neutralise
from engine.core.timestamps import duration_text
from engine.training.run_view import TERMINAL, RunRow, RunState
from screens.widgets.formatting import STATUS_STYLE, when
from screens.widgets.training_plot import number

LABEL_WIDTH = 8
# The run states whose folders still grow between polls.
LIVE = ("pending", "running", "stopping")


def memory_text(megabytes: float | None) -> str:
    if megabytes is None:
        return "—"
    return f"{megabytes / 1024:.1f} GiB" if megabytes >= 1024 else f"{megabytes:.0f} MiB"


def loss_text(loss: float | None) -> str:
    return "—" if loss is None else number(loss)


def step_text(step: int | None, max_steps: int | None) -> str:
    if step is None:
        return "—"
    return f"{step:,}/{max_steps:,}" if max_steps is not None else f"{step:,}"


def headline(reason: str) -> str:
    """A reason's first line (a failed run's reason goes on with the end of its log, which
    the log view shows in full)."""
    first, _, rest = reason.strip().partition("\n")
    return f"{first} (…)" if rest else first


def version_state(run: RunRow) -> str:
    """The registered version's state: its status, and for a candidate its gate verdict."""
    if run.adapter_status != "candidate":
        return run.adapter_status or "—"
    return f"gate {run.gate}" if run.gate else "not gated"


def adapter_cell(run: RunRow) -> Text:
    """The version a run registered and its state; `none` once it ended without one."""
    if run.adapter_name is None:
        return Text("none" if run.status in TERMINAL else "—", style="dim")
    return Text.assemble(
        neutralise(run.adapter_name),
        " ",
        (version_state(run), STATUS_STYLE.get(run.adapter_status or "", "")),
    )


def adapter_line(run: RunRow) -> Text:
    """What the run produced, said in full for its detail."""
    if run.adapter_name is not None:
        gate = f"gate: {run.gate}" if run.gate else "not gated yet (e in Adapters)"
        return Text.assemble(
            (neutralise(run.adapter_name), "bold"),
            " · ",
            (run.adapter_status or "—", STATUS_STYLE.get(run.adapter_status or "", "")),
            f" · {gate}",
        )
    why = {
        "done": "none recorded",
        "stopped": "none: stopped before its last step; u resumes it, and it registers one "
        "when it finishes",
        "failed": "none: the run failed before registering one (Reason says why); u resumes it",
    }.get(run.status, f"none yet: a finished run registers the next {run.stage} version")
    return Text(why, style="dim")


def run_cells(run: RunRow) -> dict[str, Text]:
    """One run's row in the table, by column key."""
    return {
        "id": Text(str(run.id), justify="right"),
        "stage": Text(run.stage),
        "method": Text(run.method),
        "dataset": Text(neutralise(run.dataset_id)),
        "status": Text(run.status, style=STATUS_STYLE.get(run.status, "")),
        "step": Text(step_text(run.step, run.max_steps), justify="right"),
        "loss": Text(loss_text(run.loss), justify="right"),
        "adapter": adapter_cell(run),
        "backend": Text(neutralise(run.backend or "—")),
        "started": Text(when(run.started_at or run.created_at)),
    }


def _table() -> Table:
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(ratio=1, overflow="fold")
    return table


def head_table(run: RunRow, state: RunState | None) -> Table:
    """The selected run at a glance: status and backend, why it ended so, what it registered."""
    table = _table()
    backend = run.backend or (state.result.backend if state and state.result else None)
    table.add_row(
        "Status",
        Text.assemble(
            (run.status, STATUS_STYLE.get(run.status, "")),
            neutralise(f" · backend {backend or '—'}"),
        ),
    )
    if run.reason:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row("Reason", Text(neutralise(headline(run.reason)), style=style))
    table.add_row("Adapter", adapter_line(run))
    return table


def about_table(run: RunRow, state: RunState | None) -> Table:
    """What the selected run trains on and how: dataset and base, settings, times."""
    table = _table()
    spec = state.spec if state is not None else None
    base = f"base {run.base_model}" + (f" ({spec.base_model_path})" if spec is not None else "")
    table.add_row("Dataset", Text(neutralise(f"{run.dataset_id} · {base}")))
    if spec is not None:
        hyper = spec.hyper
        steps = f"{hyper.max_steps} steps" if hyper.max_steps else f"{hyper.epochs:g} epochs"
        table.add_row(
            "Settings",
            f"r{hyper.rank} α{hyper.lora_alpha} · lr {hyper.learning_rate:g} {hyper.scheduler} "
            f"· {steps} · batch {hyper.batch_size}×{hyper.gradient_accumulation}",
        )
    started = f"{when(run.started_at or run.created_at)} by {run.created_by or '—'}"
    table.add_row("Started", Text(neutralise(started)))
    if run.finished_at:
        table.add_row("Finished", when(run.finished_at))
    return table


def stats_table(run: RunRow, state: RunState) -> Table:
    """The selected run's figures from its folder: progress, speed, loss, result. Only a
    running run has an ETA."""
    table = _table()
    latest = state.latest
    if latest is None:
        table.add_row("Step", Text("no step logged yet", style="dim"))
    else:
        progress = state.progress or 0.0
        done = f"{latest.step:,}/{latest.max_steps:,} · {100 * progress:.1f} %"
        if run.status == "running":
            done += f" · ETA {duration_text(state.eta_s)}"
        elapsed = duration_text(latest.elapsed_s)
        done += f" · {elapsed} so far" if run.status in LIVE else f" · {elapsed} trained"
        table.add_row("Step", done)
        tokens = "—" if state.tokens_per_s is None else f"{state.tokens_per_s:,.0f}"
        table.add_row("Speed", f"{tokens} tokens/s · memory {memory_text(state.memory_mb)}")
        smooth = state.curve[-1].smooth if state.curve else None
        lr = "—" if latest.learning_rate is None else f"{latest.learning_rate:.3g}"
        grad = "—" if latest.grad_norm is None else f"{latest.grad_norm:.3g}"
        table.add_row(
            "Loss",
            f"{loss_text(latest.loss)} · smoothed {loss_text(smooth)} · lr {lr} · grad {grad}",
        )
    result = state.result
    if result is not None:
        text = Text.assemble(
            (result.status, STATUS_STYLE.get(result.status, "")),
            f" after {result.steps:,}/{result.max_steps:,} steps in "
            f"{duration_text(result.train_runtime_s)} · final loss {loss_text(result.final_loss)}",
        )
        if run.adapter_name is not None:
            text.append(neutralise(f" · registered {run.adapter_name}"))
        elif result.adapter_dir:
            text.append(neutralise(f" · {result.adapter_dir}/ not registered"))
        if result.effective:
            used = ", ".join(f"{name} {value}" for name, value in result.effective.items())
            text.append(neutralise(f" · instead: {used}"), style="dim")
        table.add_row("Result", text)
    return table
