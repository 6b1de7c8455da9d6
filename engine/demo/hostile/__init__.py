"""Hostile repo packages: each case turns a valid package into one that breaks a single rule.

The demo drive carries a few of them; the test battery runs every one and checks that the right
check rejects it (or, for content flags, that it is flagged for review, not rejected).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.manifest import MANIFEST_FILE


@dataclass(frozen=True)
class HostileCase:
    """One rule broken on purpose.

    `check` is the check expected to fail, with `expect` a substring of its detail and `path` the
    file it must name (relative to the package). A case with `flag` set is not rejected: the
    report is ok and carries a content flag of that kind on `path`. `config` overrides validation
    limits for the case (a short dry-run timeout for a collection that hangs, say).
    """

    name: str
    description: str
    mutate: Callable[[Path], None]
    check: str | None = None
    expect: str = ""
    path: str | None = None
    flag: str | None = None
    config: dict[str, float | int] = field(default_factory=dict, hash=False)


def load_manifest_dict(package: Path) -> dict:
    return json.loads((package / MANIFEST_FILE).read_text(encoding="utf-8"))


def save_manifest_dict(package: Path, data: dict) -> None:
    (package / MANIFEST_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def edit_manifest(package: Path, edit: Callable[[dict], None]) -> None:
    """Apply `edit` to the manifest's JSON object in place."""
    data = load_manifest_dict(package)
    edit(data)
    save_manifest_dict(package, data)
