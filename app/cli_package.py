"""`cra package`: mine, filter and package a git repository for the USB drive (connected side)."""

from datetime import UTC, datetime
from pathlib import Path

import click

from app.cli_common import PathArg
from engine.mining.settings import FilterSettings
from engine.packaging.build import DEFAULT_PYTHON, DEFAULT_TEST_COMMAND
from engine.packaging.wheels import DEFAULT_PLATFORM


def _option_problem(error) -> str:
    """A pydantic error on a `cra package` option as `--option: reason`."""
    if not error["loc"]:
        return error["msg"].removeprefix("Value error, ")
    option = "--" + str(error["loc"][0]).replace("_", "-")
    return f"{option}: {error['msg'].removeprefix('Value error, ')}"


def _aware(moment: datetime | None) -> datetime | None:
    """A date given without a zone is read as UTC midnight."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@click.command()
@click.argument("repo", type=PathArg(file_okay=False))
@click.option(
    "--out",
    required=True,
    type=PathArg(),
    help="Folder to write the package to; it must not exist yet.",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Oldest commit date to keep (default: from the first commit after the last whose "
    "configuration today's pytest or --python refuses).",
)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Newest commit date to keep.")
@click.option(
    "--min-files",
    type=int,
    default=FilterSettings.model_fields["min_files"].default,
    show_default=True,
    help="Fewest files a kept commit changes.",
)
@click.option(
    "--max-files",
    type=int,
    default=FilterSettings.model_fields["max_files"].default,
    show_default=True,
    help="Most files a kept commit changes.",
)
@click.option(
    "--max-lines",
    type=int,
    default=FilterSettings.model_fields["max_lines"].default,
    show_default=True,
    help="A kept commit changes fewer lines than this.",
)
@click.option(
    "--python",
    "python_version",
    default=DEFAULT_PYTHON,
    show_default=True,
    help="Python version of the air-gapped machine.",
)
@click.option(
    "--platform",
    default=DEFAULT_PLATFORM,
    show_default=True,
    help="Platform of the air-gapped machine, for the wheels.",
)
@click.option(
    "--test-command", default=DEFAULT_TEST_COMMAND, show_default=True, help="How to run the tests."
)
@click.option("--domain", required=True, help="Domain of the repository, for corpus balance.")
@click.option("--license", "license_", help="License (default: what the repository declares).")
@click.option("--name", help="Package name (default: the project's name).")
@click.option(
    "--wheels",
    type=PathArg(exists=True, file_okay=False),
    help="Take the wheels from this folder instead of downloading them with pip.",
)
@click.option(
    "--test-group",
    "test_groups",
    multiple=True,
    help="Extra or dependency group holding test requirements (repeatable; "
    "default: test, tests, testing, else dev).",
)
@click.option(
    "--pin",
    "pins",
    multiple=True,
    metavar="NAME==VER",
    help="Use this version of a requirement (repeatable); one not declared is added.",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="NAME",
    help="Leave out every declared requirement of this name (repeatable).",
)
@click.option(
    "--exclude-newer",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z"]),
    help="Download no wheel uploaded after this date (default: the newest packaged commit's).",
)
@click.option("--report", is_flag=True, help="Print the attrition table and planning types.")
def package(
    repo: Path,
    out: Path,
    since: datetime | None,
    until: datetime | None,
    min_files: int,
    max_files: int,
    max_lines: int,
    python_version: str,
    platform: str,
    test_command: str,
    domain: str,
    license_: str | None,
    name: str | None,
    wheels: Path | None,
    test_groups: tuple[str, ...],
    pins: tuple[str, ...],
    excludes: tuple[str, ...],
    exclude_newer: datetime | None,
    report: bool,
) -> None:
    """Mine, filter and package the git repository REPO for the USB drive."""
    from pydantic import ValidationError

    from engine.packaging.build import PackageOptions, package_repository
    from engine.packaging.summary import report_lines, summary_lines

    try:
        filters = FilterSettings(
            since=since.date() if since else None,
            until=until.date() if until else None,
            min_files=min_files,
            max_files=max_files,
            max_lines=max_lines,
        )
        options = PackageOptions(
            repo=repo,
            out=out,
            domain=domain,
            filters=filters,
            python_version=python_version,
            platform=platform,
            test_command=test_command,
            license=license_,
            name=name,
            wheels=wheels,
            test_groups=test_groups,
            pins=pins,
            excludes=excludes,
            exclude_newer=_aware(exclude_newer),
        )
    except ValidationError as exc:
        raise click.UsageError("\n".join(map(_option_problem, exc.errors()))) from exc
    result = package_repository(options)
    for line in summary_lines(result):
        click.echo(line)
    if report:
        for line in report_lines(result):
            click.echo(line)
