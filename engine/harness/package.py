"""An approved corpus package as the harness sees it: its folder and its parsed manifest."""

from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.intake.manifest import ManifestV1, parse_manifest


class HarnessError(CraError):
    """The harness cannot do what was asked (unknown package or commit, a failed build)."""


@dataclass(frozen=True)
class CorpusPackage:
    """An approved package: manifest digest, corpus folder and manifest."""

    digest: str
    root: Path
    manifest: ManifestV1

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def packages(self) -> Path:
        return self.root / "packages"


def load_package(ws: Workspace, digest: str) -> CorpusPackage:
    """The approved package whose manifest digest is `digest`, from the database's record."""
    rows = list(ws.db["packages"].rows_where("digest = ?", [digest], limit=1))
    if not rows:
        raise HarnessError(f"no approved package has the manifest digest {digest}")
    row = rows[0]
    root = ws.root / row["corpus_path"]
    if not root.is_dir():
        raise HarnessError(f"{root}: the approved package's corpus folder is missing")
    manifest = parse_manifest(row["manifest_json"].encode("utf-8"), str(root / "manifest.json"))
    return CorpusPackage(digest=digest, root=root, manifest=manifest)


def find_package(ws: Workspace, name_or_digest: str) -> CorpusPackage:
    """The approved package named `name_or_digest`, or whose digest starts with it (unique)."""
    if not name_or_digest.strip():
        raise HarnessError("an empty package name matches nothing; give a name or a digest prefix")
    rows = ws.db.execute(
        "SELECT digest FROM packages WHERE name = ? OR substr(digest, 1, ?) = ? "
        "ORDER BY approved_at DESC",
        [name_or_digest, len(name_or_digest), name_or_digest],
    ).fetchall()
    digests = list(dict.fromkeys(row[0] for row in rows))
    if not digests:
        raise HarnessError(f"no approved package is named {name_or_digest!r} or has that digest")
    if len(digests) > 1:
        shown = ", ".join(d[:12] for d in digests)
        raise HarnessError(
            f"{name_or_digest!r} matches {len(digests)} approved packages ({shown}); "
            "give a digest prefix"
        )
    return load_package(ws, digests[0])
