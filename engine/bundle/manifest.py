"""bundle.json, what a bundle holds and what it is for, and SHA256SUMS over every file in it."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.core.hashing import sha256_file

MANIFEST_FILE = "bundle.json"
SUMS_FILE = "SHA256SUMS"
LOCK_FILE = "requirements.lock"
WHEELS_DIR = "wheels"
DEBS_DIR = "debs"
VLLM_DIR = "vllm"
"""--vllm: vLLM's wheels (`vllm/wheels/`) and their lock (`vllm/requirements.lock`), for the
environment of its own `cra serve --install-vllm` makes from them."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DebianRepo(_Model):
    """debs/: the Debian release and architecture its files are for, and what it installs."""

    codename: str
    architecture: str
    tools: list[str]
    """The packages install-system.sh installs, each when the machine lacks it."""
    deb_count: int


class BundleManifest(_Model):
    """bundle.json. The counts and total size cover every file but bundle.json and SHA256SUMS."""

    format: Literal[1] = 1
    console_version: str
    python_version: str
    platform: str
    """pip's platform tag of the wheels (`manylinux_2_36_x86_64`)."""
    extras: list[str]
    torch_version: str
    torch_build: str
    """torch's local version tag (`+cpu`); empty for a build without one (PyPI's CUDA build)."""
    wheel_count: int
    debian: DebianRepo | None
    """None when made with --no-debs: the system tools must then come another way."""
    file_count: int
    total_bytes: int
    locked_by: str
    """The uv that compiled requirements.lock offline (`uv 0.13.9`)."""
    created_at: str
    notes: list[str] = []
    vllm_version: str | None = None
    """With --vllm: the vLLM under vllm/ (None without)."""
    vllm_wheel_count: int | None = None


def bundle_files(root: Path) -> list[Path]:
    """Every regular file under `root`, as paths relative to it, sorted."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def write_sha256sums(root: Path) -> int:
    """Write root/SHA256SUMS (`sha256sum -c` reads it) over every other file; how many."""
    files = [p for p in bundle_files(root) if p.as_posix() != SUMS_FILE]
    lines = [f"{sha256_file(root / p)}  {p.as_posix()}\n" for p in files]
    (root / SUMS_FILE).write_text("".join(lines), encoding="utf-8")
    return len(files)


def read_manifest(root: Path) -> BundleManifest:
    return BundleManifest.model_validate_json((root / MANIFEST_FILE).read_text(encoding="utf-8"))
