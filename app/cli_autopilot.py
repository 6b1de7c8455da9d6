"""`cra autopilot`: the unattended night, in the foreground (under systemd or tmux)."""

import signal
import time
from types import FrameType

import click

from app.cli_common import open_workspace


@click.command()
@click.option("--once", is_flag=True, help="Look once and exit (for a timer instead of a daemon).")
@click.option("--status", is_flag=True, help="Say whether it runs and what it is doing.")
@click.pass_context
def autopilot(ctx: click.Context, once: bool, status: bool) -> None:
    """Train ready stages in the night's window by the `[autopilot]` policy, unattended.

    In the window, a stage with enough new reviewed data is curated, the servers are stopped,
    it trains, is evaluated and gated, and the servers start again; a gate pass is promoted only
    when the policy allows. Every step lands in the morning report."""
    from engine.runners.autopilot import Autopilot, autopilot_status

    if once and status:
        raise click.UsageError("give --once or --status, not both")
    ws = open_workspace(ctx, write=not status)
    if status:
        click.echo(autopilot_status(ws))
        return
    pilot = Autopilot(ws, say=click.echo)
    if once:
        pilot.tick()
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        pilot.run(time.sleep)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
