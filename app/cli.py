"""`cra`: every console action as a scriptable subcommand.

Start-up is kept small: the command groups that live in their own modules are registered in
`LAZY_COMMANDS` and imported only when used (`app.lazy_group`), and this module imports nothing
heavy at its top, so `cra --help` and `cra --version` load little more than click, and each
command loads only what it runs on. `tests/test_cli_startup.py` holds that in a subprocess.
"""

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli_attempts import attempt, attempts
from app.cli_common import PathArg, note_root_workspace, open_workspace, with_workspace_option
from app.cli_yield import harness_yield
from app.lazy_group import LazyCommand, LazyGroup
from app.visible_output import install_visible_output, visible_output
from engine.core.errors import CraError, WorkspaceError
from engine.core.workspace import DB_FILE, ENV_VAR, Workspace, default_workspace_root

if TYPE_CHECKING:
    from engine.harness.selection import CommitSelection

LAZY_COMMANDS = {
    "adapters": LazyCommand(
        "app.cli_adapters:adapters",
        "Adapter versions: which one serves each stage, and switching it.",
    ),
    "autopilot": LazyCommand(
        "app.cli_autopilot:autopilot",
        "Train ready stages in the night's window by the `[autopilot]` policy, unattended.",
    ),
    "bases": LazyCommand(
        "app.cli_bases:bases",
        "Base model checkpoints: register a role's base, list them, verify their files.",
    ),
    "bundle": LazyCommand(
        "app.cli_bundle:bundle",
        "Write an offline bundle that installs this console on an air-gapped machine.",
    ),
    "cluster": LazyCommand(
        "app.cli_cluster:cluster",
        "The Ray cluster harness work runs on: its nodes and whether each can take work.",
    ),
    "curate-data": LazyCommand(
        "app.cli_curate:curate_data",
        "Turn reviewed examples and pairs into datasets: dedup, holdout, balance, replay.",
    ),
    "data": LazyCommand(
        "app.cli_data:data",
        "Training examples and preference pairs in the workspace database.",
    ),
    "datasets": LazyCommand("app.cli_curate:datasets", "Curated datasets: list them, show one."),
    "doctor": LazyCommand(
        "app.cli_doctor:doctor",
        "Check the machine before a night: sandbox, GPU, the GPU set's pins, disk, database, "
        "bases.",
    ),
    "eval": LazyCommand(
        "app.cli_eval:eval_group", "Eval runs and the eval gate (LoRA Training Strategy §9)."
    ),
    "import-logs": LazyCommand(
        "app.cli_logs:import_logs_command",
        "Import RAW_DB, the agent's raw.sqlite (read-only): every run and call, and an SFT "
        "example for each stage call of a successful run.",
    ),
    "package": LazyCommand(
        "app.cli_package:package",
        "Mine, filter and package the git repository REPO for the USB drive.",
    ),
    "review": LazyCommand(
        "app.cli_review:review",
        "Spot-check training items per stage before a dataset is curated.",
    ),
    "serve": LazyCommand(
        "app.cli_serve:serve",
        "One vLLM server per base, LoRA enabled, active adapters preloaded, runtime loads on.",
    ),
    "train": LazyCommand(
        "app.cli_train:train",
        "Training runs: start one on a curated dataset, stop, resume, follow it.",
    ),
    "train-plan": LazyCommand(
        "app.cli_train_plan:train_plan",
        "Judge every stage on harness attempts and logged runs; plan training for the weak ones.",
    ),
}
"""The subcommands imported on use: name, where it lives, the first paragraph of its help."""


class CraGroup(LazyGroup):
    """Turns operator errors into a one-line message and exit status 1, never a traceback;
    everything printed while it runs, click's own messages included, is neutralised."""

    def main(self, *args, **kwargs):
        with visible_output():
            return super().main(*args, **kwargs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand, taking `--workspace` after its name too (`with_workspace_option`)."""
        command = super().get_command(ctx, cmd_name)
        return None if command is None else with_workspace_option(command)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CraError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


@click.group(cls=CraGroup, lazy=LAZY_COMMANDS)
@click.version_option(package_name="cra-console", prog_name="cra")
@click.option(
    "--workspace",
    type=PathArg(file_okay=False),
    envvar=ENV_VAR,
    help=f"Workspace folder (default: ${ENV_VAR}, else ~/.local/share/cra, made on first "
    "use). A folder given here must already be a workspace: `cra init` makes one.",
)
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None) -> None:
    """cra console: the operator's console for the agent's self-improvement loop."""
    ctx.ensure_object(dict)
    note_root_workspace(ctx, workspace)


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Make a new, empty workspace at --workspace (or the default folder)."""
    root = (ctx.obj["workspace"] or default_workspace_root()).expanduser().absolute()
    if (root / DB_FILE).exists():
        raise WorkspaceError(f"{root}: already a cra workspace (it has {DB_FILE}); nothing done")
    ws = Workspace.open(root, create=True)
    click.echo(f"created the workspace at {ws.root}; its settings go in {ws.config_path}")


@cli.command()
@click.option(
    "--usb",
    "usb_dirs",
    multiple=True,
    type=PathArg(file_okay=False),
    help="Also watch this folder as a drive (repeatable).",
)
@click.pass_context
def console(ctx: click.Context, usb_dirs: tuple[Path, ...]) -> None:
    """Open the console."""
    from app.app import CraApp

    CraApp(_workspace(ctx, write=False), usb_dirs=list(usb_dirs)).run()


@cli.command()
@click.option("--fresh", is_flag=True, help="Rebuild the demo workspace from scratch.")
@click.option("--no-open", is_flag=True, help="Build the demo workspace without opening it.")
@click.option(
    "--run",
    "run_loop_too",
    is_flag=True,
    help="Walk the whole loop without a person, on a fresh demo workspace, printing each step.",
)
@click.pass_context
def demo(ctx: click.Context, fresh: bool, no_open: bool, run_loop_too: bool) -> None:
    """Create a demo workspace with a stand-in USB drive, then open the console on it."""
    from engine.demo.workspace import prepare_demo

    root = ctx.obj["workspace"] or Path("cra-demo")
    ws, drive = prepare_demo(root, fresh=fresh or run_loop_too)
    click.echo(f"demo workspace: {ws.root}\ndemo drive:     {drive}")
    if run_loop_too:
        from engine.demo.loop import run_loop

        name = run_loop(ws, drive, click.echo)
        click.echo(f"the loop is done: {name} was trained, evaluated, promoted and rolled back")
        return
    if not no_open:
        from app.app import CraApp

        CraApp(ws, usb_dirs=[drive]).run()


@cli.command("report")
@click.option(
    "--since", default="24h", show_default=True, help="A duration (12h, 2d) or a time (ISO 8601)."
)
@click.pass_context
def report(ctx: click.Context, since: str) -> None:
    """The morning report: what happened since a time, from approvals to promotions."""
    from engine.reports.morning import morning_report, parse_since, report_text

    moment = parse_since(since, datetime.now(UTC))
    click.echo(report_text(morning_report(_workspace(ctx, write=False), moment), moment))


@cli.group()
def manifest() -> None:
    """The repo package manifest."""


@manifest.command("schema")
def manifest_schema() -> None:
    """Print the JSON Schema of the current manifest version."""
    from engine.intake.manifest import manifest_json_schema

    click.echo(json.dumps(manifest_json_schema(), indent=2))


@cli.group()
def ingest() -> None:
    """Repo packages from USB drives: validate, approve, reject, list."""


def _print_report(report) -> None:
    verdict = "OK" if report.ok else "REJECTED"
    s = report.summary
    click.echo(f"{report.label}: {verdict}")
    click.echo(
        f"  {report.package}: {s.commit_count} commits, {s.wheel_count} wheels, "
        f"{s.file_count} files, {s.size_bytes} bytes"
    )
    for check in report.checks:
        mark = "ok  " if check.ok else "skip" if check.skipped else "FAIL"
        where = f" [{check.path}]" if check.path else ""
        click.echo(f"  {mark} {check.name}{where}: {check.detail}")
    for flag in report.flags:
        click.echo(f"  FLAG {flag.kind} [{flag.path}:{flag.line}]: {flag.detail}")


@ingest.command("validate")
@click.argument("path", type=PathArg())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--fresh", is_flag=True, help="Validate again even if this content was validated.")
@click.pass_context
def ingest_validate(ctx: click.Context, path: Path, as_json: bool, fresh: bool) -> None:
    """Validate the repo package at PATH (exit 0 ok, 1 rejected, 2 usage error); the report
    of the same content under the same rules is kept and shown again without validating."""
    from app.output import echo_json
    from engine.intake.validation_cache import validate_cached

    ws = _workspace(ctx, write=False)
    try:
        report = validate_cached(ws, path, fresh=fresh)
    except CraError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    sys.exit(0 if report.ok else 1)


@ingest.command("approve")
@click.argument("path", type=PathArg())
@click.option("--operator", help="Who approves (default: the config's operator).")
@click.pass_context
def ingest_approve(ctx: click.Context, path: Path, operator: str | None) -> None:
    """Re-validate PATH and place it in the corpus."""
    from engine.intake.approval import approve_package

    result = approve_package(_workspace(ctx), path, operator=operator)
    if result.already_approved:
        click.echo(f"{result.label}: already approved as {result.corpus_path}; nothing copied")
    else:
        click.echo(f"{result.label}: approved into {result.corpus_path}")


@ingest.command("reject")
@click.argument("path", type=PathArg())
@click.option("--reason", required=True, help="Why the package is rejected.")
@click.option("--operator", help="Who rejects (default: the config's operator).")
@click.pass_context
def ingest_reject(ctx: click.Context, path: Path, reason: str, operator: str | None) -> None:
    """Record that PATH is rejected, with the reason."""
    from engine.intake.approval import reject_package

    decision = reject_package(_workspace(ctx), path, reason=reason, operator=operator)
    click.echo(f"{decision.label}: rejected ({decision.reason})")


@ingest.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the corpus as JSON.")
@click.pass_context
def ingest_list(ctx: click.Context, as_json: bool) -> None:
    """Show the approved corpus."""
    from engine.intake.approval import list_corpus

    entries = list_corpus(_workspace(ctx, write=False))
    if as_json:
        click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    if not entries:
        click.echo("corpus is empty")
    for e in entries:
        click.echo(
            f"{e.label:<32} {e.commit_count:>4} commits  {e.wheel_count:>3} wheels  "
            f"{e.approved_at}  {e.approved_by}  {e.corpus_path}"
        )


@ingest.command("drives")
@click.option(
    "--usb",
    "usb_dirs",
    multiple=True,
    type=PathArg(file_okay=False),
    help="Also look in this folder as a drive (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the drives as JSON.")
@click.pass_context
def ingest_drives(ctx: click.Context, usb_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Show the drives found under the mount roots and the packages on each."""
    from engine.intake.usb import scan_drives

    ws = _workspace(ctx, write=False)
    drives = scan_drives(ws.config.usb, list(usb_dirs))
    if as_json:
        click.echo(json.dumps([d.model_dump(mode="json") for d in drives], indent=2))
        return
    if not drives:
        click.echo("no drives found")
    for drive in drives:
        click.echo(f"{drive.path}")
        for pkg in drive.packages:
            click.echo(f"  {pkg}")


@cli.group()
def harness() -> None:
    """The validation harness: turn approved packages' commits into validated tasks."""


def _commit_selection(
    func: Callable[..., None],
) -> Callable[..., None]:
    """`--commit`, `--since` and `--limit`: the commits a command covers."""
    func = click.option(
        "--limit", type=click.IntRange(min=1), help="Only the first N chosen commits (per package)."
    )(func)
    func = click.option(
        "--since", type=click.DateTime(["%Y-%m-%d"]), help="Only commits dated on or after this."
    )(func)
    return click.option(
        "--commit",
        "commits",
        multiple=True,
        help="Only this commit: its sha or a unique prefix of it (repeatable).",
    )(func)


def _selection(
    commits: tuple[str, ...], since: datetime | None, limit: int | None
) -> "CommitSelection":
    from engine.harness.selection import CommitSelection

    return CommitSelection(
        commits=list(commits), since=since.date() if since else None, limit=limit
    )


@harness.command("validate")
@click.argument("package")
@_commit_selection
@click.option("--again", is_flag=True, help="Validate again commits already validated.")
@click.pass_context
def harness_validate(
    ctx: click.Context,
    package: str,
    commits: tuple[str, ...],
    since: datetime | None,
    limit: int | None,
    again: bool,
) -> None:
    """Validate the commits of the approved PACKAGE (a name or a digest prefix) as each can
    become a task: gold validation for code and tests, supplemented tests or a structural check
    for code only; test-only commits are skipped as test-plan data.

    A commit already validated with the package's environment is shown, not run again (a
    stopped run goes on where it stopped), unless --again. With [harness] backend = "ray" the
    commits run on the cluster's nodes at once, shown in the same order."""
    from engine.harness.package import find_package
    from engine.harness.selection import select_commits, validate_commits

    ws = _workspace(ctx)
    found = find_package(ws, package)
    chosen = select_commits([found], _selection(commits, since, limit))[found.digest]
    usable = kept = 0
    kinds = Counter[str]()
    if ws.config.harness.backend == "ray":
        from engine.cluster.validate import validate_commits_on_cluster as validate_commits
    for task, recorded in validate_commits(ws, found, chosen, again):
        usable += task.status == "usable"
        kept += recorded
        kinds[task.validation] += 1
        click.echo(
            f"{task.sha[:12]} {task.status:<10} {task.validation:<12} "
            f"F2P {len(task.fail_to_pass):>3}  "
            f"P2P {len(task.pass_to_pass):>3}  flaky {len(task.flaky):>2}  {task.subject}"
            + (
                ""
                if task.status == "usable"
                else f"  ({task.reason_kind or 'unusable'}: {task.reason})"
            )
            + (f"  [validated in package {task.validated_in[:12]}]" if task.validated_in else "")
            + ("  [validated before]" if recorded else "")
        )
    shown = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    # All gold needs no breakdown: the kinds matter when some commits were not gold-validated.
    click.echo(
        f"{usable} of {len(chosen)} commits are usable tasks"
        + ("" if set(kinds) <= {"gold"} else f" ({shown})")
        + (f" ({kept} validated before; --again redoes them)" if kept else "")
    )
    if kinds["skipped"]:
        click.echo(f"{kinds['skipped']} test-only commits skipped: test-plan data, not validated")


def _floats(value: str) -> list[float]:
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from exc


def _ints(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from exc


@harness.command("run")
@click.argument("packages", nargs=-1, required=True)
@click.option(
    "--pipeline",
    type=click.Choice(["gold", "openai", "command"]),
    default="gold",
    show_default=True,
)
@click.option("--model", help="The model (adapter) name; openai: from cra.toml by default.")
@click.option(
    "--temperatures",
    help="Comma-separated; by default 0 for gold (deterministic), else 0.3,0.6,0.9.",
)
@click.option("--seeds", default="1", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@_commit_selection
@click.option("--wait", is_flag=True, help="Stay until the campaign ends, printing progress.")
@click.pass_context
def harness_run(
    ctx: click.Context,
    packages: tuple[str, ...],
    pipeline: str,
    model: str | None,
    temperatures: str | None,
    seeds: str,
    workers: int,
    commits: tuple[str, ...],
    since: datetime | None,
    limit: int | None,
    wait: bool,
) -> None:
    """Start a campaign over the approved PACKAGES (names or digest prefixes) in the background."""
    from engine.harness.campaigns import (
        create_campaign,
        default_temperatures,
        parse_spec,
        start_campaign,
        test_data_commits,
    )
    from engine.harness.package import find_package

    ws = _workspace(ctx)
    default_model = ws.config.harness.openai.model if pipeline == "openai" else pipeline
    spec = parse_spec(
        {
            "packages": [find_package(ws, name).digest for name in packages],
            "pipeline": pipeline,
            "model": model or default_model,
            "temperatures": default_temperatures(pipeline)
            if temperatures is None
            else _floats(temperatures),
            "seeds": _ints(seeds),
            "workers": workers,
            "selection": _selection(commits, since, limit),
        }
    )
    campaign_id = create_campaign(ws, spec, ws.config.operator)
    job_id = start_campaign(ws, campaign_id)
    click.echo(
        f"campaign {campaign_id} started (job {job_id}); the console's Harness pane shows it"
    )
    if skipped := test_data_commits(ws, spec):
        click.echo(f"{skipped} test-only commits skipped: test-plan data, no task to attempt")
    if wait:
        _follow(ws, campaign_id)


def _follow(ws: Workspace, campaign_id: int) -> None:
    """Print each attempt as it finishes until the campaign stops running."""
    from engine.harness.campaigns import campaign_row, reconcile_campaigns

    shown = 0
    while True:
        reconcile_campaigns(ws)
        status = campaign_row(ws, campaign_id).status
        rows = ws.db.execute(
            "SELECT id, package_name, sha, temperature, seed, outcome, reason FROM attempts "
            "WHERE campaign_id = ? AND state = 'done' AND id > ? ORDER BY id",
            [campaign_id, shown],
        ).fetchall()
        for attempt_id, name, sha, temp, seed, outcome, reason in rows:
            click.echo(f"{attempt_id:>6} {name} {sha[:12]} t={temp:g} s={seed} {outcome}: {reason}")
            shown = max(shown, attempt_id)
        if status not in ("running", "pausing", "stopping"):
            reason = campaign_row(ws, campaign_id).reason
            click.echo(f"campaign {campaign_id} {status}" + (f": {reason}" if reason else ""))
            return
        time.sleep(1)


@harness.command("start")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="Stay until the campaign ends, printing progress.")
@click.pass_context
def harness_start(ctx: click.Context, campaign_id: int, wait: bool) -> None:
    """Start or resume CAMPAIGN_ID: finished attempts are kept, interrupted ones redone."""
    from engine.harness.campaigns import start_campaign

    ws = _workspace(ctx)
    job_id = start_campaign(ws, campaign_id)
    click.echo(f"campaign {campaign_id} started (job {job_id})")
    if wait:
        _follow(ws, campaign_id)


@harness.command("pause")
@click.argument("campaign_id", type=int)
@click.pass_context
def harness_pause(ctx: click.Context, campaign_id: int) -> None:
    """Pause CAMPAIGN_ID once its running attempts finish."""
    from engine.harness.campaigns import pause_campaign

    pause_campaign(_workspace(ctx), campaign_id)
    click.echo(f"campaign {campaign_id} pausing after its running attempts")


@harness.command("stop")
@click.argument("campaign_id", type=int)
@click.pass_context
def harness_stop(ctx: click.Context, campaign_id: int) -> None:
    """Stop CAMPAIGN_ID now; its running attempts are redone when it starts again."""
    from engine.harness.campaigns import stop_campaign

    stop_campaign(_workspace(ctx), campaign_id)
    click.echo(f"campaign {campaign_id} stopping")


@harness.command("status")
@click.pass_context
def harness_status(ctx: click.Context) -> None:
    """Every campaign: status and its attempts by outcome."""
    from engine.harness.campaigns import reconcile_campaigns

    ws = _workspace(ctx, write=False)
    reconcile_campaigns(ws)
    for row in ws.db.execute("SELECT id, status, reason, spec_json FROM campaigns ORDER BY id"):
        campaign_id, status, reason, _ = row
        counts = dict(
            ws.db.execute(
                "SELECT COALESCE(outcome, state), COUNT(*) FROM attempts WHERE campaign_id = ? "
                "GROUP BY 1",
                [campaign_id],
            ).fetchall()
        )
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        click.echo(f"campaign {campaign_id} {status}: {shown}" + (f" ({reason})" if reason else ""))


harness.add_command(attempts)
harness.add_command(attempt)
harness.add_command(harness_yield)


def main() -> None:
    install_visible_output()
    cli(prog_name="cra")
