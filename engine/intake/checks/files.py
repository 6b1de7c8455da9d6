"""Check: every file in the package follows the file policy.

The package holds only `repo/`, `packages/` (regular wheel files) and `manifest.json`. Nowhere may
there be a binary executable, a link that leaves the package, a hardlink (its other name may lie
outside), a device file, FIFO or socket, or a name that is not printable UTF-8; outside `packages/`
there may be no archive. Git's object store is zlib streams and packfiles, which are not archives.

The walk never follows a link and opens nothing but regular files (opening a FIFO would block).
Folder entries never include `.` or `..`, so a path can leave the package only through a link:
each link is resolved against the real filesystem and must stay inside.
"""

import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from engine.intake.checks.context import PackageContext, failed, passed
from engine.intake.validation_report import CheckResult

NAME = "file-policy"
MAX_LISTED = 100
SNIFF_BYTES = 512
TOP_LEVEL = {"repo": stat.S_ISDIR, "packages": stat.S_ISDIR, "manifest.json": stat.S_ISREG}
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
ARCHIVE_SUFFIXES = (
    *(".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".lz", ".lzma", ".zst", ".7z", ".rar"),
    *(".whl", ".egg", ".jar", ".war", ".cab", ".cpio", ".rpm", ".deb"),
)
EXECUTABLE_MAGIC = (
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class file"),
)
ARCHIVE_MAGIC = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"\x1f\x8b\x08", "gzip"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (257, b"ustar", "tar"),
)


def check_file_policy(ctx: PackageContext) -> list[CheckResult]:
    root = Path(os.path.realpath(ctx.root))
    counts: Counter[str] = Counter()
    problems = list(_walk(root, counts))
    if not problems:
        summary = f"{counts['file']} files, {counts['folder']} folders, {counts['link']} links"
        return [passed(NAME, f"{summary}: layout, names, links and file types are allowed")]
    results = [failed(NAME, rule, path) for path, rule in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        more = len(problems) - MAX_LISTED
        results.append(failed(NAME, f"{more} more files break the file policy (not listed)", None))
    return results


def _walk(root: Path, counts: Counter[str]) -> Iterator[tuple[str, str]]:
    """(path, rule) for every breach under `root`, folders in name order, depth first.

    Names that are not UTF-8 travel as str with surrogate escapes (os.fsdecode), so the walk
    reaches every file; `_name_rules` refuses them.
    """
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            yield _show(folder.relative_to(root)), f"folder cannot be read: {exc.strerror}"
            continue
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            rel = path.relative_to(root)
            yield from ((_show(rel), rule) for rule in _entry_rules(root, rel, entry, counts))
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
        pending.extend(reversed(subfolders))


def _entry_rules(
    root: Path, rel: Path, entry: os.DirEntry[str], counts: Counter[str]
) -> Iterator[str]:
    yield from _name_rules(entry.name)
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:
        yield f"cannot be read: {exc.strerror}"
        return
    mode = info.st_mode
    top_level = len(rel.parts) == 1
    in_packages = rel.parts[0] == "packages" and not top_level
    if top_level:
        yield from _top_level_rules(entry.name, mode)
    if stat.S_ISLNK(mode):
        counts["link"] += 1
        yield from _link_rules(root, rel)
        if in_packages:
            yield "packages/ holds only regular wheel files, not links"
    elif stat.S_ISDIR(mode):
        counts["folder"] += 1
        if in_packages:
            yield "packages/ holds only wheel files, not folders"
    elif stat.S_ISREG(mode):
        counts["file"] += 1
        if info.st_nlink > 1:
            yield f"hardlink ({info.st_nlink} names): another name may lie outside the package"
        if in_packages:
            yield from _package_file_rules(entry.name)
        yield from _content_rules(root / rel, entry.name, in_packages)
    else:
        yield f"{_special_kind(mode)}: only regular files, folders and links may be in a package"


def _name_rules(name: str) -> Iterator[str]:
    try:
        text = os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        yield "file name is not valid UTF-8"
        return
    if not all(ch.isprintable() for ch in text):
        yield "file name holds control or invisible characters"


def _top_level_rules(name: str, mode: int) -> Iterator[str]:
    is_kind = TOP_LEVEL.get(name)
    if is_kind is None:
        yield "the package's top level holds only repo/, packages/ and manifest.json"
    elif not is_kind(mode):
        kind = "a regular file" if name == "manifest.json" else "a folder (not a link)"
        yield f"must be {kind}"


def _package_file_rules(name: str) -> Iterator[str]:
    lowered = name.lower()
    if lowered.endswith(".whl"):
        return
    if lowered.endswith(SDIST_SUFFIXES):
        yield "sdist: packages/ takes wheels only (an sdist runs its build code on install)"
    else:
        yield "packages/ holds only wheel (.whl) files"


def _link_rules(root: Path, rel: Path) -> Iterator[str]:
    path = root / rel
    try:
        target = path.readlink()
    except OSError as exc:
        yield f"symlink cannot be read: {exc.strerror}"
        return
    if target.is_absolute():
        yield f"symlink with an absolute target ({_show(target)}): links must stay in the package"
        return
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        yield f"symlink leaves the package (-> {_show(target)})"


def _content_rules(path: Path, name: str, in_packages: bool) -> Iterator[str]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
        try:
            head = os.read(fd, SNIFF_BYTES)
        finally:
            os.close(fd)
    except OSError as exc:
        yield f"cannot be read: {exc.strerror}"
        return
    if kind := _executable_kind(head):
        yield f"binary executable ({kind}): no executables may be in a package"
    if in_packages:
        return
    if kind := _archive_kind(head):
        yield f"archive ({kind}): archives are allowed only as wheels in packages/"
    elif name.lower().endswith(ARCHIVE_SUFFIXES):
        yield "archive (by its name): archives are allowed only as wheels in packages/"


def _executable_kind(head: bytes) -> str | None:
    for magic, kind in EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"MZ") and b"\0" in head[:64]:
        return "a DOS/Windows executable"
    return None


def _archive_kind(head: bytes) -> str | None:
    for offset, magic, kind in ARCHIVE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"
    return None


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    return "unknown file type"


def _show(path: Path) -> str:
    """A path as an operator can read it: bad UTF-8 and control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
