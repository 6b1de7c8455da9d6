"""debs/: the system tools a fresh Debian may lack, as a flat local apt repository.

The tools are bubblewrap (the sandbox repository code runs in), git, and the Python's venv
module (Debian ships `python3.11 -m venv` apart, in python3.11-venv, and install.sh needs it).
Their whole dependency closure is downloaded (`apt-cache depends --recurse`, virtual packages
left out), whatever the connected machine has installed, since the air-gapped one may have less;
on that side apt installs from the closure only what is missing. `Packages` is written here from
each file's control fields (`dpkg-deb -f`) plus its Filename, Size and SHA256, by which apt
checks every file it installs.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from engine.bundle.errors import BundleError
from engine.bundle.steps import run_step
from engine.core.hashing import sha256_file

OS_RELEASE = Path("/etc/os-release")
_DEPENDS_OPTIONS = (
    "--recurse",
    *("--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"),
    *("--no-replaces", "--no-enhances"),
)
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_WORD = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REQUIRED_FIELDS = ("Package", "Version", "Architecture")


@dataclass(frozen=True)
class SystemTool:
    """A Debian package install-system.sh installs when `present` (a sh condition) fails."""

    package: str
    present: str


def system_tools(python_version: str) -> list[SystemTool]:
    """bubblewrap, git and the venv module of the bundle's Python."""
    python = f"python{python_version}"
    return [
        SystemTool("bubblewrap", "command -v bwrap"),
        SystemTool("git", "command -v git"),
        SystemTool(f"{python}-venv", f"{python} -c 'import ensurepip, venv'"),
    ]


def os_release(path: Path = OS_RELEASE) -> dict[str, str]:
    """The KEY=value pairs of an os-release file, values unquoted as sh would."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"reading {path} failed: {exc.strerror}; pass --no-debs") from exc
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            words = shlex.split(value, comments=False) if value.strip() else [""]
            pairs[key.strip()] = words[0] if words else ""
    return pairs


def debian_release(path: Path = OS_RELEASE) -> str:
    """This machine's release codename (bookworm); BundleError when it is not apt's Debian."""
    codename = os_release(path).get("VERSION_CODENAME", "")
    if not _WORD.match(codename):
        raise BundleError(
            f"{path} names no VERSION_CODENAME, so this is no Debian the .debs could be "
            "fetched for; pass --no-debs"
        )
    return codename


def host_architecture() -> str:
    """dpkg's architecture of this machine (amd64)."""
    arch = run_step("asking dpkg the architecture", ["dpkg", "--print-architecture"]).stdout
    arch = arch.strip()
    if not _WORD.match(arch):
        raise BundleError(f"dpkg --print-architecture answered {arch!r}")
    return arch


def dependency_closure(packages: list[str]) -> list[str]:
    """`packages` and every real package they depend on, recursively, as apt-cache sees it."""
    out = run_step(
        f"listing the dependencies of {', '.join(packages)} (apt-cache depends)",
        ["apt-cache", "depends", *_DEPENDS_OPTIONS, *packages],
    ).stdout
    return closure_names(out)


def closure_names(apt_cache_output: str) -> list[str]:
    """The real packages `apt-cache depends --recurse` lists: its unindented lines, less
    virtual packages (`<name>`) and other architectures' (`name:i386`)."""
    names = set()
    for line in apt_cache_output.splitlines():
        if not line or line[0].isspace() or line.startswith("<") or ":" in line:
            continue
        if _PACKAGE_NAME.match(line.strip()):
            names.add(line.strip())
    return sorted(names)


def download_debs(packages: list[str], dest: Path) -> list[Path]:
    """Download the candidate version of each package into `dest` (`apt-get download`)."""
    dest.mkdir(parents=True, exist_ok=True)
    run_step(
        f"downloading {len(packages)} .deb files (apt-get download)",
        ["apt-get", "download", "-q", *packages],
        cwd=dest,
    )
    return sorted(dest.glob("*.deb"))


def control_paragraph(deb: Path) -> str:
    """The control fields of a .deb, as `dpkg-deb -f` prints them, without the final newline."""
    text = run_step(f"reading {deb.name} (dpkg-deb -f)", ["dpkg-deb", "-f", str(deb)]).stdout
    fields = {line.split(":", 1)[0] for line in text.splitlines() if line and line[0] != " "}
    if missing := [f for f in _REQUIRED_FIELDS if f not in fields]:
        raise BundleError(f"{deb.name}: its control file has no {', '.join(missing)}")
    return "\n".join(line for line in text.splitlines() if line.strip())


def write_packages_index(repo: Path) -> int:
    """Write repo/Packages for every .deb in `repo`; how many it lists."""
    paragraphs = []
    for deb in sorted(repo.glob("*.deb")):
        paragraphs.append(
            f"{control_paragraph(deb)}\n"
            f"Filename: ./{deb.name}\n"
            f"Size: {deb.stat().st_size}\n"
            f"SHA256: {sha256_file(deb)}\n"
        )
    (repo / "Packages").write_text("\n".join(paragraphs), encoding="utf-8")
    return len(paragraphs)
