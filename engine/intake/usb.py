"""USB drives and the repo packages on them: a cheap scan, and a watcher built on watchfiles.

A drive is a folder matching one of the config's mount-root glob patterns, a configured extra
folder, or a folder named with `--usb`. A package candidate is a folder holding a
`manifest.json` at most two levels below a drive (a drive at `/media/user` finds
`/media/user/STICK/pkg`). The scan never follows symlinks and never enters `repo/` or `.git`.
"""

import asyncio
import glob
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from watchfiles import awatch

from engine.core.config import UsbConfig
from engine.intake.manifest import MANIFEST_FILE

MAX_DEPTH = 2
SKIPPED_DIRS = frozenset({"repo", ".git"})
WATCH_STEP_MS = 50
WATCH_DEBOUNCE_MS = 300


class Drive(BaseModel):
    """A drive and the package candidates found on it, both sorted."""

    model_config = ConfigDict(frozen=True)

    path: Path
    packages: list[Path]


def _real_dirs(pattern: Path) -> list[Path]:
    """Existing folders (not symlinks) matching the glob `pattern`."""
    if glob.has_magic(str(pattern)):
        base = Path(pattern.anchor) if pattern.is_absolute() else Path()
        matches = list(base.glob(str(pattern.relative_to(base))))
    else:
        matches = [pattern]
    return [m for m in matches if m.is_dir() and not m.is_symlink()]


def _drive_roots(usb: UsbConfig, extra_dirs: list[Path]) -> list[Path]:
    roots: set[Path] = set()
    for pattern in usb.mount_roots:
        roots.update(_real_dirs(Path(pattern).expanduser()))
    for folder in [*usb.extra_dirs, *extra_dirs]:
        folder = folder.expanduser()
        if folder.is_dir():
            roots.add(folder)
    return sorted(roots)


def _subdirs(folder: Path) -> list[Path]:
    """Real (non-symlink) subfolders of `folder`, except those a package scan never enters.

    A drive can vanish mid-scan and a drive can hold folders we may not read: either way the
    folder has nothing we can offer as a package, so it contributes no subfolders.
    """
    try:
        with os.scandir(folder) as entries:
            return [
                Path(entry.path)
                for entry in entries
                if entry.name not in SKIPPED_DIRS and entry.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


def _walk_drive(root: Path, visited: set[Path]) -> list[Path]:
    """Package candidates under `root` (depth 0 to MAX_DEPTH); adds every folder looked at."""
    found: list[Path] = []
    level = [root]
    for depth in range(MAX_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            visited.add(folder)
            if os.path.lexists(folder / MANIFEST_FILE):
                found.append(folder)
            elif depth < MAX_DEPTH:
                below.extend(_subdirs(folder))
        level = below
    return found


def _scan(usb: UsbConfig, extra_dirs: list[Path]) -> tuple[list[Drive], set[Path]]:
    """The drives, and every folder the scan looked at (what the watcher watches)."""
    roots = _drive_roots(usb, extra_dirs)
    visited: set[Path] = set()
    owner: dict[str, tuple[int, Path, Path]] = {}
    for root in roots:
        depth = len(root.absolute().parts)
        for candidate in _walk_drive(root, visited):
            real = os.path.realpath(candidate)
            if real not in owner or owner[real][0] < depth:
                owner[real] = (depth, root, candidate)
    packages: dict[Path, list[Path]] = {root: [] for root in roots}
    for _, root, candidate in owner.values():
        packages[root].append(candidate)
    drives = [Drive(path=root, packages=sorted(packages[root])) for root in roots]
    return drives, visited


def scan_drives(usb: UsbConfig, extra_dirs: list[Path]) -> list[Drive]:
    """Every drive found now and the package candidates on each, sorted by path.

    A candidate reachable from two drives (one nested in the other) belongs to the deepest.
    Cheap enough to run every second: at most three levels of `scandir` per drive.
    """
    return _scan(usb, extra_dirs)[0]


def _pattern_parents(pattern: str) -> set[Path]:
    """Existing folders matching each proper prefix of `pattern` (`/run/media`, `/run/media/*`)."""
    parts = Path(pattern).expanduser().parts
    found: set[Path] = set()
    for end in range(1, len(parts)):
        prefix = Path(*parts[:end])
        if str(prefix) != prefix.anchor:
            found.update(_real_dirs(prefix))
    return found


def _scan_for_watch(usb: UsbConfig, extra_dirs: list[Path]) -> tuple[list[Drive], list[Path]]:
    """The drives, and the folders to watch: those above the mount roots and every one scanned."""
    drives, paths = _scan(usb, extra_dirs)
    for pattern in usb.mount_roots:
        paths |= _pattern_parents(pattern)
    return drives, sorted(paths)


async def watch_drives(
    usb: UsbConfig, extra_dirs: list[Path], stop_event: asyncio.Event
) -> AsyncIterator[list[Drive]]:
    """Yield the drive list at once, then again each time a drive or package comes or goes.

    Every folder the scan looks at (the mount-root parents, each drive and the two levels
    below it) is watched with inotify, non-recursively, so a package folder appearing shows
    within `WATCH_DEBOUNCE_MS`; when the set of watched folders changes the watch restarts.
    Watching whole drives recursively would cost one inotify watch per folder of every repo.

    Gotcha: a freshly *mounted* filesystem produces no inotify event inside the watched tree
    (mounting is not a write to the mount point's folder, and a watch on that folder keeps
    looking at the folder underneath the mount). So the watcher also rescans on a tick of
    `usb.rescan_interval_s` (watchfiles' `rust_timeout` with `yield_on_timeout`), which bounds
    how long a newly mounted drive takes to show.

    The scan runs in a thread of its own, so neither a hung mount (a dead network share under
    `/mnt`) nor busy shared worker threads (validations) hold up the caller's event loop or the
    next rescan. Stops when `stop_event` is set.
    """
    tick_ms = int(usb.rescan_interval_s * 1000)
    loop = asyncio.get_running_loop()
    last: list[Drive] | None = None
    scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cra-usb-scan")

    async def scan() -> tuple[list[Drive], list[Path]]:
        return await loop.run_in_executor(scanner, _scan_for_watch, usb, extra_dirs)

    try:
        while not stop_event.is_set():
            drives, watched = await scan()
            if drives != last:
                last = drives
                yield drives
            if not watched:
                await _sleep_unless_stopped(stop_event, usb.rescan_interval_s)
                continue
            changes = awatch(
                *watched,
                stop_event=stop_event,
                rust_timeout=tick_ms,
                yield_on_timeout=True,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                recursive=False,
            )
            try:
                async with aclosing(changes):
                    async for _batch in changes:
                        drives, now_watched = await scan()
                        if drives != last:
                            last = drives
                            yield drives
                        if now_watched != watched:
                            break
            except FileNotFoundError:
                # A watched folder vanished between the scan and the start of the watch
                # (a drive unplugged): rescan and watch what is there now.
                continue
    finally:
        # Never wait here for a scan stuck on a hung mount: leave that thread behind.
        scanner.shutdown(wait=False, cancel_futures=True)


async def _sleep_unless_stopped(stop_event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)
    except TimeoutError:
        return
