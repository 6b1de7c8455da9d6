"""A folder built once under a key: in a staging folder, then renamed into place in one step.

A crash leaves nothing that looks ready (the ready file is written last, inside the staging
folder); the next build of the same key clears the leftovers. A per-key lock keeps two builders
of one key apart, across processes.
"""

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from engine.core.durable import fsync_dir
from engine.core.locks import exclusive_lock

STAGING_DIR = ".staging"


def build_once(
    parent: Path,
    key: str,
    ready_file: str,
    build: Callable[[Path], None],
    when_ready: Callable[[Path], None] | None = None,
) -> tuple[Path, bool]:
    """`parent/key` and whether this call built it. Unless it holds `ready_file`, `build` fills
    a fresh staging folder (writing `ready_file` last), which is then renamed into place; a
    failed build leaves nothing. `when_ready` runs on a folder that was ready already, under the
    same lock (an upgrade in place)."""
    staging_root = parent / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    final = parent / key
    with exclusive_lock(parent / f".{key}.lock"):
        if (final / ready_file).is_file():
            if when_ready is not None:
                when_ready(final)
            return final, False
        for leftover in staging_root.glob(f"{key}-*"):
            remove_tree(leftover)
        staging = staging_root / f"{key}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            build(staging)
            staging.rename(final)
        except BaseException:
            if staging.exists():
                remove_tree(staging)
            raise
        fsync_dir(parent)
    return final, True


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it (or a file or link) without following links."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)
