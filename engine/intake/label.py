"""How a repo package is named to the operator: its folder and its short digest.

A manifest's name is not an identity: every demo package is `textkit`, and a drive may hold two
copies of one project, one of them tampered with. So wherever the operator acts on a package or
reads about it (the Ingest pane, the corpus listings, the morning report, `cra ingest`), it is
named `folder@digest`, the folder it was found in on the drive and the first characters of its
manifest's sha256 (the package's identity in the corpus, which `cra harness` takes as a prefix),
with the manifest's name after it when it differs from the folder: `hooked-repo@3f9a1c2
(textkit)`. Folder and name come from a drive, so the label is returned neutralised.
"""

from pathlib import Path

from engine.core.terminal_text import neutralise

SHORT_DIGEST = 7
PATH_DIGEST_PREFIX = "path:"
"""A rejected package whose manifest could not be read is keyed by its path's digest, which
names no content: its label is the folder alone."""


def package_label(folder: str | Path | None, digest: str | None, name: str | None = None) -> str:
    """`folder@digest (name)` for the package found at the path `folder` (only its last part
    is shown) whose manifest digest is `digest` (None before the manifest was read) and whose
    manifest names it `name`."""
    base = Path(folder).name if folder else ""
    shown = base or name or "unnamed package"
    label = shown
    if digest and not digest.startswith(PATH_DIGEST_PREFIX):
        label += f"@{digest[:SHORT_DIGEST]}"
    if name and name != shown:
        label += f" ({name})"
    return neutralise(label)
