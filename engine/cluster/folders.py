"""A folder sent between machines as one checksummed tar, unpacked into place whole.

Packing follows no link and takes regular files and folders only. Unpacking checks the sha256
first, then extracts with tarfile's `data` filter (no absolute paths, no `..`, no device files,
no link leaving the folder) into a staging folder beside the destination, and renames it into
place: a crash leaves the old folder or the new one, never half of one.
"""

import gzip
import hashlib
import io
import secrets
import tarfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.cluster.errors import NodeError
from engine.core.staged import remove_tree


class PackedFolder(BaseModel):
    """A folder's tar (gzip) and its sha256."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    data: bytes


def pack_paths(root: Path, paths: Iterable[str]) -> PackedFolder:
    """The files and folders at `paths` (relative to `root`, in order) as one tar. The same
    files give the same bytes (the gzip header carries no time; tarfile walks folders in name
    order), so a package's tar has one sha256 whichever head process packs it."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for rel in paths:
            tar.add(root / rel, arcname=rel, recursive=True)
    data = buffer.getvalue()
    return PackedFolder(sha256=hashlib.sha256(data).hexdigest(), data=data)


def unpack_folder(
    packed: PackedFolder, dest: Path, what: str, only: list[str] | None = None
) -> list[str]:
    """Put the packed tree's top-level entries in `dest` (made if missing), each replacing what
    `dest` held under its name; returns their names. With `only`, a tree holding other entries
    is refused before anything is replaced. `what` names the tree in errors."""
    got = hashlib.sha256(packed.data).hexdigest()
    if got != packed.sha256:
        raise NodeError(f"{what} arrived damaged: sha256 {got}, sent as {packed.sha256}")
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".incoming-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")
        names = sorted(p.name for p in staging.iterdir())
        if only is not None and names != sorted(only):
            raise NodeError(f"{what} hold {names}, not {sorted(only)}")
        for name in names:
            target = dest / name
            if target.exists() or target.is_symlink():
                remove_tree(target)
            (staging / name).rename(target)
    except (tarfile.TarError, OSError) as exc:
        raise NodeError(f"{what} cannot be unpacked into {dest}: {exc}") from exc
    finally:
        remove_tree(staging)
    return names
