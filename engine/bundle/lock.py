"""requirements.lock read back and held against wheels/: one file for every pin, no file unpinned.

uv's `--generate-hashes` takes each hash from the files it found, so a lock that compiled names
files that exist; this check is what says so after the fact, and what catches a wheel pip
fetched that uv's resolution does not use (pip and uv disagreeing on the target's markers).
`install.sh` installs with `--require-hashes`, so a pin without its file, or a file that is not
the one pinned, would fail only on the air-gapped machine.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from engine.bundle.errors import BundleError
from engine.core.hashing import sha256_file

_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


@dataclass(frozen=True)
class Pin:
    """One distribution of the lock: `name==version` and the sha256 of each allowed file."""

    name: NormalizedName
    version: Version
    hashes: frozenset[str]

    @property
    def shown(self) -> str:
        return f"{self.name}=={self.version}"


def _logical_lines(text: str) -> list[str]:
    """The lock's entries, continuation lines joined, comments and blank lines left out."""
    entries, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            entries.append(current.strip())
            current = ""
    if current.strip():
        entries.append(current.strip())
    return entries


def parse_lock(text: str) -> list[Pin]:
    """Every pin of a requirements.lock; BundleError on an entry that is not `name==version`
    with at least one sha256."""
    pins = []
    for entry in _logical_lines(text):
        spec = entry.split(" --hash=", 1)[0].strip()
        try:
            req = Requirement(spec)
            [clause] = req.specifier
            version = Version(clause.version)
        except (InvalidRequirement, InvalidVersion, ValueError) as exc:
            raise BundleError(f"requirements.lock: {spec!r} is not one name==version pin") from exc
        hashes = frozenset(_HASH.findall(entry))
        if clause.operator != "==" or not hashes:
            raise BundleError(f"requirements.lock: {spec!r} is not pinned by == with a sha256")
        pins.append(Pin(canonicalize_name(req.name), version, hashes))
    return pins


def _wheel_identity(path: Path) -> tuple[NormalizedName, Version] | None:
    try:
        name, version, _build, _tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        return None
    return name, version


def lock_problems(pins: list[Pin], wheels: Path) -> list[str]:
    """What is wrong between the lock's pins and the files in `wheels`, one line each: a pin no
    file matches, a file whose sha256 the lock does not allow, a file of another pin's hash, a
    file that is not a wheel. Empty when each pin has its file and each file is pinned."""
    problems = []
    by_hash = {digest: pin for pin in pins for digest in pin.hashes}
    matched: set[Pin] = set()
    for path in sorted(wheels.iterdir()):
        identity = _wheel_identity(path) if path.is_file() and not path.is_symlink() else None
        if identity is None:
            problems.append(f"wheels/{path.name} is not a wheel file")
            continue
        digest = sha256_file(path)
        pin = by_hash.get(digest)
        same = [p for p in pins if (p.name, p.version) == identity]
        if pin is None and same:
            problems.append(
                f"wheels/{path.name} has sha256 {digest}, which the lock does not allow for "
                f"{same[0].shown}"
            )
        elif pin is None:
            problems.append(f"wheels/{path.name} is not in the lock (no pin uses it)")
        elif (pin.name, pin.version) != identity:
            problems.append(f"wheels/{path.name} has the sha256 the lock gives {pin.shown}")
        else:
            matched.add(pin)
    problems += [
        f"{pin.shown} is in the lock, but no file in wheels/ has its sha256"
        for pin in pins
        if pin not in matched
    ]
    return problems


def check_lock(lock_text: str, wheels: Path) -> list[Pin]:
    """The lock's pins, when they and the files in `wheels` match one to one; else BundleError
    naming every mismatch."""
    pins = parse_lock(lock_text)
    if problems := lock_problems(pins, wheels):
        raise BundleError(
            f"checking requirements.lock against wheels/ found {len(problems)} problem(s): "
            + "; ".join(problems)
        )
    return pins


def pinned_version(pins: list[Pin], name: str) -> tuple[str, str] | None:
    """The version the lock pins for `name` and its local version tag (`+cpu`; empty for
    none), None when it pins none."""
    key = canonicalize_name(name)
    for pin in pins:
        if pin.name == key:
            return str(pin.version), f"+{pin.version.local}" if pin.version.local else ""
    return None
