"""Real git repositories built in a test: made empty, then committed to file by file."""

from collections.abc import Mapping
from pathlib import Path

from engine.demo.repo import demo_git

DATE = "2024-01-01T00:00:00+00:00"


def new_repo(path: Path) -> Path:
    """An empty repository at `path` (made if missing) on branch main, with no template hooks."""
    path.mkdir(parents=True, exist_ok=True)
    demo_git(path, "init", "--quiet", "--template=", "--initial-branch=main")
    return path


def add_commit(
    repo: Path, files: Mapping[str, str | bytes | None], message: str, date: str = DATE
) -> str:
    """Write `files` (text or bytes; None deletes one), commit the whole work tree as
    `message` on `date`, and return the commit's sha."""
    for rel, content in files.items():
        path = repo / rel
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    demo_git(repo, "add", "--all")
    demo_git(
        repo, "commit", "--quiet", "--no-verify", "--allow-empty-message", "-m", message, date=date
    )
    return demo_git(repo, "rev-parse", "HEAD")
