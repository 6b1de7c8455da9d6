"""`cra serve`: show or start the vLLM servers for the configured bases and their adapters."""

import os
import shlex
import signal
from pathlib import Path
from types import FrameType

import click

from app.cli_common import open_workspace
from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.serving.command import (
    ServeCommand,
    cpu_serve_commands,
    serve_commands,
    vllm_executable,
)
from engine.serving.status import serving_status


def _shell_line(command: ServeCommand) -> str:
    env = [f"{key}={shlex.quote(value)}" for key, value in command.env.items()]
    return " ".join([*env, shlex.join(command.argv)])


@click.command()
@click.option("--print", "show", is_flag=True, help="Write the server commands, one per base.")
@click.option("--launch", is_flag=True, help="Start the servers and wait on them.")
@click.option("--status", is_flag=True, help="What each server has loaded, and what it lacks.")
@click.option(
    "--hold",
    is_flag=True,
    help="Hold serving (to train by hand): a running --launch stops its servers until --release.",
)
@click.option(
    "--release", is_flag=True, help="Lift a hold on serving (yours, or a dead autopilot's)."
)
@click.option(
    "--cpu", is_flag=True, help="The CPU stand-in instead of vLLM (the tiny model, the demo)."
)
@click.option(
    "--install-vllm",
    "wheels",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Make [serving] vllm_env from a folder of wheels (a bundle's vllm/), offline.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    show: bool,
    launch: bool,
    status: bool,
    hold: bool,
    release: bool,
    cpu: bool,
    wheels: Path | None,
) -> None:
    """One vLLM server per base, LoRA enabled, active adapters preloaded, runtime loads on.

    `--launch` supervises them: they stop with it, one that crashes is started again with the
    versions active then, and none runs while serving is held or a training run holds the GPU."""
    if show + launch + status + hold + release + (wheels is not None) != 1:
        raise click.UsageError(
            "give exactly one of --print, --launch, --status, --hold, --release or --install-vllm"
        )
    ws = open_workspace(ctx, write=launch or hold or release)
    if wheels is not None:
        from engine.bundle.vllm_env import install_vllm

        click.echo(f"installing vllm from {wheels}, offline (a few minutes)")
        env, version = install_vllm(ws, wheels)
        click.echo(f"vllm {version} installed in {env}; `cra serve --launch` starts it from there")
        return
    if hold:
        from engine.serving.hold import OPERATOR_HOLDER, hold_serving

        hold_serving(ws, OPERATOR_HOLDER, "held by hand with `cra serve --hold`")
        click.echo(
            "serving is held: a running `cra serve --launch` stops its servers within seconds "
            "and starts them again after `cra serve --release`"
        )
        return
    if release:
        from engine.serving.hold import release_serving

        hold = release_serving(ws)
        click.echo("no hold was in place" if hold is None else f"lifted the hold of {hold.holder}")
        return
    if status:
        _status(ws)
        return
    commands = cpu_serve_commands(ws) if cpu else serve_commands(ws)
    if show:
        for command in commands:
            click.echo(f"# base {command.base} at {command.url}")
            for note in command.notes:
                click.echo(f"# {note}")
            click.echo(_shell_line(command))
        return
    if not cpu:
        vllm = vllm_executable(ws)
        if not os.access(vllm, os.X_OK):
            raise CraError(
                f"vllm is not installed in {vllm.parent.parent} ([serving] vllm_env): no "
                f"{vllm}; `cra serve --install-vllm BUNDLE/vllm` installs it there from an "
                "offline bundle made with --vllm"
            )
    _launch(ws, cpu)


def _status(ws: Workspace) -> None:
    statuses = serving_status(ws)
    if not statuses:
        click.echo(f"no base is served: [serving] bases is empty in {ws.config_path}")
    for item in statuses:
        state = (
            "another server answers"
            if item.other
            else "running"
            if item.running
            else ("not running")
        )
        click.echo(f"base {item.base} at {item.url}: {state}")
        if item.error:
            click.echo(f"  error: {item.error}")
        if item.running:
            click.echo(f"  loaded: {', '.join(item.loaded) or 'no adapters'}")
        if item.missing:
            click.echo(f"  active but not loaded: {', '.join(item.missing)}")
        if item.stranded:
            click.echo(
                f"  active on an older base, never loaded: {', '.join(item.stranded)} "
                "(`cra train-plan` lists them for retraining)"
            )


def _launch(ws: Workspace, cpu: bool) -> None:
    """Supervise the servers until interrupted or terminated (`engine.serving.supervisor`)."""
    from engine.serving.supervisor import Supervisor

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        Supervisor(ws, cpu_serve_commands if cpu else serve_commands, click.echo).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
