"""Check: the environment builds offline and the test command collects tests, in a sandbox.

Everything happens in the validation's scratch folder: the repository is snapshotted at HEAD
with `engine.isolation.snapshot` (`git archive`, never a worktree, which would write into the
drive's .git), a virtual environment is built with uv from packages/ only, and the test command's
collection step (`pytest --collect-only`) runs inside `run_sandboxed`: no network, a time and
a memory limit.
"""

import itertools
import re
from pathlib import Path

import uv

from engine.core.errors import CraError
from engine.intake.checks.context import PackageContext, failed, passed
from engine.intake.manifest import MANIFEST_FILE, ManifestV1
from engine.intake.validation_report import CheckResult
from engine.isolation.sandbox import (
    MAX_PROCESSES,
    OUTPUT_TAIL_BYTES,
    SandboxResult,
    python_paths,
    run_sandboxed,
)
from engine.isolation.snapshot import SnapshotError, write_snapshot
from engine.isolation.uvtool import (
    UvStepError,
    build_offline_venv,
    offline_install_args,
    uv_settings,
)

NAME = "dry-run"
TAIL_LINES = 12
# The whole listing is kept to count it: about 70 bytes a test.
COLLECT_OUTPUT_MAX_BYTES = 16 * 1024 * 1024
TAIL_MAX_CHARS = 1500
_COLLECTED = re.compile(
    r"(\d+)(?:/\d+)? tests? collected(?: \(\d+ deselected\))?"
    r" in [\d.]+(?:s| seconds)(?: \([^)]*\))?"
)
_ERROR_COLLECTING = re.compile(r"ERROR collecting (\S+)")
_PYTEST_NO_TESTS = 5
# What a connect says in the sandbox's network namespace: its own loopback has no listener,
# and there is no route anywhere else.
_NO_NETWORK = ("Network is unreachable", "Connection refused")
# Python's and Rust's (uv's) words for an allocation the address-space limit refused.
_OUT_OF_MEMORY = ("MemoryError", "memory allocation of ")


class _StepFailed(Exception):
    """One step of the dry run failed; `detail` says which and why, `path` names the file."""

    def __init__(self, detail: str, path: str | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.path = path


def _tail(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    tail = "\n".join(lines[-TAIL_LINES:])
    return tail if len(tail) <= TAIL_MAX_CHARS else "…" + tail[-(TAIL_MAX_CHARS - 1) :]


def _snapshot(ctx: PackageContext, dest: Path) -> None:
    """Write the repository's HEAD tree under `dest` without touching the repository."""
    try:
        write_snapshot(ctx.repo, "HEAD", dest)
    except SnapshotError as exc:
        raise _StepFailed(exc.detail, exc.path) from exc


def _build_venv(ctx: PackageContext, manifest: ManifestV1, work: Path) -> Path:
    """A fresh virtual environment with the requirements installed; returns its python."""
    try:
        python, _ = build_offline_venv(
            manifest.python_version, manifest.requirements, ctx.packages, work, ctx.scratch
        )
    except UvStepError as exc:
        raise _StepFailed(str(exc), MANIFEST_FILE) from exc
    return python


def _sandbox(
    ctx: PackageContext,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    readable: list[Path],
    writable: tuple[Path, ...] = (),
    stdout_tail_bytes: int = OUTPUT_TAIL_BYTES,
) -> SandboxResult:
    try:
        return run_sandboxed(
            argv,
            cwd,
            timeout_s=ctx.config.dry_run_timeout_s,
            memory_mb=ctx.config.dry_run_memory_mb,
            env=env,
            tmp_root=ctx.scratch,
            readable=readable,
            writable=writable,
            stdout_tail_bytes=stdout_tail_bytes,
        )
    except CraError as exc:
        raise _StepFailed(str(exc), None) from exc


def _install_repo(ctx: PackageContext, python: Path, snapshot: Path) -> None:
    """Build and install the repository itself; its build backend is untrusted, so sandboxed."""
    uv_bin = uv.find_uv_bin()
    argv = [uv_bin, *offline_install_args(ctx.packages, python), str(snapshot)]
    settings = uv_settings(ctx.scratch)
    cache = Path(settings["UV_CACHE_DIR"])
    cache.mkdir(exist_ok=True)
    readable = [Path(uv_bin), ctx.packages, *python_paths(python)]
    result = _sandbox(ctx, argv, snapshot.parent, settings, readable, (cache,))
    if result.timed_out or result.returncode != 0:
        why = _why(result, "uv", ctx)
        detail = _with_tail(f"installing the repository (install_repo) {why}", result, snapshot)
        raise _StepFailed(detail, "repo")


def collect_argv(manifest: ManifestV1, python: Path) -> list[str]:
    """The manifest's test command as a collection-only run with the environment's python."""
    argv = manifest.test_argv
    rest = argv[1:] if argv[0] == manifest.runner else argv[3:]
    return [
        str(python),
        "-m",
        manifest.runner,
        *rest,
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
    ]


def _culprit(output: str, snapshot: Path) -> str:
    """The repo file a failed collection points at, else the repository itself."""
    if match := _ERROR_COLLECTING.search(output):
        return f"repo/{match.group(1)}"
    if match := re.search(re.escape(f"{snapshot}/") + r"([^\s'\":]+)", output):
        return f"repo/{match.group(1)}"
    return "repo"


def _why(result: SandboxResult, program: str, ctx: PackageContext) -> str:
    """Why a sandboxed step failed, naming the limit it hit when it hit one."""
    limits = ctx.config
    output = result.stdout + result.stderr
    if result.timed_out:
        return (
            f"ran past the time limit of {limits.dry_run_timeout_s:g}s (dry_run_timeout_s) "
            "and was killed"
        )
    if "memory" in result.limits_hit or any(sign in output for sign in _OUT_OF_MEMORY):
        return (
            f"ran out of memory under the limit of {limits.dry_run_memory_mb} MB "
            "(dry_run_memory_mb)"
        )
    if "processes" in result.limits_hit:
        return f"ran into the sandbox's limit of {MAX_PROCESSES} processes"
    if any(sign in output for sign in _NO_NETWORK):
        return "tried to reach the network, which the sandbox blocks"
    return f"failed: {program} exited with {result.returncode}"


def _with_tail(summary: str, result: SandboxResult, snapshot: Path) -> str:
    output = result.stdout + "\n" + result.stderr
    tail = _tail(output, {f"{snapshot}/": "", str(snapshot): "repo"})
    return f"{summary}:\n{tail}" if tail else summary


def _checked_count(result: SandboxResult) -> int | str:
    """How many tests the collection found, or why its output cannot be believed.

    `--collect-only -q` prints the test ids, one a line with no blank line between them (an id
    may hold spaces), then, after a blank line, warnings, and the count as its very last line.
    The code under collection can print too, so the listing and the count must agree and
    nothing may follow the count.
    """
    if result.stdout_truncated:
        return f"the collection printed more than {COLLECT_OUTPUT_MAX_BYTES} bytes"
    lines = result.stdout.splitlines()
    filled = [line.strip() for line in lines if line.strip()]
    match = _COLLECTED.fullmatch(filled[-1]) if filled else None
    if match is None:
        return "pytest's count of collected tests is not the last line of its output"
    said = int(match.group(1))
    first = next((i for i, line in enumerate(lines) if "::" in line), len(lines))
    listing = itertools.takewhile(lambda line: line.strip() and "::" in line, lines[first:])
    listed = sum(1 for _ in listing)
    if listed != said:
        return f"pytest's last line says {said} tests were collected, but it listed {listed}"
    return said


def _collection_failure(
    ctx: PackageContext, runner: str, result: SandboxResult, snapshot: Path
) -> CheckResult:
    if not result.timed_out and result.returncode == _PYTEST_NO_TESTS:
        why = "collected no tests"
    else:
        why = _why(result, runner, ctx)
    path = _culprit(result.stdout + "\n" + result.stderr, snapshot)
    return failed(NAME, _with_tail(f"test collection {why}", result, snapshot), path)


def check_dry_run(ctx: PackageContext) -> list[CheckResult]:
    manifest = ctx.manifest
    assert manifest is not None, "runs only after the manifest check passed"
    work = ctx.scratch / NAME
    work.mkdir()
    snapshot = work / "repo"
    try:
        _snapshot(ctx, snapshot)
        python = _build_venv(ctx, manifest, work)
        wheels = len(list(python.parent.parent.glob("lib/python*/site-packages/*.dist-info")))
        if manifest.install_repo:
            _install_repo(ctx, python, snapshot)
        result = _sandbox(
            ctx,
            collect_argv(manifest, python),
            snapshot,
            {},
            python_paths(python),
            stdout_tail_bytes=COLLECT_OUTPUT_MAX_BYTES,
        )
    except _StepFailed as exc:
        return [failed(NAME, exc.detail, exc.path)]
    if result.timed_out or result.returncode != 0:
        return [_collection_failure(ctx, manifest.runner, result, snapshot)]
    count = _checked_count(result)
    if isinstance(count, str):
        return [
            failed(
                NAME, _with_tail(f"test collection is untrusted: {count}", result, snapshot), "repo"
            )
        ]
    return [
        passed(
            NAME,
            f"environment built offline ({wheels} wheels) and {manifest.runner} collected "
            f"{count} tests",
        )
    ]
