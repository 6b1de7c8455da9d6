"""Base model checkpoints: each frozen base a role has had, `{role}-base-v{N}`, by its files.

LoRA Training Strategy §10.5: bases are versioned like adapters, and an adapter is only valid on
the base it was trained on. Changing a role's base therefore strands the adapters of the old one:
they are never loaded or promoted again, `resolve` falls back to the bare base and says why, and
`cra train-plan` lists them for retraining. Nothing is deleted: every version keeps its row and
its files' hashes, for recovery.

The workspace config says where a role's base is (`[training] base_models`, `[serving] bases`);
this registry says which version that folder is. A configured folder that is not the role's
current version is refused by everything that trains or serves on it until the operator
registers it (`cra bases register ROLE`): a base change is deliberate. A role's first base is
registered on first use, so a new workspace needs no extra step.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.core.db import immediate, inserted_id
from engine.core.errors import CraError
from engine.core.hashing import sha256_file
from engine.core.stages import BaseModelKind
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace

TRAINING_KEY = "[training] base_models"
SERVING_KEY = "[serving] bases"
ADAPTER_CONFIG = "adapter_config.json"
SKIPPED_DIRS = frozenset({".cache"})
"""Top-level folders a model download writes beside the weights (Hugging Face's `.cache/`
metadata) that change without the model changing: not part of a base's identity."""
STRANDABLE = ("active", "candidate", "inactive")
"""Adapter statuses that could serve again; a rejected version never will."""


class BaseRegistryError(CraError):
    """A base model folder cannot be used or registered as asked."""


class BaseChangedError(BaseRegistryError):
    """The configured base of a role is not its registered current version."""


class BaseVersion(BaseModel):
    """One row of `base_versions`: a registered base checkpoint.

    `path` is workspace-relative when the folder lies inside the workspace, else absolute;
    `files_json` maps each file's path in the folder to its sha256; `retired_at` is set when
    a newer version of the role was registered (None: the role's current base)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    role: BaseModelKind
    version: int
    name: str
    path: str
    sha256: str
    size: int
    files_json: str
    registered_at: str
    registered_by: str
    note: str
    retired_at: str | None

    @property
    def files(self) -> dict[str, str]:
        hashes: dict[str, str] = json.loads(self.files_json)
        return hashes


@dataclass(frozen=True)
class Registration:
    """What `register_base` did: the role's current version, whether it is new, the version
    it replaced, and the adapters the change left unservable (name, status)."""

    version: BaseVersion
    created: bool
    replaced: BaseVersion | None
    stranded: list[tuple[str, str]]


def base_name(role: str, version: int) -> str:
    return f"{role}-base-v{version}"


def current_base(ws: Workspace, role: str) -> BaseVersion | None:
    """The role's current base version; None before its first registration."""
    rows = list(ws.db["base_versions"].rows_where("role = ? AND retired_at IS NULL", [role]))
    return BaseVersion(**rows[0]) if rows else None


def base_by_id(ws: Workspace, base_id: int) -> BaseVersion:
    return BaseVersion(**ws.db.table("base_versions").get(base_id))


def base_by_name(ws: Workspace, name: str) -> BaseVersion:
    """Version `name`; refused when there is none."""
    rows = list(ws.db["base_versions"].rows_where("name = ?", [name]))
    if not rows:
        raise BaseRegistryError(f"there is no base version {name!r} (`cra bases list`)")
    return BaseVersion(**rows[0])


def list_bases(ws: Workspace) -> list[BaseVersion]:
    """Every registered base version, by role and version number."""
    rows = ws.db.table("base_versions").rows_where(order_by="role, version")
    return [BaseVersion(**row) for row in rows]


def base_folder_of(ws: Workspace, version: BaseVersion) -> Path:
    """The version's folder, absolute."""
    path = Path(version.path)
    return path if path.is_absolute() else ws.root / path


def configured_folder(ws: Workspace, role: BaseModelKind, key: str) -> Path:
    """The model folder config key `key` names for `role`, resolved and checked: a folder with
    a config.json, neither an adapter nor anything under the workspace's adapters/ or
    training/ folders (where adapters and their merges live)."""
    section = ws.config.training.base_models if key == TRAINING_KEY else ws.config.serving.bases
    configured = section.get(role)
    name = f"{key}.{role}"
    if configured is None:
        raise BaseRegistryError(
            f"{name} is not set: name the local folder of the frozen {role} base model in "
            f"{ws.config_path}"
        )
    path = Path(configured).expanduser()
    path = (path if path.is_absolute() else ws.root / path).resolve()
    if not path.is_dir():
        raise BaseRegistryError(f"{name} = {configured!r}: {path} is not a folder")
    if not (path / "config.json").is_file():
        raise BaseRegistryError(f"{name} = {configured!r}: {path} has no config.json; not a model")
    for derived in (ws.adapters_dir, ws.training_dir):
        if path.is_relative_to(derived.resolve()):
            raise BaseRegistryError(
                f"{name} = {configured!r}: {path} lies under {derived.name}/; a base is a "
                "frozen model, never an adapter or a merge of one"
            )
    if (path / ADAPTER_CONFIG).exists():
        raise BaseRegistryError(
            f"{name} = {configured!r}: {path} holds {ADAPTER_CONFIG}, so it is an adapter or "
            "a merge of one; a base is a frozen model"
        )
    return path


def hash_folder(folder: Path) -> dict[str, str]:
    """Each file's sha256 by its path in `folder`, links to files followed; a linked folder
    inside is refused (its files could change under the base without its own path changing)."""
    hashes: dict[str, str] = {}
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        if here == folder:
            dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]
        for name in dirs:
            if (here / name).is_symlink():
                raise BaseRegistryError(
                    f"{here / name}: a linked folder inside a base model is not hashed; copy "
                    "its files into the base's folder"
                )
        for name in files:
            path = here / name
            if not path.is_file():
                raise BaseRegistryError(f"{path}: not a regular file (a dangling link?)")
            hashes[path.relative_to(folder).as_posix()] = sha256_file(path)
    if not hashes:
        raise BaseRegistryError(f"{folder}: no files to register")
    return dict(sorted(hashes.items()))


def files_digest(files: dict[str, str]) -> str:
    """One sha256 for a folder's files: over `sha256  path` lines, sorted by path."""
    lines = "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def register_base(
    ws: Workspace,
    role: BaseModelKind,
    operator: str | None = None,
    note: str = "",
) -> Registration:
    """Register the folder the config names for `role` as its next base version.

    The folder is `[training] base_models.<role>`, else `[serving] bases.<role>`; when both are
    set they must name the same folder. Registering the current version's folder with the same
    files changes nothing. Otherwise the new version becomes current, the old one is retired,
    and every adapter trained on an older base is stranded."""
    folder = _one_configured_folder(ws, role)
    return _register(ws, role, folder, operator, note or "registered by the operator")


def ensure_base(ws: Workspace, role: BaseModelKind, key: str, verify: bool) -> BaseVersion:
    """The role's current base, which config key `key` must name.

    Registered as version 1 when the role has none yet. Refused when the configured folder is
    not the current version's: the operator changed the config and has not registered the new
    base. With `verify`, the folder's files are hashed and must be the registered ones."""
    folder = configured_folder(ws, role, key)
    current = current_base(ws, role)
    if current is None:
        return _register(ws, role, folder, None, f"registered on first use ({key})").version
    check_configured(ws, role, key, current)
    if verify:
        problems = verify_base(ws, current)
        if problems:
            raise BaseRegistryError(
                f"{current.name} at {base_folder_of(ws, current)}: {problems_line(problems)}. "
                "The base's files are not the registered ones; restore them, or register the "
                f"changed base as a new version: `cra bases register {role}`"
            )
    return current


def check_configured(ws: Workspace, role: BaseModelKind, key: str, current: BaseVersion) -> None:
    """Refuse (BaseChangedError) when config key `key` names another folder than `current`'s:
    the operator changed the config and has not registered the new base."""
    folder = configured_folder(ws, role, key)
    registered = base_folder_of(ws, current).resolve()
    if registered != folder:
        raise BaseChangedError(
            f"{key}.{role} names {folder}, but the {role} base is {current.name} "
            f"({registered}). If the base changed on purpose, register it: `cra bases register "
            f"{role}` (adapters trained on {current.name} then need retraining); otherwise "
            f"point {key}.{role} back at {registered}"
        )


def problems_line(problems: list[str]) -> str:
    """The first of `verify_base`'s problems, and how many more there are."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def verify_base(ws: Workspace, version: BaseVersion) -> list[str]:
    """What differs between the version's folder and its registered files; empty when none."""
    folder = base_folder_of(ws, version)
    if not folder.is_dir():
        return [f"its folder {folder} is missing"]
    try:
        found = hash_folder(folder)
    except BaseRegistryError as exc:
        return [str(exc)]
    expected = version.files
    problems = [f"file {path} is missing" for path in expected if path not in found]
    problems += [
        f"file {path} does not match its registered sha256"
        for path, digest in expected.items()
        if path in found and found[path] != digest
    ]
    problems += [f"unregistered file {path}" for path in found if path not in expected]
    return problems


def unservable_reason(
    ws: Workspace, name: str, role: BaseModelKind, base_version_id: int | None
) -> str | None:
    """Why adapter `name` (trained on base version `base_version_id` of `role`) cannot serve;
    None when it can. Before the role's first base is registered there is nothing to hold an
    adapter against, so it can."""
    current = current_base(ws, role)
    if current is None or base_version_id == current.id:
        return None
    if base_version_id is None:
        return (
            f"{name} records no base version (trained before bases were versioned, on another "
            f"folder than {current.name}); the {role} base is now {current.name}"
        )
    trained_on = base_by_id(ws, base_version_id)
    return f"{name} was trained on {trained_on.name}; the {role} base is now {current.name}"


def stranded_adapters(ws: Workspace) -> list[tuple[str, str, str, str]]:
    """Adapters that could serve but for their base: (name, stage, status, reason), by stage
    and version."""
    rows = ws.db.execute(
        "SELECT name, stage, status, base_model, base_version_id FROM adapter_versions "
        f"WHERE status IN ({', '.join('?' * len(STRANDABLE))}) ORDER BY stage, version",
        list(STRANDABLE),
    ).fetchall()
    stranded = []
    for name, stage, status, role, base_version_id in rows:
        reason = unservable_reason(ws, name, role, base_version_id)
        if reason is not None:
            stranded.append((name, stage, status, reason))
    return stranded


def stored_path(ws: Workspace, folder: Path) -> str:
    """How a folder is recorded: workspace-relative when inside the workspace, else absolute."""
    root = ws.root.resolve()
    return folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)


def configured_keys(ws: Workspace, role: BaseModelKind) -> list[str]:
    """The config keys that name a folder for `role`: training's, serving's, or both."""
    sections = (
        (TRAINING_KEY, ws.config.training.base_models),
        (SERVING_KEY, ws.config.serving.bases),
    )
    return [key for key, section in sections if role in section]


def _one_configured_folder(ws: Workspace, role: BaseModelKind) -> Path:
    keys = configured_keys(ws, role)
    if not keys:
        raise BaseRegistryError(
            f"no {role} base is configured: set {TRAINING_KEY}.{role} (and {SERVING_KEY}.{role}) "
            f"in {ws.config_path} to the base model's folder, then register it"
        )
    folders = {key: configured_folder(ws, role, key) for key in keys}
    if len(set(folders.values())) > 1:
        shown = "; ".join(f"{key}.{role} names {folder}" for key, folder in folders.items())
        raise BaseRegistryError(
            f"{shown}: a role has one base, which training and serving share; make them name "
            "the same folder"
        )
    return next(iter(folders.values()))


def _register(
    ws: Workspace, role: BaseModelKind, folder: Path, operator: str | None, note: str
) -> Registration:
    files = hash_folder(folder)
    digest = files_digest(files)
    size = sum((folder / path).stat().st_size for path in files)
    with immediate(ws.db):
        current = current_base(ws, role)
        if (
            current is not None
            and current.sha256 == digest
            and base_folder_of(ws, current).resolve() == folder
        ):
            return Registration(current, created=False, replaced=None, stranded=[])
        row = ws.db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM base_versions WHERE role = ?", [role]
        ).fetchone()
        number = row[0] + 1
        now = utc_now()
        if current is not None:
            ws.db.execute("UPDATE base_versions SET retired_at = ? WHERE id = ?", [now, current.id])
        new_id = inserted_id(
            ws.db.table("base_versions").insert(
                {
                    "role": role,
                    "version": number,
                    "name": base_name(role, number),
                    "path": stored_path(ws, folder),
                    "sha256": digest,
                    "size": size,
                    "files_json": json.dumps(files, sort_keys=True),
                    "registered_at": now,
                    "registered_by": operator or ws.config.operator,
                    "note": note,
                    "retired_at": None,
                }
            )
        )
        if current is None:
            _adopt_unversioned(ws, role, folder, new_id)
        version = base_by_id(ws, new_id)
        stranded = [(name, status) for name, _, status, _ in stranded_adapters(ws)]
    return Registration(version, created=True, replaced=current, stranded=stranded)


def _adopt_unversioned(ws: Workspace, role: BaseModelKind, folder: Path, base_id: int) -> None:
    """Adapters registered before bases were versioned record only their base's folder: those
    trained on the folder a role's first version registers are recorded as trained on it."""
    rows = ws.db.execute(
        "SELECT id, base_model_path FROM adapter_versions "
        "WHERE base_model = ? AND base_version_id IS NULL AND base_model_path IS NOT NULL",
        [role],
    ).fetchall()
    for adapter_id, recorded in rows:
        path = Path(recorded)
        path = path if path.is_absolute() else ws.root / path
        if path.resolve() == folder:
            ws.db.execute(
                "UPDATE adapter_versions SET base_version_id = ? WHERE id = ?",
                [base_id, adapter_id],
            )
