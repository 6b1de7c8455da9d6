"""Make a written folder survive a crash: fsync its files and folders before it is renamed."""

import os
from pathlib import Path


def fsync_tree(root: Path) -> None:
    """fsync every regular file and folder under `root` (links are not followed)."""
    for folder, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def fsync_dir(path: Path) -> None:
    """fsync one folder, so a rename or a new entry in it is on disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
