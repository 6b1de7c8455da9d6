"""Check: every requirement is a named one, the test runner is among them, and all resolve offline.

Resolution runs `uv pip compile` against `packages/` only (`--offline --no-index --find-links`),
for the manifest's Python version on this machine's platform, so a package whose wheels do not
cover its requirements is refused before anything is installed. When the manifest asks for the
repository itself to be installed, its build backend's requirements must resolve too.
"""

import re
import tomllib
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from engine.intake.checks.context import PackageContext, failed, passed
from engine.intake.manifest import MANIFEST_FILE, ManifestV1
from engine.intake.validation_report import CheckResult
from engine.isolation.gitsafe import GitError, run_git
from engine.isolation.uvtool import UvError, run_uv, uv_reason, write_requirements

NAME = "requirements"
PYPROJECT = "pyproject.toml"
# PEP 517/518: a project without [build-system] is built with setuptools, as pip and uv do.
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def unnamed_reason(text: str) -> str | None:
    """Why requirement `text` is not a named requirement resolved from packages/, or None."""
    url = Requirement(text).url
    if url is None:
        return None
    scheme = urlsplit(url).scheme
    kind = "a local path" if scheme in ("", "file") else "a direct URL"
    return (
        f"requirement {text!r} points at {kind} ({url}); only named requirements, "
        "resolved from packages/, are allowed"
    )


def _resolve(
    ctx: PackageContext, requirements: list[str], label: str, stem: str, path: str
) -> tuple[list[str], CheckResult | None]:
    """Pins (`name==version`) for `requirements`, or the failure naming uv's reason."""
    manifest = ctx.manifest
    assert manifest is not None
    folder = ctx.scratch / NAME
    req_file = write_requirements(folder / f"{stem}.txt", requirements)
    args = [
        "pip",
        "compile",
        str(req_file),
        "--offline",
        "--no-index",
        "--find-links",
        str(ctx.packages.absolute()),
        "--python-version",
        manifest.python_version,
        "--no-build",
        "--no-header",
        "--no-annotate",
        "--quiet",
    ]
    try:
        result = run_uv(args, folder, ctx.scratch)
    except UvError as exc:
        return [], failed(NAME, f"{label}: {exc}", path)
    if result.returncode != 0:
        detail = (
            f"{label} do not resolve offline from packages/ for Python {manifest.python_version}: "
            f"{uv_reason(result.stderr)}"
        )
        return [], failed(NAME, detail, path)
    pins = [line.strip() for line in result.stdout.splitlines() if _PIN.match(line.strip())]
    return pins, None


def _build_requires(ctx: PackageContext) -> tuple[list[str], str, CheckResult | None]:
    """The repo's `[build-system] requires` at HEAD, a note on their origin, or a failure."""
    path = f"repo/{PYPROJECT}"
    try:
        shown = run_git(ctx.repo, "show", f"HEAD:{PYPROJECT}", check=False)
    except GitError as exc:
        return [], "", failed(NAME, f"install_repo is true but {exc}", path)
    if shown.returncode != 0:
        detail = (
            f"install_repo is true but the repository has no {PYPROJECT} at HEAD, "
            "so it cannot be built offline"
        )
        return [], "", failed(NAME, detail, path)
    try:
        data = tomllib.loads(shown.stdout.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [], "", failed(NAME, f"{PYPROJECT} at HEAD cannot be read: {exc}", path)
    build_system = data.get("build-system")
    if build_system is None:
        return list(DEFAULT_BUILD_REQUIRES), " (no [build-system]: setuptools assumed)", None
    requires = build_system.get("requires") if isinstance(build_system, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        detail = f"{PYPROJECT} at HEAD: [build-system] requires must be a list of strings"
        return [], "", failed(NAME, detail, path)
    for text in requires:
        try:
            reason = unnamed_reason(text)
        except InvalidRequirement as exc:
            detail = f"{PYPROJECT} build requirement {text!r} is not PEP 508: {exc}"
            return [], "", failed(NAME, detail, path)
        if reason is not None:
            return [], "", failed(NAME, f"{PYPROJECT} build {reason}", path)
    return requires, "", None


def _runner_failure(manifest: ManifestV1) -> CheckResult | None:
    runner = manifest.runner
    if canonicalize_name(runner) in manifest.requirement_names():
        return None
    detail = (
        f"test runner {runner} (from test_command {manifest.test_command!r}) is not among the "
        "requirements; the dry run and the harness install only what is listed"
    )
    return failed(NAME, detail, MANIFEST_FILE)


def check_requirements(ctx: PackageContext) -> list[CheckResult]:
    manifest = ctx.manifest
    assert manifest is not None, "runs only after the manifest check passed"
    unnamed = [
        failed(NAME, reason, MANIFEST_FILE)
        for text in manifest.requirements
        if (reason := unnamed_reason(text)) is not None
    ]
    if unnamed:
        return unnamed
    failures = [f for f in [_runner_failure(manifest)] if f is not None]
    pins, failure = _resolve(
        ctx, manifest.requirements, "requirements", "requirements", MANIFEST_FILE
    )
    if failure is not None:
        failures.append(failure)
    detail = f"resolved {len(pins)} distributions offline: {', '.join(pins)}"
    if manifest.install_repo:
        build, note, failure = _build_requires(ctx)
        build_pins: list[str] = []
        if failure is None and build:
            build_pins, failure = _resolve(
                ctx, build, "the repository's build requirements", "build", f"repo/{PYPROJECT}"
            )
        if failure is not None:
            failures.append(failure)
        detail += f"; build backend{note}: {', '.join(build_pins) or 'nothing to install'}"
    return failures or [passed(NAME, detail)]
