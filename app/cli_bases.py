"""`cra bases`: the versioned base models, `{role}-base-v{N}` (LoRA Training Strategy §10.5)."""

import click

from app.cli_common import open_workspace
from engine.bases.registry import (
    BaseVersion,
    base_by_name,
    base_folder_of,
    current_base,
    list_bases,
    problems_line,
    register_base,
    verify_base,
)
from engine.core.errors import CraError
from engine.core.sizes import human_size
from engine.core.stages import BaseModelKind

ROLES = ("reasoning", "coding")


def _describe(version: BaseVersion) -> str:
    return f"{len(version.files)} files, {human_size(version.size)}, sha256 {version.sha256[:12]}"


@click.group()
def bases() -> None:
    """Base model checkpoints: register a role's base, list them, verify their files."""


@bases.command("list")
@click.pass_context
def bases_list(ctx: click.Context) -> None:
    """Every registered base version, current or retired."""
    ws = open_workspace(ctx, write=False)
    versions = list_bases(ws)
    if not versions:
        click.echo(
            "no base registered yet: a role's base is registered on its first training run or "
            "serve, or with `cra bases register ROLE`"
        )
        return
    for version in versions:
        state = "current" if version.retired_at is None else f"retired {version.retired_at}"
        click.echo(f"{version.name:<22} {state:<30} {version.path}")
        click.echo(
            f"{'':<22} {_describe(version)}; registered {version.registered_at} by "
            f"{version.registered_by} ({version.note})"
        )


@bases.command("register")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--note", default="", help="Why the base changed (recorded with it).")
@click.option("--operator", help="Who registers (default: the config's operator).")
@click.pass_context
def bases_register(
    ctx: click.Context, role: BaseModelKind, note: str, operator: str | None
) -> None:
    """Register the folder the config names for ROLE as its next base version.

    Adapters trained on an older base are never served again and `cra train-plan` lists them
    for retraining; nothing is deleted."""
    ws = open_workspace(ctx)
    done = register_base(ws, role, operator=operator, note=note)
    version = done.version
    if not done.created:
        click.echo(
            f"{version.name} is already the {role} base: {version.path} and its files are unchanged"
        )
        return
    click.echo(f"{version.name} registered: {version.path} ({_describe(version)})")
    if done.replaced is not None:
        click.echo(f"it replaces {done.replaced.name} ({done.replaced.path}), kept on record")
        if base_folder_of(ws, done.replaced).resolve() == base_folder_of(ws, version).resolve():
            click.echo(
                f"note: the files of {done.replaced.name} were replaced in place; that version "
                "can no longer be restored from this folder"
            )
    if done.stranded:
        listed = ", ".join(f"{name} ({status})" for name, status in done.stranded)
        click.echo(f"trained on an older base, now never served: {listed}")
        click.echo("`cra train-plan` lists them for retraining")


@bases.command("verify")
@click.argument("name", required=False)
@click.pass_context
def bases_verify(ctx: click.Context, name: str | None) -> None:
    """Hash the current bases' files (or base version NAME's) against their record; exit 1
    when any differs."""
    ws = open_workspace(ctx, write=False)
    if name is not None:
        versions = [base_by_name(ws, name)]
    else:
        versions = [v for role in ROLES if (v := current_base(ws, role)) is not None]
    if not versions:
        click.echo("no base registered yet; nothing to verify")
        return
    failed = []
    for version in versions:
        problems = verify_base(ws, version)
        if problems:
            failed.append(version.name)
            click.echo(f"{version.name}: {problems_line(problems)}")
        else:
            click.echo(f"{version.name}: ok ({_describe(version)})")
    if failed:
        raise CraError(f"{', '.join(failed)}: files differ from the record")
