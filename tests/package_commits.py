"""A commit added to a repo package's history and listed in its manifest, as `cra package` would."""

from pathlib import Path

from engine.demo.hostile import commit_files, edit_manifest
from engine.demo.repo import demo_git


def add_task_commit(
    package: Path,
    files: dict[str, str],
    subject: str,
    test_files: list[str],
    planning_type: str | None = None,
    date: str = "2024-04-02T10:00:00Z",
) -> str:
    """Commit `files` on top of the package's head, list it in the manifest; returns its sha.

    The planning type is by default what packaging would decide from which of `files` are
    `test_files`: mixed, test_plan, or step_plan for code alone."""
    if planning_type is None:
        tests = any(f in test_files for f in files)
        code = any(f not in test_files for f in files)
        planning_type = ("mixed" if code else "test_plan") if tests else "step_plan"
    parent = demo_git(package / "repo", "rev-parse", "HEAD")
    sha = commit_files(package, files, subject)
    entry = {
        "sha": sha,
        "parent": parent,
        "date": date,
        "subject": subject,
        "files_changed": len(files),
        "lines_added": sum(text.count("\n") for text in files.values()),
        "lines_deleted": 0,
        "planning_type": planning_type,
        "test_files": test_files,
    }
    edit_manifest(package, lambda data: data["commits"].append(entry))
    return sha
