"""What the Training pane draws for a run: its table row, its head and its figures."""

from rich.table import Table
from rich.text import Text

from engine.core.terminal_text import neutralise
from engine.core.timestamps import duration_text
from engine.training.run_view import RunRow, RunState
from screens.widgets.formatting import STATUS_STYLE, when
from screens.widgets.training_plot import number

LABEL_WIDTH = 8


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
        "started": Text(when(run.started_at or run.created_at)),
        "backend": Text(neutralise(run.backend or "—")),
    }


def head_table(run: RunRow, state: RunState | None) -> Table:
    """The selected run: status, backend, dataset and base, settings, times, reason."""
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(ratio=1, overflow="fold")
    backend = run.backend or (state.result.backend if state and state.result else None)
    table.add_row(
        "Status",
        Text.assemble(
            (run.status, STATUS_STYLE.get(run.status, "")),
            neutralise(f" · backend {backend or '—'}"),
        ),
    )
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
    if run.reason:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row("Reason", Text(neutralise(headline(run.reason)), style=style))
    return table


def stats_table(state: RunState) -> Table:
    """The selected run's figures from its folder: progress, speed, loss, result."""
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(ratio=1, overflow="fold")
    latest = state.latest
    if latest is None:
        table.add_row("Step", Text("no step logged yet", style="dim"))
    else:
        progress = state.progress or 0.0
        table.add_row(
            "Step",
            f"{latest.step:,}/{latest.max_steps:,} · {100 * progress:.1f} % · "
            f"ETA {duration_text(state.eta_s)} · {duration_text(latest.elapsed_s)} so far",
        )
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
        if result.adapter_dir:
            text.append(neutralise(f" · adapter {result.adapter_dir}/"))
        if result.effective:
            used = ", ".join(f"{name} {value}" for name, value in result.effective.items())
            text.append(neutralise(f" · instead: {used}"), style="dim")
        table.add_row("Result", text)
    return table
