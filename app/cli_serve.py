"""`cra serve`: show or start the vLLM servers for the configured bases and their adapters."""

import os
import shlex
import shutil
import signal
import subprocess
import time
from types import FrameType

import click

from app.cli_common import open_workspace
from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.serving.command import ServeCommand, cpu_serve_commands, serve_commands
from engine.serving.status import serving_status


def _shell_line(command: ServeCommand) -> str:
    env = [f"{key}={shlex.quote(value)}" for key, value in command.env.items()]
    return " ".join([*env, shlex.join(command.argv)])


@click.command()
@click.option("--print", "show", is_flag=True, help="Write the server commands, one per base.")
@click.option("--launch", is_flag=True, help="Start the servers and wait on them.")
@click.option("--status", is_flag=True, help="What each server has loaded, and what it lacks.")
@click.option(
    "--cpu", is_flag=True, help="The CPU stand-in instead of vLLM (the tiny model, the demo)."
)
@click.pass_context
def serve(ctx: click.Context, show: bool, launch: bool, status: bool, cpu: bool) -> None:
    """One vLLM server per base, LoRA enabled, active adapters preloaded, runtime loads on."""
    if show + launch + status != 1:
        raise click.UsageError("give exactly one of --print, --launch or --status")
    ws = open_workspace(ctx, write=launch)
    if status:
        _status(ws)
        return
    commands = cpu_serve_commands(ws) if cpu else serve_commands(ws)
    if show:
        for command in commands:
            click.echo(f"# base {command.base} at {command.url}")
            click.echo(_shell_line(command))
        return
    if not cpu and shutil.which("vllm") is None:
        raise CraError(
            "vllm is not installed here (no `vllm` on PATH); `cra serve --print` shows the "
            "commands to run where it is"
        )
    _launch(commands)


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


def _launch(commands: list[ServeCommand]) -> None:
    """Start every server, each in a process group of its own, and wait. When one stops, or
    this command is interrupted, terminated or exits, every group is stopped: vLLM's own
    worker processes go with their server."""
    processes: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        for command in commands:
            process = subprocess.Popen(
                command.argv, env={**os.environ, **command.env}, start_new_session=True
            )
            processes.append(process)
            click.echo(f"starting base {command.base} at {command.url} (pid {process.pid})")
        while all(process.poll() is None for process in processes):
            time.sleep(1)
    finally:
        for process in processes:
            _stop_group(process)
        signal.signal(signal.SIGTERM, previous)
    stopped = [
        f"base {command.base} exited with status {process.returncode}"
        for command, process in zip(commands, processes, strict=True)
    ]
    raise CraError("vLLM stopped, so every server was stopped: " + "; ".join(stopped))


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group, then kill it if it is still there after 30 s."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
