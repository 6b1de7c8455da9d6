"""Hostile repo packages: each case turns a valid package into one that breaks a single rule.

The demo drive carries a few of them; the test battery runs every one and checks that the right
check rejects it (or, for content flags, that it is flagged for review, not rejected).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.demo.repo import demo_git
from engine.intake.manifest import MANIFEST_FILE

COMMIT_DATE = "2024-03-20T10:00:00+00:00"


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


def write_file(package: Path, rel: str, data: str | bytes) -> Path:
    """Write `data` at `package/rel`, making folders as needed."""
    path = package / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def commit_files(package: Path, files: dict[str, str | bytes], subject: str = "") -> str:
    """Commit `files` (paths inside repo/), make the commit the manifest's head; return its sha."""
    repo = package / "repo"
    for rel, data in files.items():
        write_file(repo, rel, data)
    demo_git(repo, "add", "--", *files, date=COMMIT_DATE)
    message = subject or f"Add {', '.join(files)}"
    demo_git(repo, "commit", "--quiet", "--no-verify", "-m", message, date=COMMIT_DATE)
    head = demo_git(repo, "rev-parse", "HEAD", date=COMMIT_DATE)
    edit_manifest(package, lambda data: data.update(head=head))
    return head


def committing(files: dict[str, str | bytes], subject: str = "") -> Callable[[Path], None]:
    """A mutation that commits `files` on top of the demo history (see `commit_files`)."""

    def mutate(package: Path) -> None:
        commit_files(package, files, subject)

    return mutate
