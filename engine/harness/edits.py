"""Search/replace edits: applying a pipeline's edits to a checkout, and deriving them from a diff.

`apply_edits` applies edits in order, all or nothing: every edit is checked against the files
as the earlier edits left them (held in memory) before anything is written. A search text must
occur exactly once (overlapping occurrences count), so an edit never lands in the wrong place.
`edits_from_change` is its inverse: the search/replace edits that turn one version of a file into
another, each search text unique at the moment it is applied, so the pair round-trips.
"""

import difflib
import os
from pathlib import Path

from engine.harness.package import HarnessError
from engine.harness.plan import Edit


class EditError(HarnessError):
    """An edit cannot be applied; `index` is its position in the list, `path` its file."""

    def __init__(self, index: int, path: str, detail: str) -> None:
        super().__init__(f"edit {index}: {path}: {detail}")
        self.index = index
        self.path = path
        self.detail = detail


def apply_edits(tree: Path, edits: list[Edit]) -> list[str]:
    """Apply `edits` in order under `tree`; return the paths whose content changed, first-touched
    first. Nothing is written unless every edit applies."""
    root = tree.resolve()
    original: dict[str, str | None] = {}
    state: dict[str, str | None] = {}
    last_edit: dict[str, int] = {}
    for index, edit in enumerate(edits):
        if edit.path not in state:
            original[edit.path] = _read(root, index, edit.path)
            state[edit.path] = original[edit.path]
        state[edit.path] = _applied(index, edit, state[edit.path])
        last_edit[edit.path] = index
    changed = [path for path in state if state[path] != original[path]]
    for path in changed:
        _write(root, last_edit[path], path, state[path])
    return changed


def _target(root: Path, index: int, rel: str) -> Path:
    target = root / rel
    parent = os.path.realpath(target.parent)
    if parent != str(root) and not parent.startswith(f"{root}/"):
        raise EditError(index, rel, "the path leads out of the checkout through a link")
    if target.is_symlink():
        raise EditError(index, rel, "the path is a link; edits change regular files only")
    return target


def _read(root: Path, index: int, rel: str) -> str | None:
    target = _target(root, index, rel)
    if not target.exists():
        return None
    if not target.is_file():
        raise EditError(index, rel, "the path is not a regular file")
    try:
        return target.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EditError(index, rel, f"the file is not UTF-8 text ({exc.reason})") from exc


def _applied(index: int, edit: Edit, text: str | None) -> str | None:
    if edit.delete:
        if text is None:
            raise EditError(index, edit.path, "cannot delete: the file does not exist")
        return None
    if not edit.search:
        if text is not None:
            raise EditError(index, edit.path, "cannot create: the file already exists")
        return edit.replace
    if text is None:
        raise EditError(index, edit.path, "cannot edit: the file does not exist")
    count = occurrences(text, edit.search, limit=2)
    if count == 0:
        first_line = edit.search.split("\n", 1)[0]
        raise EditError(index, edit.path, f"search text not found: {first_line!r}")
    if count > 1:
        raise EditError(
            index, edit.path, f"search text matches {occurrences(text, edit.search)} times"
        )
    return text.replace(edit.search, edit.replace, 1)


def _write(root: Path, index: int, rel: str, text: str | None) -> None:
    target = _target(root, index, rel)
    try:
        if text is None:
            target.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        raise EditError(index, rel, f"cannot write the file: {exc.strerror}") from exc


def occurrences(text: str, search: str, limit: int | None = None) -> int:
    """How many times the non-empty `search` occurs in `text`, overlaps included (up to `limit`)."""
    count = 0
    at = text.find(search)
    while at != -1 and (limit is None or count < limit):
        count += 1
        at = text.find(search, at + 1)
    return count


def edits_from_change(path: str, old: str | None, new: str | None) -> list[Edit]:
    """Edits turning `old` into `new` (None: the file is absent), in the order they apply.

    One edit per changed region of a line diff, widened by equal context lines on both sides
    until its search text occurs exactly once in the file as the earlier edits leave it. An
    existing empty file has no text to search, so filling it deletes and recreates it.
    """
    if old is None and new is None:
        raise HarnessError(f"{path}: a change needs an old or a new text")
    if old == new:
        return []
    if old is None:
        return [Edit(path=path, replace=new or "")]
    if new is None:
        return [Edit(path=path, delete=True)]
    if not old:
        return [Edit(path=path, delete=True), Edit(path=path, replace=new)]
    return _region_edits(path, _lines(old), _lines(new))


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def _region_edits(path: str, old: list[str], new: list[str]) -> list[Edit]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    current = list(old)
    shift = 0
    edits = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start, end = i1 + shift, i2 + shift
        edits.append(_unique_edit(path, current, start, end, new[j1:j2]))
        current[start:end] = new[j1:j2]
        shift += (j2 - j1) - (i2 - i1)
    return edits


def _unique_edit(path: str, current: list[str], start: int, end: int, lines: list[str]) -> Edit:
    """Replace current[start:end] by `lines`, with the least symmetric context that is unique."""
    text = "".join(current)
    for context in range(len(current) + 1):
        before = max(start - context, 0)
        after = min(end + context, len(current))
        search = "".join(current[before:after])
        if search and occurrences(text, search, limit=2) == 1:
            replace = "".join([*current[before:start], *lines, *current[end:after]])
            return Edit(path=path, search=search, replace=replace)
    raise AssertionError(f"{path}: the whole non-empty file is always a unique search text")
