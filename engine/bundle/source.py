"""The console's own wheel, built from its source checkout.

The checkout is the folder above the running `engine` package when it holds the project's
pyproject.toml (an editable install), else the folder the installed distribution's
direct_url.json names (`pip install PATH`). A console installed from a wheel has neither, and is
refused: there is no source to build from. The build runs on a copy of the files git knows, as
setuptools writes build/ and *.egg-info into the tree it builds, and a stale build/lib would put
files deleted from the checkout back into the wheel.
"""

import json
import shutil
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.utils import canonicalize_name, parse_wheel_filename

from engine.bundle.errors import BundleError
from engine.bundle.steps import run_step

PROJECT = "cra-console"
GPU_EXTRA = "gpu"
CLUSTER_EXTRA = "cluster"


def _project_name(folder: Path) -> str | None:
    """The `[project] name` of folder/pyproject.toml, None when there is no readable one."""
    try:
        data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = data.get("project", {}).get("name")
    return name if isinstance(name, str) else None


def _direct_url_folder() -> tuple[Path | None, str]:
    """The local folder the installed distribution was installed from, or None and why not."""
    try:
        dist = distribution(PROJECT)
    except PackageNotFoundError:
        return None, f"{PROJECT} is not installed"
    text = dist.read_text("direct_url.json")
    if not text:
        return None, f"{PROJECT} was installed from a wheel or an index (no direct_url.json)"
    try:
        url = urlparse(json.loads(text).get("url", ""))
    except (json.JSONDecodeError, AttributeError):
        return None, f"{PROJECT}'s direct_url.json cannot be read"
    if url.scheme != "file":
        return None, f"{PROJECT} was installed from {url.geturl()}, not from a folder"
    return Path(unquote(url.path)), ""


def find_source() -> Path:
    """The console's source checkout; BundleError when it runs from no checkout."""
    running = Path(__file__).resolve().parents[2]
    if _project_name(running) == PROJECT:
        return running
    folder, why = _direct_url_folder()
    if folder is not None and _project_name(folder) == PROJECT:
        return folder
    if folder is not None:
        why = f"{folder}, which {PROJECT} was installed from, holds no {PROJECT} pyproject.toml"
    raise BundleError(
        f"cra bundle builds the console's wheel from its source checkout, and this console runs "
        f"from none ({why}); run cra bundle from a checkout installed with pip install -e"
    )


def defined_extras(root: Path) -> list[str]:
    """The extras the checkout's pyproject.toml defines."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted(data.get("project", {}).get("optional-dependencies", {}))


def bundle_extras(defined: list[str], *, gpu: bool, cluster: bool = False) -> list[str]:
    """The extras a bundle installs: `gpu` with --gpu, `cluster` with --cluster; each must be
    defined."""
    wanted = [name for name, on in ((GPU_EXTRA, gpu), (CLUSTER_EXTRA, cluster)) if on]
    for name in wanted:
        if name not in defined:
            shown = ", ".join(defined) or "none"
            raise BundleError(
                f"--{name}: {PROJECT}'s pyproject.toml defines no [project.optional-dependencies] "
                f"extra named {name!r} (it defines: {shown}); until it does, there is nothing "
                "to bundle for it"
            )
    return wanted


def copy_checkout(root: Path, dest: Path) -> int:
    """Copy the files git knows in `root` (tracked, and untracked but not ignored) to `dest`;
    how many were copied. A file deleted but not yet staged is left out."""
    listed = run_step(
        "listing the checkout's files (git ls-files)",
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    ).stdout
    copied = 0
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = root / name
        if not source.is_symlink() and not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        copied += 1
    return copied


def build_project_wheel(root: Path, scratch: Path, wheels: Path) -> Path:
    """Build the console's wheel from a copy of the checkout at `root` into `wheels`."""
    source = scratch / "source"
    copy_checkout(root, source)
    built_dir = scratch / "project-wheel"
    # An absolute path: a bare folder name is a requirement to pip, looked up on the index.
    run_step(
        "building the console's wheel (pip wheel)",
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(built_dir)),
            *("--disable-pip-version-check", "--no-input", str(source.absolute())),
        ],
    )
    built = sorted(built_dir.glob("*.whl"))
    if len(built) != 1:
        raise BundleError(f"building the console's wheel made {len(built)} wheels, not one")
    if parse_wheel_filename(built[0].name)[0] != canonicalize_name(PROJECT):
        raise BundleError(f"building the console's wheel made {built[0].name}, not {PROJECT}'s")
    wheels.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(built[0], wheels / built[0].name))


def wheel_version(wheel: Path) -> str:
    """The version a wheel's file name gives."""
    return str(parse_wheel_filename(wheel.name)[1])
